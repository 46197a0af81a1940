"""One way to open a Redis client, shared by the cache and the rate limiter."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = ["connect"]


def connect(
    url: str,
    *,
    connect_timeout: float | None,
    command_timeout: float | None,
    max_connections: int | None = None,
) -> aioredis.Redis:
    """A client that fails fast when Redis is gone.

    One immediate retry re-opens a connection that died while idle (e.g. Redis restarted);
    a server that is really gone fails at once, so callers can fall back without waiting.
    """
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout,
        socket_timeout=command_timeout,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
        max_connections=max_connections,
    )
