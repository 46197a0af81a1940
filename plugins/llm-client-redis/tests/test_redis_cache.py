"""The ``redis`` cache backend against a real Redis server.

The server comes from ``REDIS_URL`` (default: the local one). When it is not reachable the
tests are skipped, unless ``LLM_CLIENT_REQUIRE_SERVICES=1`` turns that into a failure. Each
test uses its own key prefix and removes its keys afterwards. Outages are real: a closed port,
and a throwaway redis-server that the test stops and starts again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from llm_client_redis.cache import CacheUnavailableError, RedisCache

from llm_client.cache import CacheEntry
from llm_client.exceptions import ConfigurationError
from llm_client.plugins import cache_backend, get_registry, new_plugin_manager
from llm_client.testing.cache_contract import CacheBackendContract
from llm_client.testing.services import RedisServer, free_port, require_redis

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
LOGGER = "llm_client_redis"


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_redis(REDIS_URL)


def _entry(key: str, **value: Any) -> CacheEntry:
    return CacheEntry(
        key=key, value={"output": f"answer to {key}", **value}, model="m", operation="chat"
    )


class Backends:
    """Backends sharing one unique prefix; every key under it is removed at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"test:{uuid.uuid4().hex[:10]}:"
        self.made: list[RedisCache] = []

    def make(self, **options: Any) -> RedisCache:
        options.setdefault("redis_prefix", self.prefix)
        options.setdefault("reconnect_interval", 0.0)
        backend = RedisCache(options.pop("redis_url", self.url), **options)
        self.made.append(backend)
        return backend

    async def close(self) -> None:
        for backend in self.made:
            await backend.aclose()
        raw = aioredis.Redis.from_url(self.url)
        try:
            names = [n async for n in raw.scan_iter(match=f"{self.prefix}*")]
            if names:
                await raw.delete(*names)
        finally:
            await raw.aclose()


@pytest.fixture
async def backends(redis_url: str) -> AsyncIterator[Backends]:
    made = Backends(redis_url)
    yield made
    await made.close()


@pytest.fixture
def backend(backends: Backends) -> RedisCache:
    return backends.make(cache_collection="main")


class TestRedisContract(CacheBackendContract):
    persistent = True

    @pytest.fixture
    def make_backend(self, backends: Backends) -> Callable[[], RedisCache]:
        return lambda: backends.make(cache_collection="contract")


# -- plugin wiring ---------------------------------------------------------------------------


def test_entry_point_registers_cache_and_rate_limiter_without_importing_redis() -> None:
    code = (
        "import sys\n"
        "from llm_client.plugins import new_plugin_manager, get_registry\n"
        "reg = get_registry(new_plugin_manager(autoload=True))\n"
        "assert 'redis' in reg.cache_backends and 'redis' in reg.rate_limiters\n"
        "assert 'redis' not in sys.modules, 'redis imported at discovery'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_factory_ignores_unrelated_options(redis_url: str) -> None:
    pm = new_plugin_manager(autoload=True)
    assert "redis" in get_registry(pm).cache_backends
    backend = cache_backend(
        "redis",
        plugin_manager=pm,
        redis_url=redis_url,
        cache_collection="coll",
        pg_dsn="postgresql://nowhere/x",
        cache_dir="/nowhere",
        ttl=30,
    )
    assert isinstance(backend, RedisCache)
    assert backend.namespace == "llm_client:coll:" and backend.ttl == 30.0
    # Another backend's option is refused rather than dropped (issue 9), with a suggestion.
    for foreign in ("compression", "redis_ttl_seconds"):
        with pytest.raises(ConfigurationError, match=f"'redis'.*no option '{foreign}'"):
            cache_backend("redis", plugin_manager=pm, redis_url=redis_url, **{foreign: 5})
    with pytest.raises(ConfigurationError, match="did you mean `redis_prefix`"):
        cache_backend("redis", plugin_manager=pm, redis_url=redis_url, redis_prefx="x:")
    texts = cache_backend("redis", plugin_manager=pm, redis_url=redis_url, cache_ttl="5")
    assert texts.ttl == 5.0 and texts.namespace == "llm_client:llm_cache:"


def test_missing_url_names_argument_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ConfigurationError, match=r"redis_url=.*REDIS_URL"):
        RedisCache()
    monkeypatch.setenv("REDIS_URL", "redis://example.invalid:1/0")
    assert RedisCache().url == "redis://example.invalid:1/0"
    assert RedisCache("redis://explicit:2/0").url == "redis://explicit:2/0"
    with pytest.raises(ConfigurationError, match="ttl"):
        RedisCache(ttl=-1)


