"""The contract every cache backend keeps: a pytest test class to subclass.

A backend's own test module subclasses :class:`CacheBackendContract` and provides one fixture,
``make_backend``: a callable that opens a backend on the storage of this test (the same
folder, database or key prefix each time it is called, so a reopened backend sees what an
earlier one wrote)::

    from llm_client.testing.cache_contract import CacheBackendContract

    class TestMyCache(CacheBackendContract):
        persistent = True          # entries survive aclose() and a reopen

        @pytest.fixture
        def make_backend(self, tmp_path):
            return lambda: MyCache(tmp_path / "db")

The suite checks get/put/delete/clear/export round trips, overwrites, expiry, unicode keys
and values, large values, 100 concurrent tasks writing and reading overlapping keys (nothing
torn, nothing lost) and, for persistent backends, a close and reopen; a backend that offers
``get_decoded`` (:class:`~llm_client.cache.DecodingCacheBackend`) must read with it what
``get`` reads. Class attributes switch
parts off for backends that cannot do them (``supports_ttl = False``) or tune them
(``ttl_seconds`` for servers with coarse expiry). A backend that also searches by vector
subclasses :class:`SemanticCacheBackendContract` instead.

Each backend fixture is cleared before and after its test, so a backend on a shared server
must be namespaced (a unique collection or key prefix per test).

Tests are marked for pytest-asyncio explicitly, so the suite runs in ``strict`` mode too.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest
import pytest_asyncio

from llm_client.cache import (
    CacheBackend,
    CacheEntry,
    DecodingCacheBackend,
    SemanticCacheBackend,
)

__all__ = ["CacheBackendContract", "SemanticCacheBackendContract", "make_entry"]


def make_entry(key: str, value: dict[str, Any] | None = None, **fields: Any) -> CacheEntry:
    """A cache entry shaped like the ones the cache middleware writes."""
    if value is None:
        value = {
            "params": {"model": "gpt-5-nano", "messages": [{"role": "user", "content": key}]},
            "output": f"answer for {key}",
            "usage": {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8},
            "status": 200,
            "error": "OK",
            "identifier": key,
        }
    fields.setdefault("model", "gpt-5-nano")
    fields.setdefault("operation", "chat")
    fields.setdefault("scope", "scope-1")
    return CacheEntry(key=key, value=value, **fields)


async def _keys(backend: CacheBackend) -> list[str]:
    return sorted([entry.key async for entry in backend.export()])


@pytest.mark.asyncio
class CacheBackendContract:
    """Subclass and provide the ``make_backend`` fixture (see the module docstring)."""

    #: The backend expires entries put with ``ttl``.
    supports_ttl: ClassVar[bool] = True
    #: The ``ttl`` used by the expiry test (raise it for servers with coarse expiry).
    ttl_seconds: ClassVar[float] = 0.15
    #: Entries survive ``aclose()`` and a new backend from ``make_backend``.
    persistent: ClassVar[bool] = False
    #: Concurrent tasks in the concurrency test.
    concurrency: ClassVar[int] = 100
    #: Size in characters of the large value.
    large_value_chars: ClassVar[int] = 2_000_000

    @pytest.fixture
    def make_backend(self) -> Callable[[], CacheBackend]:
        raise NotImplementedError(
            "a CacheBackendContract subclass must provide a `make_backend` fixture returning"
            " a callable that opens the backend under test"
        )

    @pytest_asyncio.fixture
    async def backend(
        self, make_backend: Callable[[], CacheBackend]
    ) -> AsyncIterator[CacheBackend]:
        backend = make_backend()
        await backend.warm()
        await backend.clear()
        try:
            yield backend
        finally:
            try:
                await backend.clear()
            finally:
                await backend.aclose()

    # --- shape ------------------------------------------------------------------------------

    async def test_is_a_cache_backend(self, backend: CacheBackend) -> None:
        assert isinstance(backend, CacheBackend)
        assert isinstance(backend.name, str) and backend.name

    async def test_warm_is_idempotent(self, backend: CacheBackend) -> None:
        await backend.warm()
        await backend.warm()
        await backend.put(make_entry("k"))
        await backend.warm()
        assert await backend.get("k") is not None

    # --- round trips --------------------------------------------------------------------------

    async def test_missing_key_is_none(self, backend: CacheBackend) -> None:
        assert await backend.get("never-written") is None

    async def test_get_decoded_reads_what_get_reads(self, backend: CacheBackend) -> None:
        if not isinstance(backend, DecodingCacheBackend):
            pytest.skip("the backend does not offer get_decoded")
        seen: list[bytes] = []

        def decode(data: bytes) -> CacheEntry:
            assert type(data) is bytes
            seen.append(data)
            return CacheEntry.from_json(data)

        assert await backend.get_decoded("never-written", decode) is None
        assert seen == []  # not called for a missing key
        entry = make_entry("k", created_at=1234.5)
        await backend.put(entry)
        assert await backend.get_decoded("k", decode) == await backend.get("k") == entry
        assert len(seen) == 1
        await backend.put(make_entry("k", created_at=1234.5, prompt="changed"))
        found = await backend.get_decoded("k", decode)
        assert found is not None and found.prompt == "changed"
        assert seen[1] != seen[0]  # a rewrite is read as other bytes
        await backend.delete("k")
        assert await backend.get_decoded("k", decode) is None

    async def test_put_get_round_trip(self, backend: CacheBackend) -> None:
        value = {
            "s": "text",
            "i": 7,
            "f": 1.5,
            "tiny": 1e-300,
            "b": True,
            "n": None,
            "l": [1, "2", {"k": []}, [0.25, -3]],
            "d": {"z": 1, "a": {"nested": [None, False]}},
        }
        entry = make_entry(
            "round-trip",
            value,
            created_at=1_700_000_000.125,
            model="gpt-5-mini",
            operation="responses",
            scope="s" * 64,
            prompt="what is the answer?",
        )
        await backend.put(entry)
        got = await backend.get("round-trip")
        assert got is not None
        assert got.key == entry.key
        assert dict(got.value) == value
        assert got.created_at == pytest.approx(entry.created_at, abs=1e-3)
        assert (got.model, got.operation, got.scope, got.prompt) == (
            entry.model,
            entry.operation,
            entry.scope,
            entry.prompt,
        )

    async def test_overwrite_keeps_one_entry(self, backend: CacheBackend) -> None:
        await backend.put(make_entry("k", {"v": 1}))
        await backend.put(make_entry("k", {"v": 2}))
        got = await backend.get("k")
        assert got is not None and dict(got.value) == {"v": 2}
        assert await _keys(backend) == ["k"]

    async def test_delete(self, backend: CacheBackend) -> None:
        await backend.put(make_entry("a"))
        await backend.put(make_entry("b"))
        assert await backend.delete("a") is True
        assert await backend.get("a") is None
        assert await backend.delete("a") is False
        assert await backend.get("b") is not None

    async def test_clear_and_stats(self, backend: CacheBackend) -> None:
        for key in ("x", "y", "z"):
            await backend.put(make_entry(key))
        stats = await backend.stats()
        assert isinstance(stats, dict)
        assert stats["entries"] == 3
        assert await backend.clear() == 3
        assert await backend.get("x") is None
        assert await _keys(backend) == []
        assert (await backend.stats())["entries"] == 0

    async def test_export_yields_every_entry(self, backend: CacheBackend) -> None:
        keys = [f"export-{i}" for i in range(12)] + ["nested/one", "nested/deeper/two"]
        for key in keys:
            await backend.put(make_entry(key, {"key": key}))
        exported = [entry async for entry in backend.export()]
        assert sorted(e.key for e in exported) == sorted(keys)
        assert all(dict(e.value) == {"key": e.key} for e in exported)

    async def test_similar_keys_stay_apart(self, backend: CacheBackend) -> None:
        keys = ["a", "a.json", "a/b", "a_b", "a b", "a%2Fb", "a/b/c", "ab"]
        for key in keys:
            await backend.put(make_entry(key, {"key": key}))
        for key in keys:
            got = await backend.get(key)
            assert got is not None and got.value == {"key": key}, key
        assert await _keys(backend) == sorted(keys)

    async def test_unicode_and_hostile_keys(self, backend: CacheBackend) -> None:
        text = "naïve café — 日本語 — עברית — 🔑🧪 — e\u0301 — \x00 end"
        keys = [
            "ключ",
            "キー/🔑",
            "../../escape",
            "/absolute/path",
            "C:\\windows\\path",
            "..",
            ".hidden",
            "tab\tnewline\n",
            "k" * 600,
        ]
        for key in keys:
            await backend.put(make_entry(key, {"text": text, "key": key}, prompt=text))
        for key in keys:
            got = await backend.get(key)
            assert got is not None, key
            assert got.value == {"text": text, "key": key}
            assert got.prompt == text
        assert await _keys(backend) == sorted(keys)

    async def test_large_value(self, backend: CacheBackend) -> None:
        vector = [math.sin(i) for i in range(10_000)]
        value = {"output": "x" * self.large_value_chars, "embedding": vector}
        await backend.put(make_entry("large", value))
        got = await backend.get("large")
        assert got is not None
        assert got.value["output"] == value["output"]
        assert got.value["embedding"] == vector

    # --- expiry -------------------------------------------------------------------------------

    async def test_ttl_expires_entries(self, backend: CacheBackend) -> None:
        if not self.supports_ttl:
            pytest.skip("this backend does not expire entries")
        ttl = self.ttl_seconds
        start = time.monotonic()
        await backend.put(make_entry("short"), ttl=ttl)
        await backend.put(make_entry("replaced", {"v": 1}), ttl=ttl)
        await backend.put(make_entry("replaced", {"v": 2}))  # no ttl: the new entry stays
        await backend.put(make_entry("forever"))
        found = await backend.get("short")
        if time.monotonic() - start < ttl * 0.8:  # only meaningful if we were quick enough
            assert found is not None
        await asyncio.sleep(ttl * 2 + 0.05)
        assert await backend.get("short") is None
        assert await backend.get("forever") is not None
        replaced = await backend.get("replaced")
        assert replaced is not None and replaced.value == {"v": 2}
        assert await _keys(backend) == ["forever", "replaced"]

    # --- concurrency --------------------------------------------------------------------------

    async def test_concurrent_tasks_never_see_torn_or_lost_entries(
        self, backend: CacheBackend
    ) -> None:
        n = self.concurrency
        shared_keys = [f"shared-{i}" for i in range(10)]

        def value_of(writer: int) -> dict[str, Any]:
            return {"writer": writer, "payload": f"{writer:04d}" * (1000 + writer * 37)}

        async def writer(i: int) -> None:
            key = shared_keys[i % len(shared_keys)]
            await backend.put(make_entry(key, value_of(i)))
            await backend.put(make_entry(f"own-{i}", value_of(i)))
            got = await backend.get(key)
            assert got is not None, f"{key} vanished right after it was written"
            writer_id = got.value["writer"]
            assert writer_id % len(shared_keys) == i % len(shared_keys)
            assert got.value == value_of(writer_id), "a torn or mixed entry was read"

        await asyncio.gather(*(writer(i) for i in range(n)))
        for key in shared_keys[: min(n, len(shared_keys))]:
            got = await backend.get(key)
            assert got is not None
            assert got.value == value_of(got.value["writer"])
        for i in range(n):
            got = await backend.get(f"own-{i}")
            assert got is not None and got.value == value_of(i), f"own-{i} was lost"

    # --- lifecycle ----------------------------------------------------------------------------

    async def test_reopen_keeps_entries(self, make_backend: Callable[[], CacheBackend]) -> None:
        if not self.persistent:
            pytest.skip("this backend does not persist entries")
        first = make_backend()
        await first.warm()
        await first.clear()
        try:
            await first.put(make_entry("persisted", {"v": "kept"}))
        finally:
            await first.aclose()
        second = make_backend()
        try:
            got = await second.get("persisted")
            assert got is not None and got.value == {"v": "kept"}
            assert await _keys(second) == ["persisted"]
        finally:
            await second.clear()
            await second.aclose()

    async def test_aclose_is_idempotent(self, make_backend: Callable[[], CacheBackend]) -> None:
        backend = make_backend()
        await backend.warm()
        await backend.aclose()
        await backend.aclose()


@pytest.mark.asyncio
class SemanticCacheBackendContract(CacheBackendContract):
    """The contract plus vector search, for a :class:`SemanticCacheBackend`."""

    #: Vector size used by the tests (for stores that fix it per collection).
    vector_size: ClassVar[int] = 8

    def _vector(self, *hot: int) -> list[float]:
        vector = [0.0] * self.vector_size
        for i in hot:
            vector[i % self.vector_size] = 1.0
        return vector

    async def test_is_semantic(self, backend: CacheBackend) -> None:
        assert isinstance(backend, SemanticCacheBackend)

    async def test_put_vector_stores_like_put(self, backend: CacheBackend) -> None:
        assert isinstance(backend, SemanticCacheBackend)
        await backend.put_vector(make_entry("v1", {"v": 1}, prompt="p"), self._vector(0))
        got = await backend.get("v1")
        assert got is not None and got.value == {"v": 1}

    async def test_search_finds_the_nearest_within_scope(self, backend: CacheBackend) -> None:
        assert isinstance(backend, SemanticCacheBackend)
        await backend.put_vector(make_entry("near", scope="s1", prompt="a"), self._vector(0))
        await backend.put_vector(make_entry("far", scope="s1", prompt="b"), self._vector(1))
        await backend.put_vector(make_entry("other", scope="s2", prompt="c"), self._vector(0))
        query = self._vector(0)
        query[1] = 0.2
        found = await backend.search(query, scope="s1", threshold=0.9)
        assert found is not None
        entry, similarity = found
        assert entry.key == "near"
        assert 0.9 <= similarity <= 1.0 + 1e-6

    async def test_search_respects_threshold_and_scope(self, backend: CacheBackend) -> None:
        assert isinstance(backend, SemanticCacheBackend)
        await backend.put_vector(make_entry("only", scope="s1", prompt="a"), self._vector(0))
        assert await backend.search(self._vector(1), scope="s1", threshold=0.5) is None
        assert await backend.search(self._vector(0), scope="s2", threshold=0.5) is None
        assert await backend.search(self._vector(0), scope="s1", threshold=0.5) is not None

    async def test_deleted_entries_are_not_found_by_search(self, backend: CacheBackend) -> None:
        assert isinstance(backend, SemanticCacheBackend)
        await backend.put_vector(make_entry("gone", scope="s1", prompt="a"), self._vector(2))
        await backend.delete("gone")
        assert await backend.search(self._vector(2), scope="s1", threshold=0.5) is None
