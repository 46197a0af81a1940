"""llm_client.middleware.tokens: input tokens counted once per call, the reservation the
limiter takes (OpenAI's estimate: characters / 4 plus the output cap), and an input over the
model's limit refused before anything is sent (end to end at the end)."""

from __future__ import annotations

from typing import Any

import pytest

from llm_client import ContextLengthExceededError, GPT5Nano, OpenAIClient
from llm_client.middleware import TokenCounting
from llm_client.middleware.tokens import (
    estimate_input_tokens,
    estimate_output_tokens,
    input_characters,
)
from llm_client.pipeline import Call
from llm_client.result import LLMResult
from llm_client.testing import FakeOpenAI
from llm_client.tokens import count_tokens


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Call] = []

    async def __call__(self, call: Call) -> LLMResult:
        self.seen.append(call)
        return LLMResult(params=call.params, output="ok")


async def _context(operation: Any, params: dict[str, Any], **changes: Any) -> dict[str, Any]:
    nxt = Recorder()
    call = Call(profile=GPT5Nano, operation=operation, params=params, **changes)
    await TokenCounting()(call, nxt)
    return dict(nxt.seen[0].context)


async def test_chat_input_is_counted_and_the_reservation_adds_the_output_cap() -> None:
    messages = [{"role": "user", "content": "x" * 41}]
    context = await _context("chat", {"messages": messages, "max_completion_tokens": 100})
    assert context["input_tokens"] == count_tokens(messages, model=GPT5Nano)
    assert context["reserve_tokens"] == 11 + 100  # ceil(41 / 4) + max_completion_tokens


async def test_responses_instructions_count_as_a_developer_message() -> None:
    params = {"input": "hello", "instructions": "be brief", "max_output_tokens": 50}
    context = await _context("responses", params)
    as_messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert context["input_tokens"] == count_tokens(as_messages, model=GPT5Nano)
    assert context["reserve_tokens"] == estimate_input_tokens(as_messages) + 50


async def test_embeddings_reserve_no_output() -> None:
    context = await _context("embeddings", {"input": ["abcd", "efgh"]})
    assert context["reserve_tokens"] == 2


async def test_a_call_already_counted_is_not_counted_again() -> None:
    context = await _context(
        "chat", {"messages": [{"role": "user", "content": "hi"}]}, context={"input_tokens": 7}
    )
    assert context == {"input_tokens": 7}


async def test_input_over_the_models_limit_raises_before_the_next_step() -> None:
    nxt = Recorder()
    huge = [{"role": "user", "content": "word " * (GPT5Nano.max_input + 10)}]
    call = Call(profile=GPT5Nano, operation="chat", params={"messages": huge})
    with pytest.raises(ContextLengthExceededError, match="messages is too long"):
        await TokenCounting()(call, nxt)
    assert nxt.seen == []


def test_characters_count_text_only() -> None:
    messages = [
        {"role": "user", "content": "abc"},
        {"role": "user", "content": [{"type": "text", "text": "de"}]},
    ]
    assert input_characters(messages) == 5
    assert input_characters("abcdef") == 6


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"max_output_tokens": 10}, 10),
        ({"max_completion_tokens": 10**9}, GPT5Nano.max_output),  # capped by the model
        ({"max_tokens": 0}, None),  # not a cap: the default expectation applies
    ],
)
def test_output_estimate(params: dict[str, Any], expected: int | None) -> None:
    estimate = estimate_output_tokens(params, GPT5Nano.max_output)
    if expected is None:
        assert 0 < estimate <= GPT5Nano.max_output
        assert estimate == estimate_output_tokens({}, GPT5Nano.max_output)
    else:
        assert estimate == expected


# --- end to end: an input over the limit is refused before anything is sent ------------------


async def test_context_limit_raises_before_sending(server: FakeOpenAI) -> None:
    """An input over the model's limit is bad input: it raises (as docs/api.md says), whatever
    raise_on_error says, and a stream raises from its first iteration; nothing is sent."""
    client = OpenAIClient(
        GPT5Nano,
        base_url=server.base_url,
        api_key="sk-test-secret",
        rate_limit_backend=None,
        backoff=0.01,
    )
    huge = [{"role": "user", "content": "word " * 300_000}]
    with pytest.raises(ContextLengthExceededError, match="272000") as info:
        await client.get_response(messages=huge)
    assert info.value.status == 400 and str(info.value).startswith("messages is too long")
    with pytest.raises(ContextLengthExceededError, match="input is too long"):
        await client.invoke(input="word " * 300_000, api="responses", raise_on_error=True)
    stream = client.stream(messages=huge)
    with pytest.raises(ContextLengthExceededError):
        await stream.__anext__()
    await client.close()
    assert server.count() == 0
