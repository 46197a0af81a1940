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

The package's private modules: ``_frames`` (events as frames, the non-resumable stream),
``_resume`` (the buffers, the producer and readers of a resumable stream, the cache's replay)
and ``_responses`` (the aiohttp and Starlette responses); every public name is here.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..streaming import EventBuffer, LLMEvent, MemoryEventBuffer
from ._frames import direct, parse_last_event_id
from ._responses import SSE_HEADERS, aiohttp_response, starlette_response
from ._resume import DEFAULT_LINGER, default_event_buffer, resolve_buffer, resumable

# the registered buffers made so far, by name (tests close the ones they made)
from ._resume import _named_buffers as _named_buffers

if TYPE_CHECKING:
    from ..client import OpenAIClient

__all__ = [
    "SSE_HEADERS",
    "aiohttp_response",
    "default_event_buffer",
    "parse_last_event_id",
    "starlette_response",
    "stream_sse",
]

#: Default seconds of silence after which a ``:`` heartbeat comment is sent.
DEFAULT_HEARTBEAT = 15.0


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
        return direct(events, heartbeat, retry)
    if not isinstance(identifier, str) or not identifier:
        raise ValueError(f"identifier must be a non-empty string, got {identifier!r}")
    store = resolve_buffer(buffer, client)
    if linger == "auto":
        linger = DEFAULT_LINGER if isinstance(store, MemoryEventBuffer) else None
    assert not isinstance(linger, str)

    def start() -> AsyncIterator[LLMEvent]:
        return client.stream(messages, identifier=identifier, **kwargs)

    start()  # check the request now (it is sent only when iterated; this one never is)
    return resumable(store, "sse:" + identifier, start, after, heartbeat, retry, linger)