# -- behaviour -----------------------------------------------------------------------------------


async def test_round_trip_delete_and_miss(backend: RedisCache, redis_url: str) -> None:
    assert await backend.get("absent") is None
    entry = _entry("k1", text="héllo ✓")
    await backend.put(entry)
    assert await backend.get("k1") == entry
    raw = aioredis.Redis.from_url(redis_url)
    try:  # stored as plain JSON under the namespaced key, without expiry
        stored = await raw.get(backend.key("k1"))
        assert CacheEntry.from_json(stored) == entry
        assert await raw.ttl(backend.key("k1")) == -1
    finally:
        await raw.aclose()
    assert await backend.delete("k1") is True
    assert await backend.delete("k1") is False
    assert await backend.get("k1") is None
    stats = await backend.stats()
    assert (stats["hits"], stats["misses"], stats["puts"], stats["entries"]) == (1, 2, 1, 0)


async def test_ttl_is_native_expiry(backends: Backends, redis_url: str) -> None:
    backend = backends.make(ttl=60)
    await backend.put(_entry("default"))
    await backend.put(_entry("short"), ttl=0.15)
    await backend.put(_entry("gone"), ttl=0)
    raw = aioredis.Redis.from_url(redis_url)
    try:
        assert 59_000 < await raw.pttl(backend.key("default")) <= 60_000
        assert 0 < await raw.pttl(backend.key("short")) <= 150
    finally:
        await raw.aclose()
    assert await backend.get("gone") is None
    assert (await backend.get("short")) is not None
    await asyncio.sleep(0.25)
    assert await backend.get("short") is None
    assert (await backend.get("default")) is not None


async def test_collections_are_isolated_even_with_glob_characters(backends: Backends) -> None:
    tricky = backends.make(cache_collection="a*b?[c]")
    plain = backends.make(cache_collection="aXbY")  # would match the unescaped pattern
    other = backends.make(cache_collection="a")
    await tricky.put(_entry("k"))
    await plain.put(_entry("k"))
    await other.put(_entry("k"))
    assert await tricky.clear() == 1
    assert (await plain.get("k")) is not None and (await other.get("k")) is not None
    assert (await plain.stats())["entries"] == 1
    assert [e.key async for e in other.export()] == ["k"]


async def test_damaged_value_is_a_miss(backend: RedisCache, redis_url: str) -> None:
    raw = aioredis.Redis.from_url(redis_url)
    try:
        await raw.set(backend.key("bad"), b"\x00not json")
    finally:
        await raw.aclose()
    assert await backend.get("bad") is None
    assert (await backend.stats())["errors"] == 1


async def test_concurrent_writers_and_readers(backend: RedisCache) -> None:
    keys = [f"key-{i}" for i in range(10)]
    seen: list[CacheEntry] = []

    async def worker(n: int) -> None:
        key = keys[n % len(keys)]
        await backend.put(_entry(key, writer=n, body="x" * (100 * n)))
        for other in (key, keys[(n * 3) % len(keys)]):
            got = await backend.get(other)
            if got is not None:
                seen.append(got)

    await asyncio.gather(*(worker(n) for n in range(100)))

    def intact(entry: CacheEntry) -> bool:
        n = entry.value["writer"]
        return entry.key == keys[n % len(keys)] and entry.value["body"] == "x" * (100 * n)

    assert len(seen) >= 100 and all(intact(e) for e in seen)
    final = {e.key: e async for e in backend.export()}
    assert set(final) == set(keys) and all(intact(e) for e in final.values())


