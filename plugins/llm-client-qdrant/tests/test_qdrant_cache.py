"""The ``qdrant`` cache backend in Qdrant's embedded local mode (no server needed).

Semantic lookups use deterministic hashed bag-of-words vectors, so similarities are exact and
repeatable. The server path is exercised against a closed port (the outage behaviour).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from llm_client_qdrant.cache import CacheUnavailableError, QdrantCache, point_id

from llm_client.cache import CacheEntry
from llm_client.exceptions import ConfigurationError
from llm_client.plugins import cache_backend, get_registry, new_plugin_manager
from llm_client.testing.cache_contract import SemanticCacheBackendContract
from llm_client.testing.services import free_port

LOGGER = "llm_client_qdrant"
DIM = 512


def embed(text: str, dim: int = DIM) -> list[float]:
    """Hashed bag of words, L2-normalised: cosine similarity == word overlap."""
    vector = [0.0] * dim
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "big") % dim] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _entry(key: str, *, scope: str = "scope-a", prompt: str | None = None) -> CacheEntry:
    return CacheEntry(
        key=key,
        value={"output": f"answer for {key}"},
        model="gpt-test",
        operation="chat",
        scope=scope,
        prompt=prompt,
    )


class FakeWallClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall() -> FakeWallClock:
    return FakeWallClock()


@pytest.fixture
async def backend(wall: FakeWallClock) -> AsyncIterator[QdrantCache]:
    cache = QdrantCache(qdrant_location=":memory:", cache_collection="test", wall_clock=wall)
    yield cache
    await cache.aclose()


class TestQdrantMemoryContract(SemanticCacheBackendContract):
    @pytest.fixture
    def make_backend(self) -> Callable[[], QdrantCache]:
        return lambda: QdrantCache(qdrant_location=":memory:", cache_collection="contract")


class TestQdrantPathContract(SemanticCacheBackendContract):
    persistent = True

    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> Callable[[], QdrantCache]:
        return lambda: QdrantCache(qdrant_path=tmp_path / "qdrant", cache_collection="contract")


# -- plugin wiring and configuration -----------------------------------------------------------


def test_entry_point_registers_without_importing_qdrant_client() -> None:
    code = (
        "import sys\n"
        "from llm_client.plugins import new_plugin_manager, get_registry\n"
        "reg = get_registry(new_plugin_manager(autoload=True))\n"
        "assert 'qdrant' in reg.cache_backends\n"
        "assert 'qdrant_client' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_factory_ignores_unrelated_options() -> None:
    pm = new_plugin_manager(autoload=True)
    assert "qdrant" in get_registry(pm).cache_backends
    backend = cache_backend(
        "qdrant",
        plugin_manager=pm,
        qdrant_location=":memory:",
        cache_collection="coll",
        pg_dsn="postgresql://nowhere/x",
        redis_url="redis://nowhere",
        ttl=None,
    )
    assert isinstance(backend, QdrantCache)
    assert backend.mode == "memory" and backend.collection == "coll"
    await backend.aclose()
    # The client's shared settings (pg_dsn, redis_url ...) are offered to every backend; an
    # option of another backend is not, and is refused rather than dropped (issue 9).
    for foreign in ({"redis_ttl_seconds": 5}, {"compression": "zstd"}):
        with pytest.raises(
            ConfigurationError, match=f"'qdrant'.*no option '{next(iter(foreign))}'"
        ):
            cache_backend("qdrant", plugin_manager=pm, qdrant_location=":memory:", **foreign)
    texts = cache_backend(
        "qdrant", plugin_manager=pm, qdrant_location=":memory:", cache_ttl="9", prefer_grpc="no"
    )
    assert texts.ttl == 9.0
    await texts.aclose()


def test_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("QDRANT_URL", raising=False)
    monkeypatch.delenv("QDRANT_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match=r"qdrant_url=.*QDRANT_URL"):
        QdrantCache()
    with pytest.raises(ConfigurationError, match="one of"):
        QdrantCache(qdrant_url="http://x:6333", qdrant_path=str(tmp_path))
    for bad in ("../escape", "a/b", "", "has space", "x" * 201):
        with pytest.raises(ConfigurationError, match="collection"):
            QdrantCache(qdrant_location=":memory:", cache_collection=bad)
    monkeypatch.setenv("QDRANT_URL", "http://from-env:6333")
    monkeypatch.setenv("QDRANT_API_KEY", "env-key")
    from_env = QdrantCache()
    assert from_env.mode == "server" and from_env.health.target == "http://from-env:6333"
    explicit = QdrantCache(qdrant_url="http://explicit:6333", qdrant_api_key="k")
    assert explicit.health.target == "http://explicit:6333"
    assert QdrantCache(qdrant_path=str(tmp_path)).mode == "path"  # explicit path beats env


# -- exact lookups -------------------------------------------------------------------------------


async def test_round_trip_delete_and_miss(backend: QdrantCache) -> None:
    assert await backend.get("absent") is None
    entry = _entry("k1")
    await backend.put(entry)
    assert await backend.get("k1") == entry
    assert point_id("k1") == str(uuid.UUID(point_id("k1")))
    assert point_id("k1") == point_id("k1") != point_id("k2")
    assert await backend.delete("k1") is True
    assert await backend.delete("k1") is False
    assert await backend.get("k1") is None
    stats = await backend.stats()
    assert (stats["hits"], stats["misses"], stats["puts"], stats["entries"]) == (1, 2, 1, 0)


async def test_ttl_checked_on_read(backend: QdrantCache, wall: FakeWallClock) -> None:
    await backend.put(_entry("short"), ttl=10)
    await backend.put(_entry("forever"))
    await backend.put_vector(_entry("vec"), embed("some prompt"), ttl=10)
    assert (await backend.get("short")) is not None
    wall.now += 11
    assert await backend.get("short") is None
    assert await backend.search(embed("some prompt"), scope="scope-a", threshold=0.5) is None
    assert (await backend.get("forever")) is not None
    assert [e.key async for e in backend.export()] == ["forever"]


async def test_default_ttl_option(wall: FakeWallClock) -> None:
    async with QdrantCache(qdrant_location=":memory:", ttl=5, wall_clock=wall) as backend:
        await backend.put(_entry("k"))
        wall.now += 4
        assert (await backend.get("k")) is not None
        wall.now += 2
        assert await backend.get("k") is None


async def test_local_path_persists_across_clients(tmp_path: Path) -> None:
    async with QdrantCache(qdrant_path=tmp_path / "q", cache_collection="disk") as first:
        await first.put(_entry("k"))
        await first.put_vector(_entry("v"), embed("hello world"))
    async with QdrantCache(qdrant_path=tmp_path / "q", cache_collection="disk") as second:
        assert (await second.get("k")) is not None
        hit = await second.search(embed("hello world"), scope="scope-a", threshold=0.99)
        assert hit is not None and hit[0].key == "v"


# -- semantic lookups ----------------------------------------------------------------------------


async def test_semantic_paraphrase_hits_and_near_miss_does_not(backend: QdrantCache) -> None:
    stored = "What is the capital city of France?"
    paraphrase = "what is the capital of france"
    near_miss = "What is the capital city of Germany?"
    threshold = 0.9
    assert cosine(embed(stored), embed(paraphrase)) >= threshold
    assert cosine(embed(stored), embed(near_miss)) < threshold

    await backend.put_vector(_entry("france", prompt=stored), embed(stored))
    await backend.put_vector(
        _entry("weather", prompt="Will it rain tomorrow in Oslo?"),
        embed("Will it rain tomorrow in Oslo?"),
    )
    hit = await backend.search(embed(paraphrase), scope="scope-a", threshold=threshold)
    assert hit is not None
    entry, similarity = hit
    assert entry.key == "france" and entry.prompt == stored
    assert similarity == pytest.approx(cosine(embed(stored), embed(paraphrase)), abs=1e-4)
    assert await backend.search(embed(near_miss), scope="scope-a", threshold=threshold) is None
    assert (await backend.get("france")) is not None  # exact lookup works too
    stats = await backend.stats()
    assert stats["semantic_hits"] == 1 and stats["semantic_misses"] == 1


async def test_same_prompt_different_scope_does_not_hit(backend: QdrantCache) -> None:
    prompt = "Summarise the plot of Hamlet"
    await backend.put_vector(_entry("hamlet", scope="gpt-5|temperature=0"), embed(prompt))
    assert await backend.search(embed(prompt), scope="gpt-5|temperature=1", threshold=0.5) is None
    assert await backend.search(embed(prompt), scope="gpt-5|temperature", threshold=0.5) is None
    hit = await backend.search(embed(prompt), scope="gpt-5|temperature=0", threshold=0.99)
    assert hit is not None and hit[1] == pytest.approx(1.0, abs=1e-6)


async def test_nearest_of_several_and_exact_only_entries_are_not_searched(
    backend: QdrantCache,
) -> None:
    await backend.put(_entry("exact-only"))
    for key, prompt in [
        ("a", "red apples and green pears"),
        ("b", "red apples and green pears and plums"),
        ("c", "blue cars on the road"),
    ]:
        await backend.put_vector(_entry(key, prompt=prompt), embed(prompt))
    hit = await backend.search(embed("red apples and green pears"), scope="scope-a", threshold=0)
    assert hit is not None and hit[0].key == "a"
    stats = await backend.stats()
    assert stats["entries"] == 4 and stats["vector_collections"] == {"test__vec512": 3}


async def test_vectors_of_other_sizes_live_apart(backend: QdrantCache) -> None:
    await backend.put_vector(_entry("small"), embed("alpha beta", dim=8))
    await backend.put_vector(_entry("large"), embed("alpha beta", dim=64))
    small = await backend.search(embed("alpha beta", dim=8), scope="scope-a", threshold=0.9)
    large = await backend.search(embed("alpha beta", dim=64), scope="scope-a", threshold=0.9)
    assert small is not None and small[0].key == "small"
    assert large is not None and large[0].key == "large"
    assert await backend.search(embed("alpha", dim=16), scope="scope-a", threshold=0) is None
    assert await backend.search([0.0] * 8, scope="scope-a", threshold=0) is None


async def test_delete_and_clear_remove_vectors_too(backend: QdrantCache) -> None:
    await backend.put_vector(_entry("k"), embed("to be deleted"))
    await backend.put_vector(_entry("j"), embed("to be cleared"))
    assert await backend.delete("k") is True
    assert await backend.search(embed("to be deleted"), scope="scope-a", threshold=0.99) is None
    assert await backend.clear() == 1
    assert await backend.search(embed("to be cleared"), scope="scope-a", threshold=0.99) is None
    assert await backend.get("j") is None
    assert (await backend.stats())["vector_collections"] == {}


async def test_zero_vector_is_stored_for_exact_lookup_only(backend: QdrantCache) -> None:
    await backend.put_vector(_entry("z"), [0.0] * 4)
    assert (await backend.get("z")) is not None
    assert (await backend.stats())["vector_collections"] == {}


# -- bulk ------------------------------------------------------------------------------------------


async def test_concurrent_writers_and_readers(backend: QdrantCache) -> None:
    keys = [f"key-{i}" for i in range(10)]
    seen: list[CacheEntry] = []

    async def worker(n: int) -> None:
        key = keys[n % len(keys)]
        entry = CacheEntry(key=key, value={"writer": n, "body": "x" * n}, scope="s")
        if n % 2:
            await backend.put_vector(entry, embed(f"prompt {key}"))
        else:
            await backend.put(entry)
        got = await backend.get(keys[(n * 7) % len(keys)])
        if got is not None:
            seen.append(got)

    await asyncio.gather(*(worker(n) for n in range(100)))

    def intact(entry: CacheEntry) -> bool:
        n = entry.value["writer"]
        return entry.key == keys[n % len(keys)] and entry.value["body"] == "x" * n

    assert seen and all(intact(e) for e in seen)
    final = {e.key: e async for e in backend.export()}
    assert set(final) == set(keys) and all(intact(e) for e in final.values())


async def test_stats_export_clear_warm(backend: QdrantCache) -> None:
    await backend.warm()
    for i in range(600):  # more than two scroll pages
        await backend.put(_entry(f"k{i}"))
    exported = [e.key async for e in backend.export()]
    assert sorted(exported) == sorted(f"k{i}" for i in range(600))
    stats = await backend.stats()
    assert stats["entries"] == 600 and stats["mode"] == "memory" and stats["qdrant_up"]
    assert await backend.clear() == 600
    assert (await backend.stats())["entries"] == 0


# -- degradation -----------------------------------------------------------------------------------


async def test_unreachable_server_raises_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    url = f"http://127.0.0.1:{free_port()}"
    async with QdrantCache(qdrant_url=url, reconnect_interval=0.0, qdrant_timeout=2) as backend:
        for _ in range(3):
            with pytest.raises(CacheUnavailableError, match="Qdrant"):
                await backend.get("k")
            with pytest.raises(CacheUnavailableError):
                await backend.put_vector(_entry("k"), embed("x"))
        warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
        assert len(warnings) == 1
        stats = await backend.stats()
        assert stats["entries"] is None and stats["qdrant_up"] is False


async def test_reconnect_interval_spares_a_dead_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with QdrantCache(qdrant_url=url, reconnect_interval=30.0) as backend:
        with pytest.raises(CacheUnavailableError):
            await backend.get("k")
        started = time.perf_counter()
        for _ in range(200):
            with pytest.raises(CacheUnavailableError):
                await backend.search(embed("x"), scope="s", threshold=0.5)
        assert time.perf_counter() - started < 0.5
        assert backend.health.failures == 1
