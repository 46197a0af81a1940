"""One way to open a Redis client, for every backend that talks to Redis.

Used by the ``redis`` cache and rate limiter (``llm-client-redis``), the Redis mirror of
``pg_redis`` (``llm-client-postgres``), and open to third-party backends. The client it opens:

* fails fast when Redis is gone (one immediate retry re-opens a connection that died while
  idle, e.g. after a Redis restart; a server that is really gone fails at once, so callers
  can fall back without waiting);
* *waits* for a free pooled connection, bounded by ``pool_timeout``, instead of failing: with
  redis-py's default pool the 101st concurrent command raised ``MaxConnectionsError`` (a
  ``ConnectionError``), which looked exactly like Redis being down. A wait that runs out
  raises :class:`PoolExhaustedError`, which callers tell apart from an outage (pass it as
  ``passthrough`` to :meth:`llm_client.health.ServiceHealth.call`).

llm-client itself does not depend on ``redis``: this module imports it only when a function
is called or :class:`PoolExhaustedError` / :class:`WaitingConnectionPool` is first looked up,
so importing it costs nothing.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigurationError

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import BlockingConnectionPool
    from redis.exceptions import ConnectionError as RedisConnectionError

    class PoolExhaustedError(RedisConnectionError):
        """Every connection of the pool stayed busy for ``pool_timeout`` seconds."""

    class WaitingConnectionPool(BlockingConnectionPool):
        """redis-py's blocking pool, raising :class:`PoolExhaustedError` when the wait runs
        out."""


__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "PoolExhaustedError",
    "WaitingConnectionPool",
    "check_max_connections",
    "connect_redis",
    "redis_outages",
]

#: Connections per client unless ``redis_max_connections`` says otherwise (redis-py's own
#: default pool also stopped at 100).
DEFAULT_MAX_CONNECTIONS = 100


@functools.cache
def _classes() -> dict[str, type]:
    """Build the two redis-py subclasses (imports redis; once)."""
    from redis.asyncio.connection import BlockingConnectionPool
    from redis.exceptions import ConnectionError as RedisConnectionError

    class PoolExhaustedError(RedisConnectionError):
        """Every connection of the pool stayed busy for ``pool_timeout`` seconds.

        This process is busy, not Redis down: it is never to be reported as an outage.
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

    for cls in (PoolExhaustedError, WaitingConnectionPool):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
    return {
        "PoolExhaustedError": PoolExhaustedError,
        "WaitingConnectionPool": WaitingConnectionPool,
    }


if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name in ("PoolExhaustedError", "WaitingConnectionPool"):
            return _classes()[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def redis_outages() -> tuple[type[BaseException], ...]:
    """The exceptions that mean Redis did not answer (``RedisError``, ``OSError``,
    timeouts): the ``outages`` of :meth:`llm_client.health.ServiceHealth.call`. Note that
    :class:`PoolExhaustedError` is one of them; pass it as ``passthrough``."""
    from redis.exceptions import RedisError

    return (RedisError, OSError, asyncio.TimeoutError)


def check_max_connections(value: Any, name: str = "redis_max_connections") -> int | None:
    """``value`` as a pool size (an integer >= 1), ``None`` for the default.

    :raises ConfigurationError: naming ``name``.
    """
    if value is None:
        return None
    try:
        number = int(value) if not isinstance(value, bool) else -1
    except (TypeError, ValueError):
        number = -1
    if number < 1 or (isinstance(value, float) and not value.is_integer()):
        raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
    return number


def connect_redis(
    url: str,
    *,
    connect_timeout: float | None,
    command_timeout: float | None,
    max_connections: int | None = None,
    pool_timeout: float | None = None,
) -> aioredis.Redis:
    """A ``redis.asyncio.Redis`` client for ``url`` that fails fast when Redis is gone and
    waits when it is only busy. No connection is opened until the first command.

    :param connect_timeout: seconds to open a connection (``None``: no limit).
    :param command_timeout: seconds a command may take (``None``: no limit).
    :param max_connections: pool size (default :data:`DEFAULT_MAX_CONNECTIONS`).
    :param pool_timeout: seconds a command waits for a free connection before
        :class:`PoolExhaustedError` (default: ``command_timeout``, else 5 s).
    """
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    size = check_max_connections(max_connections) or DEFAULT_MAX_CONNECTIONS
    if pool_timeout is None:
        pool_timeout = command_timeout if command_timeout is not None else 5.0
    pool_class: type[WaitingConnectionPool] = _classes()["WaitingConnectionPool"]
    pool = pool_class.from_url(
        url,
        max_connections=size,
        timeout=pool_timeout,
        socket_connect_timeout=connect_timeout,
        socket_timeout=command_timeout,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
    )
    return aioredis.Redis.from_pool(pool)
