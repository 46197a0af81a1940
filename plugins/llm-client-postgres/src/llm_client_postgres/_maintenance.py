"""The calls of :class:`~llm_client_postgres.cache.PostgresCache` around its read and write
path: ``warm`` (connect and create the table ahead of the first call), ``purge_expired``,
``stats``, ``export`` (every live entry, a page at a time), ``drop`` and ``aclose``.

A mixin of ``PostgresCache`` (its only subclass), whose ``__init__`` sets up the state
declared here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from llm_client.cache import CacheEntry
from llm_client.clock import Clock
from llm_client.exceptions import CacheUnavailableError
from llm_client.health import ServiceDown

from ._codec import Codec
from ._redis_mirror import RedisMirror
from ._store import PostgresStore

D = TypeVar("D")

__all__ = ["CacheMaintenance"]


class CacheMaintenance:
    """``warm``, ``purge_expired``, ``stats``, ``export``, ``drop`` and ``aclose`` of
    ``PostgresCache``."""

    # Declared for the type checker; PostgresCache.__init__ sets every one of them.
    name: str
    codec: Codec
    redis_ttl: float | None
    _store: PostgresStore
    _mirror: RedisMirror | None
    _clock: Clock
    _last_purge: float
    _counters: dict[str, int]

    if TYPE_CHECKING:  # PostgresCache's own

        @property
        def table(self) -> str: ...

        def _decode_row(
            self, key: str, data: bytes, codec: str, read: Callable[[bytes], D]
        ) -> tuple[D, bytes] | None: ...

        def _unavailable(self, what: str, exc: BaseException) -> CacheUnavailableError: ...

    async def purge_expired(self) -> int:
        """Delete expired rows now; returns how many. Also runs on its own every
        ``purge_interval`` seconds."""
        self._last_purge = self._clock.now()
        try:
            return await self._store.purge_expired()
        except ServiceDown:
            return 0

    async def stats(self) -> dict[str, Any]:
        """Counters since start, entry count, and which services are currently up."""
        entries: int | None
        try:
            entries = await self._store.count()
        except ServiceDown:
            entries = None
        result: dict[str, Any] = {
            "backend": self.name,
            "table": self.table,
            "entries": entries,
            **self._counters,
            "compression": self.codec,
            "postgres_up": self._store.health.up,
            "postgres_failures": self._store.health.failures,
        }
        if self._mirror is not None:
            result["redis_up"] = self._mirror.health.up
            result["redis_failures"] = self._mirror.health.failures
            result["redis_ttl_seconds"] = self.redis_ttl
        return result

    #: Rows fetched per query by :meth:`export`.
    export_page_size = 500

    async def export(self) -> AsyncIterator[CacheEntry]:
        """Every live entry from PostgreSQL, in key order, read a page at a time."""
        after = ""
        size = self.export_page_size
        while True:
            try:
                page = await self._store.page(after, size)
            except ServiceDown as exc:
                raise self._unavailable("export the cache", exc) from exc
            for key, data, codec in page:
                decoded = self._decode_row(key, data, codec, CacheEntry.from_json)
                if decoded is not None:
                    yield decoded[0]
            if len(page) < size:
                return
            after = page[-1][0]

    async def warm(self) -> None:
        """Open connections, create the table and purge expired rows ahead of the first call.

        Raises only when no service answers.
        """
        pg_down: ServiceDown | None = None
        try:
            await self._store.warm()
            self._last_purge = self._clock.now()
        except ServiceDown as exc:
            pg_down = exc
        if self._mirror is not None:
            try:
                await self._mirror.ping()
            except ServiceDown as exc:
                if pg_down is not None:
                    raise self._unavailable("warm the cache", exc) from exc
        elif pg_down is not None:
            raise self._unavailable("warm the cache", pg_down) from pg_down

    async def aclose(self) -> None:
        """Close the pool and the Redis client. Safe to call twice."""
        try:
            await self._store.aclose()
        finally:
            if self._mirror is not None:
                await self._mirror.aclose()

    async def drop(self) -> None:
        """Drop the table and the mirrored keys (for tests and tear-down)."""
        if self._mirror is not None:
            with contextlib.suppress(ServiceDown):
                await self._mirror.clear()
        try:
            await self._store.drop_table()
        except ServiceDown as exc:
            raise self._unavailable("drop the table", exc) from exc
