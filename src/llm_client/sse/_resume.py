"""Resumable SSE streams: one producer per stream into an :class:`EventBuffer`, any readers.

The first request with an ``identifier`` claims the stream in the buffer and starts its
producer, a background task that runs the call to its end into the buffer; every request
(that one, and each reconnect with ``Last-Event-ID``) reads the buffered events after the ones
it has seen. A reconnect never starts the call again. Once the buffer has expired, a stream
the cache kept is replayed from the cache, from where the browser was. With ``linger``, a
producer closes its call when no reader in this process has been there for that long.

Also where buffers come from: :func:`default_event_buffer` (this process's memory buffer) and
the registered buffers by name (``"redis"`` with the Redis plugin), each made once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..middleware._stream import aclose
from ..streaming import (
    BufferedEvent,
    EventBuffer,
    LLMEvent,
    MemoryEventBuffer,
    sse_comment,
    sse_frame,
)
from ._frames import browser_json, direct, frame

if TYPE_CHECKING:
    from ..client import OpenAIClient

log = logging.getLogger("llm_client.sse")

_default_buffer: MemoryEventBuffer | None = None
_named_buffers: dict[str, EventBuffer] = {}
#: Producers of resumable streams, kept referenced while they run.
_producers: set[asyncio.Task[None]] = set()
#: Default seconds a resumable stream on the memory buffer runs on with no reader.
DEFAULT_LINGER = 60.0
#: Readers of each resumable stream in this process, and when the last one left.
_readers: dict[str, int] = {}
_left_at: dict[str, float] = {}
#: Keys of the resumable streams this process is producing.
_producing: set[str] = set()


def default_event_buffer() -> MemoryEventBuffer:
    """The process-wide in-memory buffer resumable streams use unless told otherwise."""
    global _default_buffer
    if _default_buffer is None:
        _default_buffer = MemoryEventBuffer()
    return _default_buffer


def resolve_buffer(buffer: EventBuffer | str | None, client: OpenAIClient) -> EventBuffer:
    """The buffer ``stream_sse(buffer=...)`` names: the default, a registered one, or itself."""
    if buffer is None or buffer == "memory":
        return default_event_buffer()
    if isinstance(buffer, str):
        found = _named_buffers.get(buffer)
        if found is None:
            from ..plugins import event_buffer

            found = event_buffer(buffer, plugin_manager=getattr(client, "plugin_manager", None))
            _named_buffers[buffer] = found
        return found
    if not isinstance(buffer, EventBuffer):
        raise TypeError(
            "buffer must be an EventBuffer, a registered buffer name or None,"
            f" got {type(buffer).__name__}"
        )
    return buffer


async def _produce(
    store: EventBuffer, key: str, events: AsyncIterator[LLMEvent], linger: float | None
) -> None:
    """Run one resumable stream to its end into ``store``; with ``linger``, close it once no
    reader in this process has been there for that long."""
    pump = asyncio.ensure_future(_pump(store, key, events))
    _producing.add(key)
    try:
        if linger is None:
            await pump
            return
        since = time.monotonic()
        while not pump.done():
            await asyncio.wait((pump,), timeout=min(1.0, linger / 4))
            if pump.done() or _readers.get(key, 0) > 0:
                continue
            if time.monotonic() - max(since, _left_at.get(key, since)) >= linger:
                log.info("resumable stream %s: no reader for %gs, closing it", key, linger)
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
    finally:
        _producing.discard(key)
        _left_at.pop(key, None)


async def _pump(store: EventBuffer, key: str, events: AsyncIterator[LLMEvent]) -> None:
    seq = offset = 0
    try:
        async for event in events:
            seq += 1
            if event.type == "text_delta":
                offset += len(event.data.get("text", ""))
            await store.append(key, [BufferedEvent(seq, offset, event.type, browser_json(event))])
    except asyncio.CancelledError:  # every reader left (linger): say so to a late reconnect
        data = json.dumps({"status": 499, "error": "every reader left: the stream was closed"})
        with contextlib.suppress(Exception):
            await store.append(key, [BufferedEvent(seq + 1, offset, "error", data)])
        raise
    except Exception as exc:  # the stream raised or the buffer failed: readers get an error
        status = getattr(exc, "status", 500)
        log.warning("resumable stream %s failed: %s: %s", key, type(exc).__name__, exc)
        data = json.dumps({"status": status if isinstance(status, int) else 500, "error": str(exc)})
        with contextlib.suppress(Exception):
            await store.append(key, [BufferedEvent(seq + 1, offset, "error", data)])
    finally:
        await aclose(events)
        try:
            await store.finish(key)
        except Exception as exc:
            log.warning("resumable stream %s: could not finish it in the buffer: %s", key, exc)


async def resumable(
    store: EventBuffer,
    key: str,
    start: Any,
    after: tuple[int, int],
    heartbeat: float | None,
    retry: int | None,
    linger: float | None,
) -> AsyncIterator[str]:
    """One reader's frames of the stream under ``key``, from ``after`` (``(seq, offset)``);
    the first reader (``after`` is ``(0, 0)`` and the claim succeeds) starts the producer."""
    if retry is not None:
        yield sse_frame(retry=retry)
    seq, offset = after
    try:
        # a reconnect (Last-Event-ID) only ever reads: it never starts the call again
        claimed = seq == 0 and await store.claim(key)
    except Exception as exc:  # a broken buffer never fails the request: stream directly
        log.warning("event buffer unavailable (%s): streaming without resume", exc)
        async for item in direct(start(), heartbeat, None):
            yield item
        return
    if claimed:
        task = asyncio.ensure_future(_produce(store, key, start(), linger))
        _producers.add(task)
        task.add_done_callback(_producers.discard)
    _readers[key] = _readers.get(key, 0) + 1
    try:
        async for item in _follow(store, key, start, seq, offset, heartbeat):
            yield item
    finally:
        _readers[key] -= 1
        if not _readers[key]:
            del _readers[key]
            if key in _producing:  # only a producer here looks at it (and removes it)
                _left_at[key] = time.monotonic()


async def _follow(
    store: EventBuffer,
    key: str,
    start: Any,
    seq: int,
    offset: int,
    heartbeat: float | None,
) -> AsyncIterator[str]:
    """The buffered events after ``seq``, as they come, with heartbeats."""
    wait = heartbeat if heartbeat is not None else 3600.0
    while True:
        try:
            got = await store.read(key, seq, wait)
        except Exception as exc:  # the buffer broke: what the cache (or the model) has
            log.warning("event buffer unavailable (%s): answering without it", exc)
            got = None
        if got is None:  # expired (or never there): replay from the cache, from `offset`
            async for item in _from_cache(start(), seq, offset):
                yield item
            return
        events, finished = got
        for event in events:
            seq = event.seq
            yield frame(event)
        if finished and not events:
            return
        if not events:
            yield sse_comment()


async def _from_cache(events: AsyncIterator[LLMEvent], seq: int, offset: int) -> AsyncIterator[str]:
    """A finished stream whose buffer expired: the cache's replay, the text from ``offset``.

    If the call was not cached after all (the first event says ``cached: false``), the stream
    ends with a 410 ``error`` event instead of a second answer spliced onto the first.
    """
    sent = 0
    try:
        async for event in events:
            if event.type == "meta" and not event.data.get("cached") and seq > 0:
                seq += 1
                data = json.dumps(
                    {"status": 410, "error": "the stream expired and was not cached: ask again"}
                )
                yield frame(BufferedEvent(seq, offset, "error", data))
                return
            if event.type == "meta" and seq > 0:
                continue  # the browser has seen it
            if event.type == "text_delta":
                text = str(event.data.get("text", ""))
                start, sent = sent, sent + len(text)
                if sent <= offset:
                    continue
                text = text[max(0, offset - start) :]
                event = LLMEvent("text_delta", {**event.data, "text": text})
            seq += 1
            yield frame(BufferedEvent(seq, max(offset, sent), event.type, browser_json(event)))
    finally:
        await aclose(events)
