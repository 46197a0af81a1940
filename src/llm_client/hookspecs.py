"""Hook specifications: how plugins extend llm-client.

Every hook is called once, when a plugin manager's registry is first built (at client set-up),
never per request. Each receives a ``register`` callable and hands back factories or objects
through it. Plugins implement hooks with :data:`hookimpl`::

    from llm_client.hookspecs import hookimpl

    @hookimpl
    def register_cache_backends(register):
        register("mycache", MyCache)   # MyCache(**options) -> CacheBackend

and ship them through the ``llm_client`` entry-point group (see docs/plugins.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "llm_client"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_cache_backends(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register cache backends by name.

    :param register: call ``register(name, factory)``; ``factory(**options)`` returns a
        :class:`~llm_client.cache.CacheBackend`. The factory declares the options it takes
        with keyword parameters (or, if it forwards ``**options``, with
        :func:`llm_client.config.accepts`). Of the client's shared cache settings
        (``cache_dir``, ``cache_collection``, ``ttl``, ``pg_dsn``, ``redis_url``,
        ``qdrant_url`` ...) it receives those it declares; any other option it does not
        declare is refused with a suggestion before it is called. Import heavy client
        libraries inside the factory, not at module level.
    """


@hookspec
def register_rate_limiters(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register rate-limit backends by name (``rate_limit_backend="redis"``).

    :param register: call ``register(name, factory)``; ``factory(*, tokens_per_minute,
        requests_per_minute, burst_seconds, key, ...)`` returns a
        :class:`~llm_client.rate_limit.RateLimiter`. It declares its options like a cache
        backend's factory. It is offered ``max_tokens_per_minute`` /
        ``max_requests_per_minute`` (the ceilings up to which ``x-ratelimit-limit-*`` headers
        may raise the starting limits; ``math.inf`` when the user passed none) and
        ``redis_url``, and receives those it declares.
    """


@hookspec
def register_sinks(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register streaming event sinks by name.

    :param register: call ``register(name, factory)``; ``factory(**options)`` returns a sink.
    """


@hookspec
def register_tools(register: Callable[[Any], None]) -> None:
    """Register agent tools, which ``AgentRunner(client, tools=["name", ...])`` picks by name.

    :param register: call ``register(tool)`` with a :class:`~llm_client.agent.Tool`, or with a
        plain function (named by its ``__name__``; made a tool with ``Tool.from_function``).
    """


@hookspec
def register_middleware(register: Callable[..., None]) -> None:
    """Register middleware that :meth:`Pipeline.default` places in every default chain.

    :param register: call ``register(name, factory, *, before=None, after=None)``;
        ``factory(profile, **options)`` returns a middleware (or ``None`` to stay out); it
        receives the client keywords it declares as keyword parameters (so
        ``OpenAIClient(..., pii_mode="mask")`` reaches ``factory(profile, *, pii_mode=None)``).
        ``before``/``after`` name the built-in step to anchor to (default: just before
        ``"transport"``, i.e. innermost). Users can ``remove(name)`` it from a pipeline.
    """


@hookspec
def register_event_buffers(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """Register event buffers for resumable SSE streams by name
    (``client.stream_sse(..., buffer="redis")``).

    :param register: call ``register(name, factory)``; ``factory(**options)`` returns a
        :class:`~llm_client.streaming.EventBuffer`. Options come from the environment
        (``REDIS_URL`` ...) when the buffer is built by name; accept and ignore the rest.
    """
