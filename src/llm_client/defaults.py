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
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pluggy

from .clock import Clock
from .config import ClientConfig, check_factory_options, declared_options
from .exceptions import ConfigurationError
from .middleware.cost import CostAccounting
from .middleware.limit import RateLimit
from .middleware.retry import Retry
from .middleware.timeout import Timeout
from .middleware.tokens import TokenCounting
from .models import ModelProfile
from .pipeline import Pipeline
from .plugins import Registration, get_registry, lookup
from .plugins import cache_backend as make_cache_backend

__all__ = ["DEFAULT_ORDER", "build_limiter", "default_pipeline"]

DEFAULT_ORDER = ("cost", "timeout", "cache", "tokens", "retry", "limit")


def _accepts(factory: Callable[..., Any], name: str) -> bool:
    declared = declared_options(factory)
    return declared is None or name in declared


def build_limiter(
    profile: ModelProfile,
    config: ClientConfig,
    *,
    plugin_manager: pluggy.PluginManager | None = None,
    clock: Clock | None = None,
    registration: Registration | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """The limiter for a client: local by default, or a registered backend (``"redis"``)."""
    rl = config.rate_limit
    if rl.limiter is not None:
        return rl.limiter
    tpm = rl.tokens_per_minute or profile.rate_limits.tkn_per_min
    rpm = rl.requests_per_minute or profile.rate_limits.req_per_min
    # The profile's limits are only a conservative start: the limiter follows the server's
    # x-ratelimit-limit-* headers from the first response on. A limit passed explicitly is a
    # ceiling those headers may lower but never raise.
    ceilings = {
        "max_tokens_per_minute": rl.tokens_per_minute or math.inf,
        "max_requests_per_minute": rl.requests_per_minute or math.inf,
    }
    if rl.backend is None:
        return None
    if rl.backend == "local":
        from .rate_limit import Limiter

        if rl.options:
            check_factory_options("rate-limit backend", "local", _local_limiter, rl.options)
        return Limiter(tpm, rpm, burst_seconds=rl.burst_seconds, clock=clock, **ceilings)
    reg = registration or _limiter_registration(rl.backend, plugin_manager)
    options: dict[str, Any] = {
        "tokens_per_minute": tpm,
        "requests_per_minute": rpm,
        "burst_seconds": rl.burst_seconds,
        "key": f"llm_client:ratelimit:{profile.model_name}",
    }
    # Settings every limiter is offered; a factory receives those it declares.
    offered = {**ceilings, "redis_url": rl.redis_url}
    for name, value in offered.items():
        if value is not None and _accepts(reg.factory, name):
            options[name] = value
    options.update(extra or {})
    options.update(rl.options)
    check_factory_options("rate-limit backend", reg.name, reg.factory, options)
    return reg.factory(**options)


def _local_limiter(*, burst_seconds: float | None = None) -> None:
    """What the ``"local"`` limiter takes besides its budgets (for option checking)."""


def _limiter_registration(name: str, pm: pluggy.PluginManager | None) -> Registration:
    return lookup(get_registry(pm).rate_limiters, "rate-limit backend", name)


def default_pipeline(
    profile: ModelProfile,
    config: ClientConfig | None = None,
    *,
    embed: Callable[[str], Awaitable[list[float]]] | None = None,
    plugin_manager: pluggy.PluginManager | None = None,
    clock: Clock | None = None,
    **options: Any,
) -> Pipeline:
    """Build the default chain for ``profile`` (see the module docstring for the order).

    :param config: the client's configuration; or give the client's flat keywords as
        ``options`` (``cache_backend="memory"``, ``attempts=2`` ...), which build one.
    :param embed: embeds a prompt for the semantic cache lookup.
    :raises ConfigurationError: an option no part of the chain takes, naming the nearest one.
    """
    if config is None:
        config = ClientConfig.from_keywords(options)
    elif options:
        raise ConfigurationError("pass either config= or keyword options, not both")
    registry = get_registry(plugin_manager)
    caching, rl = config.caching, config.rate_limit
    cache_reg = (
        lookup(registry.cache_backends, "cache backend", caching.backend)
        if isinstance(caching.backend, str)
        else None
    )
    limit_reg = (
        _limiter_registration(rl.backend, plugin_manager)
        if rl.limiter is None and rl.backend not in (None, "local")
        else None
    )
    # Flat keywords that are not the client's own go to whichever factories declare them.
    cache_extra: dict[str, Any] = {}
    limit_extra: dict[str, Any] = {}
    accepted: set[str] = set()
    for reg, bucket in ((cache_reg, cache_extra), (limit_reg, limit_extra)):
        if reg is None:
            continue
        declared = declared_options(reg.factory)
        for key, value in config.extra.items():
            if declared is None or key in declared:
                bucket[key] = value
        if declared is not None:
            accepted |= declared
        else:
            accepted |= set(config.extra)
    middleware_regs = list(registry.middleware.values())
    for reg in middleware_regs:
        declared = declared_options(reg.factory)
        if declared is not None:
            accepted |= declared
    takers = [
        f"an option of the {reg.name!r} {kind}"
        for reg, kind in ((cache_reg, "cache backend"), (limit_reg, "rate limiter"))
        if reg is not None
    ]
    config.unknown_extra(accepted, takers)

    steps: list[tuple[str, Any]] = [
        ("cost", CostAccounting()),
        (
            "timeout",
            Timeout(
                config.timeouts.total,
                stream_idle_timeout=config.timeouts.stream_idle,
                clock=clock,
            ),
        ),
    ]
    if caching.backend is not None:
        from .middleware.cache import CacheMiddleware

        if cache_reg is not None:
            backend = make_cache_backend(
                cache_reg.name,
                plugin_manager=plugin_manager,
                **{**caching.backend_options(), **cache_extra},
            )
        else:
            backend = caching.backend
        steps.append(
            (
                "cache",
                CacheMiddleware(
                    backend,
                    collection=caching.collection,
                    ttl=caching.ttl,
                    semantic_threshold=caching.semantic_threshold,
                    embed=embed,
                    clock=clock,
                ),
            )
        )
    steps.append(("tokens", TokenCounting()))
    steps.append(("retry", Retry(config.retry.attempts, backoff=config.retry.backoff, clock=clock)))
    limiter = build_limiter(
        profile,
        config,
        plugin_manager=plugin_manager,
        clock=clock,
        registration=limit_reg,
        extra=limit_extra,
    )
    if limiter is not None:
        steps.append(("limit", RateLimit(limiter)))
    pipeline = Pipeline(steps)
    _add_plugin_middleware(pipeline, profile, middleware_regs, config.extra)
    return pipeline


def _add_plugin_middleware(
    pipeline: Pipeline,
    profile: ModelProfile,
    registrations: list[Registration],
    extra: Mapping[str, Any],
) -> None:
    for reg in registrations:
        declared = declared_options(reg.factory)
        options = {k: v for k, v in extra.items() if declared is None or k in declared}
        step = reg.factory(profile, **options)
        if step is None:
            continue
        if reg.before and reg.before in pipeline:
            pipeline.insert_before(reg.before, reg.name, step)
        elif reg.after and reg.after in pipeline:
            pipeline.insert_after(reg.after, reg.name, step)
        else:
            pipeline.append(reg.name, step)
