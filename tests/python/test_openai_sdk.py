"""The official OpenAI Python SDK against rest.sock through a Unix-socket transport."""

import httpx2
import openai
import pytest

TEXT = (
    "I'm unable to provide real-time weather updates. To get the current weather in "
    "San Francisco, I recommend checking a reliable weather website or a weather app."
)


@pytest.fixture()
def client(broker):
    http = httpx2.Client(transport=httpx2.HTTPTransport(uds=broker))
    c = openai.OpenAI(
        api_key="unused-by-the-broker",
        base_url="http://localhost/v1",
        http_client=http,
        max_retries=0,
    )
    yield c
    http.close()


def test_chat(client):
    r = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "What's the weather?"}]
    )
    assert r.choices[0].message.content == TEXT
    assert r.model == "up-chat"
    assert r.usage.prompt_tokens == 14 and r.usage.completion_tokens == 30
    extra = r.model_extra
    assert extra["provider"] == "fake"
    assert r.usage.model_extra["cost"] == pytest.approx((14 * 2.0 + 30 * 8.0) / 1e6)


def test_streamed_chat(client):
    stream = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "What's the weather?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    assert text == TEXT
    assert usage is not None and usage.completion_tokens == 30


def test_embeddings(client):
    r = client.embeddings.create(model="embed", input="hello world")
    assert len(r.data) >= 1 and len(r.data[0].embedding) > 0
    assert r.usage.prompt_tokens == 8


def test_models_and_errors(client):
    ids = [m.id for m in client.models.list()]
    assert ids == ["chat", "agent", "claude", "routed", "embed"]
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "GET /v1/models" in e.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="chat", messages="not-a-list")
