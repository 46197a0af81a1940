"""The ``redis`` cache backend: every entry is one Redis string, expiring natively.

Keys are ``<redis_prefix><cache_collection>:<cache key>`` and values the entry's JSON, so
``redis-cli GET`` shows exactly what is stored. When Redis does not answer, the failure is
logged once per outage and the call raises :class:`CacheUnavailableError` (the cache
middleware then goes on without the cache); the client reconnects lazily when Redis returns.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import redis.asyncio as aioredis

from llm_client.cache import CacheEntry
from llm_client.clock import Clock
from llm_client.config import connection_string
from llm_client.config import redis_url as check_redis_url
from llm_client.exceptions import CacheUnavailableError, ConfigurationError
from llm_client.health import ServiceDown, ServiceHealth, coerce_options, seconds_option
from llm_client.redis_connect import (
    PoolExhaustedError,
    check_max_connections,
    get_bytes,
    redis_outages,
)
from llm_client.redis_connect import connect_redis as connect

from . import CACHE_OPTIONS  # the package's __init__ defines it, importing nothing of ours

__all__ = ["DEFAULT_COLLECTION", "DEFAULT_PREFIX", "CacheUnavailableError", "RedisCache"]

logger = logging.getLogger("llm_client_redis")

T = TypeVar("T")
D = TypeVar("D")

DEFAULT_COLLECTION = "llm_cache"
DEFAULT_PREFIX = "llm_client:"

_FAILURES = redis_outages()
_PASSTHROUGH = (PoolExhaustedError,)
_GLOB = re.compile(r"([*?\[\]\\])")
_BATCH = 500


class RedisCache:
    """A :class:`~llm_client.cache.CacheBackend` on Redis alone.

    :param redis_url: e.g. ``redis://localhost:6379/0``; falls back to ``$REDIS_URL``.
    :param cache_collection: namespace inside the key prefix (default ``"llm_cache"``).
    :param ttl: default lifetime in seconds when ``put`` gets none (``None``: forever).
    :param redis_prefix: prefix of every key (default ``"llm_client:"``).
    :param connect_timeout: / ``command_timeout``: socket timeouts in seconds.
    :param reconnect_interval: while Redis is down, try it again at most this often.
    :param clock: monotonic clock for the reconnect interval.
    :param redis_max_connections: size of the connection pool (default 100; the older name
        ``max_connections`` is accepted too). When every connection is busy, a command waits
        for one, up to ``redis_pool_timeout`` seconds (default: ``command_timeout``), and a
        wait that runs out fails that operation only: it is not reported as an outage.
    """

    name = "redis"

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        cache_collection: str | None = None,
        ttl: float | None = None,
        redis_prefix: str = DEFAULT_PREFIX,
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
        reconnect_interval: float = 1.0,
        clock: Clock | None = None,
        redis_max_connections: int | None = None,
        redis_pool_timeout: float | None = None,
        max_connections: int | None = None,
    ) -> None:
        url = connection_string(
            redis_url,
            "REDIS_URL",
            check_redis_url,
            name="redis_url",
            backend="redis",
            what="cache backend",
        )
        self.url = url
        self.collection = DEFAULT_COLLECTION if cache_collection is None else cache_collection
        if not isinstance(self.collection, str) or not self.collection:
            raise ConfigurationError(
                f"cache_collection={cache_collection!r} must be a non-empty string"
            )
        self.namespace = f"{redis_prefix}{self.collection}:"
        self.ttl = seconds_option(ttl, "ttl")
        self.health = ServiceHealth(
            "Redis", url, logger=logger, reconnect_interval=reconnect_interval, clock=clock
        )
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._max_connections = check_max_connections(
            redis_max_connections if redis_max_connections is not None else max_connections
        )
        self._pool_timeout = seconds_option(redis_pool_timeout, "redis_pool_timeout")
        self._client: aioredis.Redis | None = None
        self._counters: dict[str, int] = dict.fromkeys(
            ("hits", "misses", "puts", "deletes", "errors"), 0
        )

    #: What ``from_options`` passes on: the factory's options (one list, in the package's
    #: ``__init__``) but the URL and the client's ``cache_ttl``, which are handled apart.
    _OPTIONS = tuple(name for name in CACHE_OPTIONS if name not in ("redis_url", "cache_ttl"))

    @classmethod
    def from_options(cls, **options: Any) -> RedisCache:
        """Build from a client's cache options, ignoring the ones this backend does not use.

        ``cache_ttl`` (the client's name) is accepted for ``ttl``.
        """
        if options.get("ttl") is None and options.get("cache_ttl") is not None:
            options["ttl"] = options["cache_ttl"]
        kwargs = {k: options[k] for k in cls._OPTIONS if options.get(k) is not None}
        kwargs = coerce_options(
            kwargs,
            {
                "ttl": float,
                "connect_timeout": float,
                "command_timeout": float,
                "reconnect_interval": float,
                "redis_max_connections": int,
                "redis_pool_timeout": float,
                "max_connections": int,
            },
        )
        return cls(options.get("redis_url"), **kwargs)

    # -- plumbing -----------------------------------------------------------------------------

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            self._client = connect(
                self.url,
                connect_timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                max_connections=self._max_connections,
                pool_timeout=self._pool_timeout,
            )
        return self._client

    def key(self, key: str) -> str:
        """The Redis key that holds cache key ``key``."""
        return self.namespace + key

    async def _call(self, what: str, op: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        try:
            return await self.health.call(
                lambda: op(self._redis()), outages=_FAILURES, passthrough=_PASSTHROUGH
            )
        except (PoolExhaustedError, ServiceDown) as exc:
            raise self._unavailable(what, exc)  # noqa: B904 - the cause is set in there

    def _unavailable(self, what: str, exc: Exception) -> CacheUnavailableError:
        """What a failed operation raises: a busy pool (this process is busy; Redis is fine)
        or an outage, with its cause."""
        self._counters["errors"] += 1
        cause = exc.__cause__ if isinstance(exc, ServiceDown) else exc
        error = CacheUnavailableError(f"cannot {what}: {exc}")
        error.__cause__ = cause
        return error

    def _decode(self, key: str, raw: Any, decode: Callable[[bytes], D]) -> D | None:
        try:
            return decode(bytes(raw))
        except (ValueError, KeyError, TypeError) as exc:
            self._counters["errors"] += 1
            logger.warning("unreadable cache value at %r: %s", key, exc)
            return None

    async def _scan(self, r: aioredis.Redis) -> AsyncGenerator[list[Any], None]:
        """Every key of this namespace, in batches."""
        pattern = _GLOB.sub(r"\\\1", self.namespace) + "*"
        batch: list[Any] = []
        async for name in r.scan_iter(match=pattern, count=_BATCH):
            batch.append(name)
            if len(batch) >= _BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    # -- CacheBackend ---------------------------------------------------------------------------

    async def get(self, key: str) -> CacheEntry | None:
        return await self.get_decoded(key, CacheEntry.from_json)

    async def get_decoded(self, key: str, decode: Callable[[bytes], D]) -> D | None:
        """``decode`` of the stored bytes of ``key`` (see
        :class:`~llm_client.cache.DecodingCacheBackend`); bytes it refuses are logged and
        read as a miss, as by :meth:`get`."""
        full = self.key(key)
        try:  # _call's work without its frame: every hit reads here
            raw = await self.health.call(
                lambda: get_bytes(self._redis(), full), outages=_FAILURES, passthrough=_PASSTHROUGH
            )
        except (PoolExhaustedError, ServiceDown) as exc:
            raise self._unavailable("read the cache", exc)  # noqa: B904 - cause set in there
        found = None if raw is None else self._decode(key, raw, decode)
        self._counters["hits" if found is not None else "misses"] += 1
        return found

    async def put(self, entry: CacheEntry, *, ttl: float | None = None) -> None:
        effective = self.ttl if ttl is None else ttl
        full = self.key(entry.key)
        data = entry.to_json()

        async def op(r: aioredis.Redis) -> Any:
            if effective is None:
                return await r.set(full, data)
            if effective <= 0:
                return await r.delete(full)
            return await r.set(full, data, px=max(1, math.ceil(effective * 1000)))

        await self._call("store the entry", op)
        self._counters["puts"] += 1

    async def delete(self, key: str) -> bool:
        async def op(r: aioredis.Redis) -> Any:
            return await r.delete(self.key(key))

        removed = bool(await self._call("delete the entry", op))
        self._counters["deletes"] += 1
        return removed

    async def clear(self) -> int:
        """Remove every key of this collection (SCAN + UNLINK); returns how many."""

        async def op(r: aioredis.Redis) -> int:
            removed = 0
            async for batch in self._scan(r):
                removed += int(await r.unlink(*batch))
            return removed

        return await self._call("clear the cache", op)

    async def stats(self) -> dict[str, Any]:
        """Counters since start, the number of keys (``None`` while Redis is down)."""

        async def op(r: aioredis.Redis) -> int:
            count = 0
            async for batch in self._scan(r):
                count += len(batch)
            return count

        entries: int | None
        try:
            entries = await self._call("count entries", op)
        except CacheUnavailableError:
            entries = None
        return {
            "backend": self.name,
            "namespace": self.namespace,
            "entries": entries,
            **self._counters,
            "redis_up": self.health.up,
            "redis_failures": self.health.failures,
        }

    async def export(self) -> AsyncIterator[CacheEntry]:
        """Every live entry of the collection (SCAN + MGET, 500 at a time)."""
        scan = self._scan(self._redis())

        async def next_batch(_: aioredis.Redis) -> list[Any] | None:
            return await anext(scan, None)

        try:
            while (batch := await self._call("export the cache", next_batch)) is not None:

                async def fetch(r: aioredis.Redis, names: list[Any] = batch) -> Any:
                    return await r.mget(names)

                values = await self._call("export the cache", fetch)
                for name, raw in zip(batch, values, strict=True):
                    if raw is not None:  # expired between SCAN and MGET
                        entry = self._decode(str(name), raw, CacheEntry.from_json)
                        if entry is not None:
                            yield entry
        finally:
            await scan.aclose()

    async def warm(self) -> None:
        """Open a connection (PING) so the first call does not pay for it."""

        async def op(r: aioredis.Redis) -> Any:
            return await r.ping()

        await self._call("reach Redis", op)

    async def aclose(self) -> None:
        """Close the connection pool. Safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> RedisCache:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<RedisCache namespace={self.namespace!r}>"
