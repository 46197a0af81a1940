"""One way to open a Redis client, shared by the cache and the rate limiter.

The pool *waits* for a free connection (bounded by ``pool_timeout``) instead of failing: with
redis-py's default pool, the 101st concurrent command raised ``MaxConnectionsError`` (a
``ConnectionError``), which looked exactly like Redis being down. A wait that runs out raises
:class:`PoolExhaustedError`, which callers tell apart from an outage.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from llm_client.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "PoolExhaustedError",
    "WaitingConnectionPool",
    "check_max_connections",
    "connect",
]

#: Connections per client unless ``redis_max_connections`` says otherwise (redis-py's own
#: default pool also stopped at 100).
DEFAULT_MAX_CONNECTIONS = 100


class PoolExhaustedError(RedisConnectionError):
    """Every connection of the pool stayed busy for ``pool_timeout`` seconds.

    This process is busy, not Redis down: it is never reported as an outage.
    """


class WaitingConnectionPool(BlockingConnectionPool):
    """redis-py's blocking pool, with a distinct error when the wait runs out."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except RedisConnectionError as exc:
            # The pool wraps the timeout of its wait, and only that, in a ConnectionError.
            if isinstance(exc.__cause__, asyncio.TimeoutError):
                raise PoolExhaustedError(
                    f"all {self.max_connections} Redis connections stayed busy for"
                    f" {self.timeout:g}s (raise redis_max_connections?)"
                ) from exc
            raise


def check_max_connections(value: Any, name: str = "redis_max_connections") -> int | None:
    """``value`` as a pool size (an integer >= 1), ``None`` for the default."""
    if value is None:
        return None
    try:
        number = int(value) if not isinstance(value, bool) else -1
    except (TypeError, ValueError):
        number = -1
    if number < 1 or (isinstance(value, float) and not value.is_integer()):
        raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
    return number


def connect(
    url: str,
    *,
    connect_timeout: float | None,
    command_timeout: float | None,
    max_connections: int | None = None,
    pool_timeout: float | None = None,
) -> aioredis.Redis:
    """A client that fails fast when Redis is gone, and waits when it is only busy.

    One immediate retry re-opens a connection that died while idle (e.g. Redis restarted);
    a server that is really gone fails at once, so callers can fall back without waiting.

    :param max_connections: pool size (default :data:`DEFAULT_MAX_CONNECTIONS`).
    :param pool_timeout: seconds a command waits for a free connection before
        :class:`PoolExhaustedError` (default: ``command_timeout``, else 5 s).
    """
    size = check_max_connections(max_connections) or DEFAULT_MAX_CONNECTIONS
    if pool_timeout is None:
        pool_timeout = command_timeout if command_timeout is not None else 5.0
    pool = WaitingConnectionPool.from_url(
        url,
        max_connections=size,
        timeout=pool_timeout,
        socket_connect_timeout=connect_timeout,
        socket_timeout=command_timeout,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
    )
    return aioredis.Redis.from_pool(pool)
