"""The official Anthropic Python SDK against rest.sock's /v1/messages (JSON and streamed),
relayed to the OpenAI-compatible fake provider through the broker's translation."""

import anthropic
import httpx2
import pytest


@pytest.fixture()
def client(broker):
    http = httpx2.Client(transport=httpx2.HTTPTransport(uds=broker))
    c = anthropic.Anthropic(
        api_key="unused-by-the-broker",
        base_url="http://localhost",
        http_client=http,
        max_retries=0,
    )
    yield c
    http.close()


def test_a_plain_message(client):
    m = client.messages.create(
        model="chat",
        max_tokens=256,
        system="Be brief.",
        messages=[{"role": "user", "content": "What's the weather?"}],
    )
    assert m.type == "message" and m.role == "assistant"
    assert m.content[0].type == "text" and m.content[0].text
    assert m.stop_reason == "end_turn"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens == 30


def test_count_tokens(client):
    n = client.messages.count_tokens(
        model="chat", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert n.input_tokens > 0


def test_errors_are_the_sdks_own_exceptions(client):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(
            model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.body["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("model", ["chat", "claude"])
def test_a_streamed_message(client, model):
    """Against the OpenAI-compatible upstream (translated) and the native one (passed through)."""
    with client.messages.stream(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": "What's the weather?"}],
    ) as stream:
        pieces = [text for text in stream.text_stream]
        final = stream.get_final_message()
    assert len(pieces) > 1, "the answer arrived in pieces"
    assert "".join(pieces) == final.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}


@pytest.mark.parametrize(
    "model",
    [
        "agent",  # an OpenAI-compatible upstream: translated both ways
        "claude",  # the native Anthropic upstream: passed through untouched
    ],
)
def test_a_streamed_tool_use_round_trip(client, model):
    """tool_use (streamed, arguments as input_json_delta) -> tool_result -> streamed answer."""
    messages = [{"role": "user", "content": "What's the weather in Paris?"}]
    with client.messages.stream(
        model=model, max_tokens=256, tools=[WEATHER_TOOL], messages=messages
    ) as stream:
        kinds = [event.type for event in stream]
        first = stream.get_final_message()
    assert "input_json" in kinds, kinds
    assert first.stop_reason == "tool_use"
    use = [b for b in first.content if b.type == "tool_use"][0]
    assert use.name == "get_weather" and use.input == {"location": "Paris"}
    assert use.id

    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C, sunny"}],
        },
    ]
    with client.messages.stream(
        model=model, max_tokens=256, tools=[WEATHER_TOOL], messages=messages
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Tool result: 18C, sunny"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_a_plain_message_from_the_native_upstream_comes_back_as_sent(client):
    m = client.messages.create(
        model="claude", max_tokens=256, messages=[{"role": "user", "content": "Hi"}]
    )
    # The upstream's own answer: its id and its upstream model name, untouched.
    assert m.id == "msg_fake01" and m.model == "up-agent"
    assert m.content[0].type == "text"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0
