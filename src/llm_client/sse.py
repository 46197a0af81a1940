"""Server-Sent Events for browsers: :func:`stream_sse` and ready web responses.

:func:`stream_sse` turns a client's stream into SSE frames (see :func:`~llm_client.streaming
.sse_frame`): each event is a frame with ``event:`` (the event type), ``id:`` and its JSON data;
``:`` comment frames keep the connection open while the model is silent. With an
``identifier`` the stream is *resumable*: its events go through a short-lived
:class:`~llm_client.streaming.EventBuffer`, and a browser that reconnects with
``Last-Event-ID`` gets the events it missed, during the stream or after it, without a second
model call. After the buffer expired, a stream the cache kept is replayed from the cache from
where the browser was.

:func:`aiohttp_response` and :func:`starlette_response` wrap the frames in a streaming
response with the headers SSE needs. When the HTTP client goes away, the frames are closed, so
a non-resumable stream closes its upstream call at once (and the rate limiter settles what the
call used). A resumable stream goes on in the background so that a reconnect finds it, until no
reader has been there for ``linger`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from .middleware._stream import aclose
from .streaming import (
    BufferedEvent,
    EventBuffer,
    LLMEvent,
    MemoryEventBuffer,
    event_json,
    sse_comment,
    sse_frame,
)

if TYPE_CHECKING:
    from aiohttp import web

    from .client import OpenAIClient

__all__ = [
    "SSE_HEADERS",
    "aiohttp_response",
    "default_event_buffer",
    "parse_last_event_id",
    "starlette_response",
    "stream_sse",
]

log = logging.getLogger("llm_client.sse")

#: The headers of an SSE response: the media type, no caching, and no buffering in nginx
#: (``X-Accel-Buffering: no``) so that every frame reaches the browser as it is written.
SSE_HEADERS: Mapping[str, str] = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}

#: Default seconds of silence after which a ``:`` heartbeat comment is sent.
DEFAULT_HEARTBEAT = 15.0

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


def _resolve_buffer(buffer: EventBuffer | str | None, client: OpenAIClient) -> EventBuffer:
    if buffer is None or buffer == "memory":
        return default_event_buffer()
    if isinstance(buffer, str):
        found = _named_buffers.get(buffer)
        if found is None:
            from .plugins import event_buffer

            found = event_buffer(buffer, plugin_manager=getattr(client, "plugin_manager", None))
            _named_buffers[buffer] = found
        return found
    if not isinstance(buffer, EventBuffer):
        raise TypeError(
            "buffer must be an EventBuffer, a registered buffer name or None,"
            f" got {type(buffer).__name__}"
        )
    return buffer


def parse_last_event_id(value: str | None) -> tuple[int, int]:
    """``(seq, offset)`` from a ``Last-Event-ID`` this module sent (``"<seq>.<offset>"``);
    ``(0, 0)`` for none or one it did not send (the stream is then sent from its start)."""
    if not value:
        return 0, 0
    seq, _, offset = value.strip().partition(".")
    if seq.isdigit() and (offset.isdigit() or not offset):
        return int(seq), int(offset or 0)
    return 0, 0


def _check(heartbeat: float | None, retry: int | None) -> None:
    if heartbeat is not None and (
        isinstance(heartbeat, bool)
        or not isinstance(heartbeat, (int, float))
        or not math.isfinite(heartbeat)
        or heartbeat <= 0
    ):
        raise ValueError(
            f"heartbeat must be a positive number of seconds or None, got {heartbeat!r}"
        )
    if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < 0):
        raise ValueError(f"retry must be a non-negative integer of milliseconds, got {retry!r}")


def stream_sse(
    client: OpenAIClient,
    messages: Any = None,
    *,
    identifier: str | None = None,
    last_event_id: str | None = None,
    heartbeat: float | None = DEFAULT_HEARTBEAT,
    retry: int | None = None,
    buffer: EventBuffer | str | None = None,
    linger: float | str | None = "auto",
    **kwargs: Any,
) -> AsyncIterator[str]:
    """``client.stream(messages, **kwargs)`` as SSE frames (strings to write as UTF-8).

    :param identifier: makes the stream resumable under this key (it is also the cache's
        identifier, as in :meth:`OpenAIClient.stream`). Without it a disconnect ends the call.
    :param last_event_id: the ``Last-Event-ID`` header of a reconnecting browser: only the
        events after it are sent.
    :param heartbeat: seconds of silence before a ``:`` comment frame (``None``: never).
    :param retry: the browser's reconnection delay in milliseconds, sent first.
    :param buffer: an :class:`EventBuffer`, or the name of a registered one (``"memory"``,
        ``"redis"`` with the Redis plugin); default: this process's memory buffer.
    :param linger: seconds a resumable stream goes on with no reader in this process before
        its upstream call is closed (then a reconnect gets the events so far and an ``error``
        event, 499). ``None``: always run to the end (needed when readers may reconnect to
        another process, e.g. with the Redis buffer). ``"auto"`` (default): 60 s with the
        memory buffer, ``None`` with any other.

    Bad arguments raise here, before anything is sent.
    """
    _check(heartbeat, retry)
    if (
        linger != "auto"
        and linger is not None
        and (
            isinstance(linger, (bool, str))
            or not isinstance(linger, (int, float))
            or not math.isfinite(linger)
            or linger <= 0
        )
    ):
        raise ValueError(
            f"linger must be a positive number of seconds, None or 'auto', got {linger!r}"
        )
    after = parse_last_event_id(last_event_id)
    if identifier is None:
        events = client.stream(messages, **kwargs)
        return _direct(events, heartbeat, retry)
    if not isinstance(identifier, str) or not identifier:
        raise ValueError(f"identifier must be a non-empty string, got {identifier!r}")
    store = _resolve_buffer(buffer, client)
    if linger == "auto":
        linger = DEFAULT_LINGER if isinstance(store, MemoryEventBuffer) else None
    assert not isinstance(linger, str)

    def start() -> AsyncIterator[LLMEvent]:
        return client.stream(messages, identifier=identifier, **kwargs)

    start()  # check the request now (it is sent only when iterated; this one never is)
    return _resumable(store, "sse:" + identifier, start, after, heartbeat, retry, linger)


def _browser_json(event: LLMEvent) -> str:
    """The event's data for a browser: a ``done`` event without the request's ``params`` (the
    system prompt and tools are the server's business; the page has its own prompt)."""
    if event.type == "done" and "params" in event.data:
        return json.dumps(
            {k: v for k, v in event.data.items() if k != "params"},
            separators=(",", ":"),
            default=str,
        )
    return event_json(event)


def _frame(event: BufferedEvent) -> str:
    return sse_frame(event.data, event=event.type, id=event.id)


async def _direct(
    events: AsyncIterator[LLMEvent], heartbeat: float | None, retry: int | None
) -> AsyncIterator[str]:
    """The events as frames, with heartbeats; closing this closes the call at once."""
    seq = offset = 0
    pending: asyncio.Future[LLMEvent] | None = None
    try:
        if retry is not None:
            yield sse_frame(retry=retry)
        while True:
            if pending is None:
                pending = asyncio.ensure_future(events.__anext__())
            done, _ = await asyncio.wait((pending,), timeout=heartbeat)
            if not done:
                yield sse_comment()
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                break
            finally:
                if pending.done():
                    pending = None
            seq += 1
            if event.type == "text_delta":
                offset += len(event.data.get("text", ""))
            yield _frame(BufferedEvent(seq, offset, event.type, _browser_json(event)))
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await pending
        await aclose(events)


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
            await store.append(key, [BufferedEvent(seq, offset, event.type, _browser_json(event))])
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


async def _resumable(
    store: EventBuffer,
    key: str,
    start: Any,
    after: tuple[int, int],
    heartbeat: float | None,
    retry: int | None,
    linger: float | None,
) -> AsyncIterator[str]:
    if retry is not None:
        yield sse_frame(retry=retry)
    seq, offset = after
    try:
        # a reconnect (Last-Event-ID) only ever reads: it never starts the call again
        claimed = seq == 0 and await store.claim(key)
    except Exception as exc:  # a broken buffer never fails the request: stream directly
        log.warning("event buffer unavailable (%s): streaming without resume", exc)
        async for frame in _direct(start(), heartbeat, None):
            yield frame
        return
    if claimed:
        task = asyncio.ensure_future(_produce(store, key, start(), linger))
        _producers.add(task)
        task.add_done_callback(_producers.discard)
    _readers[key] = _readers.get(key, 0) + 1
    try:
        async for frame in _follow(store, key, start, seq, offset, heartbeat):
            yield frame
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
            async for frame in _from_cache(start(), seq, offset):
                yield frame
            return
        events, finished = got
        for event in events:
            seq = event.seq
            yield _frame(event)
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
                yield _frame(BufferedEvent(seq, offset, "error", data))
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
            yield _frame(BufferedEvent(seq, max(offset, sent), event.type, _browser_json(event)))
    finally:
        await aclose(events)


# --- web responses ----------------------------------------------------------------------------


async def aiohttp_response(
    request: web.Request,
    frames: AsyncIterator[str],
    *,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """Write ``frames`` (from :func:`stream_sse`) as an aiohttp streaming response.

    When the browser goes away, the next write fails (a heartbeat at the latest) or aiohttp
    cancels the handler; either way the frames are closed, which closes the upstream call of a
    non-resumable stream at once.
    """
    from aiohttp import web

    response = web.StreamResponse(headers={**SSE_HEADERS, **(headers or {})})
    try:
        await response.prepare(request)
        async for frame in frames:
            await response.write(frame.encode())
    except (ConnectionResetError, asyncio.CancelledError):
        log.debug("SSE client went away")
        raise
    finally:
        await aclose(frames)
    return response


def starlette_response(
    frames: AsyncIterator[str], *, headers: Mapping[str, str] | None = None
) -> Any:
    """``frames`` as a Starlette (and FastAPI) ``StreamingResponse`` with the SSE headers.

    Starlette is an optional dependency (``pip install llm-client[starlette]``), imported only
    here. Starlette cancels the body's iteration when the client disconnects, which closes the
    frames and with them a non-resumable upstream call.
    """
    try:
        from starlette.responses import StreamingResponse
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "starlette_response needs Starlette: pip install 'llm-client[starlette]'"
        ) from exc
    merged = {**SSE_HEADERS, **(headers or {})}
    merged.pop("Content-Type")
    return StreamingResponse(
        _closing(frames), media_type="text/event-stream; charset=utf-8", headers=merged
    )


async def _closing(frames: AsyncIterator[str]) -> AsyncIterator[str]:
    try:
        async for frame in frames:
            yield frame
    finally:
        await aclose(frames)
