"""The official OpenAI Python SDK's Responses client against rest.sock's /v1/responses,
relayed to the OpenAI Chat fake provider through the broker's translation."""

import json

import openai
import pytest

from test_openai_sdk import client  # noqa: F401  (the same SDK client on rest.sock)

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
}


def test_a_plain_response(client):
    r = client.responses.create(model="chat", instructions="Be brief.", input="Weather?", store=False)
    assert r.status == "completed"
    assert r.output_text.startswith("I'm unable to provide real-time weather")
    assert r.usage.input_tokens == 14 and r.usage.output_tokens == 30


def test_a_streamed_function_call_round_trip(client):
    """Streamed function call (arguments as deltas) -> function_call_output -> streamed answer."""
    history = [{"role": "user", "content": "What's the weather in Paris?"}]
    deltas = []
    with client.responses.stream(
        model="agent", input=history, tools=[WEATHER_TOOL], store=False
    ) as stream:
        for event in stream:
            if event.type == "response.function_call_arguments.delta":
                deltas.append(event.delta)
        first = stream.get_final_response()
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"location": "Paris"}
    assert len(deltas) > 1 and "".join(deltas) == call.arguments

    history += [o.model_dump(exclude_none=True) for o in first.output]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "18C, sunny"})
    with client.responses.stream(
        model="agent", input=history, tools=[WEATHER_TOOL], store=False
    ) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == "Tool result: 18C, sunny"
    assert final.output_text == text
    assert final.status == "completed" and final.usage.output_tokens > 0


def test_stored_responses_are_refused_by_name(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="chat", input="x", previous_response_id="resp_1")
    assert "previous_response_id" in e.value.body["message"]
