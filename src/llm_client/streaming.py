"""Streaming events: :class:`LLMEvent` and its documented contract.

A streamed reply is an async iterator of events. Every event has a ``type`` and a ``data``
mapping with exactly the fields below (:data:`EVENT_FIELDS`; docs/streaming.md has the same
table). Front ends may rely on it; new fields may be added, none removed.

==================  =========================================  ================================
type                data fields                                when it comes
==================  =========================================  ================================
meta                model, operation, cached                   first, once
text_delta          text                                       each piece of the answer
refusal_delta       text                                       each piece of a refusal
reasoning_delta     text, index                                each piece of a reasoning
                                                               summary (Responses API; index
                                                               is the summary part)
tool_call_delta     index, id, name, arguments                 each piece of a tool call's
                                                               arguments; ``id`` is the call
                                                               id the result uses (``call_...``)
                                                               on every event, ``name`` is set
                                                               on a call's first event only
usage               input_tokens, output_tokens, total_cost    once, before ``done``
error               status, error                              last, when the call failed
done                the :class:`LLMResult` as a dict           last, when the call succeeded
==================  =========================================  ================================

A streamed agent run (:meth:`llm_client.AgentRunner.stream`) adds ``tool_call_start``,
``tool_result`` and ``turn``. Event types a newer API sends that the client does not know are
skipped, never an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, TypeAlias, runtime_checkable

from .result import LLMResult

__all__ = [
    "EVENT_FIELDS",
    "BufferedEvent",
    "EventBuffer",
    "EventType",
    "LLMEvent",
    "MemoryEventBuffer",
    "sse_comment",
    "sse_frame",
    "to_sse",
]

EventType: TypeAlias = Literal[
    "meta",
    "text_delta",
    "refusal_delta",
    "reasoning_delta",
    "tool_call_delta",
    "usage",
    "error",
    "done",
    # streamed agent runs (llm_client.agent) add these three
    "tool_call_start",
    "tool_result",
    "turn",
]

#: The fields each event's ``data`` always carries (the contract above).
EVENT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "meta": ("model", "operation", "cached"),
    "text_delta": ("text",),
    "refusal_delta": ("text",),
    "reasoning_delta": ("text", "index"),
    "tool_call_delta": ("index", "id", "name", "arguments"),
    "usage": ("input_tokens", "output_tokens", "total_tokens", "total_cost"),
    "error": ("status", "error"),
    "done": ("output", "usage", "status", "error", "tool_calls", "finish_reason"),
}


@dataclass(frozen=True, slots=True)
class LLMEvent:
    """One streaming event. ``result`` is set on ``done`` (and on ``error``) events."""

    type: EventType
    data: Mapping[str, Any] = field(default_factory=dict)
    result: LLMResult | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "data": dict(self.data)}


# --- Server-Sent Events framing (WHATWG HTML, "Server-sent events", §9.2) -------------------

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _field_value(name: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"an SSE {name} must be one line, got {value!r}")
    return value


def sse_frame(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> str:
    """One SSE frame (ends with the blank line that dispatches it).

    ``data`` is split at every line break (CRLF, CR or LF) into one ``data:`` line per line,
    which a parser joins back with LF. ``event`` and ``id`` must be one line, and ``id`` may not
    contain NUL (a browser ignores such an id). ``retry`` is the reconnection delay in whole
    milliseconds, written as ASCII digits only, as the standard requires.
    """
    lines: list[str] = []
    if event is not None:
        lines.append(f"event: {_field_value('event', event)}")
    if id is not None:
        if "\0" in id:
            raise ValueError(f"an SSE id may not contain NUL, got {id!r}")
        lines.append(f"id: {_field_value('id', id)}")
    if retry is not None:
        if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
            raise ValueError(f"SSE retry must be a non-negative integer (ms), got {retry!r}")
        lines.append(f"retry: {retry}")
    if data is not None:
        lines.extend(f"data: {line}" for line in _LINE_BREAK.split(data))
    return "\n".join(lines) + "\n\n"


def sse_comment(text: str = "") -> str:
    """A comment frame (``: text``): ignored by parsers, it keeps idle connections open."""
    return "".join(f": {line}\n" if line else ":\n" for line in _LINE_BREAK.split(text)) + "\n"


def event_json(event: LLMEvent) -> str:
    """The event's data as compact JSON (the ``data:`` of its SSE frame)."""
    return json.dumps(dict(event.data), separators=(",", ":"), default=str)


