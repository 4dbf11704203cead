"""An OpenRouter client that only changed its base URL: the official OpenAI Python SDK, as
OpenRouter documents it (its base path /api/v1, HTTP-Referer and X-Title headers, the
`provider`, `models`, `transforms` extra body fields), pointed at the broker. A model served by
OpenRouter answers with OpenRouter's own bytes: the raw body equals what the fake OpenRouter
sends for the same request."""

import httpx2
import openai
import pytest

from conftest import OPENROUTER_KEY

HEADERS = {"HTTP-Referer": "https://example.org/my-app", "X-Title": "My App"}
EXTRA = {
    "provider": {"order": ["OpenAI"], "allow_fallbacks": True, "data_collection": "deny", "zdr": True},
    "transforms": ["middle-out"],
}
MESSAGES = [{"role": "user", "content": "What's the weather in San Francisco?"}]


@pytest.fixture()
def openrouter_client(broker):
    http = httpx2.Client(transport=httpx2.HTTPTransport(uds=broker))
    c = openai.OpenAI(
        api_key="sk-or-placeholder",
        base_url="http://localhost/api/v1",
        http_client=http,
        default_headers=HEADERS,
        max_retries=0,
    )
    yield c
    http.close()


def direct(fake_provider, body):
    """What the fake OpenRouter itself answers to `body`."""
    url = fake_provider.removesuffix("/v1") + "/api/v1/chat/completions"
    r = httpx2.post(url, json=body, headers={"Authorization": f"Bearer {OPENROUTER_KEY}"})
    assert r.status_code == 200, r.text
    return r.content


def test_an_openrouter_model_answers_with_openrouters_own_bytes(openrouter_client, fake_provider):
    raw = openrouter_client.chat.completions.with_raw_response.create(
        model="routed", messages=MESSAGES, extra_body=EXTRA
    )
    assert raw.headers["x-aibroker-provider"] == "openrouter-0"
    want = direct(fake_provider, {"model": "openai/gpt-4o", "messages": MESSAGES})
    assert raw.content == want, "byte-identical to what OpenRouter sent"
    parsed = raw.parse()
    assert parsed.choices[0].message.content
    assert parsed.usage.prompt_tokens > 0


def test_the_models_list_and_key_answer_under_the_openrouter_base_path(openrouter_client):
    ids = [m.id for m in openrouter_client.models.list()]
    assert "routed" in ids and "chat" in ids


def test_a_streamed_openrouter_model_passes_every_event(openrouter_client):
    stream = openrouter_client.chat.completions.create(
        model="routed", messages=MESSAGES, extra_body=EXTRA, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text
