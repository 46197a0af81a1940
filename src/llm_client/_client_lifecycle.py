"""The client's resources: :class:`LifecycleMixin`, the part of :class:`~llm_client.OpenAIClient`
that finds the cache and the limiter in its chain, reports their state, and closes them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .middleware.cost import CostAccounting

if TYPE_CHECKING:
    from .models import ModelProfile
    from .pipeline import Pipeline
    from .transport import Transport

__all__ = ["LifecycleMixin"]


class LifecycleMixin:
    """``cache``, ``limiter``, ``stats``, ``warm_cache`` and ``close`` of
    :class:`~llm_client.OpenAIClient` (its only subclass)."""

    if TYPE_CHECKING:  # provided by OpenAIClient
        profile: ModelProfile
        pipeline: Pipeline
        _transport: Transport

        def _sink_counters(self) -> Any: ...

    def _step_with(self, attribute: str) -> Any:
        """The first step that has ``attribute`` set (duck-typed, so custom steps count)."""
        for _, step in self.pipeline:
            if getattr(step, attribute, None) is not None:
                return step
        return None

    @property
    def cache(self) -> Any:
        """The cache backend of the pipeline's cache step, or ``None``."""
        step = self._step_with("backend")
        return step.backend if step is not None else None

    @property
    def limiter(self) -> Any:
        """The rate limiter of the pipeline's limit step, or ``None``."""
        step = self._step_with("limiter")
        return step.limiter if step is not None else None

    def stats(self) -> dict[str, Any]:
        """Totals (requests, hits, tokens, USD spent and saved), the cache step's counters and
        the limiter's state (level, waiters, wait time, throttle events)."""
        cost = self.pipeline.find(CostAccounting)
        limiter = self.limiter
        cache_step = self._step_with("backend")
        return {
            "model": self.profile.key,
            "totals": cost.totals.as_dict() if cost is not None else {},
            "cache": cache_step.stats() if hasattr(cache_step, "stats") else {},
            "limiter": limiter.stats() if limiter is not None else {},
            "sinks": self._sink_counters().as_dict(),
        }

    async def warm_cache(self) -> None:
        """Create the cache's tables/collections/folders now rather than on first use."""
        backend = self.cache
        if backend is not None:
            await backend.warm()

    async def close(self) -> None:
        """Finish the cache's pending writes, then close the cache backend, the limiter and the
        SDK's HTTP client."""
        backend = self.cache
        limiter = self.limiter
        cache_step = self._step_with("backend")
        try:
            if cache_step is not None and hasattr(cache_step, "flush"):
                await cache_step.flush()  # answers still on their way into the cache
            if backend is not None:
                await backend.aclose()
            if limiter is not None and hasattr(limiter, "aclose"):
                await limiter.aclose()
        finally:
            await self._transport.aclose()