async def test_stats_export_clear_warm(backend: RedisCache) -> None:
    await backend.warm()
    for i in range(1203):  # more than two SCAN/MGET batches
        await backend.put(_entry(f"k{i}"))
    exported = [e.key async for e in backend.export()]
    assert sorted(exported) == sorted(f"k{i}" for i in range(1203))
    stats = await backend.stats()
    assert stats["entries"] == 1203 and stats["redis_up"] is True
    assert await backend.clear() == 1203
    assert (await backend.stats())["entries"] == 0
    assert [e async for e in backend.export()] == []


async def test_export_can_stop_early(backend: RedisCache) -> None:
    for i in range(20):
        await backend.put(_entry(f"k{i}"))
    exported = backend.export()
    first = await anext(exported)
    assert first.key.startswith("k")
    await exported.aclose()  # type: ignore[attr-defined]


# -- degradation ---------------------------------------------------------------------------------


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def test_closed_port_raises_and_logs_once(
    backends: Backends, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    backend = backends.make(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    for _ in range(3):
        with pytest.raises(CacheUnavailableError, match="Redis"):
            await backend.get("k")
        with pytest.raises(CacheUnavailableError):
            await backend.put(_entry("k"))
    assert len(_records(caplog, logging.WARNING)) == 1
    stats = await backend.stats()
    assert stats["entries"] is None and stats["redis_up"] is False and stats["errors"] >= 6


async def test_reconnect_interval_spares_a_dead_server(backends: Backends) -> None:
    backend = backends.make(redis_url=f"redis://127.0.0.1:{free_port()}/0", reconnect_interval=30.0)
    with pytest.raises(CacheUnavailableError):
        await backend.get("k")
    started = time.perf_counter()
    for _ in range(200):
        with pytest.raises(CacheUnavailableError):
            await backend.get("k")
    assert time.perf_counter() - started < 0.5
    assert backend.health.failures == 1


async def test_server_stopped_and_restarted_mid_run(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    async with RedisCache(redis_server.url, reconnect_interval=0.0) as backend:
        await backend.put(_entry("a"))
        assert (await backend.get("a")) is not None

        redis_server.stop()
        for _ in range(3):
            with pytest.raises(CacheUnavailableError):
                await backend.get("a")
        assert len(_records(caplog, logging.WARNING)) == 1

        redis_server.start()  # a fresh, empty server on the same port
        assert await backend.get("a") is None  # answered again: a miss, not an error
        await backend.put(_entry("a"))
        assert (await backend.get("a")) is not None
        infos = _records(caplog, logging.INFO)
        assert len(infos) == 1 and "reachable again" in infos[0]
        assert backend.health.up


# -- a hung Redis, through the client --------------------------------------------------------


def _cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "llm_client.middleware.cache"
    ]


async def test_frozen_redis_every_call_is_answered_within_its_deadline(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGSTOP leaves connections open and unanswered: the worst kind of outage."""
    from llm_client import GPT5Nano, OpenAIClient
    from llm_client.testing import FakeOpenAI, expected_text

    caplog.set_level(logging.INFO)
    assert redis_server.proc is not None
    async with FakeOpenAI() as server:
        client = OpenAIClient(
            GPT5Nano,
            cache_backend="redis",
            redis_url=redis_server.url,
            base_url=server.base_url,
            api_key="sk-test",
            rate_limit_backend=None,
            timeout=5,
        )
        try:
            warm = await client.get_response(messages=[{"role": "user", "content": "warm"}])
            assert warm["status"] == 200
            os.kill(redis_server.proc.pid, signal.SIGSTOP)
            try:
                asks = [[{"role": "user", "content": f"question {i}"}] for i in range(40)]
                results = await asyncio.gather(
                    *(client.get_response(messages=msgs) for msgs in asks)
                )
                later = [await client.get_response(messages=msgs) for msgs in asks[:5]]
            finally:
                os.kill(redis_server.proc.pid, signal.SIGCONT)
            for msgs, result in zip([*asks, *asks[:5]], [*results, *later], strict=True):
                assert result["status"] == 200, result["error"]
                assert result["output"] == expected_text(msgs)
            stats = client.stats()["cache"]
            assert stats["backend_errors"] >= 1
            assert stats["backend_skips"] >= 1  # the outage was noticed: no more waiting
            warnings = _cache_warnings(caplog)
            assert len(warnings) == 1 and "no answer within" in warnings[0], warnings
        finally:
            await client.close()


# -- a busy pool is not an outage ------------------------------------------------------------


@pytest.mark.parametrize("rate_limit_backend", ["local", "redis"])
async def test_more_concurrent_calls_than_connections_wait_for_one(
    backends: Backends, caplog: pytest.LogCaptureFixture, rate_limit_backend: str
) -> None:
    from llm_client import GPT5Nano, OpenAIClient
    from llm_client.testing import FakeOpenAI, expected_text

    caplog.set_level(logging.INFO)
    async with FakeOpenAI() as server:
        client = OpenAIClient(
            GPT5Nano,
            cache_backend="redis",
            redis_url=backends.url,
            redis_prefix=backends.prefix,
            redis_max_connections=4,
            rate_limit_backend=rate_limit_backend,
            requests_per_minute=1_000_000,
            tokens_per_minute=1_000_000_000,
            base_url=server.base_url,
            api_key="sk-test",
        )
        try:
            asks = [[{"role": "user", "content": f"pool {i % 150}"}] for i in range(300)]
            results = await asyncio.gather(*(client.get_response(messages=m) for m in asks))
            assert all(r["status"] == 200 for r in results)
            assert [r["output"] for r in results] == [expected_text(m) for m in asks]
            stats = client.stats()["cache"]
            assert stats["backend_errors"] == 0, stats
            assert server.count("chat") == 150  # every repeat was a hit or shared an answer
            pool = client.cache._redis().connection_pool
            assert pool.max_connections == 4
            if rate_limit_backend == "redis":
                limiter = client.limiter
                assert limiter._redis().connection_pool.max_connections == 4
                assert limiter.stats()["fallback_calls"] == 0
                assert limiter.stats()["redis_failures"] == 0
        finally:
            await client.close()
            if rate_limit_backend == "redis":  # the model's shared budget: leave no trace
                raw = aioredis.Redis.from_url(backends.url)
                shared = f"{{llm_client:ratelimit:{GPT5Nano.model_name}}}"
                await raw.delete(f"{shared}:state", f"{shared}:members")
                await raw.aclose()
    assert "unavailable" not in caplog.text


def test_pool_size_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="redis_max_connections"):
        RedisCache("redis://127.0.0.1:1/0", redis_max_connections=0)


# -- hits decoded once per stored value ------------------------------------------------------


async def test_client_hits_through_redis_are_the_stored_answer_each_time(
    backends: Backends, redis_url: str
) -> None:
    """get_decoded hands the cache step the bytes; what callers do to their reply, and a
    rewrite of the entry in Redis, are seen as a user would expect."""
    from llm_client import GPT5Nano, OpenAIClient
    from llm_client.middleware import CacheMiddleware
    from llm_client.testing import FakeOpenAI, expected_text

    msgs = [{"role": "user", "content": "hits decoded once"}]
    async with FakeOpenAI() as server:
        client = OpenAIClient(
            GPT5Nano,
            cache_backend="redis",
            redis_url=redis_url,
            redis_prefix=backends.prefix,
            base_url=server.base_url,
            api_key="sk-test",
        )
        step = client.pipeline.find(CacheMiddleware)
        assert step is not None
        try:
            first = await client.get_response(messages=msgs)
            await step.flush()
            hits = [await client.get_response(messages=msgs) for _ in range(3)]
            assert all(h["cached"] and h["output"] == expected_text(msgs) for h in hits)
            hits[0]["params"]["messages"][0]["content"] = "changed by a caller"
            hits[0]["params"]["messages"].append({"role": "user", "content": "more"})
            again = await client.get_response(messages=msgs)
            assert again["params"] == first["params"] and again["cached"]
            # the entry rewritten behind the client's back: the next hit is the new answer
            backend = client.cache
            [entry] = [e async for e in backend.export()]
            changed = dict(entry.value, output="rewritten in Redis")
            await backend.put(CacheEntry(key=entry.key, value=changed, operation="chat"))
            assert (await client.get_response(messages=msgs))["output"] == "rewritten in Redis"
            assert server.count("chat") == 1
            assert step.stats()["hits"] == 5
        finally:
            await client.close()
