"""The SDK's HTTP side: per-request timeouts, closing streams, and closing an SDK client when the
event loop it ran on shuts down."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping
from typing import TYPE_CHECKING, Any

import httpx2
import openai

from ..streaming import LLMEvent

if TYPE_CHECKING:
    from ..pipeline import Call


def _timeout_option(options: Mapping[str, Any]) -> dict[str, Any]:
    return {"timeout": options["timeout"]} if "timeout" in options else {}


#: The SDK's overall per-request timeout when the call has no deadline (openai.DEFAULT_TIMEOUT).
_SDK_TIMEOUT = 600.0


def _sdk_timeout(call: Call, now: float) -> float | httpx2.Timeout | None:
    """The SDK's per-request timeout: the time left before the call's deadline, and for a
    stream with ``stream_idle_timeout`` the longest wait for the next bytes (the HTTP read
    timeout, which restarts with every chunk that arrives). ``now`` is the time on the
    client's clock, the clock the deadline was set on."""
    remaining = None
    if call.deadline is not None:
        remaining = max(0.001, call.deadline - now)
    idle = call.stream_idle_timeout if call.stream else None
    if idle is None:
        return remaining
    total = remaining if remaining is not None else _SDK_TIMEOUT
    return httpx2.Timeout(total, read=min(idle, total))


async def _close_sdk_stream(stream: Any) -> None:
    """Close an SDK stream's HTTP response (the connection goes at once), then its iterator."""
    try:
        await stream.close()
    finally:
        iterator = getattr(stream, "_iterator", None)  # AsyncStream's generator: finish it too
        if iterator is not None:
            await iterator.aclose()


class _SDKEvents:
    """The transport's events over one SDK stream.

    ``aclose()`` closes the HTTP response even if nobody ever iterated (an async generator
    that never started runs no ``finally``).
    """

    __slots__ = ("_events", "_stream")

    def __init__(self, events: AsyncIterator[LLMEvent], stream: Any) -> None:
        self._events = events
        self._stream = stream

    def __aiter__(self) -> _SDKEvents:
        return self

    def __anext__(self) -> Awaitable[LLMEvent]:
        return self._events.__anext__()

    async def aclose(self) -> None:
        try:
            await self._events.aclose()  # type: ignore[attr-defined]
        finally:
            await _close_sdk_stream(self._stream)


async def _close_when_loop_ends(sdk: openai.AsyncOpenAI) -> AsyncGenerator[None, None]:
    """Suspended on its first ``yield`` for as long as the SDK client is in use.

    The SDK's aiohttp client opens an ``aiohttp.ClientSession`` bound to the event loop of the
    first request, and nothing closes it unless someone awaits ``close()``: a client that is
    simply dropped leaves the session to be garbage collected, and aiohttp then reports
    "Unclosed client session" / "Unclosed connector". An async generator that has started is
    tracked by its event loop, which closes it in ``loop.shutdown_asyncgens()`` (the step
    ``asyncio.run`` and ``asyncio.Runner`` take before closing the loop) and, if it is dropped
    while the loop runs, through the loop's async-generator finalizer. Either way the
    ``finally`` below runs on that loop and closes the session cleanly.
    """
    try:
        yield
    finally:
        await sdk.close()
