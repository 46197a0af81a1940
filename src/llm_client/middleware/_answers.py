"""Exact hits from stored bytes: each distinct stored value decoded and checked once.

A backend that offers :meth:`~llm_client.cache.DecodingCacheBackend.get_decoded` hands the
cache step the bytes it read, and :meth:`StoredAnswers.decode` turns them into a
:class:`StoredAnswer`: the entry decoded, checked (:func:`~llm_client.cache.check_result_value`)
and made into the immutable part of its hit. The answer is kept under the exact bytes it came
from, so the next read of the same bytes (the backend is still read every time: expiry,
deletes and rewrites are seen as before) skips decoding and checking. A rewritten entry has
other bytes (another ``created_at`` at least) and is decoded afresh.

No two hits share mutable data: the request parameters, the output and the tool calls are
kept as :mod:`marshal` data (plain JSON values only) and unpacked into new objects for every
hit, and each hit has its own (empty) ``headers``, so a caller that changes its reply
changes nothing another caller or the memo sees. The memo is bounded by the total size of
the bytes it keeps (least recently read out first).

An entry read with a plain ``get`` (a backend without ``get_decoded``) becomes a
:class:`StoredAnswer` too, used for that one hit: every exact hit is built in one place.
"""

from __future__ import annotations

import copy
import marshal
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .._replace import slots_of
from ..cache import CacheBackend, CacheEntry, DecodingCacheBackend, check_result_value
from ..result import LLMResult
from ._entries import exact_hit

__all__ = ["INVALID_ENTRY", "ExactReads", "StoredAnswer", "StoredAnswers"]

#: What checking a stored value and building a result of it may raise for a wrong-shaped one.
INVALID_ENTRY = (TypeError, ValueError, KeyError, AttributeError, OverflowError)

#: LLMResult's fields and their slot descriptors; the ones every hit gets fresh values for.
_SLOTS = slots_of(LLMResult)
_FRESH = frozenset({"params", "output", "tool_calls", "identifier", "headers"})
_PARAMS, _OUTPUT, _TOOL_CALLS, _IDENTIFIER, _HEADERS = (
    dict(_SLOTS)[name] for name in ("params", "output", "tool_calls", "identifier", "headers")
)
_FIXED_SLOTS = tuple(slot for name, slot in _SLOTS if name not in _FRESH)
_new = object.__new__


class StoredAnswer:
    """One stored entry, decoded and checked: what a read of its bytes becomes.

    ``problem`` is ``None`` for a well-shaped result of ``operation`` and otherwise says what
    is wrong with it (the read is then an invalid entry, as for :meth:`CacheBackend.get`).
    """

    __slots__ = ("_fixed", "_mutable", "_packed", "key", "ok", "operation", "problem")

    def __init__(self, entry: CacheEntry) -> None:
        self.key = entry.key
        value = entry.value
        operation = value.get("operation", "chat") if isinstance(value, Mapping) else "chat"
        self.operation: Any = operation
        self.problem: str | None = None
        self.ok = False
        self._packed: bytes | None = None
        self._mutable: tuple[Any, Any, tuple[Any, ...]] | None = None
        self._fixed: tuple[Any, ...] = ()
        try:
            check_result_value(value, operation if type(operation) is str else "chat")
            template = exact_hit(value, "")
        except INVALID_ENTRY as exc:
            self.problem = str(exc) or type(exc).__name__
            return
        self.ok = template.ok
        #: the template's unchanging fields (in _FIXED_SLOTS' order), set into every hit
        self._fixed = tuple(slot.__get__(template, LLMResult) for slot in _FIXED_SLOTS)
        mutable: tuple[Any, Any, tuple[Any, ...]] = (
            template.params,
            template.output,
            template.tool_calls,
        )
        try:  # plain JSON values (what CacheEntry.from_json gives) always pack
            self._packed = marshal.dumps(mutable)
        except ValueError:  # a value of another type, from a backend's own decoder
            self._mutable = mutable

    def hit(self, identifier: str) -> LLMResult:
        """The hit a call with ``identifier`` receives, with its own copies of everything
        mutable. Only for an answer without a ``problem``.

        Built slot by slot (what :func:`~llm_client._replace.fast_replace` does, with the
        unchanging fields picked once): this runs on every hit."""
        assert self.problem is None, "a wrong-shaped entry has no hit"
        if self._packed is not None:
            params, output, tool_calls = marshal.loads(self._packed)
        else:
            params, output, tool_calls = copy.deepcopy(self._mutable or ({}, None, ()))
        result = _new(LLMResult)
        for slot, value in zip(_FIXED_SLOTS, self._fixed, strict=True):
            slot.__set__(result, value)
        _PARAMS.__set__(result, params)
        _OUTPUT.__set__(result, output)
        _TOOL_CALLS.__set__(result, tool_calls)
        _IDENTIFIER.__set__(result, identifier)
        _HEADERS.__set__(result, {})  # a hit has no response headers; its own empty dict
        return result


