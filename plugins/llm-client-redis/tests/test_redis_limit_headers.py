"""The Redis limiter and the server's headers: shared limits, bounded pauses (real Redis)."""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from llm_client_redis.rate_limit import RedisLimiter

from llm_client.clock import ManualClock
from llm_client.rate_limit import MAX_HEADER_PAUSE_SECONDS

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
SERVER_LIMITS = {"x-ratelimit-limit-requests": "1000000", "x-ratelimit-limit-tokens": "10000000000"}


@pytest.fixture(scope="module")
def redis_url() -> str:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            pass
    except OSError:
        reason = f"Redis is not reachable at {REDIS_URL}"
        if os.environ.get("LLM_CLIENT_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (LLM_CLIENT_REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    return REDIS_URL


@pytest.fixture
async def key(redis_url: str) -> AsyncIterator[str]:
    name = f"test:limiter:{uuid.uuid4().hex[:12]}"
    yield name
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.delete(f"{{{name}}}:state", f"{{{name}}}:members")
    finally:
        await raw.aclose()


def follower(url: str, key: str, **kw: Any) -> RedisLimiter:
    """As the client builds it without limit arguments: the profile's guess, no ceiling."""
    kw.setdefault("tokens_per_minute", 200_000)
    kw.setdefault("requests_per_minute", 500)
    kw.setdefault("max_tokens_per_minute", math.inf)
    kw.setdefault("max_requests_per_minute", math.inf)
    return RedisLimiter(redis_url=url, key=key, **kw)


async def test_the_servers_limits_are_adopted_once_for_every_process(
    redis_url: str, key: str
) -> None:
    one = follower(redis_url, key)
    fresh = follower(redis_url, key)
    capped = RedisLimiter(
        redis_url=redis_url, key=key, tokens_per_minute=30_000, requests_per_minute=600
    )
    try:
        async with one.limit(1):
            pass
        one.update_from_headers(SERVER_LIMITS)
        await one.flush()
        assert one.stats()["requests_per_minute"] == 1_000_000
        assert fresh.stats()["requests_per_minute"] == 500  # has not spoken to Redis yet
        async with fresh.limit(1):  # reads the shared limits before its first call
            pass
        assert fresh.stats()["requests_per_minute"] == 1_000_000
        assert fresh.stats()["tokens_per_minute"] == 10_000_000_000
        async with capped.limit(1):
            pass
        assert capped.stats()["requests_per_minute"] == 600  # explicit limits: a ceiling
        assert capped.stats()["tokens_per_minute"] == 30_000
    finally:
        for limiter in (one, fresh, capped):
            await limiter.aclose()


async def test_a_limit_on_a_429_lasts_until_the_next_response(redis_url: str, key: str) -> None:
    limiter = follower(redis_url, key)
    try:
        limiter.update_from_headers(SERVER_LIMITS)
        limiter.update_from_headers(
            {"x-ratelimit-limit-requests": "60", "retry-after-ms": "1"}, status=429
        )
        assert limiter.stats()["requests_per_minute"] == 60
        limiter.update_from_headers(SERVER_LIMITS)
        assert limiter.stats()["requests_per_minute"] == 1_000_000
        limiter.update_from_headers({"x-ratelimit-limit-requests": "-1"})  # says nothing
        assert limiter.stats()["requests_per_minute"] == 1_000_000
        await limiter.flush()
    finally:
        await limiter.aclose()


async def test_a_huge_retry_after_pauses_the_fleet_at_most_the_bound(
    redis_url: str, key: str
) -> None:
    """Issue 8, defect 1: retry-after: 100000 used to freeze every process for 27.8 hours."""
    clock = ManualClock(1000.0)
    one = RedisLimiter(
        redis_url=redis_url,
        key=key,
        tokens_per_minute=60_000,
        requests_per_minute=600,
        clock=clock,
        server_clock=clock,
    )
    fresh = RedisLimiter(
        redis_url=redis_url,
        key=key,
        tokens_per_minute=60_000,
        requests_per_minute=600,
        clock=clock,
        server_clock=clock,
    )
    raw = aioredis.Redis.from_url(redis_url)
    try:
        async with one.limit(1):
            pass
        one.update_from_headers(
            {"retry-after": "100000", "x-ratelimit-remaining-requests": "0"}, status=429
        )
        await one.flush()
        _, level_r = await one.levels()
        assert level_r >= -600 / 60 * MAX_HEADER_PAUSE_SECONDS - 1e-6
        # the shared key lives no longer than the pause, two bursts and its usual minute
        assert await raw.pttl(f"{{{key}}}:state") <= (MAX_HEADER_PAUSE_SECONDS + 2 + 60) * 1000
        clock.advance(MAX_HEADER_PAUSE_SECONDS + 1)
        async with fresh.limit(1) as lease:  # a new process is not frozen
            assert lease.admitted_at is not None
            assert lease.admitted_at <= clock.now()
    finally:
        await raw.aclose()
        await one.aclose()
        await fresh.aclose()
