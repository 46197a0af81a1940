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
import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..cache import (
    CacheBackend,
    CacheEntry,
    SemanticCacheBackend,
    cache_identifier,
    cache_scope,
    check_result_value,
    namespaced_key,
    prompt_text,
    redact_text,
    stored_params,
)
from ..clock import Clock
from ..exceptions import ConfigurationError, InvalidRequestError, LLMClientError
from ..health import ServiceHealth
from ..known_secrets import find_secret
from ..pipeline import Call, Next, Reply
from ..result import LLMResult
from ..streaming import LLMEvent
from ._stream import replay

__all__ = ["CacheMiddleware"]


class _BackendError(Exception):
    """A timeout raised by the backend itself (not our cut), passed on as a plain failure."""


log = logging.getLogger("llm_client.middleware.cache")

_T = TypeVar("_T")

#: How long :meth:`CacheMiddleware.flush` waits when neither it nor the step has a limit.
_FLUSH_SECONDS = 10.0

#: Failed results that are never stored, even with ``cache_errors``: they say something about
#: this moment (timeouts, conflicts, rate limits, server trouble), not about the request.
_TRANSIENT_CLIENT_ERRORS = frozenset({408, 409, 429})


def _deterministic_failure(status: int) -> bool:
    return 400 <= status < 500 and status not in _TRANSIENT_CLIENT_ERRORS


@dataclass(slots=True)
class _Shared:
    """What a single-flight leader hands to the calls that waited for it."""

    result: LLMResult
    similarity: float | None
    stored: bool


class _Ctx:
    """Per-call state: the key and the lazily computed scope, prompt and prompt vector."""

    __slots__ = ("call", "embedded", "identifier", "key", "prompt", "scope", "semantic", "vector")

    def __init__(self, call: Call, identifier: str, key: str) -> None:
        self.call = call
        self.identifier = identifier
        self.key = key
        self.scope: str | None = None
        self.prompt: str | None = None
        self.semantic = False
        self.vector: list[float] | None = None
        self.embedded = False


