"""The ``"memory"`` backend: a per-process LRU dict, also a semantic backend."""

from __future__ import annotations

import math
import operator
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..exceptions import ConfigurationError
from ._common import _check_ttl, _Counters, _expiry
from .base import CacheEntry

_D = TypeVar("_D")


@dataclass(slots=True)
class _MemoryItem:
    data: bytes
    expires_at: float | None
    scope: str
    vector: tuple[float, ...] | None = None


def _unit(vector: list[float] | tuple[float, ...]) -> tuple[float, ...] | None:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0 or not math.isfinite(norm):
        return None
    return tuple(x / norm for x in vector)


class MemoryCache:
    """A per-process dict with LRU eviction and optional expiry; also a semantic backend.

    Entries are kept serialized, so a caller mutating a returned value never changes the
    cache, and a value that is not JSON fails at ``put`` exactly as with the other backends.
    ``search`` is a brute-force cosine scan over the entries of one scope: fine for tests and
    small caches, not for millions of vectors.

    :param max_entries: evict the least recently used entry beyond this many (``None``: no
        limit).
    :param ttl: default expiry in seconds for entries put without one.
    :param collection: informational (an instance is its own namespace).
    :param clock: monotonic seconds, injectable for tests.
    """

    name = "memory"

    def __init__(
        self,
        *,
        max_entries: int | None = 10_000,
        ttl: float | None = None,
        collection: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries is not None and (
            isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1
        ):
            raise ConfigurationError(f"max_entries must be an integer >= 1, got {max_entries!r}")
        self.max_entries = max_entries
        self.ttl = _check_ttl(ttl)
        self.collection = collection
        self._clock = clock
        self._items: OrderedDict[str, _MemoryItem] = OrderedDict()
        self._by_scope: dict[str, set[str]] = {}  # keys that have a vector, per scope
        self._counters = _Counters()
        self._evictions = 0

    def __repr__(self) -> str:
        return f"MemoryCache(entries={len(self._items)}, max_entries={self.max_entries})"

    def _drop(self, key: str) -> _MemoryItem | None:
        item = self._items.pop(key, None)
        if item is not None and item.vector is not None:
            keys = self._by_scope.get(item.scope)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_scope[item.scope]
        return item

    def _live(self, key: str) -> _MemoryItem | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item.expires_at is not None and item.expires_at <= self._clock():
            self._drop(key)
            return None
        return item

    async def get(self, key: str) -> CacheEntry | None:
        return await self.get_decoded(key, CacheEntry.from_json)

    async def get_decoded(self, key: str, decode: Callable[[bytes], _D]) -> _D | None:
        """``decode`` of the stored bytes of ``key`` (see
        :class:`~llm_client.cache.DecodingCacheBackend`)."""
        item = self._live(key)
        if item is None:
            return self._counters.count(None)
        self._items.move_to_end(key)
        return self._counters.count(decode(item.data))

    def _store(self, entry: CacheEntry, ttl: float | None, vector: list[float] | None) -> None:
        item = _MemoryItem(
            data=entry.to_json(),
            expires_at=_expiry(self._clock(), ttl, self.ttl),
            scope=entry.scope,
            vector=_unit(vector) if vector is not None else None,
        )
        self._drop(entry.key)
        self._items[entry.key] = item
        if item.vector is not None:
            self._by_scope.setdefault(item.scope, set()).add(entry.key)
        while self.max_entries is not None and len(self._items) > self.max_entries:
            self._drop(next(iter(self._items)))
            self._evictions += 1

    async def put(self, entry: CacheEntry, *, ttl: float | None = None) -> None:
        self._store(entry, ttl, None)

    async def put_vector(
        self, entry: CacheEntry, vector: list[float], *, ttl: float | None = None
    ) -> None:
        self._store(entry, ttl, vector)

    async def search(
        self, vector: list[float], *, scope: str, threshold: float
    ) -> tuple[CacheEntry, float] | None:
        query = _unit(vector)
        if query is None:
            return None
        best: tuple[str, float] | None = None
        now = self._clock()
        for key in list(self._by_scope.get(scope, ())):
            item = self._items[key]
            if item.vector is None or len(item.vector) != len(query):
                continue
            if item.expires_at is not None and item.expires_at <= now:
                self._drop(key)
                continue
            similarity = sum(map(operator.mul, query, item.vector))
            if similarity >= threshold and (best is None or similarity > best[1]):
                best = (key, similarity)
        if best is None:
            return None
        self._items.move_to_end(best[0])
        return CacheEntry.from_json(self._items[best[0]].data), min(1.0, best[1])

    async def delete(self, key: str) -> bool:
        return self._drop(key) is not None

    async def clear(self) -> int:
        count = len(self._items)
        self._items.clear()
        self._by_scope.clear()
        return count

    async def stats(self) -> dict[str, Any]:
        now = self._clock()
        live = [i for i in self._items.values() if i.expires_at is None or i.expires_at > now]
        return {
            "backend": self.name,
            "entries": len(live),
            "size_bytes": sum(len(i.data) for i in live),
            "max_entries": self.max_entries,
            "evictions": self._evictions,
            **self._counters.as_dict(),
        }

    async def export(self) -> AsyncIterator[CacheEntry]:
        for key in list(self._items):
            item = self._live(key)
            if item is not None:
                yield CacheEntry.from_json(item.data)

    async def purge_expired(self) -> int:
        """Drop expired entries now; returns how many."""
        now = self._clock()
        dead = [
            k for k, i in self._items.items() if i.expires_at is not None and i.expires_at <= now
        ]
        for key in dead:
            self._drop(key)
        return len(dead)

    async def warm(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
