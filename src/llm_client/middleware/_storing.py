"""The cache step's writing side: calling on down the chain and storing what comes back.

:class:`Storing` is a mixin of :class:`~llm_client.middleware.cache.CacheMiddleware`. A miss
calls ``next`` once; the answer (or, with ``cache_errors``, a failure about the request itself)
is stored in a background task (:class:`~._writes.PendingWrites`), never delaying the caller; a
stream is stored once its consumer has read it to the end. An entry that would hold a known
secret is refused (logged once), and answers are never altered.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..cache import CacheEntry, SemanticCacheBackend
from ..exceptions import ConfigurationError, InvalidRequestError, LLMClientError
from ..pipeline import Next, Reply
from ..result import LLMResult
from ._entries import deterministic_failure as _deterministic_failure
from ._entries import entry_for
from ._semantic import CallState as _Ctx
from ._single_flight import Shared as _Shared
from ._stream import keyed

if TYPE_CHECKING:
    from ..cache import CacheBackend
    from ..health import ServiceHealth
    from ._guarded import GuardedOps
    from ._semantic import SemanticLookup
    from ._writes import PendingWrites

__all__ = ["Storing"]

log = logging.getLogger("llm_client.middleware.cache")


class Storing:
    """Calling on and storing, for :class:`~llm_client.middleware.cache.CacheMiddleware`."""

    if TYPE_CHECKING:
        backend: CacheBackend
        collection: str | None
        ttl: float | None
        health: ServiceHealth
        _ops: GuardedOps
        _writes: PendingWrites
        _semantic: SemanticLookup
        _counts: dict[str, int]
        _warned_secret: bool

    def _storable(self, ctx: _Ctx, result: LLMResult) -> bool:
        options = ctx.call.cache
        if not (options.cache_response or options.rewrite_cache or options.regen_cache):
            return False
        if result.cached:
            return False
        return result.ok or (options.cache_errors and _deterministic_failure(result.status))

    async def _fetch(self, ctx: _Ctx, next: Next) -> Reply:
        call = ctx.call
        try:
            reply = await next(call)
        except (InvalidRequestError, ConfigurationError):
            raise  # bad input (an over-long prompt) is raised to the caller, never stored
        except LLMClientError as exc:
            if call.cache.cache_errors and _deterministic_failure(exc.status):
                failed = LLMResult.from_error(
                    exc,
                    params=call.params,
                    operation=call.operation,
                    model=call.model,
                    identifier=ctx.identifier,
                )
                if self._storable(ctx, failed):
                    self._store_later(ctx, failed)
            raise
        if isinstance(reply, LLMResult):
            result = reply.replace(identifier=ctx.identifier)
            if self._storable(ctx, result):
                self._store_later(ctx, result)
            return result
        return keyed(reply, ctx.identifier, lambda final: self._keep(ctx, final))

    def _keep(self, ctx: _Ctx, final: LLMResult) -> None:
        if self._storable(ctx, final):
            self._store_later(ctx, final)

    def _entry(self, ctx: _Ctx, result: LLMResult, semantic: bool) -> CacheEntry | None:
        """The entry to store for ``result`` (see :func:`._entries.entry_for`), or ``None`` if
        it holds a known secret."""
        entry, found = entry_for(ctx, result, semantic, self.collection)
        if found is not None:
            self._counts["refused"] += 1
            level = logging.DEBUG if self._warned_secret else logging.WARNING
            self._warned_secret = True
            log.log(
                level,
                "not caching an answer: the request or the answer holds %s (the answer itself"
                " is returned unchanged)",
                found,
            )
        return entry

    def _store_later(self, ctx: _Ctx, result: LLMResult) -> None:
        """Store ``result`` in a background task, so the caller's answer never waits for it.

        Until the write is done, calls with the same key are answered from it (not during an
        outage), so a call that arrives right after never misses. Writes of one key run in
        order; at most ``max_pending_stores`` are pending (see :class:`PendingWrites`).
        """
        if self._writes.full():
            return
        semantic = self._semantic.prepare(ctx)
        entry = self._entry(ctx, result, semantic)
        if entry is None:
            return
        self._writes.start(
            ctx.key,
            _Shared(result, None, True),
            lambda: self._store(ctx, entry, semantic),
            serve=self.health.up,  # while the backend is down, the write will probably not land
        )

    async def _store(self, ctx: _Ctx, entry: CacheEntry, semantic: bool) -> bool:
        vector = await self._semantic.vector(ctx) if semantic else None
        if vector is not None:
            backend = self.backend
            assert isinstance(backend, SemanticCacheBackend)
            ok = await self._ops.run(
                "put_vector",
                lambda: backend.put_vector(entry, vector, ttl=self.ttl),
                None,
                failed=False,
            )
        else:
            ok = await self._ops.run(
                "put", lambda: self.backend.put(entry, ttl=self.ttl), None, failed=False
            )
        if ok:
            self._counts["stores"] += 1
        return bool(ok)