class CacheMiddleware:
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
    :param clock: monotonic time for the reconnect interval (tests inject a manual one).

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
        self._cut = False  # the outage began with an operation that did not answer in time
        self._stores: set[asyncio.Task[None]] = set()  # background stores, for flush()
        self._store_chain: dict[str, asyncio.Task[None]] = {}  # the latest store of each key
        self._storing: dict[str, _Shared] = {}  # answers on their way into the backend
        self._warned_dropped = False
        native = getattr(backend, "collection", None)
        self._prefix = None if native == self.collection else self.collection
        self._semantic = (
            semantic_threshold is not None
            and embed is not None
            and isinstance(backend, SemanticCacheBackend)
        )
        if semantic_threshold is not None and embed is not None and not self._semantic:
            log.info(
                "semantic caching is off: cache backend %r cannot search by vector",
                getattr(backend, "name", type(backend).__name__),
            )
        self._inflight: dict[str, asyncio.Future[_Shared | None]] = {}
        self._embed_down = False
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
                "backend_errors",
                "backend_skips",
                "stores_dropped",
                "embed_errors",
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
        number of stores still pending."""
        return {**self._counts, "pending_stores": len(self._stores)}

    async def flush(self, timeout: float | None = None) -> None:
        """Wait for the background stores still running (at most ``timeout`` seconds, by
        default ``backend_timeout``, or 10 s without one), then cancel what is left.
        ``client.close()`` calls it."""
        if not self._stores:
            return
        limit = timeout if timeout is not None else (self.backend_timeout or _FLUSH_SECONDS)
        pending = set(self._stores)
        _, late = await asyncio.wait(pending, timeout=limit)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.warning("%d cache writes did not finish in time and were dropped", len(late))

    # --- the step -------------------------------------------------------------------------------

    async def __call__(self, call: Call, next: Next, /) -> Reply:
        try:
            identifier = cache_identifier(call)
        except TypeError as exc:  # a parameter with no deterministic JSON form
            level = logging.DEBUG if self._warned_unkeyable else logging.WARNING
            self._warned_unkeyable = True
            log.log(level, "not caching a call: %s", exc)
            identifier = None
        if identifier is None:
            self._counts["bypassed"] += 1
            return await next(call)
        ctx = _Ctx(call, identifier, namespaced_key(identifier, self._prefix))
        options = call.cache
        if options.rewrite_cache:  # no read, and nobody waits: the old entry stays readable
            return await self._fetch(ctx, next)
        if options.regen_cache:
            self._storing.pop(ctx.key, None)
            await self._backend_op("delete", lambda: self.backend.delete(ctx.key), call.deadline)
            if call.stream or ctx.key in self._inflight:
                return await self._fetch(ctx, next)
            return await self._lead(ctx, next, read=False)

        flight = self._inflight.get(ctx.key)
        if flight is not None:
            shared = await asyncio.shield(flight)
            if shared is not None:
                self._counts["coalesced"] += 1
                return await self._deliver(ctx, shared, coalesced=True)
            return await self._lookup_then_fetch(ctx, next)  # the leader failed: go alone
        storing = self._storing.get(ctx.key)
        if storing is not None and (storing.result.ok or options.cache_errors):
            # stored a moment ago, still on its way into the backend: this is its hit
            self._counts["hits"] += 1
            return await self._deliver(ctx, storing, coalesced=False)
        if call.stream:  # a stream never leads: its answer exists only if someone drains it
            return await self._lookup_then_fetch(ctx, next)
        return await self._lead(ctx, next, read=True)

    async def _lead(self, ctx: _Ctx, next: Next, *, read: bool) -> Reply:
        """Answer ``ctx`` while identical calls wait for the outcome (single-flight)."""
        future: asyncio.Future[_Shared | None] = asyncio.get_running_loop().create_future()
        self._inflight[ctx.key] = future
        shared = None
        try:
            shared = await self._lookup(ctx) if read else None
            if shared is not None:
                return await self._deliver(ctx, shared, coalesced=False)
            reply = await self._fetch(ctx, next)
            if isinstance(reply, LLMResult) and reply.ok:
                shared = _Shared(reply, None, self._storable(ctx, reply))
            return reply
        finally:
            if not future.done():  # waiters get an answer only if it is a success
                future.set_result(shared if shared is not None and shared.result.ok else None)
            if self._inflight.get(ctx.key) is future:
                del self._inflight[ctx.key]

    # --- reading --------------------------------------------------------------------------------

    async def _lookup_then_fetch(self, ctx: _Ctx, next: Next) -> Reply:
        shared = await self._lookup(ctx)
        if shared is not None:
            return await self._deliver(ctx, shared, coalesced=False)
        return await self._fetch(ctx, next)

    def _usable(self, ctx: _Ctx, entry: CacheEntry | None) -> LLMResult | None:
        if entry is None:
            return None
        try:
            check_result_value(entry.value, ctx.call.operation)
            result = LLMResult.from_dict(entry.value)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            self._counts["invalid"] += 1
            log.warning(
                "cache entry %r is not a valid %s result (%s); treating it as a miss, the"
                " answer will replace it",
                entry.key,
                ctx.call.operation,
                exc,
            )
            return None
        if not result.ok and not ctx.call.cache.cache_errors:
            return None
        return result

    async def _lookup(self, ctx: _Ctx) -> _Shared | None:
        entry = await self._backend_op("get", lambda: self.backend.get(ctx.key), ctx.call.deadline)
        if entry is not None and entry.key == ctx.key:
            result = self._usable(ctx, entry)
            if result is not None:
                self._counts["hits"] += 1
                return _Shared(result.replace(identifier=ctx.identifier), None, True)
        if self._prepare_semantic(ctx):
            found = await self._semantic_lookup(ctx)
            if found is not None:
                return found
        self._counts["misses"] += 1
        return None

    def _prepare_semantic(self, ctx: _Ctx) -> bool:
        """Whether this call takes part in semantic caching; computes its prompt and scope."""
        call = ctx.call
        if not self._semantic or call.operation == "embeddings" or call.cache.identifier:
            return False
        if ctx.prompt is None:
            try:
                ctx.prompt = prompt_text(call)
                ctx.scope = cache_scope(call, collection=self.collection)
            except TypeError:
                ctx.prompt = ""
            ctx.semantic = bool(ctx.prompt)
        return ctx.semantic

    async def _vector(self, ctx: _Ctx) -> list[float] | None:
        if ctx.embedded or self.embed is None or not ctx.prompt:
            return ctx.vector
        ctx.embedded = True
        try:
            vector = [float(x) for x in await self.embed(ctx.prompt)]
            if not vector or not all(math.isfinite(x) for x in vector):
                raise ValueError("the embedding is empty or not finite")
        except Exception as exc:  # embedding trouble never fails the call
            self._counts["embed_errors"] += 1
            if not self._embed_down:
                self._embed_down = True
                log.warning(
                    "embedding the prompt for the semantic cache failed (%s: %s); using exact"
                    " matches only until it works again",
                    type(exc).__name__,
                    redact_text(str(exc)),
                )
            return None
        if self._embed_down:
            self._embed_down = False
            log.info("embedding for the semantic cache works again")
        ctx.vector = vector
        return vector

    async def _semantic_lookup(self, ctx: _Ctx) -> _Shared | None:
        vector = await self._vector(ctx)
        if vector is None or ctx.scope is None or self.semantic_threshold is None:
            return None
        backend = self.backend
        assert isinstance(backend, SemanticCacheBackend)
        scope, threshold = ctx.scope, self.semantic_threshold
        found = await self._backend_op(
            "search",
            lambda: backend.search(vector, scope=scope, threshold=threshold),
            ctx.call.deadline,
        )
        if found is None:
            return None
        entry, similarity = found
        if entry.scope and entry.scope != ctx.scope:
            return None
        result = self._usable(ctx, entry)
        if result is None or not result.ok:
            return None
        self._counts["semantic_hits"] += 1
        return _Shared(result, float(similarity), True)

    async def _deliver(self, ctx: _Ctx, shared: _Shared, *, coalesced: bool) -> Reply:
        raw = shared.result
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

    # --- calling on and writing -----------------------------------------------------------------

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
                    model=str(call.params.get("model", call.profile.model_name)),
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
        return self._record(ctx, reply)

    async def _record(self, ctx: _Ctx, stream: AsyncIterator[LLMEvent]) -> AsyncIterator[LLMEvent]:
        """Pass a live stream through; start storing its final result before handing on
        ``done`` (a consumer may stop reading right after it)."""
        try:
            async for event in stream:
                if event.type == "meta":
                    event = LLMEvent(
                        "meta",
                        {**event.data, "identifier": ctx.identifier, "cached": False},
                        event.result,
                    )
                elif event.type in ("done", "error") and event.result is not None:
                    final = event.result.replace(identifier=ctx.identifier)
                    if self._storable(ctx, final):
                        self._store_later(ctx, final)
                    data = dict(event.data)
                    if "identifier" in data:
                        data["identifier"] = ctx.identifier
                    event = LLMEvent(event.type, data, final)
                yield event
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    def _entry(self, ctx: _Ctx, result: LLMResult, semantic: bool) -> CacheEntry | None:
        """The entry to store for ``result``, or ``None`` if it holds a known secret.

        The answer is stored exactly as it came; the request parameters lose only what is
        not request content (credentials, transport options: :func:`stored_params`).
        """
        call = ctx.call
        value = result.replace(
            params=stored_params(result.params),
            identifier=ctx.identifier,
            cached=False,
            cache_similarity=None,
        ).to_dict()
        if ctx.scope is None:
            try:
                ctx.scope = cache_scope(call, collection=self.collection)
            except TypeError:
                ctx.scope = ""
        prompt = ctx.prompt if semantic and ctx.prompt else None
        found = find_secret((value, prompt))
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
            return None
        return CacheEntry(
            key=ctx.key,
            value=value,
            model=result.model or str(call.params.get("model", call.profile.model_name)),
            operation=call.operation,
            scope=ctx.scope,
            prompt=prompt,
        )

    def _store_later(self, ctx: _Ctx, result: LLMResult) -> None:
        """Store ``result`` in a background task, so the caller's answer never waits for it.

        Until the write is done, calls with the same key are answered from memory (see
        ``_storing``; not during an outage), so a call that arrives right after never misses.
        Writes of one key run in order. At most ``max_pending_stores`` writes are pending;
        beyond that a write is dropped (counted, logged once).
        """
        if len(self._stores) >= self.max_pending_stores:
            self._counts["stores_dropped"] += 1
            level = logging.DEBUG if self._warned_dropped else logging.WARNING
            self._warned_dropped = True
            log.log(
                level,
                "dropping a cache write: %d writes are already waiting for the cache backend",
                len(self._stores),
            )
            return
        semantic = self._prepare_semantic(ctx)
        entry = self._entry(ctx, result, semantic)
        if entry is None:
            return
        key = ctx.key
        shared = _Shared(result, None, True)
        if self.health.up:  # while the backend is down, the write will probably not land
            self._storing[key] = shared
        task = asyncio.get_running_loop().create_task(
            self._store_after(ctx, entry, semantic, self._store_chain.get(key))
        )
        self._stores.add(task)
        self._store_chain[key] = task

        def done(task: asyncio.Task[None]) -> None:
            self._stores.discard(task)
            if self._store_chain.get(key) is task:
                del self._store_chain[key]
                if self._storing.get(key) is shared:
                    del self._storing[key]

        task.add_done_callback(done)

    async def _store_after(
        self,
        ctx: _Ctx,
        entry: CacheEntry,
        semantic: bool,
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait((previous,))
        await self._store(ctx, entry, semantic)

    async def _store(self, ctx: _Ctx, entry: CacheEntry, semantic: bool) -> bool:
        vector = await self._vector(ctx) if semantic else None
        if vector is not None:
            backend = self.backend
            assert isinstance(backend, SemanticCacheBackend)
            ok = await self._backend_op(
                "put_vector",
                lambda: backend.put_vector(entry, vector, ttl=self.ttl),
                None,
                failed=False,
            )
        else:
            ok = await self._backend_op(
                "put", lambda: self.backend.put(entry, ttl=self.ttl), None, failed=False
            )
        if ok:
            self._counts["stores"] += 1
        return bool(ok)

    # --- degradation ------------------------------------------------------------------------------

    def _limit(self, deadline: float | None) -> float | None:
        """Seconds one backend operation may take: ``backend_timeout``, and at most
        ``deadline_share`` of the time the call has left (``<= 0``: no time for it)."""
        if deadline is None:
            return self.backend_timeout
        share = (deadline - time.monotonic()) * self.deadline_share
        return share if self.backend_timeout is None else min(self.backend_timeout, share)

    async def _backend_op(
        self,
        what: str,
        op: Callable[[], Awaitable[_T]],
        deadline: float | None,
        *,
        failed: Any = None,
    ) -> Any:
        """Run one backend operation within :meth:`_limit`; on any failure, including not
        answering in time, record it (one WARNING per outage) and return ``failed``.

        An operation cut short opens an outage: until one probe every ``reconnect_interval``
        gets an answer again, operations are skipped without waiting for the backend.
        """
        limit = self._limit(deadline)
        if (limit is not None and limit <= 0) or (self._cut and not self.health.should_try()):
            self._counts["backend_skips"] += 1
            return failed
        try:
            if limit is None:
                result = await op()
            elif sys.version_info >= (3, 11):
                async with asyncio.timeout(limit) as scope:
                    try:
                        result = await op()
                    except Exception as exc:
                        if scope.expired():  # cut, whatever the backend made of the cancel
                            raise TimeoutError from exc
                        if isinstance(exc, TimeoutError):
                            raise _BackendError from exc  # the backend's own timeout
                        raise
            else:  # pragma: no cover - Python 3.10
                result = await asyncio.wait_for(op(), limit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._counts["backend_errors"] += 1
            if isinstance(exc, TimeoutError):
                self._cut = True
                reason = f"{what}: no answer within {limit:g}s"
            else:
                cause = exc.__cause__ if isinstance(exc, _BackendError) else exc
                reason = f"{what}: {type(cause).__name__}: {redact_text(str(cause))}"
            self.health.failed(exc, reason=reason)
            log.debug("cache backend operation failed (%s)", reason)
            return failed
        self._cut = False
        self.health.succeeded()
        return True if what in ("put", "put_vector") else result
