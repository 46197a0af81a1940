"""llm-client plugin: the ``redis`` cache backend, the ``redis`` rate limiter, the ``redis``
sink and the ``redis`` event buffer for resumable SSE streams.

This module is imported when llm-client discovers plugins, so it stays cheap: the redis
client library is imported only when a backend is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llm_client.config import accepts
from llm_client.hookspecs import hookimpl

if TYPE_CHECKING:
    from .cache import RedisCache
    from .events import RedisEventBuffer
    from .rate_limit import RedisLimiter
    from .sink import RedisSink

__all__ = [
    "create_cache",
    "CACHE_OPTIONS",
    "LIMITER_OPTIONS",
    "create_event_buffer",
    "create_rate_limiter",
    "create_sink",
    "register_cache_backends",
    "register_event_buffers",
    "register_rate_limiters",
    "register_sinks",
]


#: The options of the ``redis`` cache backend (see :class:`~llm_client_redis.cache.RedisCache`).
CACHE_OPTIONS = (
    "redis_url",
    "cache_collection",
    "ttl",
    "cache_ttl",
    "redis_prefix",
    "connect_timeout",
    "command_timeout",
    "reconnect_interval",
    "clock",
    "redis_max_connections",
    "redis_pool_timeout",
    "max_connections",
)
#: The options of the ``redis`` rate limiter (:class:`~llm_client_redis.rate_limit.RedisLimiter`).
LIMITER_OPTIONS = (
    "tokens_per_minute",
    "requests_per_minute",
    "redis_url",
    "key",
    "burst_seconds",
    "clock",
    "fallback_share",
    "reconnect_interval",
    "connect_timeout",
    "command_timeout",
    "server_clock",
    "redis_max_connections",
    # ceilings on what x-ratelimit-limit-* headers may raise the budgets to (limiter branch)
    "max_tokens_per_minute",
    "max_requests_per_minute",
)


@accepts(*CACHE_OPTIONS)
def create_cache(**options: Any) -> RedisCache:
    """Build the ``redis`` cache backend from a client's cache options."""
    from .cache import RedisCache

    return RedisCache.from_options(**options)


@accepts(*LIMITER_OPTIONS)
def create_rate_limiter(**options: Any) -> RedisLimiter:
    """Build the ``redis`` distributed rate limiter (see :mod:`llm_client_redis.rate_limit`)."""
    from .rate_limit import RedisLimiter

    return RedisLimiter(**options)


@hookimpl
def register_cache_backends(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("redis", create_cache)


@hookimpl
def register_rate_limiters(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("redis", create_rate_limiter)


@accepts(
    "stream", "redis_url", "maxlen", "ttl", "pubsub_channel", "connect_timeout",
    "command_timeout", "client",
)  # fmt: skip
def create_sink(**options: Any) -> RedisSink:
    """Build the ``redis`` sink (see :class:`llm_client_redis.sink.RedisSink`)."""
    from .sink import RedisSink

    return RedisSink(**options)


@hookimpl
def register_sinks(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("redis", create_sink)


@accepts("redis_url", "ttl", "max_events", "prefix", "connect_timeout", "client")
def create_event_buffer(**options: Any) -> RedisEventBuffer:
    """Build the ``redis`` event buffer (see :mod:`llm_client_redis.events`)."""
    from .events import RedisEventBuffer

    return RedisEventBuffer(**options)


@hookimpl
def register_event_buffers(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("redis", create_event_buffer)
