"""Semantic lookup: on an exact miss, find a stored answer to a similar prompt.

The prompt (the last user turn, :func:`~llm_client.cache.prompt_text`) is embedded and the
backend (a :class:`~llm_client.cache.SemanticCacheBackend`) is searched for the nearest
stored prompt within the same scope (:func:`~llm_client.cache.cache_scope`: everything else
that changes the answer must match exactly). Embedding trouble never fails a call: the
lookup is skipped and one WARNING says so until embedding works again.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from ..cache import CacheBackend, CacheEntry, SemanticCacheBackend, cache_scope, prompt_text
from ..cache.secrets import redact_text
from ..pipeline import Call

__all__ = ["CallState", "SemanticLookup"]

log = logging.getLogger("llm_client.middleware.cache")


class CallState:
    """Per-call state of the cache step: the key and the lazily computed scope, prompt and
    prompt vector."""

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


#: How the lookup runs one backend operation: ``(what, op) -> result, or None on failure``.
RunOp = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]


class SemanticLookup:
    """Embedding and nearest-prompt search for one cache step.

    :param backend: the step's backend; semantic lookup is on only if it is a
        :class:`~llm_client.cache.SemanticCacheBackend` and ``threshold`` and ``embed`` are set.
    :param threshold: the least cosine similarity of a hit, in (0, 1].
    :param embed: async function turning a prompt into a vector.
    :param collection: the step's collection (part of the scope).
    """

    __slots__ = ("_embed_down", "backend", "collection", "embed", "embed_errors", "enabled",
                 "threshold")  # fmt: skip

    def __init__(
        self,
        backend: CacheBackend,
        threshold: float | None,
        embed: Callable[[str], Awaitable[list[float]]] | None,
        collection: str | None,
    ) -> None:
        self.backend = backend
        self.threshold = threshold
        self.embed = embed
        self.collection = collection
        self.enabled = (
            threshold is not None
            and embed is not None
            and isinstance(backend, SemanticCacheBackend)
        )
        if threshold is not None and embed is not None and not self.enabled:
            log.info(
                "semantic caching is off: cache backend %r cannot search by vector",
                getattr(backend, "name", type(backend).__name__),
            )
        #: Embedding calls that failed.
        self.embed_errors = 0
        self._embed_down = False

    def prepare(self, state: CallState) -> bool:
        """Whether this call takes part in semantic caching; computes its prompt and scope."""
        call = state.call
        if not self.enabled or call.operation == "embeddings" or call.cache.identifier:
            return False
        if state.prompt is None:
            try:
                state.prompt = prompt_text(call)
                state.scope = cache_scope(call, collection=self.collection)
            except TypeError:
                state.prompt = ""
            state.semantic = bool(state.prompt)
        return state.semantic

    async def vector(self, state: CallState, limit: float | None = None) -> list[float] | None:
        """The prompt's embedding (computed once per call), ``None`` if embedding failed.

        :param limit: seconds the embedding may take (the lookup's share of the call's time
            left, as for a backend read); past it the lookup goes on with exact matches only,
            and the answer's store may embed the prompt again later, in the background.
        """
        if state.embedded or self.embed is None or not state.prompt:
            return state.vector
        if limit is not None and limit <= 0:
            return None  # no time left to embed under the call's deadline
        state.embedded = True
        try:
            pending = self.embed(state.prompt)
            raw = await (pending if limit is None else asyncio.wait_for(pending, limit))
            vector = [float(x) for x in raw]
            if not vector or not all(math.isfinite(x) for x in vector):
                raise ValueError("the embedding is empty or not finite")
        except Exception as exc:  # embedding trouble never fails the call
            self.embed_errors += 1
            cut = limit is not None and isinstance(exc, (TimeoutError, asyncio.TimeoutError))
            if cut:
                state.embedded = False  # the store, with no deadline, may try again
            if not self._embed_down:
                self._embed_down = True
                log.warning(
                    "embedding the prompt for the semantic cache failed (%s); using exact"
                    " matches only until it works again",
                    f"no answer within {limit:g}s"
                    if cut
                    else f"{type(exc).__name__}: {redact_text(str(exc))}",
                )
            return None
        if self._embed_down:
            self._embed_down = False
            log.info("embedding for the semantic cache works again")
        state.vector = vector
        return vector

    async def search(
        self, state: CallState, run: RunOp, limit: float | None = None
    ) -> tuple[CacheEntry, float] | None:
        """The nearest stored entry of the call's scope at or above the threshold (the
        prompt embedded within ``limit`` seconds, see :meth:`vector`)."""
        vector = await self.vector(state, limit)
        if vector is None or state.scope is None or self.threshold is None:
            return None
        backend = self.backend
        assert isinstance(backend, SemanticCacheBackend)
        scope, threshold = state.scope, self.threshold
        found = await run(
            "search", lambda: backend.search(vector, scope=scope, threshold=threshold)
        )
        if found is None:
            return None
        entry, similarity = found
        if entry.scope and entry.scope != state.scope:
            return None
        return entry, float(similarity)
