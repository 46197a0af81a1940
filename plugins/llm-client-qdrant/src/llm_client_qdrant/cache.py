"""The ``qdrant`` cache backend: exact key/value lookups and semantic (nearest-prompt) lookups.

Storage layout, per ``cache_collection`` (say ``llm_cache``):

* ``llm_cache`` - a collection *without vectors*, one point per cache key, with id
  ``uuid5(key)`` (an exact lookup is one ``retrieve`` by id) and the entry in its payload.
* ``llm_cache__vec<N>`` - one collection per embedding size ``N`` (cosine distance), created
  on the first :meth:`QdrantCache.put_vector` with a vector of that size. Same point id, same
  payload, plus the prompt embedding. :meth:`QdrantCache.search` looks here, filtered on
  ``scope``, so a semantic hit only comes from an entry with the same model, operation and
  generation parameters.

Entries written with :meth:`put` live only in the first collection: no dummy vectors.

This module is the backend's operations. Its parts are private siblings: ``_points`` (point
ids, the payload, expiry), ``_collections`` (names, creation, the vector collections' upkeep)
and ``_connection`` (where Qdrant is, the client, health-checked calls).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from qdrant_client import AsyncQdrantClient, models

from llm_client.cache import CacheEntry
from llm_client.clock import Clock
from llm_client.exceptions import CacheUnavailableError
from llm_client.health import coerce_options, seconds_option

from . import CACHE_OPTIONS  # the package's __init__ defines it, importing nothing of ours
from ._collections import DEFAULT_COLLECTION, Collections, collection_name
from ._connection import QdrantConnection, resolve_target
from ._points import UNREADABLE, entry_payload, expired, live_filter, point_id, read_entry

__all__ = ["DEFAULT_COLLECTION", "CacheUnavailableError", "QdrantCache", "point_id"]

logger = logging.getLogger("llm_client_qdrant")

T = TypeVar("T")
D = TypeVar("D")

_PAGE = 256
_COUNTERS = (
    "hits",
    "misses",
    "semantic_hits",
    "semantic_misses",
    "puts",
    "vector_puts",
    "deletes",
    "errors",
)


class QdrantCache:
    """A :class:`~llm_client.cache.SemanticCacheBackend` on Qdrant.

    Where Qdrant is (exactly one of these; explicit arguments before ``$QDRANT_URL``):

    :param qdrant_url: a server, e.g. ``http://localhost:6333`` (``$QDRANT_URL``).
    :param qdrant_api_key: the server's API key (``$QDRANT_API_KEY``).
    :param qdrant_path: a directory for Qdrant's embedded local mode (one process at a time).
    :param qdrant_location: ``":memory:"`` for an in-process, throw-away store.

    :param cache_collection: base collection name (letters, digits, ``_``, ``-``).
    :param ttl: default lifetime in seconds when ``put`` gets none (``None``: forever).
        Expiry is checked on read; an expired point is deleted when it is met.
    :param qdrant_timeout: per-request timeout in seconds (server mode).
    :param prefer_grpc: talk gRPC to the server.
    :param reconnect_interval: while the server is down, try it again at most this often.
    :param clock: monotonic clock for the reconnect interval.
    :param wall_clock: epoch-seconds source for expiry (tests inject a fake one).
    """

    name = "qdrant"

    def __init__(
        self,
        *,
        qdrant_url: str | None = None,
        qdrant_api_key: str | None = None,
        qdrant_path: str | os.PathLike[str] | None = None,
        qdrant_location: str | None = None,
        cache_collection: str | None = None,
        ttl: float | None = None,
        qdrant_timeout: float = 10.0,
        prefer_grpc: bool = False,
        reconnect_interval: float = 1.0,
        clock: Clock | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        target = resolve_target(
            qdrant_url=qdrant_url,
            qdrant_api_key=qdrant_api_key,
            qdrant_path=qdrant_path,
            qdrant_location=qdrant_location,
            qdrant_timeout=qdrant_timeout,
            prefer_grpc=prefer_grpc,
        )
        self.mode = target.mode
        self.collection = collection_name(cache_collection)
        self.ttl = seconds_option(ttl, "ttl")
        self._collections = Collections(self.collection, local=self.local)
        self._connection = QdrantConnection(
            target,
            reconnect_interval=reconnect_interval,
            clock=clock,
            on_missing_collection=self._collections.forget,
        )
        self.health = self._connection.health
        self._wall_clock = wall_clock
        self._counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)

    #: What ``from_options`` passes on: the factory's options (one list, in the package's
    #: ``__init__``) but the client's ``cache_ttl``, which is handled apart.
    _OPTIONS = tuple(name for name in CACHE_OPTIONS if name != "cache_ttl")

    @classmethod
    def from_options(cls, **options: Any) -> QdrantCache:
        """Build from a client's cache options, ignoring the ones this backend does not use.

        ``cache_ttl`` (the client's name) is accepted for ``ttl``.
        """
        if options.get("ttl") is None and options.get("cache_ttl") is not None:
            options["ttl"] = options["cache_ttl"]
        kwargs = {k: options[k] for k in cls._OPTIONS if options.get(k) is not None}
        types = {"ttl": float, "qdrant_timeout": float, "reconnect_interval": float}
        return cls(**coerce_options(kwargs, {**types, "prefer_grpc": bool}))

    # -- plumbing -----------------------------------------------------------------------------

    @property
    def local(self) -> bool:
        """True in embedded local mode (``qdrant_path`` / ``qdrant_location``)."""
        return self.mode != "server"

    def vector_collection(self, size: int) -> str:
        """Name of the collection holding the prompt embeddings of dimension ``size``."""
        return self._collections.vector(size)

    def _qdrant(self) -> AsyncQdrantClient:
        """The client, made on first use."""
        return self._connection.client()

    async def _call(self, what: str, op: Callable[[AsyncQdrantClient], Awaitable[T]]) -> T:
        """Run ``op``, tracking the service's health; one retry if a collection vanished."""
        try:
            return await self._connection.call(what, op)
        except CacheUnavailableError:
            self._counters["errors"] += 1
            raise

    def _payload(self, entry: CacheEntry, ttl: float | None) -> dict[str, Any]:
        effective = self.ttl if ttl is None else ttl
        return entry_payload(entry, None if effective is None else self._wall_clock() + effective)

    def _expired(self, payload: dict[str, Any]) -> bool:
        return expired(payload, self._wall_clock())

    def _decode(self, payload: dict[str, Any] | None, read: Callable[[bytes], D]) -> D | None:
        try:
            return read_entry(payload, read)
        except UNREADABLE as exc:
            self._counters["errors"] += 1
            logger.warning("unreadable cache point %r: %s", (payload or {}).get("key"), exc)
            return None

    # -- CacheBackend ---------------------------------------------------------------------------

    async def get(self, key: str) -> CacheEntry | None:
        return await self.get_decoded(key, CacheEntry.from_json)

    async def get_decoded(self, key: str, read: Callable[[bytes], D]) -> D | None:
        """``read`` of the entry JSON stored at ``key`` (see
        :class:`~llm_client.cache.DecodingCacheBackend`); what it refuses is logged and read
        as a miss, as by :meth:`get`."""

        async def op(client: AsyncQdrantClient) -> D | None:
            await self._collections.ensure(client, self.collection, None)
            records = await client.retrieve(
                self.collection, ids=[point_id(key)], with_payload=True, with_vectors=False
            )
            if not records:
                return None
            payload = records[0].payload or {}
            if self._expired(payload):
                await self._collections.delete_point(client, point_id(key))
                return None
            return self._decode(payload, read)

        found = await self._call("read the cache", op)
        self._counters["hits" if found is not None else "misses"] += 1
        return found

    async def put(self, entry: CacheEntry, *, ttl: float | None = None) -> None:
        if ttl is not None and ttl <= 0:
            await self.delete(entry.key)
            return
        payload = self._payload(entry, ttl)

        async def op(client: AsyncQdrantClient) -> None:
            await self._collections.ensure(client, self.collection, None)
            pid = point_id(entry.key)
            await client.upsert(
                self.collection,
                points=[models.PointStruct(id=pid, vector={}, payload=payload)],
            )
            # An older version of this entry may still have a prompt vector; it must not go
            # on answering similar prompts with the answer this one replaced.
            await self._collections.drop_vectors(client, pid)

        await self._call("store the entry", op)
        self._counters["puts"] += 1

    async def put_vector(
        self, entry: CacheEntry, vector: list[float], *, ttl: float | None = None
    ) -> None:
        """Store ``entry`` for exact lookup and its prompt embedding for :meth:`search`.

        A zero vector has no direction: the entry is then stored for exact lookup only.
        """
        if ttl is not None and ttl <= 0:
            await self.delete(entry.key)
            return
        if not any(vector):
            logger.debug("zero embedding for %r: stored for exact lookup only", entry.key)
            await self.put(entry, ttl=ttl)
            return
        payload = self._payload(entry, ttl)
        name = self.vector_collection(len(vector))
        pid = point_id(entry.key)

        async def op(client: AsyncQdrantClient) -> None:
            await self._collections.ensure(client, self.collection, None)
            await self._collections.ensure(client, name, len(vector))
            await client.upsert(
                self.collection, points=[models.PointStruct(id=pid, vector={}, payload=payload)]
            )
            await client.upsert(
                name, points=[models.PointStruct(id=pid, vector=list(vector), payload=payload)]
            )
            # e.g. the embedding model changed: its vectors of another size must go
            await self._collections.drop_vectors(client, pid, keep=name)

        await self._call("store the entry", op)
        self._counters["puts"] += 1
        self._counters["vector_puts"] += 1

    async def search(
        self, vector: list[float], *, scope: str, threshold: float
    ) -> tuple[CacheEntry, float] | None:
        """The stored entry of the same ``scope`` whose prompt is nearest to ``vector``.

        Returns ``(entry, cosine similarity)`` when the similarity is at least ``threshold``,
        else ``None``. Only live (unexpired) entries of exactly ``scope`` are considered.
        """
        if not vector or not any(vector):
            self._counters["semantic_misses"] += 1
            return None
        name = self.vector_collection(len(vector))

        async def op(client: AsyncQdrantClient) -> tuple[CacheEntry, float] | None:
            if not await self._collections.exists(client, name):
                return None
            response = await client.query_points(
                name,
                query=list(vector),
                query_filter=live_filter(self._wall_clock(), scope),
                score_threshold=threshold,
                limit=1,
                with_payload=True,
                with_vectors=False,
            )
            for point in response.points:
                payload = point.payload or {}
                entry = self._decode(payload, CacheEntry.from_json)
                if entry is not None and entry.scope == scope and not self._expired(payload):
                    return entry, min(1.0, float(point.score))
            return None

        found = await self._call("search the cache", op)
        self._counters["semantic_hits" if found is not None else "semantic_misses"] += 1
        return found

    async def delete(self, key: str) -> bool:
        async def op(client: AsyncQdrantClient) -> bool:
            return await self._collections.delete_point(client, point_id(key))

        removed = await self._call("delete the entry", op)
        self._counters["deletes"] += 1
        return removed

    async def clear(self) -> int:
        """Drop the collection and its vector collections; returns how many entries went."""

        async def op(client: AsyncQdrantClient) -> int:
            count = 0
            if await client.collection_exists(self.collection):
                count = (await client.count(self.collection, exact=True)).count
                await client.delete_collection(self.collection)
            for name in await self._collections.vector_names(client):
                await client.delete_collection(name)
            self._collections.forget()
            return count

        return await self._call("clear the cache", op)

    async def stats(self) -> dict[str, Any]:
        """Counters since start, entry counts per collection (``None`` while unreachable)."""

        async def op(client: AsyncQdrantClient) -> tuple[int, dict[str, int]]:
            await self._collections.ensure(client, self.collection, None)
            entries = (await client.count(self.collection, exact=True)).count
            vectors = {
                name: (await client.count(name, exact=True)).count
                for name in await self._collections.vector_names(client)
            }
            return entries, vectors

        entries: int | None
        vectors: dict[str, int] | None
        try:
            entries, vectors = await self._call("count entries", op)
        except CacheUnavailableError:
            entries, vectors = None, None
        return {
            "backend": self.name,
            "mode": self.mode,
            "collection": self.collection,
            "entries": entries,
            "vector_collections": vectors,
            **self._counters,
            "qdrant_up": self.health.up,
            "qdrant_failures": self.health.failures,
        }

    async def export(self) -> AsyncIterator[CacheEntry]:
        """Every live entry, scrolled from the exact-lookup collection 256 at a time."""
        offset: Any = None
        while True:

            async def op(
                client: AsyncQdrantClient, start: Any = offset
            ) -> tuple[list[models.Record], Any]:
                await self._collections.ensure(client, self.collection, None)
                return await client.scroll(
                    self.collection,
                    scroll_filter=live_filter(self._wall_clock()),
                    limit=_PAGE,
                    offset=start,
                    with_payload=True,
                    with_vectors=False,
                )

            records, offset = await self._call("export the cache", op)
            for record in records:
                entry = self._decode(record.payload, CacheEntry.from_json)
                if entry is not None:
                    yield entry
            if offset is None:
                return

    async def warm(self) -> None:
        """Connect and create the exact-lookup collection ahead of the first call."""

        async def op(client: AsyncQdrantClient) -> None:
            await self._collections.ensure(client, self.collection, None)

        await self._call("reach Qdrant", op)

    async def aclose(self) -> None:
        """Close the client (and release a local ``qdrant_path``). Safe to call twice."""
        self._collections.forget()
        await self._connection.aclose()

    async def __aenter__(self) -> QdrantCache:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<QdrantCache {self.mode} collection={self.collection!r}>"
