"""The fake OpenAI through the real openai SDK."""

from __future__ import annotations

import openai
import pytest


@pytest.fixture
def client(sandbox):
    with openai.OpenAI(
        base_url=f"{sandbox.url}/openai/v1", api_key=sandbox.env["OPENAI_API_KEY"], max_retries=0, timeout=20
    ) as oa:
        yield oa


def test_completion_is_derived_from_the_last_user_message(client, sandbox):
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        temperature=0.3,
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": "What is the weather like?"},
        ],
    )
    assert completion.choices[0].message.content == "Sandbox answer: What is the weather like?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-4o-mini"
    usage = completion.usage
    assert usage.completion_tokens > 0 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    [recorded] = sandbox.client.openai_requests()
    assert recorded["temperature"] == 0.3
    assert recorded["messages"][0] == {"role": "system", "content": "You are terse."}


def test_answer_is_truncated_to_200_characters(client):
    long = "x" * 500
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": long}])
    assert completion.choices[0].message.content == "Sandbox answer: " + "x" * 200


async def test_async_client_works(sandbox):
    async with openai.AsyncOpenAI(
        base_url=f"{sandbox.url}/openai/v1", api_key=sandbox.env["OPENAI_API_KEY"], max_retries=0
    ) as oa:
        completion = await oa.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
        )
    assert completion.choices[0].message.content == "Sandbox answer: hi"


def test_wrong_or_missing_key_is_authentication_error(sandbox):
    with openai.OpenAI(base_url=f"{sandbox.url}/openai/v1", api_key="sk-wrong", max_retries=0) as oa:
        with pytest.raises(openai.AuthenticationError) as caught:
            oa.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 401
    assert "sk-wrong" not in str(caught.value)


@pytest.mark.parametrize(
    ("marker", "error", "code"),
    [
        ("[sandbox:429]", openai.RateLimitError, "rate_limit_exceeded"),
        ("[sandbox:quota]", openai.RateLimitError, "insufficient_quota"),
        ("[sandbox:500]", openai.InternalServerError, None),
        ("[sandbox:401]", openai.AuthenticationError, "invalid_api_key"),
    ],
)
def test_markers_trigger_errors(client, marker, error, code):
    with pytest.raises(error) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"please {marker}"}])
    assert caught.value.code == code


def test_marker_only_counts_in_the_last_user_message(client):
    completion = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "[sandbox:500]"}, {"role": "user", "content": "fine now"}],
    )
    assert completion.choices[0].message.content == "Sandbox answer: fine now"


def test_missing_messages_is_bad_request(client):
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="m", messages=[])
