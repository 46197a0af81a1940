"""A server that echoes the client's API key in its error text: the key never reaches a result,
a log line or an event (real SDK, fake server)."""

from __future__ import annotations

import json
import logging

import pytest

from llm_client import GPT5Nano, OpenAIClient
from llm_client.exceptions import AuthenticationError
from llm_client.testing import FakeOpenAI

KEY = "sk-proj-echoed-0123456789abcdefABCDEF"
MESSAGES = [{"role": "user", "content": "Hello there."}]


def _refusal(key: str) -> str:
    # what OpenAI (and proxies in front of it) answer for a bad key, key included
    return f"Incorrect API key provided: {key}. You can find your API key at https://x/keys."


async def test_error_text_is_redacted_of_the_clients_key(
    server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with OpenAIClient(
        GPT5Nano, base_url=server.base_url, api_key=KEY, rate_limit_backend=None
    ) as client:
        server.fail_next(401, message=_refusal(KEY))
        result = await client.get_response(messages=MESSAGES)
        assert result["status"] == 401
        assert "Incorrect API key provided: [REDACTED]." in result["error"]

        server.fail_next(401, message=_refusal(KEY))
        with pytest.raises(AuthenticationError) as info:
            await client.invoke(messages=MESSAGES, raise_on_error=True)
        assert KEY not in str(info.value) and KEY not in info.value.message

        server.fail_next(401, message=_refusal(KEY), endpoint="chat")
        events = [event async for event in client.stream(messages=MESSAGES)]
        assert events[-1].type == "error"
        assert KEY not in json.dumps([e.data for e in events])
        assert events[-1].result is not None and KEY not in events[-1].result.error

        server.fail_next(401, message=_refusal(KEY), endpoint="responses")
        responses = await client.get_response(messages=MESSAGES, api="responses")
        assert responses["status"] == 401 and KEY not in json.dumps(responses)
    assert server.count() == 4
    assert KEY not in caplog.text


def test_environment_secrets_follow_every_change_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scan is reused only while the environment is unchanged: a variable set, changed or
    removed between two stores is seen by the next one."""
    from llm_client.known_secrets import environment_secrets, find_secret

    first, second = "sk-live-" + "a" * 24, "sk-live-" + "b" * 24
    monkeypatch.delenv("SOME_SERVICE_API_KEY", raising=False)
    assert find_secret({"text": first}) is None
    monkeypatch.setenv("SOME_SERVICE_API_KEY", first)
    assert find_secret({"text": first}) == "the value of $SOME_SERVICE_API_KEY"
    assert environment_secrets().count(first) == 1
    monkeypatch.setenv("SOME_SERVICE_API_KEY", second)
    assert find_secret({"text": first}) is None
    assert find_secret(["x", {"y": f"...{second}..."}]) == "the value of $SOME_SERVICE_API_KEY"
    monkeypatch.delenv("SOME_SERVICE_API_KEY")
    assert find_secret({"text": second}) is None
    environment_secrets().append("not kept")  # callers get a copy
    assert "not kept" not in environment_secrets()
