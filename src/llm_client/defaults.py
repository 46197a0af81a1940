"""The default chain, built from the client's options.

Outermost first::

    cost -> timeout -> cache -> tokens -> retry -> limit -> [transport]

* ``cost``: sees every outcome, hits included, so it can total spend and savings.
* ``timeout``: one deadline over everything inside: cache I/O, limiter waits, all attempts.
* ``cache``: a hit returns before tokens, retry and limiter: no budget spent, no wait.
* ``tokens``: counted once per call; rejects over-long input before anything is sent.
* ``retry``: each attempt goes back through the limiter.
* ``limit``: takes budget per attempt, learns from headers and 429s, reconciles real usage.

The design brief lists the steps as "token counting, rate limiting, cache, retry, timeout,
cost, transport"; docs/pipeline.md sets both orders side by side. The order is data: build
any other with :class:`~llm_client.pipeline.Pipeline`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pluggy

from .clock import Clock
from .exceptions import ConfigurationError
from .middleware.cost import CostAccounting
from .middleware.limit import RateLimit
from .middleware.retry import Retry
from .middleware.timeout import Timeout
from .middleware.tokens import TokenCounting
from .models import ModelProfile
from .pipeline import Pipeline
from .plugins import cache_backend as make_cache_backend
from .plugins import get_registry
from .plugins import rate_limiter as make_rate_limiter

__all__ = ["DEFAULT_ORDER", "default_pipeline"]

DEFAULT_ORDER = ("cost", "timeout", "cache", "tokens", "retry", "limit")
#: What the cache step and the client call on a backend object (``llm_client.cache.CacheBackend``).
_BACKEND_METHODS = ("get", "put", "delete", "warm", "aclose")


def _positive(name: str, value: Any, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    # NaN fails the comparison and infinity the bound: neither makes a usable setting.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigurationError(f"{name} must be a finite, positive number, got {value!r}")


def build_limiter(
    profile: ModelProfile,
    *,
    rate_limit_backend: str | None = "local",
    tokens_per_minute: float | None = None,
    requests_per_minute: float | None = None,
    burst_seconds: float | None = None,
    plugin_manager: pluggy.PluginManager | None = None,
    clock: Clock | None = None,
    **options: Any,
) -> Any:
    """The limiter for a client: local by default, or a registered backend (``"redis"``)."""
    _positive("tokens_per_minute", tokens_per_minute)
    _positive("requests_per_minute", requests_per_minute)
    tpm = tokens_per_minute or profile.rate_limits.tkn_per_min
    rpm = requests_per_minute or profile.rate_limits.req_per_min
    # The profile's limits are only a conservative start: the limiter follows the server's
    # x-ratelimit-limit-* headers from the first response on. A limit passed explicitly is a
    # ceiling those headers may lower but never raise.
    ceilings = {
        "max_tokens_per_minute": tokens_per_minute or math.inf,
        "max_requests_per_minute": requests_per_minute or math.inf,
    }
    if rate_limit_backend in (None, "none"):
        return None
    if rate_limit_backend == "local":
        from .rate_limit import Limiter

        return Limiter(tpm, rpm, burst_seconds=burst_seconds, clock=clock, **ceilings)
    return make_rate_limiter(
        rate_limit_backend,
        plugin_manager=plugin_manager,
        tokens_per_minute=tpm,
        requests_per_minute=rpm,
        burst_seconds=burst_seconds,
        **ceilings,
        key=f"llm_client:ratelimit:{profile.model_name}",
        **options,
    )


def default_pipeline(
    profile: ModelProfile,
    *,
    cache_backend: str | Any | None = None,
    cache_collection: str | None = None,
    cache_ttl: float | None = None,
    semantic_cache_threshold: float | None = None,
    embed: Callable[[str], Awaitable[list[float]]] | None = None,
    limiter: Any = None,
    rate_limit_backend: str | None = "local",
    tokens_per_minute: float | None = None,
    requests_per_minute: float | None = None,
    burst_seconds: float | None = None,
    attempts: int = 3,
    backoff: float = 0.5,
    timeout: float | None = None,
    stream_idle_timeout: float | None = None,
    plugin_manager: pluggy.PluginManager | None = None,
    clock: Clock | None = None,
    **backend_options: Any,
) -> Pipeline:
    """Build the default chain for ``profile`` (see the module docstring for the order).

    :param cache_backend: a registered backend name (``"memory"``, ``"fs"``, ``"sqlite"``,
        ``"redis"``, ``"pg_redis"``, ``"postgres"``, ``"qdrant"``), a backend object, or
        ``None`` for no cache step.
    :param backend_options: passed to the cache and limiter factories (``cache_dir``,
        ``pg_dsn``, ``redis_url``, ``qdrant_url``, ``redis_ttl_seconds`` ...).
    """
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise ConfigurationError(f"attempts must be an integer >= 1, got {attempts!r}")
    if (
        isinstance(backoff, bool)
        or not isinstance(backoff, (int, float))
        or not 0 <= backoff < math.inf
    ):
        raise ConfigurationError(
            f"backoff must be a finite number of seconds >= 0, got {backoff!r}"
        )
    _positive("timeout", timeout)
    _positive("cache_ttl", cache_ttl)
    if rate_limit_backend is not None and not isinstance(rate_limit_backend, str):
        raise ConfigurationError(
            "rate_limit_backend must be 'local', a plugin's name ('redis') or None,"
            f" got {rate_limit_backend!r:.60}"
        )
    steps: list[tuple[str, Any]] = [
        ("cost", CostAccounting()),
        ("timeout", Timeout(timeout, stream_idle_timeout=stream_idle_timeout)),
    ]
    if isinstance(cache_backend, str) and cache_backend.lower() == "none":
        cache_backend = None
    if cache_backend is not None:
        from .middleware.cache import CacheMiddleware

        if not isinstance(cache_backend, str) and not all(
            callable(getattr(cache_backend, method, None)) for method in _BACKEND_METHODS
        ):
            raise ConfigurationError(
                "cache_backend must be a backend name ('memory', 'fs', 'sqlite', or a plugin's:"
                " 'redis', 'postgres', 'pg_redis', 'qdrant'), None, or an object with the"
                f" CacheBackend methods ({', '.join(_BACKEND_METHODS)}); got {cache_backend!r:.60}"
            )
        if isinstance(cache_backend, str):
            backend = make_cache_backend(
                cache_backend,
                plugin_manager=plugin_manager,
                cache_collection=cache_collection,
                ttl=cache_ttl,
                **backend_options,
            )
        else:
            backend = cache_backend
        steps.append(
            (
                "cache",
                CacheMiddleware(
                    backend,
                    collection=cache_collection,
                    ttl=cache_ttl,
                    semantic_threshold=semantic_cache_threshold,
                    embed=embed,
                ),
            )
        )
    steps.append(("tokens", TokenCounting()))
    steps.append(("retry", Retry(attempts, backoff=backoff, clock=clock)))
    if limiter is None:
        limiter = build_limiter(
            profile,
            rate_limit_backend=rate_limit_backend,
            tokens_per_minute=tokens_per_minute,
            requests_per_minute=requests_per_minute,
            burst_seconds=burst_seconds,
            plugin_manager=plugin_manager,
            clock=clock,
            redis_url=backend_options.get("redis_url") or os.environ.get("REDIS_URL"),
            **{
                name: backend_options[name]
                for name in ("redis_max_connections",)
                if backend_options.get(name) is not None
            },
        )
    if limiter is not None:
        steps.append(("limit", RateLimit(limiter)))
    pipeline = Pipeline(steps)
    _add_plugin_middleware(pipeline, profile, plugin_manager, backend_options)
    return pipeline


def _add_plugin_middleware(
    pipeline: Pipeline,
    profile: ModelProfile,
    plugin_manager: pluggy.PluginManager | None,
    options: dict[str, Any],
) -> None:
    for reg in get_registry(plugin_manager).middleware.values():
        step = reg.factory(profile, **options)
        if step is None:
            continue
        if reg.before and reg.before in pipeline:
            pipeline.insert_before(reg.before, reg.name, step)
        elif reg.after and reg.after in pipeline:
            pipeline.insert_after(reg.after, reg.name, step)
        else:
            pipeline.append(reg.name, step)