class StoredAnswers:
    """:class:`StoredAnswer` per exact stored bytes, for at most ``max_bytes`` of them.

    :meth:`decode` is the decoder the cache step passes to ``get_decoded``. A value larger
    than an eighth of the budget is decoded every time rather than pushing the rest out.
    """

    __slots__ = ("_memo", "_size", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._memo: OrderedDict[bytes, StoredAnswer] = OrderedDict()
        self._size = 0

    def __len__(self) -> int:
        return len(self._memo)

    @property
    def size(self) -> int:
        """Total length of the stored values kept."""
        return self._size

    def decode(self, data: bytes) -> StoredAnswer:
        """The answer ``data`` holds.

        :raises ValueError: ``data`` is not an entry (:meth:`CacheEntry.from_json`); a
            well-formed entry with a wrong-shaped value is an answer with a ``problem``.
        """
        if type(data) is not bytes:
            data = bytes(data)
        memo = self._memo
        found = memo.get(data)
        if found is not None:
            memo.move_to_end(data)
            return found
        answer = StoredAnswer(CacheEntry.from_json(data))
        size = len(data)
        if size * 8 <= self.max_bytes:
            memo[data] = answer
            self._size += size
            while self._size > self.max_bytes:
                old, _ = memo.popitem(last=False)
                self._size -= len(old)
        return answer


def reads_decoded(backend: CacheBackend) -> bool:
    """Whether ``backend.get_decoded`` reads what ``backend.get`` reads: the backend offers it
    (:class:`~llm_client.cache.DecodingCacheBackend`) and its class does not override ``get``
    below where ``get_decoded`` is defined. A subclass that overrides only ``get`` (to count,
    fail or wait) is read through its ``get``."""
    if not isinstance(backend, DecodingCacheBackend):
        return False
    mro = type(backend).__mro__
    get_owner = next((c for c in mro if "get" in vars(c)), None)
    decoded_owner = next((c for c in mro if "get_decoded" in vars(c)), None)
    return not (
        get_owner is None or decoded_owner is None or not issubclass(decoded_owner, get_owner)
    )


class ExactReads:
    """How the cache step reads one key: through ``get_decoded`` and the memo when the backend
    offers it (:func:`reads_decoded`), else through ``get``.

    A ``get`` replaced later (a test's stand-in, on the instance or on the class, as
    ``unittest.mock.patch.object`` does) is honoured: the backend is then read by ``get``.
    """

    __slots__ = ("_backend", "_class_get", "_decoded", "_instance_attrs", "answers")

    def __init__(self, backend: CacheBackend, max_bytes: int) -> None:
        self._backend: Any = backend
        #: Decoded, checked answers per stored bytes.
        self.answers = StoredAnswers(max_bytes)
        self._decoded = reads_decoded(backend)
        self._class_get = getattr(type(backend), "get", None)
        self._instance_attrs: dict[str, Any] = getattr(backend, "__dict__", {})

    def op(self, key: str) -> Callable[[], Awaitable[StoredAnswer | None]]:
        """The backend operation reading ``key`` (for the step's guard to run)."""
        backend = self._backend
        if (
            self._decoded
            and type(backend).get is self._class_get
            and "get" not in self._instance_attrs
        ):
            decode = self.answers.decode  # the stored bytes, decoded and checked once
            return lambda: backend.get_decoded(key, decode)
        return lambda: self._plain(key)

    async def _plain(self, key: str) -> StoredAnswer | None:
        entry = await self._backend.get(key)
        return None if entry is None else StoredAnswer(entry)
