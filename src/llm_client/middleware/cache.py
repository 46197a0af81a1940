"""Cache: answer a call from the cache, or pass it on and store the answer.

Why here, in ``cost -> timeout -> cache -> tokens -> retry -> limit -> transport``:

* inside **cost**, so the cost step sees every hit and can total what hits saved (a hit's
  ``usage`` has its costs moved into ``saved_cost``);
* inside **timeout**, so the user's deadline also bounds cache I/O and the wait for another
  call's identical answer;
* before **tokens, retry and limit**, so a hit counts no tokens, spends no rate-limit budget
  and is never retried, and a miss is stored once, after retries, not once per attempt.

What it does, in order: derive the key (:func:`~llm_client.cache.cache_identifier`), read the
backend (exact, then semantic when configured), and on a miss call ``next`` once for all
concurrent identical calls (single-flight), then store the answer in the background. A failing
or hung backend never fails or holds up a call: each operation is bounded, a failure is logged
once per outage and the call goes on as a miss.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

from ..cache import (
    CacheBackend,
    CacheEntry,
    cache_identifier,
    check_result_value,
    namespaced_key,
)
from ..clock import DEFAULT_CLOCK, Clock
from ..exceptions import (
    ConfigurationError,
)
from ..health import BackendGuard, ServiceHealth
from ..pipeline import Call, Next, Reply
from ..result import LLMResult
from ._answers import INVALID_ENTRY, ExactReads, StoredAnswer
from ._guarded import GuardedOps
from ._semantic import CallState as _Ctx
from ._semantic import SemanticLookup
from ._single_flight import Shared as _Shared
from ._single_flight import SingleFlight
from ._storing import Storing
from ._stream import replay
from ._writes import PendingWrites

__all__ = ["CacheMiddleware"]


log = logging.getLogger("llm_client.middleware.cache")

#: How long :meth:`CacheMiddleware.flush` waits when neither it nor the step has a limit.
_FLUSH_SECONDS = 10.0


async def _now(reply: Reply) -> Reply:
    return reply


class CacheMiddleware(Storing):
    """Serve calls from ``backend`` and store what the API answers.

    :param backend: any :class:`~llm_client.cache.CacheBackend`.
    :param collection: namespace for keys (``"<collection>/<identifier>"``). When the backend
        was itself built for the same collection (its ``collection`` attribute equals this
        one) the keys are not prefixed again.
    :param ttl: expiry in seconds passed with every ``put`` (``None``: the backend's default).
    :param semantic_threshold: with ``embed`` and a
        :class:`~llm_client.cache.SemanticCacheBackend`, an exact miss looks for a stored
        prompt whose embedding has at least this cosine similarity, within the same scope.
    :param embed: async function turning a prompt into a vector (e.g. an embeddings call).
    :param backend_timeout: seconds a single backend operation may take before it counts as
        a failure (the call then goes on without the cache); ``None``: no limit of its own.
    :param deadline_share: a read may also use at most this share of the time the call has
        left under its ``timeout`` (default half), so a hung backend leaves the API the rest.
        An operation cut by either limit counts as a failure and opens an outage: operations
        are skipped until a probe, one per ``reconnect_interval`` seconds, answers again.
    :param reconnect_interval: seconds between probes while the backend is in an outage.
    :param max_pending_stores: background writes that may wait at once; more are dropped.
    :param hit_memo_bytes: with a backend that offers
        :meth:`~llm_client.cache.DecodingCacheBackend.get_decoded`, each distinct stored
        value is decoded and checked once and kept, up to this many bytes of stored values
        (least recently read out first; ``0``: decode every read). The backend is still read
        on every call; see :mod:`llm_client.middleware._answers`.
    :param clock: the client's clock: ``call.deadline`` is read on it, and it times the
        reconnect interval (tests inject a manual one).

    Answers are written in background tasks, so storing never delays a call; calls with the
    same key are answered from a pending write, and :meth:`flush` (called by
    ``client.close()``) waits for the writes. Every entry read is checked
    (:func:`~llm_client.cache.check_result_value`): a wrong-shaped one is a logged miss that
    the next answer overwrites. An entry that would hold a known secret
    (:mod:`llm_client.known_secrets`) is not stored; answers are never altered.

    Per-call behaviour follows :class:`~llm_client.pipeline.CacheOptions`:

    * no ``identifier`` and ``hash_as_identifier=False``: the cache is not touched;
    * ``rewrite_cache``: no read; the answer overwrites the entry (the old entry stays
      readable by other calls until then);
    * ``regen_cache``: the entry is deleted first, then the answer is stored;
    * ``cache_response``: store the answer (``rewrite_cache``/``regen_cache`` always store);
      ``False`` still reads;
    * ``cache_errors``: also store (and serve) failed results, but only those that say
      something about the request itself: 4xx other than 408, 409 and 429. A stored failure
      is served only to calls that ask for ``cache_errors``.

    A hit is the stored :class:`~llm_client.result.LLMResult` with ``cached=True``,
    ``attempts=0``, the stored usage reported as saved (:meth:`Usage.as_saved`) and
    ``identifier`` set (``cache_similarity`` too for a semantic hit). A call that waited for
    an identical in-flight call (single-flight) receives that call's answer in the same form.
    For a streamed call a hit is replayed as events: ``meta`` (``cached: True``),
    ``text_delta`` chunks, ``tool_call_delta`` per tool call, ``usage``, ``done``.
    """

    def __init__(
        self,
        backend: CacheBackend,
        *,
        collection: str | None = None,
        ttl: float | None = None,
        semantic_threshold: float | None = None,
        embed: Callable[[str], Awaitable[list[float]]] | None = None,
        backend_timeout: float | None = 10.0,
        deadline_share: float = 0.5,
        reconnect_interval: float = 1.0,
        max_pending_stores: int = 1000,
        hit_memo_bytes: int = 2 << 20,
        clock: Clock | None = None,
    ) -> None:
        if semantic_threshold is not None and not (
            isinstance(semantic_threshold, (int, float))
            and not isinstance(semantic_threshold, bool)
            and 0 < semantic_threshold <= 1
        ):
            raise ConfigurationError(
                f"semantic_threshold must be in (0, 1], got {semantic_threshold!r}"
            )
        if ttl is not None and (isinstance(ttl, bool) or not ttl > 0):
            raise ConfigurationError(f"ttl must be a positive number of seconds, got {ttl!r}")
        if backend_timeout is not None and not backend_timeout > 0:
            raise ConfigurationError(f"backend_timeout must be positive, got {backend_timeout!r}")
        if isinstance(deadline_share, bool) or not (
            isinstance(deadline_share, (int, float)) and 0 < deadline_share <= 1
        ):
            raise ConfigurationError(f"deadline_share must be in (0, 1], got {deadline_share!r}")
        if isinstance(max_pending_stores, bool) or not (
            isinstance(max_pending_stores, int) and max_pending_stores >= 1
        ):
            raise ConfigurationError(
                f"max_pending_stores must be an integer >= 1, got {max_pending_stores!r}"
            )
        if isinstance(hit_memo_bytes, bool) or not (
            isinstance(hit_memo_bytes, int) and hit_memo_bytes >= 0
        ):
            raise ConfigurationError(
                f"hit_memo_bytes must be an integer >= 0, got {hit_memo_bytes!r}"
            )
        self.backend = backend
        self.collection = collection or None
        self.ttl = ttl
        self.semantic_threshold = semantic_threshold
        self.embed = embed
        self.backend_timeout = backend_timeout
        self.deadline_share = float(deadline_share)
        self.max_pending_stores = max_pending_stores
        name = getattr(backend, "name", type(backend).__name__)
        #: The outage state of the backend as this step sees it (one WARNING per outage).
        self.health = ServiceHealth(
            f"cache backend {name!r}",
            "",
            logger=log,
            reconnect_interval=reconnect_interval,
            clock=clock,
        )
        self._guard = BackendGuard(self.health)
        self._clock: Clock = clock if clock is not None else DEFAULT_CLOCK  # call.deadline's
        self._ops = GuardedOps(self._guard, self._clock, backend_timeout, self.deadline_share)
        self._writes = PendingWrites(max_pending_stores)
        native = getattr(backend, "collection", None)
        self._prefix = None if native == self.collection else self.collection
        self._semantic = SemanticLookup(backend, semantic_threshold, embed, self.collection)
        self._flights = SingleFlight()
        self._reads = ExactReads(backend, hit_memo_bytes)
        self._warned_unkeyable = False
        self._warned_secret = False
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "hits",
                "semantic_hits",
                "coalesced",
                "misses",
                "stores",
                "bypassed",
                "invalid",
                "refused",
            ),
            0,
        )

    def __repr__(self) -> str:
        return f"CacheMiddleware({self.backend!r}, collection={self.collection!r})"

    def stats(self) -> dict[str, int]:
        """Counters since creation: hits, semantic hits, coalesced calls, misses, stores,
        bypassed (uncacheable) calls, backend failures (cut operations included), backend
        operations skipped during an outage, stores dropped (too many pending), embedding
        failures, invalid entries read, answers refused for holding a known secret; and the
        number of stores still pending and of stored values kept decoded (``hit_memo_bytes``)."""
        counts = self._counts
        return {
            "hits": counts["hits"],
            "semantic_hits": counts["semantic_hits"],
            "coalesced": counts["coalesced"],
            "misses": counts["misses"],
            "stores": counts["stores"],
            "bypassed": counts["bypassed"],
            "backend_errors": self._guard.errors,
            "backend_skips": self._guard.skips,
            "stores_dropped": self._writes.dropped,
            "embed_errors": self._semantic.embed_errors,
            "invalid": counts["invalid"],
            "refused": counts["refused"],
            "pending_stores": len(self._writes),
            "memo_entries": len(self._reads.answers),
        }

    async def flush(self, timeout: float | None = None) -> None:
        """Wait for the background stores still running (at most ``timeout`` seconds, by
        default ``backend_timeout``, or 10 s without one), then cancel what is left.
        ``client.close()`` calls it."""
        limit = timeout if timeout is not None else (self.backend_timeout or _FLUSH_SECONDS)
        await self._writes.flush(limit)

    # --- the step -------------------------------------------------------------------------------

    def __call__(self, call: Call, next: Next, /) -> Coroutine[Any, Any, Reply]:
        # A plain method handing back the coroutine that answers the call (as the timeout
        # step does): every call, hits included, passes here, and a frame less is measurable.
        try:
            identifier = cache_identifier(call)
        except TypeError as exc:  # a parameter with no deterministic JSON form
            level = logging.DEBUG if self._warned_unkeyable else logging.WARNING
            self._warned_unkeyable = True
            log.log(level, "not caching a call: %s", exc)
            identifier = None
        if identifier is None:
            self._counts["bypassed"] += 1
            return cast("Coroutine[Any, Any, Reply]", next(call))
        ctx = _Ctx(call, identifier, namespaced_key(identifier, self._prefix))
        options = call.cache
        if options.rewrite_cache:  # no read, and nobody waits: the old entry stays readable
            return self._fetch(ctx, next)
        if options.regen_cache:
            return self._regenerate(ctx, next)
        flight = self._flights.running(ctx.key)
        if flight is not None:
            return self._follow(ctx, next, flight)
        storing = self._writes.answer(ctx.key)
        if storing is not None and (storing.result.ok or options.cache_errors):
            # stored a moment ago, still on its way into the backend: this is its hit
            self._counts["hits"] += 1
            return _now(self._deliver(ctx, storing, coalesced=False))
        if call.stream:  # a stream never leads: its answer exists only if someone drains it
            return self._lookup_then_fetch(ctx, next)
        return self._lead(ctx, next, read=True)

    async def _regenerate(self, ctx: _Ctx, next: Next) -> Reply:
        """``regen_cache``: delete the entry, then answer and store anew."""
        self._writes.forget(ctx.key)
        await self._ops.run("delete", lambda: self.backend.delete(ctx.key), ctx.call.deadline)
        if ctx.call.stream or ctx.key in self._flights:
            return await self._fetch(ctx, next)
        return await self._lead(ctx, next, read=False)

    async def _follow(
        self, ctx: _Ctx, next: Next, flight: asyncio.Future[_Shared | None]
    ) -> Reply:
        """Wait for the identical call in flight; its answer, or go alone if it failed."""
        shared = await asyncio.shield(flight)
        if shared is not None:
            self._counts["coalesced"] += 1
            return self._deliver(ctx, shared, coalesced=True)
        return await self._lookup_then_fetch(ctx, next)  # the leader failed: go alone

    async def _lead(self, ctx: _Ctx, next: Next, *, read: bool) -> Reply:
        """Answer ``ctx`` while identical calls wait for the outcome (single-flight)."""
        flight = self._flights.begin(ctx.key)
        outcome = None
        try:
            outcome = await self._lookup(ctx) if read else None
            if outcome is not None:
                return self._deliver(ctx, outcome, coalesced=False)
            reply = await self._fetch(ctx, next)
            if isinstance(reply, LLMResult) and reply.ok:
                outcome = _Shared(reply, None, self._storable(ctx, reply))
            return reply
        finally:
            self._flights.end(ctx.key, flight, outcome)

    # --- reading --------------------------------------------------------------------------------

    async def _lookup_then_fetch(self, ctx: _Ctx, next: Next) -> Reply:
        shared = await self._lookup(ctx)
        if shared is not None:
            return self._deliver(ctx, shared, coalesced=False)
        return await self._fetch(ctx, next)

    def _usable(self, ctx: _Ctx, entry: CacheEntry | None) -> LLMResult | None:
        """The checked result of a semantic match ``entry``, or ``None``."""
        if entry is None:
            return None
        try:
            check_result_value(entry.value, ctx.call.operation)
            result = LLMResult.from_dict(entry.value)
        except INVALID_ENTRY as exc:
            self._refuse(entry.key, ctx.call.operation, exc)
            return None
        if not result.ok and not ctx.call.cache.cache_errors:
            return None
        return result

    def _refuse(self, key: str, operation: str, problem: object) -> None:
        """Log and count an entry that is not a valid ``operation`` result (a miss)."""
        self._counts["invalid"] += 1
        log.warning(
            "cache entry %r is not a valid %s result (%s); treating it as a miss, the"
            " answer will replace it",
            key,
            operation,
            problem,
        )

    def _answer_hit(self, ctx: _Ctx, answer: StoredAnswer) -> LLMResult | None:
        """The exact hit ``answer`` gives ``ctx``, or ``None`` (a wrong-shaped entry is logged
        and counted; a stored failure only for a call with ``cache_errors``)."""
        operation = ctx.call.operation
        problem = answer.problem
        if problem is None and answer.operation != operation:
            problem = f"the entry is a {answer.operation!r} result, not {operation!r}"
        if problem is not None:
            self._refuse(answer.key, operation, problem)
            return None
        if not answer.ok and not ctx.call.cache.cache_errors:
            return None
        return answer.hit(ctx.identifier)

    async def _lookup(self, ctx: _Ctx) -> _Shared | None:
        key = ctx.key
        answer = await self._ops.run("get", self._reads.op(key), ctx.call.deadline)
        if answer is not None and answer.key == key:
            result = self._answer_hit(ctx, answer)
            if result is not None:
                self._counts["hits"] += 1
                return _Shared(result, None, True, hit=True)
        if self._semantic.prepare(ctx):
            found = await self._semantic_lookup(ctx)
            if found is not None:
                return found
        self._counts["misses"] += 1
        return None

    async def _semantic_lookup(self, ctx: _Ctx) -> _Shared | None:
        deadline = ctx.call.deadline

        async def run(what: str, op: Callable[[], Awaitable[Any]]) -> Any:
            return await self._ops.run(what, op, deadline)

        found = await self._semantic.search(ctx, run, self._ops.limit(deadline))
        if found is None:
            return None
        entry, similarity = found
        result = self._usable(ctx, entry)
        if result is None or not result.ok:
            return None
        self._counts["semantic_hits"] += 1
        return _Shared(result, similarity, True)

    def _deliver(self, ctx: _Ctx, shared: _Shared, *, coalesced: bool) -> Reply:
        """The reply of ``ctx`` from ``shared`` (no I/O: a plain call, not a coroutine, on
        every hit's path)."""
        raw = shared.result
        if shared.hit and raw.identifier == ctx.identifier:
            return replay(raw) if ctx.call.stream else raw
        if coalesced and not shared.stored and self._storable(ctx, raw):
            self._store_later(ctx, raw)
        hit = raw.replace(
            cached=True,
            attempts=0,
            usage=raw.usage.as_saved(),
            identifier=raw.identifier if shared.similarity is not None else ctx.identifier,
            cache_similarity=shared.similarity,
            headers={},
        )
        if ctx.call.stream:
            return replay(hit)
        return hit
