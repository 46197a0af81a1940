"""The limit step end to end: the real SDK against the fake server, its headers and quotas."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llm_client import GPT5Nano, OpenAIClient
from llm_client.clock import ManualClock
from llm_client.rate_limit import MAX_HEADER_PAUSE_SECONDS
from llm_client.testing import FakeOpenAI, Quota

MESSAGES = [{"role": "user", "content": "How many requests may I send?"}]


def client_for(server: FakeOpenAI, **options: Any) -> OpenAIClient:
    return OpenAIClient(
        GPT5Nano, base_url=server.base_url, api_key="sk-test", cache_backend=None, **options
    )


async def test_the_default_client_follows_the_servers_limits() -> None:
    """The profile's 500 RPM / 200k TPM are a start; the server's headers raise them."""
    async with FakeOpenAI() as server:  # advertises 1,000,000 RPM and 10,000,000,000 TPM
        client = client_for(server)
        try:
            before = client.stats()["limiter"]
            assert before["requests_per_minute"] == GPT5Nano.rate_limits.req_per_min
            assert (await client.get_response(messages=MESSAGES))["status"] == 200
            stats = client.stats()["limiter"]
        finally:
            await client.close()
    assert stats["requests_per_minute"] == 1_000_000
    assert stats["tokens_per_minute"] == 10_000_000_000


async def test_explicit_limits_stay_a_ceiling() -> None:
    async with FakeOpenAI() as server:
        client = client_for(server, tokens_per_minute=30_000)
        try:
            await client.get_response(messages=MESSAGES)
            stats = client.stats()["limiter"]
        finally:
            await client.close()
    assert stats["tokens_per_minute"] == 30_000  # passed: a ceiling
    assert stats["requests_per_minute"] == 1_000_000  # not passed: the server's


async def test_a_limit_on_a_429_does_not_pin_the_client() -> None:
    async with FakeOpenAI() as server:
        client = client_for(server, backoff=0.01)
        try:
            server.fail_next(429, retry_after_ms=1, headers={"x-ratelimit-limit-requests": "60"})
            result = await client.get_response(messages=MESSAGES)  # 429, then the retry
            stats = client.stats()["limiter"]
        finally:
            await client.close()
    assert result["status"] == 200
    assert stats["throttle_events"] == 1
    assert stats["requests_per_minute"] == 1_000_000  # restored by the retry's answer


async def test_a_huge_retry_after_pauses_at_most_the_bound_and_the_next_call_is_answered() -> None:
    """Issue 8, defect 1: retry-after: 100000 used to pause the limiter for 27.8 hours."""
    clock = ManualClock()
    async with FakeOpenAI() as server:
        client = client_for(server, clock=clock)
        try:
            server.rate_limit_next(retry_after=100_000)
            first = await client.get_response(messages=MESSAGES)
            left = client.stats()["limiter"]["paused_seconds_left"]
            task = asyncio.create_task(client.get_response(messages=MESSAGES))
            for _ in range(20):
                await asyncio.sleep(0)
            assert not task.done()  # paused: the server asked for a break
            clock.advance(MAX_HEADER_PAUSE_SECONDS + 1)
            second = await asyncio.wait_for(task, 30)
        finally:
            await client.close()
    assert first["status"] == 429  # the retry step gives up on so long a wait
    assert 0 < left <= MAX_HEADER_PAUSE_SECONDS
    assert second["status"] == 200


@pytest.mark.parametrize("max_tokens", [None, 1000])
async def test_the_reservation_is_what_the_server_charges(max_tokens: int | None) -> None:
    quota = Quota(requests_per_minute=10_000, tokens_per_minute=10_000_000)
    params = {} if max_tokens is None else {"max_tokens": max_tokens}
    async with FakeOpenAI(quota=quota) as server:
        client = client_for(server)
        try:
            for i in range(3):
                msgs = [{"role": "user", "content": f"question {i} " + "é" * (i * 7)}]
                result = await client.get_response(messages=msgs, **params)
                assert result["status"] == 200
            stats = client.stats()["limiter"]
        finally:
            await client.close()
    assert stats["admitted_tokens"] == quota.stats()["charged_tokens"]
    assert stats["refunded_tokens"] == 0  # short answers give nothing back


async def test_the_usage_based_budget_gets_its_own_bucket() -> None:
    quota = Quota(tokens_per_minute=10_000_000, usage_tokens_per_minute=600_000)
    async with FakeOpenAI(quota=quota) as server:
        client = client_for(server, clock=ManualClock())  # no refill while we look
        try:
            await client.get_response(messages=MESSAGES, max_tokens=500)  # learns the budget
            result = await client.get_response(messages=MESSAGES, max_tokens=500)
            stats = client.stats()["limiter"]
        finally:
            await client.close()
    assert stats["usage_tokens_per_minute"] == 600_000
    # a 10,000-token burst: the second call's reservation (over 500) was reconciled to its
    # real usage; the per-minute bucket keeps both reservations
    assert stats["level_usage_tokens"] == 10_000 - result["usage"]["total_tokens"]
    assert stats["level_tokens"] < stats["capacity_tokens"] - 1000


async def test_the_client_learns_a_server_that_counts_more_and_429s_stop() -> None:
    """A server whose estimate is a third above ours (3 characters per token, not 4): the
    budget drifts until a tokens-429 comes, which tells the client what the server charged;
    its estimates are padded by the ratio and no 429 follows for the next 200 s (over three
    reset windows). Time is a manual clock shared by client and server."""
    clock = ManualClock()
    quota = Quota(tokens_per_minute=6000, chars_per_token=3, clock=clock.now, keep_history=True)
    msgs = [{"role": "user", "content": "x" * 400}]  # ours: 100 + 1 tokens; the server's: 135

    def refusals() -> list[float]:
        assert quota.history is not None
        return [t for t, kind, _ in quota.history if kind == "refuse"]

    def finished() -> bool:
        refused = refusals()
        return clock.now() >= 1200 or (bool(refused) and clock.now() >= refused[0] + 200)

    async with FakeOpenAI(quota=quota) as server:
        client = client_for(server, clock=clock)
        try:

            async def calls() -> None:
                while not finished():
                    await client.get_response(messages=msgs, max_tokens=1)

            task = asyncio.gather(*(calls() for _ in range(8)))  # keep the limiter busy
            while not task.done():
                clock.advance(0.2)
                await asyncio.sleep(0.001)
            await task
            pad = client.limiter.token_pad
        finally:
            await client.close()
    refused = refusals()
    assert refused, "the drift never reached the server's limit"
    assert pad >= 135 / 101
    assert all(t < refused[0] + 60 for t in refused), refused  # none after one reset window
    assert clock.now() >= refused[0] + 200
