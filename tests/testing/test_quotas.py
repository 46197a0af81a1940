"""The fake server's quotas: OpenAI's accounting, truthful headers, 429s with retry-after."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from llm_client.rate_limit import RateLimitHeaders, parse_reset_duration
from llm_client.testing import FakeOpenAI, Quota
from llm_client.testing.quotas import DEFAULT_OUTPUT_CAP, request_charge


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_charge_is_characters_over_four_plus_the_output_cap() -> None:
    msgs = [{"role": "user", "content": "x" * 41}]  # 41 characters: 11 tokens, rounded up
    assert request_charge("chat", {"messages": msgs, "max_tokens": 1000}) == 1011
    assert request_charge("chat", {"messages": msgs, "max_completion_tokens": 7}) == 18
    assert request_charge("chat", {"messages": msgs}) == 11 + DEFAULT_OUTPUT_CAP
    parts = [{"role": "user", "content": [{"type": "text", "text": "abcd" * 3}]}]
    assert request_charge("chat", {"messages": parts, "max_tokens": 1}) == 4
    body = {"input": "abcdefgh", "instructions": "abcd", "max_output_tokens": 10}
    assert request_charge("responses", body) == 13
    assert request_charge("embeddings", {"input": ["abcd", "abcdefgh"]}) == 3


def test_the_client_reserves_what_the_server_charges() -> None:
    from llm_client.middleware.tokens import estimate_input_tokens

    msgs = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "héllo wörld " * 7}]},
    ]
    assert estimate_input_tokens(msgs) + 1000 == request_charge(
        "chat", {"messages": msgs, "max_tokens": 1000}
    )


@pytest.mark.parametrize("bad", [0, -5, "10", True])
def test_bad_quotas_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="tokens_per_minute"):
        Quota(tokens_per_minute=bad)


async def test_headers_are_truthful_and_nothing_is_refunded() -> None:
    clock = Clock()
    quota = Quota(requests_per_minute=3, tokens_per_minute=6000, clock=clock)
    async with FakeOpenAI(quota=quota) as server:
        sdk = AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        msgs = [{"role": "user", "content": "y" * 40}]  # 10 tokens
        raw = await sdk.chat.completions.with_raw_response.create(
            model="gpt-5-nano", messages=msgs, max_tokens=1000
        )
        h = raw.headers
        assert h["x-ratelimit-limit-requests"] == "3"
        assert h["x-ratelimit-limit-tokens"] == "6000"
        assert h["x-ratelimit-remaining-requests"] == "2"
        # charged 1,010 at arrival; the short answer gives nothing back
        assert raw.parse().usage is not None and raw.parse().usage.total_tokens < 1010
        assert h["x-ratelimit-remaining-tokens"] == "4990"
        assert parse_reset_duration(h["x-ratelimit-reset-requests"]) == pytest.approx(20)
        assert parse_reset_duration(h["x-ratelimit-reset-tokens"]) == pytest.approx(10.1)
        clock.t += 10.1  # refilled
        await sdk.chat.completions.create(model="gpt-5-nano", messages=msgs, max_tokens=1000)
        await sdk.chat.completions.create(model="gpt-5-nano", messages=msgs, max_tokens=1000)
        with pytest.raises(openai.RateLimitError) as caught:
            await sdk.chat.completions.create(model="gpt-5-nano", messages=msgs, max_tokens=1000)
        await sdk.close()
    err = caught.value
    assert err.status_code == 429
    assert err.body is not None and err.body["type"] == "requests"  # type: ignore[index]
    assert err.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
    info = RateLimitHeaders.parse(err.response.headers)
    assert info.remaining_requests == 0
    assert info.retry_after is not None and 0 < info.retry_after <= 20
    assert err.response.headers["retry-after-ms"]
    assert quota.stats()["refused_by"] == {"requests": 1}
    assert quota.stats()["admitted"] == 3


async def test_a_tokens_429_says_when_the_request_would_fit() -> None:
    clock = Clock()
    quota = Quota(requests_per_minute=1000, tokens_per_minute=1200, clock=clock)  # 20/s
    async with FakeOpenAI(quota=quota) as server:
        sdk = AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        msgs = [{"role": "user", "content": "z" * 8}]  # 2 tokens
        await sdk.chat.completions.create(model="gpt-5-nano", messages=msgs, max_tokens=998)
        with pytest.raises(openai.RateLimitError) as caught:
            await sdk.chat.completions.create(model="gpt-5-nano", messages=msgs, max_tokens=998)
        await sdk.close()
    err = caught.value
    assert err.body["type"] == "tokens"  # type: ignore[index]
    assert "Limit 1200, Used 1000, Requested 1000" in err.message
    # 200 left, 1,000 needed: 800 more at 20 tokens/s
    assert err.response.headers["retry-after-ms"] == "40000"
    assert err.response.headers["retry-after"] == "40"
    assert err.response.headers["x-ratelimit-remaining-tokens"] == "200"


async def test_the_usage_based_budget_is_reconciled_to_real_usage() -> None:
    clock = Clock()
    quota = Quota(tokens_per_minute=100_000, usage_tokens_per_minute=3000, clock=clock)
    async with FakeOpenAI(quota=quota) as server:
        sdk = AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        msgs = [{"role": "user", "content": "w" * 40}]
        first = await sdk.chat.completions.with_raw_response.create(
            model="gpt-5-nano", messages=msgs, max_tokens=1000
        )
        used = first.parse().usage.total_tokens  # type: ignore[union-attr]
        second = await sdk.chat.completions.with_raw_response.create(
            model="gpt-5-nano", messages=msgs, max_tokens=1000
        )
        await sdk.close()
    h = second.headers
    assert h["x-ratelimit-limit-tokens_usage_based"] == "3000"
    # both calls were reconciled to their usage by the time the answer was sent
    assert h["x-ratelimit-remaining-tokens_usage_based"] == str(3000 - 2 * used)
    assert h["x-ratelimit-remaining-tokens"] == str(100_000 - 2 * 1010)
    assert quota.stats()["used_tokens"] == 2 * used


async def test_without_a_quota_the_static_headers_stay() -> None:
    async with FakeOpenAI() as server:
        sdk = AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        raw = await sdk.chat.completions.with_raw_response.create(
            model="gpt-5-nano", messages=[{"role": "user", "content": "hi"}]
        )
        await sdk.close()
    assert raw.headers["x-ratelimit-limit-requests"] == "1000000"
