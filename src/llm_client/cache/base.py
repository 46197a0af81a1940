"""The cache backend protocols and the stored entry: what every backend (built-in or plugin)
speaks."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic_core import from_json as _from_json


def loads(data: bytes | str) -> Any:
    """``json.loads(data)``, about 2.5x faster on stored entries: every cache hit decodes one.

    pydantic-core's parser (jiter) reads what ``json.loads`` reads, except a lone UTF-16
    surrogate escape (``"\\ud800"``), which it refuses; anything it refuses goes to
    ``json.loads``, so the result (or the ``ValueError``) is the standard library's.
    """
    try:
        return _from_json(data)
    except ValueError:
        return json.loads(data)


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheEntry:
    """One stored answer.

    :param key: the namespaced cache key.
    :param value: the stored result, ``LLMResult.to_dict()`` (JSON-able, no secrets).
    :param created_at: wall-clock epoch seconds when it was written.
    :param model: model name the answer came from.
    :param operation: ``"chat"``, ``"responses"`` or ``"embeddings"``.
    :param scope: hash of everything that changes the answer *except* the prompt text
        (operation, model, tools, generation parameters): a semantic hit must share it.
    :param prompt: the prompt text used for semantic similarity (only when semantic caching
        is on), else ``None``.
    """

    key: str
    value: Mapping[str, Any]
    created_at: float = field(default_factory=time.time)
    model: str = ""
    operation: str = ""
    scope: str = ""
    prompt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry as a JSON-able dict (what :meth:`to_json` encodes)."""
        return {
            "key": self.key,
            "value": self.value,
            "created_at": self.created_at,
            "model": self.model,
            "operation": self.operation,
            "scope": self.scope,
            "prompt": self.prompt,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> CacheEntry:
        """Decode :meth:`to_json` output (see :func:`loads`).

        :raises ValueError: ``data`` is not JSON, or not an entry.
        """
        return cls.from_dict(loads(data))

    @classmethod
    def from_dict(cls, raw: Any) -> CacheEntry:
        """Rebuild an entry from :meth:`to_dict` output; extra keys are ignored.

        :raises ValueError: ``raw`` is not an entry.
        """
        if not isinstance(raw, dict) or not isinstance(raw.get("value"), dict):
            raise ValueError("not a cache entry")
        if not isinstance(raw.get("key"), str):
            raise ValueError("not a cache entry: no key")
        return cls(
            key=str(raw["key"]),
            value=raw["value"],
            created_at=float(raw.get("created_at", 0.0)),
            model=str(raw.get("model", "")),
            operation=str(raw.get("operation", "")),
            scope=str(raw.get("scope", "")),
            prompt=raw.get("prompt"),
        )


@runtime_checkable
class CacheBackend(Protocol):
    """What every cache backend implements. All I/O is async.

    A backend may raise on failure (connection lost, disk full); the cache middleware logs it
    once per outage and carries on without the cache. ``ttl`` is seconds, ``None`` for no
    expiry; backends that cannot expire entries ignore it and say so in their docs.
    """

    name: str

    async def get(self, key: str) -> CacheEntry | None: ...

    async def put(self, entry: CacheEntry, *, ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def clear(self) -> int: ...

    async def stats(self) -> dict[str, Any]: ...

    def export(self) -> AsyncIterator[CacheEntry]: ...

    async def warm(self) -> None: ...

    async def aclose(self) -> None: ...


_D = TypeVar("_D")


@runtime_checkable
class DecodingCacheBackend(CacheBackend, Protocol):
    """A backend that keeps each entry as the bytes :meth:`CacheEntry.to_json` wrote, and can
    hand those bytes to the caller's decoder instead of decoding them itself (optional).

    ``get_decoded(key, decode)`` reads ``key`` as :meth:`~CacheBackend.get` does (expiry,
    counters, outages, fall-backs between tiers), but returns ``decode(data)`` where ``get``
    returns ``CacheEntry.from_json(data)``; ``get(key)`` is ``get_decoded(key,
    CacheEntry.from_json)``. ``decode`` raising :class:`ValueError` means the bytes are not a
    readable entry: the backend treats them exactly as ``get`` treats undecodable bytes
    (logged, a miss, or the next tier's answer). ``decode`` is called on the event loop's
    thread, at most once per read, and never for a missing key.

    The cache step uses it, when a backend offers it, to decode and check each distinct
    stored value once rather than on every hit (see
    :class:`~llm_client.middleware.CacheMiddleware`).
    """

    async def get_decoded(self, key: str, decode: Callable[[bytes], _D]) -> _D | None: ...


@runtime_checkable
class SemanticCacheBackend(CacheBackend, Protocol):
    """A backend that can also find the nearest stored prompt (e.g. Qdrant)."""

    async def put_vector(
        self, entry: CacheEntry, vector: list[float], *, ttl: float | None = None
    ) -> None: ...

    async def search(
        self, vector: list[float], *, scope: str, threshold: float
    ) -> tuple[CacheEntry, float] | None: ...


# ================================================================================================
# Implementation (owned by the cache engineer): key derivation, secrets, built-in backends.
