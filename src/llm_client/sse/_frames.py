"""Events as the SSE frames a browser reads, and the non-resumable stream of them.

Each event becomes a frame with ``event:`` (its type), ``id:`` (``"<seq>.<offset>"``: the
event's number and how much text came before it, what :func:`parse_last_event_id` reads back)
and its JSON data, minus what the browser has no business seeing. :func:`direct` is the whole
stream of a call without an ``identifier``: frames as events come, ``:`` heartbeats while the
model is silent, and the call closed as soon as the frames are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from ..middleware._stream import aclose
from ..streaming import BufferedEvent, LLMEvent, event_json, sse_comment, sse_frame


def parse_last_event_id(value: str | None) -> tuple[int, int]:
    """``(seq, offset)`` from a ``Last-Event-ID`` this module sent (``"<seq>.<offset>"``);
    ``(0, 0)`` for none or one it did not send (the stream is then sent from its start)."""
    if not value:
        return 0, 0
    seq, _, offset = value.strip().partition(".")
    if seq.isdigit() and (offset.isdigit() or not offset):
        return int(seq), int(offset or 0)
    return 0, 0


def browser_json(event: LLMEvent) -> str:
    """The event's data for a browser: a ``done`` event without the request's ``params`` (the
    system prompt and tools are the server's business; the page has its own prompt)."""
    if event.type == "done" and "params" in event.data:
        return json.dumps(
            {k: v for k, v in event.data.items() if k != "params"},
            separators=(",", ":"),
            default=str,
        )
    return event_json(event)


def frame(event: BufferedEvent) -> str:
    """One buffered event as an SSE frame."""
    return sse_frame(event.data, event=event.type, id=event.id)


async def direct(
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
            yield frame(BufferedEvent(seq, offset, event.type, browser_json(event)))
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await pending
        await aclose(events)
