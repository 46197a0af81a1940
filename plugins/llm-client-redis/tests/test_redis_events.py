"""The ``redis`` event buffer (resumable SSE streams) against the real Redis server named by
``REDIS_URL``: claims, ordered reads from any position, readers woken by new events and by the
end, MAXLEN trimming, expiry, and the registration through the ``register_event_buffers``
hook. Each test uses its own key prefix and deletes its keys."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from llm_client_redis.events import RedisEventBuffer

from llm_client.plugins import event_buffer, new_plugin_manager
from llm_client.streaming import BufferedEvent, EventBuffer

pytestmark = pytest.mark.redis
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def _reachable() -> bool:
    parts = urlsplit(REDIS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


@pytest.fixture
async def buffer() -> AsyncIterator[RedisEventBuffer]:
    if not _reachable():
        if os.environ.get("LLM_CLIENT_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis is not reachable at {REDIS_URL}")
        pytest.skip("Redis is not reachable")
    prefix = f"test-events-{uuid.uuid4().hex}:"
    buf = RedisEventBuffer(REDIS_URL, ttl=30, max_events=50, prefix=prefix)
    try:
        yield buf
    finally:
        raw = aioredis.Redis.from_url(REDIS_URL)
        keys = [k async for k in raw.scan_iter(match=prefix + "*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()
        await buf.aclose()


def ev(seq: int) -> BufferedEvent:
    return BufferedEvent(seq, seq * 10, "text_delta", f'{{"text":"t{seq}"}}')


async def test_is_an_event_buffer_and_registered_by_the_plugin(buffer):
    assert isinstance(buffer, EventBuffer)
    pm = new_plugin_manager(autoload=True)
    built = event_buffer("redis", plugin_manager=pm, redis_url=REDIS_URL)
    try:
        assert isinstance(built, RedisEventBuffer)
    finally:
        await built.aclose()


async def test_claim_append_read_finish(buffer):
    assert await buffer.read("s", 0, 0.01) is None  # unknown key
    assert await buffer.claim("s") is True
    assert await buffer.claim("s") is False  # one producer only
    await buffer.append("s", [ev(1), ev(2), ev(3)])
    assert await buffer.read("s", 0, 0.01) == ([ev(1), ev(2), ev(3)], False)
    assert await buffer.read("s", 2, 0.01) == ([ev(3)], False)
    assert await buffer.read("s", 3, 0.01) == ([], False)  # waited, nothing new
    await buffer.finish("s")
    assert await buffer.read("s", 3, 0.01) == ([], True)
    assert await buffer.read("s", 1, 0.01) == ([ev(2), ev(3)], True)


async def test_a_waiting_reader_wakes_for_new_events_and_for_the_end(buffer):
    await buffer.claim("w")
    reader = asyncio.create_task(buffer.read("w", 0, 10))
    await asyncio.sleep(0.05)
    await buffer.append("w", [ev(1)])
    assert await asyncio.wait_for(reader, 5) == ([ev(1)], False)
    reader = asyncio.create_task(buffer.read("w", 1, 10))
    await asyncio.sleep(0.05)
    await buffer.finish("w")
    assert await asyncio.wait_for(reader, 5) == ([], True)


async def test_maxlen_and_ttl(buffer):
    raw = aioredis.Redis.from_url(REDIS_URL)
    try:
        await buffer.claim("m")
        for seq in range(1, 301):
            await buffer.append("m", [ev(seq)])
        length = await raw.xlen(buffer.prefix + "m")
        assert length < 300  # trimmed to about max_events (MAXLEN ~ trims whole nodes)
        events, _ = await buffer.read("m", 0, 0.01)
        assert events[-1] == ev(300) and [e.seq for e in events] == sorted(e.seq for e in events)
        ttl = await raw.pttl(buffer.prefix + "m")
        assert 0 < ttl <= 30_000
        assert 0 < await raw.pttl(buffer.prefix + "m:state") <= 30_000
    finally:
        await raw.aclose()


async def test_an_expired_stream_is_gone(buffer):
    short = RedisEventBuffer(REDIS_URL, ttl=0.2, prefix=buffer.prefix)
    try:
        await short.claim("e")
        await short.append("e", [ev(1)])
        await short.finish("e")
        assert await short.read("e", 0, 0.01) == ([ev(1)], True)
        await asyncio.sleep(0.4)
        assert await short.read("e", 0, 0.01) is None
        assert await short.claim("e") is True  # the key is free again
    finally:
        await short.aclose()


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="ttl"):
        RedisEventBuffer(REDIS_URL, ttl=0)
    with pytest.raises(ValueError, match="max_events"):
        RedisEventBuffer(REDIS_URL, max_events=0)
