"""llm_client.result: LLMResult, the seed's result dict, and errors carried as results."""

from __future__ import annotations

import pytest

from llm_client.exceptions import APIError, RateLimitError
from llm_client.result import LLMResult
from llm_client.usage import Usage


def test_to_dict_and_from_dict_round_trip() -> None:
    result = LLMResult(
        params={"model": "gpt-5-nano", "messages": [{"role": "user", "content": "hi"}]},
        output="hello",
        usage=Usage(input_tokens=3, output_tokens=2, total_tokens=5),
        identifier="key",
        model="gpt-5-nano",
        tool_calls=({"id": "c1", "name": "f", "arguments": "{}"},),
        finish_reason="stop",
        response_id="resp_1",
        attempts=2,
        cached=True,
        cache_similarity=0.97,
    )
    data = result.to_dict()
    assert {"params", "output", "usage", "status", "error", "identifier"} <= set(data)
    assert data["status"] == 200 and data["error"] == "OK"
    assert LLMResult.from_dict(data) == result


def test_from_error_keeps_status_usage_and_attempts_and_raise_for_status_restores_it() -> None:
    err = RateLimitError("slow down")
    err.usage = Usage(input_tokens=4, total_tokens=4)
    err.attempts = 3
    result = LLMResult.from_error(err, params={}, operation="chat", model="gpt-5-nano")
    assert not result.ok and result.status == 429
    assert result.error.startswith("RateLimitError: ") and "slow down" in result.error
    assert result.usage.input_tokens == 4 and result.attempts == 3
    with pytest.raises(RateLimitError) as info:
        result.raise_for_status()
    assert info.value.attempts == 3 and info.value.usage == result.usage


def test_a_success_is_returned_by_raise_for_status() -> None:
    result = LLMResult(params={}, output="x")
    assert result.ok and result.raise_for_status() is result


def test_an_unknown_failure_status_raises_an_api_error() -> None:
    with pytest.raises(APIError):
        LLMResult(params={}, status=503, error="upstream").raise_for_status()


def test_replace_is_a_copy() -> None:
    result = LLMResult(params={}, output="a")
    assert result.replace(output="b").output == "b" and result.output == "a"
