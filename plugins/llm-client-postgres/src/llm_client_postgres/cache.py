"""``pg_redis`` and ``postgres``: PostgreSQL holds the durable copy, Redis an optional hot mirror.

Reads go Redis -> PostgreSQL -> miss; a PostgreSQL hit is copied back into Redis. Writes go to
both. When one service is down the other carries on alone (logged once per outage); only
when neither answers does a call raise :class:`CacheUnavailableError`, which the cache
middleware treats as "no cache this time".

:class:`PostgresCache` is here with its read and write path (``get``, ``put``, ``delete``,
``clear``). Its parts live beside it in private modules: ``_setup`` (option defaults, building
the store and the mirror, ``from_options``' parsing), ``_maintenance`` (``warm``,
``purge_expired``, ``stats``, ``export``, ``drop``, ``aclose``), ``_store`` (the table and its
pool), ``_redis_mirror`` (the Redis copy) and ``_codec`` (compression).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from llm_client.cache import CacheEntry
from llm_client.clock import Clock, MonotonicClock
from llm_client.exceptions import CacheUnavailableError
from llm_client.health import ServiceDown, seconds_option

from ._codec import decode, encode, resolve_codec
from ._maintenance import CacheMaintenance
from ._redis_mirror import RedisMirror
from ._setup import (
    DEFAULT_COLLECTION,
    DEFAULT_REDIS_COMMAND_TIMEOUT,
    DEFAULT_REDIS_PREFIX,
    DEFAULT_REDIS_TTL,
    build_mirror,
    build_store,
    constructor_arguments,
    logger,
)
from ._store import validate_table_name

D = TypeVar("D")

__all__ = [
    "DEFAULT_COLLECTION",
    "CacheUnavailableError",
    "PostgresCache",
    "validate_table_name",
]


class PostgresCache(CacheMaintenance):
    """A :class:`~llm_client.cache.CacheBackend` on PostgreSQL, optionally mirrored in Redis.

    :param pg_dsn: PostgreSQL DSN; falls back to ``$PG_DSN``.
    :param redis_url: Redis URL of the hot mirror; with ``mirror=True`` it falls back to
        ``$REDIS_URL``. With ``mirror=False`` there is no Redis at all (backend ``postgres``).
    :param cache_collection: table name (validated, then quoted) and Redis key namespace.
    :param redis_ttl_seconds: how long a mirrored entry lives in Redis (``None``: as long as
        the entry itself).
    :param ttl: default entry lifetime in seconds when ``put`` gets none (``None``: forever).
    :param compression: ``None``, ``"zlib"`` or ``"zstd"`` for new PostgreSQL rows. Each row
        records its codec, so rows written under another setting stay readable.
    :param compression_min_bytes: rows smaller than this are stored uncompressed.
    :param redis_prefix: prefix of every Redis key (before the collection name).
    :param pg_pool_min_size: / ``pg_pool_max_size``: asyncpg pool bounds.
    :param connect_timeout: seconds to open a connection; ``command_timeout`` per statement.
    :param reconnect_interval: while a service is down, try it again at most this often.
    :param purge_interval: expired rows are deleted in bulk at most this often (on ``put``
        and ``warm``); an expired row read before that is deleted on the spot.
    :param pg_application_name: ``application_name`` of the pool's sessions (shows in
        ``pg_stat_activity``).
    :param pg_synchronous_commit: the sessions' ``synchronous_commit``. ``"off"`` (default)
        lets a write return before its WAL is flushed: a server crash may lose the last
        fraction of a second of cache writes (never corrupt anything), and a write costs a
        round trip instead of a disk flush. Use ``"on"`` to wait for the flush.
    :param redis_command_timeout: seconds a command of the Redis mirror may take (default
        ``min(command_timeout, 1.0)``). Kept short on purpose: the mirror is a hot copy, and a
        Redis that stops answering (frozen, partitioned) must leave the read enough time to
        fall back to PostgreSQL within the cache step's own bound. After one such timeout the
        mirror is skipped until a probe finds Redis again.
    :param redis_max_connections: size of the mirror's Redis connection pool (default 100).
        When every connection is busy a command waits for one, up to ``redis_pool_timeout``
        seconds (default: ``redis_command_timeout``); a wait that runs out skips the mirror for
        that operation and is not reported as an outage.
    :param clock: monotonic clock for the reconnect and purge intervals.
    """

    def __init__(
        self,
        pg_dsn: str | None = None,
        *,
        redis_url: str | None = None,
        mirror: bool = True,
        cache_collection: str | None = None,
        redis_ttl_seconds: float | None = DEFAULT_REDIS_TTL,
        ttl: float | None = None,
        compression: str | None = None,
        compression_min_bytes: int = 512,
        redis_prefix: str = DEFAULT_REDIS_PREFIX,
        pg_pool_min_size: int = 0,
        pg_pool_max_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        reconnect_interval: float = 1.0,
        purge_interval: float = 300.0,
        pg_application_name: str = "llm-client-cache",
        pg_synchronous_commit: str = "off",
        redis_command_timeout: float | None = None,
        redis_max_connections: int | None = None,
        redis_pool_timeout: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = "pg_redis" if mirror else "postgres"
        self.collection = validate_table_name(
            DEFAULT_COLLECTION if cache_collection is None else cache_collection
        )
        self.codec = resolve_codec(compression)
        self.compression_min_bytes = int(compression_min_bytes)
        self.ttl = seconds_option(ttl, "ttl")
        self.redis_ttl = seconds_option(redis_ttl_seconds, "redis_ttl_seconds")
        self.purge_interval = float(purge_interval)
        self._clock: Clock = clock or MonotonicClock()
        self._store = build_store(
            pg_dsn,
            self.collection,
            backend=self.name,
            clock=self._clock,
            reconnect_interval=reconnect_interval,
            pool_min_size=pg_pool_min_size,
            pool_max_size=pg_pool_max_size,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            application_name=pg_application_name,
            synchronous_commit=pg_synchronous_commit,
        )
        self._mirror: RedisMirror | None = None
        if mirror:
            self._mirror = build_mirror(
                redis_url,
                f"{redis_prefix}{self.collection}:",
                backend=self.name,
                clock=self._clock,
                reconnect_interval=reconnect_interval,
                connect_timeout=connect_timeout,
                command_timeout=seconds_option(
                    redis_command_timeout, "redis_command_timeout"
                )
                or min(command_timeout, DEFAULT_REDIS_COMMAND_TIMEOUT),
                max_connections=redis_max_connections,
                pool_timeout=redis_pool_timeout,
            )
        self._last_purge = self._clock.now()
        self._counters: dict[str, int] = dict.fromkeys(
            ("hits", "misses", "redis_hits", "postgres_hits", "puts", "deletes", "errors"), 0
        )

    @classmethod
    def from_options(cls, *, mirror: bool, **options: Any) -> PostgresCache:
        """Build from a client's cache options, ignoring the ones this backend does not use.

        ``cache_ttl`` (the client's name) is accepted for ``ttl``.
        """
        return cls(**constructor_arguments(options, mirror=mirror))

    # -- helpers ------------------------------------------------------------------------------

    @property
    def table(self) -> str:
        """The PostgreSQL table this backend reads and writes."""
        return self._store.table

    def _decode_row(
        self,
        key: str,
        data: bytes,
        codec: str,
        read: Callable[[bytes], D],
    ) -> tuple[D, bytes] | None:
        """``read`` of a row's JSON bytes (``CacheEntry.from_json``: its entry) and the
        bytes, or ``None`` (logged) if it is unreadable."""
        try:
            raw = decode(data, codec)
            return read(raw), raw
        except (ValueError, KeyError, TypeError, zlib.error) as exc:
            self._counters["errors"] += 1
            logger.warning("unreadable cache row %r in table %s: %s", key, self.table, exc)
            return None

    def _mirror_ttl(self, remaining: float | None) -> float | None:
        if remaining is None:
            return self.redis_ttl
        if self.redis_ttl is None:
            return remaining
        return min(remaining, self.redis_ttl)

    def _unavailable(self, what: str, exc: BaseException) -> CacheUnavailableError:
        self._counters["errors"] += 1
        services = "PostgreSQL and Redis are" if self._mirror is not None else "PostgreSQL is"
        error = CacheUnavailableError(f"cannot {what}: {services} unavailable")
        error.__cause__ = exc
        return error

    # -- CacheBackend ---------------------------------------------------------------------------

    async def get(self, key: str) -> CacheEntry | None:
        return await self.get_decoded(key, CacheEntry.from_json)

    async def get_decoded(self, key: str, read: Callable[[bytes], D]) -> D | None:
        """``read`` of the stored JSON bytes of ``key`` (see
        :class:`~llm_client.cache.DecodingCacheBackend`): from the Redis mirror when it has
        them, else from PostgreSQL, as :meth:`get` reads; bytes ``read`` refuses count as
        unreadable there too (the mirror's: PostgreSQL answers instead)."""
        redis_down: ServiceDown | None = None
        if self._mirror is not None:
            try:
                raw = await self._mirror.get(key)
            except ServiceDown as exc:
                redis_down = exc
            else:
                if raw is not None:
                    try:
                        entry = read(raw)
                    except (ValueError, KeyError, TypeError):
                        pass  # a foreign or damaged value: let PostgreSQL answer
                    else:
                        self._counters["hits"] += 1
                        self._counters["redis_hits"] += 1
                        return entry
        try:
            row = await self._store.get(key)
        except ServiceDown as exc:
            if self._mirror is None or redis_down is not None:
                raise self._unavailable("read the cache", exc) from exc
            self._counters["misses"] += 1  # Redis answered "not here"; that will do
            return None
        decoded = None if row is None else self._decode_row(key, row.data, row.codec, read)
        if row is None or decoded is None:
            self._counters["misses"] += 1
            return None
        entry, raw = decoded
        self._counters["hits"] += 1
        self._counters["postgres_hits"] += 1
        if self._mirror is not None and redis_down is None:
            with contextlib.suppress(ServiceDown):  # logged by the tracker; the hit stands
                await self._mirror.set(key, raw, self._mirror_ttl(row.remaining))
        return entry

    async def put(self, entry: CacheEntry, *, ttl: float | None = None) -> None:
        effective = self.ttl if ttl is None else ttl
        if effective is not None and effective <= 0:
            await self.delete(entry.key)
            return
        raw = entry.to_json()
        stored, codec = encode(raw, self.codec, self.compression_min_bytes)
        write_pg = self._store.put(
            entry.key,
            stored,
            codec,
            model=entry.model,
            operation=entry.operation,
            scope=entry.scope,
            created_at=entry.created_at,
            ttl=effective,
        )
        if self._mirror is None:
            try:
                await write_pg
            except ServiceDown as exc:
                raise self._unavailable("store the entry", exc) from exc
            pg_down = False
        else:
            # Both writes at once: a miss pays for the slower one, not for the sum.
            pg_result, redis_result = await asyncio.gather(
                write_pg,
                self._mirror.set(entry.key, raw, self._mirror_ttl(effective)),
                return_exceptions=True,
            )
            for result in (pg_result, redis_result):
                if isinstance(result, BaseException) and not isinstance(result, ServiceDown):
                    raise result
            pg_down = isinstance(pg_result, ServiceDown)
            if pg_down and isinstance(redis_result, ServiceDown):
                raise self._unavailable("store the entry", redis_result) from redis_result
        self._counters["puts"] += 1
        if not pg_down and self._clock.now() - self._last_purge >= self.purge_interval:
            await self.purge_expired()

    async def delete(self, key: str) -> bool:
        """Remove ``key`` from both stores; raises if PostgreSQL (the durable copy) is down."""
        removed = False
        if self._mirror is not None:
            with contextlib.suppress(ServiceDown):
                removed = await self._mirror.delete(key)
        try:
            removed = await self._store.delete(key) or removed
        except ServiceDown as exc:
            raise self._unavailable("delete the entry", exc) from exc
        self._counters["deletes"] += 1
        return removed

    async def clear(self) -> int:
        """Remove every entry of the collection; returns how many PostgreSQL rows went.

        Raises if PostgreSQL is down, since its rows would otherwise come back.
        """
        if self._mirror is not None:
            with contextlib.suppress(ServiceDown):
                await self._mirror.clear()
        try:
            return await self._store.clear()
        except ServiceDown as exc:
            raise self._unavailable("clear the cache", exc) from exc

    async def __aenter__(self) -> PostgresCache:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<PostgresCache {self.name} table={self.table!r}>"
