"""llm-client plugin: the ``redis`` cache backend, the ``redis`` rate limiter and the
``redis`` event buffer for resumable SSE streams.

This module is imported when llm-client discovers plugins, so it stays cheap: the redis
client library is imported only when a backend is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llm_client.hookspecs import hookimpl

if TYPE_CHECKING:
    from .cache import RedisCache
    from .events import RedisEventBuffer
    from .rate_limit import RedisLimiter

__all__ = [
    "create_cache",
    "create_event_buffer",
    "create_rate_limiter",
    "register_cache_backends",
    "register_event_buffers",
    "register_rate_limiters",
]


def create_cache(**options: Any) -> RedisCache:
    """Build the ``redis`` cache backend from a client's cache options."""
    from .cache import RedisCache

    return RedisCache.from_options(**options)


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


def create_event_buffer(**options: Any) -> RedisEventBuffer:
    """Build the ``redis`` event buffer (see :mod:`llm_client_redis.events`)."""
    from .events import RedisEventBuffer

    return RedisEventBuffer(**options)


@hookimpl
def register_event_buffers(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("redis", create_event_buffer)
