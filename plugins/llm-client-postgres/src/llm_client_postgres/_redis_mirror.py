"""The Redis side of ``pg_redis``: a hot copy of recent entries, each with a TTL."""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis

from llm_client.health import ServiceDown, ServiceHealth
from llm_client.redis_connect import (
    DEFAULT_MAX_CONNECTIONS,
    PoolExhaustedError,
    connect_redis,
    get_bytes,
    redis_outages,
)

__all__ = ["DEFAULT_MAX_CONNECTIONS", "PoolExhaustedError", "RedisMirror"]

T = TypeVar("T")

_FAILURES = redis_outages()
_PASSTHROUGH = (PoolExhaustedError,)
_GLOB = re.compile(r"([*?\[\]\\])")


class RedisMirror:
    """Keys ``<prefix><collection>:<cache key>`` holding the entry JSON, with an expiry.

    The client is created on first use; redis-py reconnects a dropped connection by itself,
    and one immediate retry covers a connection that died while idle (a Redis restart).
    """

    def __init__(
        self,
        url: str,
        *,
        namespace: str,
        health: ServiceHealth,
        connect_timeout: float,
        command_timeout: float,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        pool_timeout: float | None = None,
    ) -> None:
        self.url = url
        self._max_connections = max_connections
        self._pool_timeout = command_timeout if pool_timeout is None else pool_timeout
        self.namespace = namespace
        self.health = health
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._client: aioredis.Redis | None = None

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            # A pool that waits for a free connection (llm_client.redis_connect): with
            # redis-py's default pool the 101st concurrent command failed as if Redis were down.
            self._client = connect_redis(
                self.url,
                connect_timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                max_connections=self._max_connections,
                pool_timeout=self._pool_timeout,
            )
        return self._client

    def key(self, key: str) -> str:
        return self.namespace + key

    async def _call(self, op: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        try:
            return await self.health.call(
                lambda: op(self._redis()), outages=_FAILURES, passthrough=_PASSTHROUGH
            )
        except PoolExhaustedError as exc:
            # This process is busy, Redis is not down: skip the mirror this once, with no
            # outage recorded or logged.
            raise ServiceDown(self.health) from exc

    async def get(self, key: str) -> bytes | None:
        full = self.key(key)
        try:  # _call's work without its frame: every pg_redis hit reads here
            value = await self.health.call(
                lambda: get_bytes(self._redis(), full), outages=_FAILURES, passthrough=_PASSTHROUGH
            )
        except PoolExhaustedError as exc:
            raise ServiceDown(self.health) from exc
        return None if value is None else bytes(value)

    async def set(self, key: str, data: bytes, ttl: float | None) -> None:
        """Store ``data``; ``ttl`` in seconds (``None``: no expiry, ``<= 0``: remove)."""
        full = self.key(key)

        async def op(r: aioredis.Redis) -> Any:
            if ttl is None:
                return await r.set(full, data)
            if ttl <= 0:
                return await r.delete(full)
            return await r.set(full, data, px=max(1, math.ceil(ttl * 1000)))

        await self._call(op)

    async def delete(self, key: str) -> bool:
        async def op(r: aioredis.Redis) -> Any:
            return await r.delete(self.key(key))

        return bool(await self._call(op))

    async def _scan_delete(self, r: aioredis.Redis) -> int:
        removed = 0
        batch: list[Any] = []
        pattern = _GLOB.sub(r"\\\1", self.namespace) + "*"
        async for name in r.scan_iter(match=pattern, count=500):
            batch.append(name)
            if len(batch) >= 500:
                removed += int(await r.unlink(*batch))
                batch.clear()
        if batch:
            removed += int(await r.unlink(*batch))
        return removed

    async def clear(self) -> int:
        """Remove every key of this namespace; returns how many were removed."""
        return await self._call(self._scan_delete)

    async def ping(self) -> None:
        async def op(r: aioredis.Redis) -> Any:
            return await r.ping()

        await self._call(op)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
