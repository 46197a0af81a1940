"""The ``pg_redis`` and ``postgres`` backends against the real PostgreSQL and Redis servers.

Services come from ``PG_DSN`` / ``REDIS_URL`` (default: the local ones). When one is not
reachable the tests that need it are skipped, unless ``LLM_CLIENT_REQUIRE_SERVICES=1``, which
turns the skip into a failure. Every test works in its own table and key prefix and drops them
afterwards. Nothing is mocked: outages are real closed ports, a real throwaway redis-server
that is stopped and restarted, and real ``pg_terminate_backend`` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from llm_client_postgres.cache import CacheUnavailableError, PostgresCache

from llm_client.cache import CacheEntry
from llm_client.exceptions import ConfigurationError
from llm_client.plugins import cache_backend, get_registry, new_plugin_manager
from llm_client.testing.cache_contract import CacheBackendContract
from llm_client.testing.services import RedisServer, free_port, require_service

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

PG_DSN = os.environ.get("PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
LOGGER = "llm_client_postgres"


# -- service fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    return require_service(PG_DSN, 5432, "PostgreSQL")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_service(REDIS_URL, 6379, "Redis")


def _unique(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _entry(key: str, **value: Any) -> CacheEntry:
    return CacheEntry(
        key=key,
        value={"output": f"answer to {key}", **value},
        model="gpt-test",
        operation="chat",
        scope="scope-1",
    )


class Backends:
    """Creates backends on one unique table/prefix and drops everything at the end."""

    def __init__(self, pg_dsn: str, redis_url: str) -> None:
        self.pg_dsn = pg_dsn
        self.redis_url = redis_url
        self.table = _unique()
        self.prefix = f"test:{uuid.uuid4().hex[:8]}:"
        self.made: list[PostgresCache] = []

    def make(self, mirror: bool = True, **options: Any) -> PostgresCache:
        kwargs: dict[str, Any] = {
            "cache_collection": self.table,
            "redis_prefix": self.prefix,
            "reconnect_interval": 0.0,
            "pg_application_name": f"llm-client-test-{self.table}",
            **options,
        }
        backend = PostgresCache(
            kwargs.pop("pg_dsn", self.pg_dsn),
            redis_url=kwargs.pop("redis_url", self.redis_url) if mirror else None,
            mirror=mirror,
            **kwargs,
        )
        self.made.append(backend)
        return backend

    async def close(self) -> None:
        for backend in self.made:
            await backend.aclose()
        cleaner = PostgresCache(
            self.pg_dsn,
            redis_url=self.redis_url,
            cache_collection=self.table,
            redis_prefix=self.prefix,
        )
        try:
            await cleaner.drop()
        finally:
            await cleaner.aclose()


@pytest.fixture
async def backends(pg_dsn: str, redis_url: str) -> AsyncIterator[Backends]:
    made = Backends(pg_dsn, redis_url)
    yield made
    await made.close()


@pytest.fixture(params=["pg_redis", "postgres"])
def backend(request: pytest.FixtureRequest, backends: Backends) -> PostgresCache:
    return backends.make(mirror=request.param == "pg_redis")


async def _rows(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _redis_raw(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(url)


# -- the contract every backend keeps ------------------------------------------------------------


class TestPgRedisContract(CacheBackendContract):
    persistent = True

    @pytest.fixture
    def make_backend(self, backends: Backends) -> Callable[[], PostgresCache]:
        return lambda: backends.make()


class TestPgRedisCompressedContract(CacheBackendContract):
    persistent = True

    @pytest.fixture
    def make_backend(self, backends: Backends) -> Callable[[], PostgresCache]:
        return lambda: backends.make(compression="zstd", compression_min_bytes=1)


class TestPostgresContract(CacheBackendContract):
    persistent = True

    @pytest.fixture
    def make_backend(self, backends: Backends) -> Callable[[], PostgresCache]:
        return lambda: backends.make(mirror=False, compression="zlib")


# -- plugin wiring -----------------------------------------------------------------------------


def test_entry_point_registers_both_backends_without_heavy_imports() -> None:
    code = (
        "import sys\n"
        "from llm_client.plugins import new_plugin_manager, get_registry\n"
        "reg = get_registry(new_plugin_manager(autoload=True))\n"
        "assert {'pg_redis', 'postgres'} <= set(reg.cache_backends), reg.cache_backends\n"
        "assert 'asyncpg' not in sys.modules and 'redis' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_factory_ignores_unrelated_options(pg_dsn: str, redis_url: str) -> None:
    pm = new_plugin_manager(autoload=True)
    assert "pg_redis" in get_registry(pm).cache_backends
    backend = cache_backend(
        "pg_redis",
        plugin_manager=pm,
        pg_dsn=pg_dsn,
        redis_url=redis_url,
        cache_collection="llm_cache_factory",
        cache_dir="/nowhere",
        qdrant_url="http://example.invalid",
        redis_ttl_seconds=60,
        compression="zlib",
        ttl=None,
    )
    assert isinstance(backend, PostgresCache)
    assert backend.name == "pg_redis" and backend.table == "llm_cache_factory"
    assert backend.codec == "zlib" and backend.redis_ttl == 60.0 and backend.ttl is None
    alone = cache_backend("postgres", plugin_manager=pm, pg_dsn=pg_dsn, redis_url=redis_url)
    assert alone.name == "postgres" and alone.table == "llm_cache"
    # options typed on a command line (llm-client cache ... -o name=value) arrive as text
    texts = cache_backend(
        "pg_redis",
        plugin_manager=pm,
        pg_dsn=pg_dsn,
        redis_url=redis_url,
        cache_ttl="30",
        redis_ttl_seconds="60",
        compression_min_bytes="100",
        connect_timeout="2.5",
    )
    assert (texts.ttl, texts.redis_ttl, texts.compression_min_bytes) == (30.0, 60.0, 100)
    with pytest.raises(ConfigurationError, match="purge_interval"):
        cache_backend("postgres", plugin_manager=pm, pg_dsn=pg_dsn, purge_interval="soon")


def test_missing_dsn_names_argument_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PG_DSN", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ConfigurationError, match=r"pg_dsn=.*PG_DSN"):
        PostgresCache(mirror=False)
    with pytest.raises(ConfigurationError, match=r"redis_url=.*REDIS_URL"):
        PostgresCache("postgresql://localhost/x")
    with pytest.raises(ConfigurationError, match="compression"):
        PostgresCache("postgresql://localhost/x", mirror=False, compression="lz4")


async def test_explicit_argument_beats_environment(
    monkeypatch: pytest.MonkeyPatch, backends: Backends
) -> None:
    monkeypatch.setenv("PG_DSN", f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    backend = backends.make()  # explicit pg_dsn / redis_url from the fixture
    await backend.put(_entry("k"))
    assert (await backend.get("k")) is not None
    assert (await backend.stats())["redis_up"] is True

    monkeypatch.setenv("PG_DSN", backends.pg_dsn)
    from_env = PostgresCache(mirror=False, cache_collection=backends.table)
    try:
        assert (await from_env.get("k")) is not None
    finally:
        await from_env.aclose()


@pytest.mark.parametrize(
    "name",
    [
        'x"; DROP TABLE users; --',
        "cache; DROP TABLE users",
        "Robert'); DROP TABLE students;--",
        "UPPER",
        "1starts_with_digit",
        "a" * 64,
        "",
        "has space",
        'quote"inside',
    ],
)
def test_table_name_injection_is_rejected(name: str) -> None:
    with pytest.raises(ConfigurationError, match="cannot be a PostgreSQL table name"):
        PostgresCache("postgresql://localhost/x", mirror=False, cache_collection=name)


async def test_reserved_word_table_name_is_quoted(pg_dsn: str) -> None:
    name = f"user_{uuid.uuid4().hex[:6]}"
    for table in ("select", name):  # "select" exists only while this test runs
        backend = PostgresCache(pg_dsn, mirror=False, cache_collection=table)
        try:
            await backend.put(_entry("k"))
            assert (await backend.get("k")) is not None
        finally:
            await backend.drop()
            await backend.aclose()


# -- behaviour -----------------------------------------------------------------------------------


async def test_round_trip_delete_and_miss(backend: PostgresCache) -> None:
    assert await backend.get("absent") is None
    entry = _entry("k1", text="héllo ✓")
    await backend.put(entry)
    got = await backend.get("k1")
    assert got == entry
    assert await backend.delete("k1") is True
    assert await backend.delete("k1") is False
    assert await backend.get("k1") is None
    stats = await backend.stats()
    assert stats["hits"] == 1 and stats["misses"] == 2 and stats["puts"] == 1
    assert stats["entries"] == 0


async def test_table_created_lazily_with_primary_key_and_expiry_index(
    backends: Backends,
) -> None:
    backend = backends.make(mirror=False)
    assert not await _rows(
        backends.pg_dsn, "SELECT 1 FROM pg_class WHERE relname=$1", backend.table
    )
    await backend.warm()
    columns = {
        r["column_name"]: r["data_type"]
        for r in await _rows(
            backends.pg_dsn,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name=$1",
            backend.table,
        )
    }
    assert columns["key"] == "text" and columns["data"] == "bytea"
    assert columns["codec"] == "text" and "timestamp" in columns["expires_at"]
    indexes = [
        r["indexdef"]
        for r in await _rows(
            backends.pg_dsn, "SELECT indexdef FROM pg_indexes WHERE tablename=$1", backend.table
        )
    ]
    assert any("UNIQUE" in d and "(key)" in d for d in indexes)
    assert any("(expires_at)" in d for d in indexes)


async def test_postgres_hit_is_written_back_to_redis(backends: Backends) -> None:
    backend = backends.make(redis_ttl_seconds=30)
    await backend.put(_entry("k"))
    raw = await _redis_raw(backends.redis_url)
    try:
        redis_key = f"{backends.prefix}{backends.table}:k"
        assert 0 < await raw.pttl(redis_key) <= 30_000
        await raw.delete(redis_key)  # evicted from the hot mirror
        assert (await backend.get("k")) is not None
        stats = await backend.stats()
        assert stats["postgres_hits"] == 1 and stats["redis_hits"] == 0
        assert 0 < await raw.pttl(redis_key) <= 30_000  # written back, with the mirror TTL
        assert (await backend.get("k")) is not None
        assert (await backend.stats())["redis_hits"] == 1
    finally:
        await raw.aclose()


async def test_get_decoded_falls_back_to_postgres_when_the_mirror_bytes_are_refused(
    backends: Backends,
) -> None:
    """The caller's decoder refusing the mirror's bytes is what a damaged mirror value is:
    PostgreSQL answers, through the same decoder, and its bytes go back to the mirror."""
    backend = backends.make()
    await backend.put(_entry("k"))
    raw = await _redis_raw(backends.redis_url)
    redis_key = f"{backends.prefix}{backends.table}:k"
    try:
        await raw.set(redis_key, b'{"key": "k", "value": {"output": "tampered"}}')
        read: list[bytes] = []

        def decode(data: bytes) -> CacheEntry:
            read.append(data)
            entry = CacheEntry.from_json(data)
            if entry.value["output"] == "tampered":
                raise ValueError("not what this caller accepts")
            return entry

        found = await backend.get_decoded("k", decode)
        assert found is not None and found.value["output"] == "answer to k"
        assert len(read) == 2  # the mirror's bytes, then PostgreSQL's
        stats = await backend.stats()
        assert stats["postgres_hits"] == 1 and stats["redis_hits"] == 0
        assert await raw.get(redis_key) == read[1]  # PostgreSQL's bytes written back
    finally:
        await raw.aclose()


async def test_ttl_expiry_and_lazy_purge(backend: PostgresCache, pg_dsn: str) -> None:
    await backend.put(_entry("short"), ttl=0.3)
    await backend.put(_entry("long"), ttl=60)
    await backend.put(_entry("forever"))
    assert (await backend.get("short")) is not None
    await asyncio.sleep(0.45)
    assert await backend.get("short") is None  # expired: Redis EX / PG expires_at
    count = f'SELECT count(*) AS n FROM "{backend.table}" WHERE key=$1'
    assert (await _rows(pg_dsn, count, "short"))[0]["n"] == 0  # deleted on read
    assert (await backend.get("long")) is not None
    assert (await backend.get("forever")) is not None
    await backend.put(_entry("gone"), ttl=0.05)
    await asyncio.sleep(0.1)
    assert await backend.purge_expired() == 1
    assert (await backend.stats())["entries"] == 2
    assert [e.key for e in [x async for x in backend.export()]] == ["forever", "long"]


async def test_default_ttl_option(backends: Backends) -> None:
    backend = backends.make(ttl=0.2)
    await backend.put(_entry("k"))
    assert (await backend.get("k")) is not None
    await asyncio.sleep(0.3)
    assert await backend.get("k") is None


@pytest.mark.parametrize("compression", ["zlib", "zstd"])
async def test_compression_round_trip(backends: Backends, compression: str) -> None:
    backend = backends.make(mirror=False, compression=compression, compression_min_bytes=512)
    big = _entry("big", text="lorem ipsum dolor sit amet " * 200)
    small = _entry("small")
    await backend.put(big)
    await backend.put(small)
    assert await backend.get("big") == big
    assert await backend.get("small") == small
    rows = {
        r["key"]: (r["codec"], r["size"])
        for r in await _rows(
            backends.pg_dsn, f'SELECT key, codec, length(data) AS size FROM "{backend.table}"'
        )
    }
    assert rows["big"][0] == compression and rows["big"][1] < len(big.to_json()) // 5
    assert rows["small"][0] == "none"  # under compression_min_bytes


async def test_mixed_compression_rows_stay_readable(backends: Backends) -> None:
    text = "the quick brown fox " * 100
    writers = {
        codec: backends.make(mirror=False, compression=codec, compression_min_bytes=1)
        for codec in (None, "zlib", "zstd")
    }
    for codec, writer in writers.items():
        await writer.put(_entry(f"k-{codec}", text=text))
    codecs = {
        r["key"]: r["codec"]
        for r in await _rows(backends.pg_dsn, f'SELECT key, codec FROM "{backends.table}"')
    }
    assert codecs == {"k-None": "none", "k-zlib": "zlib", "k-zstd": "zstd"}
    for reader in writers.values():
        for codec in writers:
            got = await reader.get(f"k-{codec}")
            assert got is not None and got.value["text"] == text
        assert len([e async for e in reader.export()]) == 3


async def test_concurrent_writers_and_readers(backend: PostgresCache) -> None:
    keys = [f"key-{i}" for i in range(10)]
    seen: list[CacheEntry] = []

    async def worker(n: int) -> None:
        key = keys[n % len(keys)]
        entry = _entry(key, writer=n, body="x" * (50 * n))
        await backend.put(entry)
        for other in (key, keys[(n * 7) % len(keys)]):
            got = await backend.get(other)
            if got is not None:
                seen.append(got)

    await asyncio.gather(*(worker(n) for n in range(100)))
    assert len(seen) >= 100  # every task read back at least its own key

    def intact(entry: CacheEntry) -> bool:
        writer = entry.value["writer"]
        return entry.key == keys[writer % len(keys)] and entry.value["body"] == "x" * (50 * writer)

    assert all(intact(e) for e in seen)
    final = {e.key: e async for e in backend.export()}
    assert set(final) == set(keys) and all(intact(e) for e in final.values())


async def test_stats_export_clear_warm(backend: PostgresCache) -> None:
    await backend.warm()
    backend.export_page_size = 7
    for i in range(30):  # several export pages, the last one short
        await backend.put(_entry(f"k{i:05d}"))
    exported = [e.key async for e in backend.export()]
    assert exported == sorted(f"k{i:05d}" for i in range(30))
    stats = await backend.stats()
    assert stats["entries"] == 30 and stats["backend"] == backend.name
    assert stats["postgres_up"] is True
    assert await backend.clear() == 30
    assert await backend.get("k00001") is None
    assert (await backend.stats())["entries"] == 0


async def test_table_dropped_behind_our_back_is_recreated(backends: Backends) -> None:
    backend = backends.make()
    await backend.put(_entry("a"))
    await _rows(backends.pg_dsn, f'DROP TABLE "{backends.table}"')
    await backend.put(_entry("b"))
    assert (await backend.get("b")) is not None


# -- degradation ---------------------------------------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == 30]


async def test_redis_down_falls_back_to_postgres(
    backends: Backends, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    backend = backends.make(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    for i in range(5):
        await backend.put(_entry(f"k{i}"))
        assert (await backend.get(f"k{i}")) is not None
    assert await backend.get("absent") is None
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "Redis" in warnings[0]  # once per outage
    stats = await backend.stats()
    assert stats["redis_up"] is False and stats["postgres_hits"] == 5


async def test_postgres_down_falls_back_to_redis(
    backends: Backends, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    bad = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    backend = backends.make(pg_dsn=bad)
    for i in range(5):
        await backend.put(_entry(f"k{i}"))
        assert (await backend.get(f"k{i}")) is not None
    assert await backend.get("absent") is None  # Redis answered "not here"
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "PostgreSQL" in warnings[0]
    stats = await backend.stats()
    assert stats["postgres_up"] is False and stats["redis_hits"] == 5 and stats["entries"] is None


async def test_both_down_raises(backends: Backends, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    backend = backends.make(
        pg_dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/test",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    with pytest.raises(CacheUnavailableError):
        await backend.put(_entry("k"))
    with pytest.raises(CacheUnavailableError):
        await backend.get("k")
    with pytest.raises(CacheUnavailableError):
        await backend.warm()
    assert len(_warnings(caplog)) == 2  # one per service


async def test_postgres_alone_down_raises_then_waits_out_reconnect_interval(
    backends: Backends,
) -> None:
    backend = backends.make(
        mirror=False,
        pg_dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/test",
        reconnect_interval=30.0,
    )
    with pytest.raises(CacheUnavailableError):
        await backend.get("k")
    started = time.perf_counter()
    for _ in range(100):  # while down, calls fail at once without touching the network
        with pytest.raises(CacheUnavailableError):
            await backend.get("k")
    assert time.perf_counter() - started < 0.5
    assert (await backend.stats())["postgres_failures"] == 1


@pytest.mark.parametrize("mirror", [False, True])
async def test_postgres_connections_killed_mid_run(
    backends: Backends, mirror: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    backend = backends.make(mirror=mirror, pg_pool_min_size=2)
    await backend.put(_entry("before"))
    app = f"llm-client-test-{backends.table}"
    killed = await _rows(
        backends.pg_dsn,
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity"
        " WHERE application_name = $1 AND pid <> pg_backend_pid()",
        app,
    )
    assert killed and all(r["ok"] for r in killed)
    # The very next calls succeed: the dead pooled connections are replaced.
    await backend.put(_entry("after"))
    assert (await backend.get("after")) is not None
    if mirror:
        raw = await _redis_raw(backends.redis_url)
        await raw.delete(f"{backends.prefix}{backends.table}:before")
        await raw.aclose()
    assert (await backend.get("before")) is not None
    assert (await backend.stats())["postgres_failures"] == 0
    assert not _warnings(caplog)


async def test_redis_stopped_and_restarted_mid_run(
    backends: Backends, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    backend = backends.make(redis_url=redis_server.url)
    await backend.put(_entry("a"))
    assert (await backend.get("a")) is not None
    assert (await backend.stats())["redis_hits"] == 1

    redis_server.stop()
    for key in ("a", "a", "a"):  # served by PostgreSQL, no call lost
        assert (await backend.get(key)) is not None
    await backend.put(_entry("b"))
    assert (await backend.get("b")) is not None
    assert len(_warnings(caplog)) == 1

    redis_server.start()  # empty: the mirror refills from PostgreSQL
    assert (await backend.get("a")) is not None
    infos = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == 20]
    assert len(infos) == 1 and "reachable again" in infos[0]
    assert (await backend.get("a")) is not None
    stats = await backend.stats()
    assert stats["redis_up"] is True and stats["redis_hits"] == 2


async def test_identifier_longer_than_the_index_allows_is_cached(backend: PostgresCache) -> None:
    key = "user-identifier-" + "x" * 5000
    await backend.put(_entry(key, output="long"))
    got = await backend.get(key)
    assert got is not None and got.key == key and got.value["output"] == "long"
    exported = [e.key async for e in backend.export()]
    assert key in exported
    assert await backend.delete(key)
    assert await backend.get(key) is None


# -- a locked table, through the client ------------------------------------------------------


async def test_locked_table_every_call_is_answered_within_its_deadline(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another session holds ACCESS EXCLUSIVE on the cache table (a migration, VACUUM FULL)."""
    from llm_client import GPT5Nano, OpenAIClient
    from llm_client.testing import FakeOpenAI, expected_text

    caplog.set_level(logging.INFO)
    table = _unique("locked")
    async with FakeOpenAI() as server:
        client = OpenAIClient(
            GPT5Nano,
            cache_backend="postgres",
            pg_dsn=pg_dsn,
            cache_collection=table,
            base_url=server.base_url,
            api_key="sk-test",
            rate_limit_backend=None,
            timeout=5,
        )
        locker = await asyncpg.connect(pg_dsn)
        try:
            await client.warm_cache()  # the table exists
            lock = locker.transaction()
            await lock.start()
            await locker.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
            try:
                asks = [[{"role": "user", "content": f"question {i}"}] for i in range(40)]
                results = await asyncio.gather(
                    *(client.get_response(messages=msgs) for msgs in asks)
                )
                later = [await client.get_response(messages=msgs) for msgs in asks[:5]]
            finally:
                await lock.rollback()
            for msgs, result in zip([*asks, *asks[:5]], [*results, *later], strict=True):
                assert result["status"] == 200, result["error"]
                assert result["output"] == expected_text(msgs)
            stats = client.stats()["cache"]
            assert stats["backend_errors"] >= 1 and stats["backend_skips"] >= 1
            warnings = [
                r.getMessage()
                for r in caplog.records
                if r.levelno == logging.WARNING and r.name == "llm_client.middleware.cache"
            ]
            assert len(warnings) == 1 and "no answer within" in warnings[0], warnings
        finally:
            await client.close()
            await locker.execute(f'DROP TABLE IF EXISTS "{table}"')
            await locker.close()


