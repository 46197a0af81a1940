"""The ``redis`` sink against a real Redis server (``REDIS_URL``): a real stream through the
OpenAI SDK and the fake server lands in a Redis Stream, bounded and expiring, and on pub/sub;
a Redis that is gone never touches the call."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from llm_client_redis.sink import RedisSink

from llm_client import GPT5Nano, OpenAIClient
from llm_client.exceptions import ConfigurationError
from llm_client.streaming import LLMEvent
from llm_client.testing import FakeOpenAI

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
MESSAGES = [{"role": "user", "content": "Describe the tides at a harbour mouth."}]


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1):
            return True
    except OSError:
        return False


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    if not _reachable(REDIS_URL):
        if os.environ.get("LLM_CLIENT_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis is not reachable at {REDIS_URL} (LLM_CLIENT_REQUIRE_SERVICES=1)")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def key(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    name = f"test:sink:{uuid.uuid4().hex[:10]}"
    yield name
    await redis_client.delete(name)


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as s:
        yield s


def make_client(server: FakeOpenAI) -> OpenAIClient:
    return OpenAIClient(
        GPT5Nano, base_url=server.base_url, api_key="sk-test-secret", rate_limit_backend=None
    )


async def test_a_stream_lands_in_the_redis_stream_in_order(
    openai: FakeOpenAI, redis_client: aioredis.Redis, key: str
) -> None:
    async with make_client(openai) as client:
        plain = [e async for e in client.stream(MESSAGES)]
        async with client.sink("redis", stream=key, redis_url=REDIS_URL, ttl=60) as sink:
            assert isinstance(sink, RedisSink)
            result = await client.stream_to_sink(sink, MESSAGES)
    entries = await redis_client.xrange(key)
    assert [fields["type"] for _, fields in entries] == [e.type for e in plain]
    datas = [json.loads(fields["data"]) for _, fields in entries]
    assert "".join(d["text"] for d in datas if "text" in d) == result.output
    assert datas[-1]["status"] == 200 and "params" not in datas[-1]
    ttl = await redis_client.pttl(key)
    assert 0 < ttl <= 60_000
    assert client.stats()["sinks"]["delivered"] == len(plain)


async def test_the_stream_stays_about_maxlen(redis_client: aioredis.Redis, key: str) -> None:
    async with RedisSink(key, redis_url=REDIS_URL, maxlen=100, ttl=None) as sink:
        for start in range(0, 3000, 100):
            await sink.send(
                [LLMEvent("text_delta", {"text": str(i)}) for i in range(start, start + 100)]
            )
    length = await redis_client.xlen(key)
    assert 100 <= length < 3000  # MAXLEN ~ trims whole nodes: about 100, never everything
    assert await redis_client.pttl(key) == -1  # ttl=None: no expiry
    last = await redis_client.xrevrange(key, count=1)
    assert json.loads(last[0][1]["data"]) == {"text": "2999"}  # the newest are kept


async def test_pubsub_gets_every_event(redis_client: aioredis.Redis, key: str) -> None:
    channel = key + ":live"
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(channel)
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    events = [LLMEvent("meta", {"model": "m"}), LLMEvent("text_delta", {"text": "hi"})]
    async with RedisSink(key, redis_url=REDIS_URL, pubsub_channel=channel) as sink:
        await sink.send(events)
    received = []
    for _ in range(100):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            received.append(json.loads(message["data"]))
        if len(received) == 2:
            break
    await pubsub.aclose()
    assert received == [
        {"type": "meta", "data": {"model": "m"}},
        {"type": "text_delta", "data": {"text": "hi"}},
    ]


async def test_redis_gone_never_touches_the_call(openai: FakeOpenAI) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = RedisSink("nowhere", redis_url=f"redis://127.0.0.1:{port}/0", connect_timeout=0.5)
    async with make_client(openai) as client, sink:
        result = await asyncio.wait_for(client.stream_to_sink(sink, MESSAGES), 30)
        stats = client.stats()["sinks"]
    assert result.ok and result.output
    assert stats["delivered"] == 0 and stats["send_errors"] >= 1
    assert stats["failed"] + stats["dropped"] == stats["events"]


def test_bad_options_name_the_parameter() -> None:
    with pytest.raises(ConfigurationError, match="stream"):
        RedisSink("")
    with pytest.raises(ConfigurationError, match="maxlen"):
        RedisSink("k", maxlen=0)
    with pytest.raises(ConfigurationError, match="ttl"):
        RedisSink("k", ttl=-1)
    with pytest.raises(ConfigurationError, match="redis_url"):
        RedisSink("k", redis_url="http://x")