def to_sse(event: LLMEvent, id: str | None = None) -> str:
    """Encode one event as a Server-Sent Events frame (``event:`` is the event type)."""
    return sse_frame(event_json(event), event=event.type, id=id)


# --- the resumable event buffer ---------------------------------------------------------------


class BufferedEvent(NamedTuple):
    """One stream event as a buffer keeps it: its number (1, 2, ...), the characters of answer
    text sent up to and including it, its type and its JSON data."""

    seq: int
    offset: int
    type: str
    data: str

    @property
    def id(self) -> str:
        """The SSE ``id:`` of this event, ``"<seq>.<offset>"``: it grows with every event, and
        lets a stream that is replayed from the cache resume at the right character."""
        return f"{self.seq}.{self.offset}"


@runtime_checkable
class EventBuffer(Protocol):
    """Where a resumable stream's events wait for readers that reconnect (short-lived).

    One producer claims a key and appends events in order, then finishes it; any number of
    readers read from any position, during the stream or after it, until the key expires
    ``ttl`` seconds after its last write. Built-in: :class:`MemoryEventBuffer`; the
    ``llm-client-redis`` plugin registers ``"redis"`` (Redis Streams) through the
    ``register_event_buffers`` hook.
    """

    async def claim(self, key: str) -> bool:
        """True if ``key`` was free and is now this caller's to produce; False if a stream
        with that key is running or finished recently."""
        ...

    async def append(self, key: str, events: Sequence[BufferedEvent]) -> None:
        """Add events (numbered in order) to a claimed stream."""
        ...

    async def finish(self, key: str) -> None:
        """Mark the stream complete: readers stop after its last event."""
        ...

    async def read(
        self, key: str, after: int, wait: float
    ) -> tuple[list[BufferedEvent], bool] | None:
        """The events numbered above ``after`` and whether the stream is finished, waiting up
        to ``wait`` seconds for a new event when there is none yet. ``None`` if ``key`` is
        unknown or expired."""
        ...

    async def aclose(self) -> None:
        """Release connections (a no-op for the memory buffer)."""
        ...


@dataclass
class _Entry:
    events: list[BufferedEvent] = field(default_factory=list)
    finished: bool = False
    expires: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryEventBuffer:
    """The default :class:`EventBuffer`: in this process, bounded in streams and events.

    :param ttl: seconds a stream is kept after its last event (default 300).
    :param max_events: events kept per stream; older ones are dropped (a reader that asks
        for them gets what is left).
    :param max_streams: streams kept at once; the oldest goes first.
    """

    def __init__(
        self,
        *,
        ttl: float = 300.0,
        max_events: int = 10_000,
        max_streams: int = 1_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for name, value in (("ttl", ttl), ("max_events", max_events), ("max_streams", max_streams)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        self.ttl = float(ttl)
        self.max_events = int(max_events)
        self.max_streams = int(max_streams)
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def _live(self, key: str) -> _Entry | None:
        now = self._clock()
        for k in [k for k, e in self._entries.items() if e.expires <= now]:
            del self._entries[k]
        return self._entries.get(key)

    async def claim(self, key: str) -> bool:
        if self._live(key) is not None:
            return False
        while len(self._entries) >= self.max_streams:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = _Entry(expires=self._clock() + self.ttl)
        return True

    async def append(self, key: str, events: Sequence[BufferedEvent]) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        entry.events.extend(events)
        if len(entry.events) > self.max_events:
            del entry.events[: len(entry.events) - self.max_events]
        entry.expires = self._clock() + self.ttl
        entry.changed.set()
        entry.changed = asyncio.Event()

    async def finish(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.finished = True
            entry.expires = self._clock() + self.ttl
            entry.changed.set()

    async def read(
        self, key: str, after: int, wait: float
    ) -> tuple[list[BufferedEvent], bool] | None:
        entry = self._live(key)
        if entry is None:
            return None
        if not entry.finished and (not entry.events or entry.events[-1].seq <= after):
            changed = entry.changed
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), wait)
        events = [e for e in entry.events if e.seq > after] if entry.events else []
        return events, entry.finished

    async def aclose(self) -> None:
        self._entries.clear()


async def collect(stream: AsyncIterator[LLMEvent]) -> LLMResult | None:
    """Drain a stream and return its final result (from ``done`` or ``error``)."""
    final: LLMResult | None = None
    async for event in stream:
        if event.result is not None:
            final = event.result
    return final