async def test_mirror_pool_waits_instead_of_reporting_an_outage(
    backends: Backends, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    backend = backends.make(redis_max_connections=2)
    await asyncio.gather(*(backend.put(_entry(f"k{i}")) for i in range(50)))
    found = await asyncio.gather(*(backend.get(f"k{i % 50}") for i in range(300)))
    assert all(entry is not None for entry in found)
    stats = await backend.stats()
    assert stats["redis_failures"] == 0 and stats["redis_up"] and stats["errors"] == 0
    assert stats["redis_hits"] == 300
    assert backend._mirror is not None
    assert backend._mirror._redis().connection_pool.max_connections == 2
    assert "unavailable" not in caplog.text


async def test_a_read_is_one_round_trip_the_pool_runs_no_reset_query(
    backends: Backends,
) -> None:
    """asyncpg's pool would run ``... RESET ALL`` after every operation (a second round trip
    per cache read); this backend's private pool leaves its sessions as they are, which is
    safe because its own statements change no session state. Seen from the server: a
    setting made in one operation is still there in the next (one pooled connection)."""
    cache = backends.make(mirror=False, pg_pool_max_size=1)
    store: Any = cache._store
    await cache.put(_entry("k", output="v"))

    async def set_timeout(conn: Any) -> None:
        await conn.execute("SET statement_timeout = 4321")

    async def show_timeout(conn: Any) -> str:
        return str(await conn.fetchval("SHOW statement_timeout"))

    await store.run(set_timeout)
    assert await store.run(show_timeout) == "4321ms"
    assert (await cache.get("k")) is not None
    assert await store.run(show_timeout) == "4321ms"


async def test_a_frozen_redis_leaves_pg_redis_answering_from_postgresql(
    pg_dsn: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGSTOP leaves the mirror's connections open and unanswered. A read of the mirror gives
    up after ``redis_command_timeout`` (default 1 s, not the 10 s statement timeout), so
    PostgreSQL answers within the cache step's bound: stored answers are still hits, and the
    cache step never sees the backend fail (no outage, nothing skipped)."""
    import signal

    from llm_client import GPT5Nano, OpenAIClient
    from llm_client.testing import FakeOpenAI, expected_text

    caplog.set_level(logging.INFO)
    assert redis_server.proc is not None
    table = _unique("frozen")
    async with FakeOpenAI() as server:
        client = OpenAIClient(
            GPT5Nano,
            cache_backend="pg_redis",
            pg_dsn=pg_dsn,
            redis_url=redis_server.url,
            cache_collection=table,
            base_url=server.base_url,
            api_key="sk-test",
            rate_limit_backend=None,
            timeout=5,
        )
        asks = [[{"role": "user", "content": f"question {i}"}] for i in range(8)]
        try:
            for msgs in asks:
                assert (await client.get_response(messages=msgs))["status"] == 200
            await asyncio.sleep(0.3)  # the background stores land in both
            os.kill(redis_server.proc.pid, signal.SIGSTOP)
            try:
                results = await asyncio.gather(
                    *(client.get_response(messages=msgs) for msgs in asks)
                )
                later = [await client.get_response(messages=msgs) for msgs in asks[:3]]
            finally:
                os.kill(redis_server.proc.pid, signal.SIGCONT)
            for msgs, result in zip([*asks, *asks[:3]], [*results, *later], strict=True):
                assert result["status"] == 200, result["error"]
                assert result["output"] == expected_text(msgs)
                assert result["cached"], "answered by PostgreSQL while Redis is frozen"
            stats = client.stats()["cache"]
            assert stats["backend_errors"] == 0 and stats["backend_skips"] == 0, stats
            assert server.count("chat") == len(asks)  # no answer asked for twice
        finally:
            with contextlib.suppress(Exception):
                await client.cache.drop()
            await client.close()
