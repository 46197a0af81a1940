"""Helpers for middleware that look at streamed replies.

A step that wraps a stream must close what it iterates as soon as its own consumer stops
(``break``, ``aclose()``, cancellation): otherwise the HTTP response below stays open, and the
model keeps generating (and billing) an answer nobody reads, until a garbage collection.
Every wrapper therefore ends in ``finally: await aclose(inner)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from ..result import LLMResult
from ..streaming import LLMEvent

__all__ = ["aclose", "is_stream", "keyed", "on_final", "replay"]


def is_stream(reply: object) -> bool:
    return not isinstance(reply, LLMResult)


async def aclose(stream: object) -> None:
    """Close ``stream`` if it can be closed (async generators and our event streams can)."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


async def on_final(
    stream: AsyncIterator[LLMEvent], callback: Callable[[LLMResult | None], None]
) -> AsyncIterator[LLMEvent]:
    """Pass events through; call ``callback`` once with the final result (or ``None`` if the
    consumer stopped early), whatever happens. ``stream`` is closed when this ends."""
    final: LLMResult | None = None
    try:
        async for event in stream:
            if event.result is not None:
                final = event.result
            yield event
    finally:
        try:
            await aclose(stream)
        finally:
            callback(final)


async def replay(result: LLMResult, *, chunk: int = 64) -> AsyncIterator[LLMEvent]:
    """A complete result as the event sequence a live stream gives."""
    yield LLMEvent(
        "meta",
        {
            "model": result.model,
            "operation": result.operation,
            "cached": result.cached,
            "identifier": result.identifier,
        },
    )
    if not result.ok:
        yield LLMEvent("error", {"status": result.status, "error": result.error}, result)
        return
    text = result.output if isinstance(result.output, str) else ""
    for i in range(0, len(text), chunk):
        yield LLMEvent("text_delta", {"text": text[i : i + chunk]})
    for i, tc in enumerate(result.tool_calls):
        yield LLMEvent("tool_call_delta", {"index": i, **dict(tc)})
    yield LLMEvent("usage", result.usage.to_dict())
    yield LLMEvent("done", result.to_dict(), result)


async def keyed(
    stream: AsyncIterator[LLMEvent], identifier: str, keep: Callable[[LLMResult], None]
) -> AsyncIterator[LLMEvent]:
    """The cache step's live stream: ``identifier`` set on the ``meta`` event and on the final
    result, which goes to ``keep`` (to be stored) before ``done`` is handed on (a consumer may
    stop reading right after it)."""
    try:
        async for event in stream:
            if event.type == "meta":
                event = LLMEvent(
                    "meta",
                    {**event.data, "identifier": identifier, "cached": False},
                    event.result,
                )
            elif event.type in ("done", "error") and event.result is not None:
                final = event.result.replace(identifier=identifier)
                keep(final)
                data = dict(event.data)
                if "identifier" in data:
                    data["identifier"] = identifier
                event = LLMEvent(event.type, data, final)
            yield event
    finally:
        await aclose(stream)
