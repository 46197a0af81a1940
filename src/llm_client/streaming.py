"""Streaming events: :class:`LLMEvent`.

A streamed reply is an async iterator of events: ``meta`` (first: model, operation,
identifier, cached), ``text_delta`` (``{"text": ...}``), ``tool_call_delta``, ``usage``
(normalized usage with cost), ``error`` (``{"status", "error"}``; the stream ends after it)
and ``done`` (last, carrying the assembled :class:`~llm_client.result.LLMResult`). A streamed
agent run (:meth:`llm_client.AgentRunner.stream`) adds ``tool_call_start``, ``tool_result`` and
``turn``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from .result import LLMResult

__all__ = ["EventType", "LLMEvent", "to_sse"]

EventType: TypeAlias = Literal[
    "meta",
    "text_delta",
    "tool_call_delta",
    "usage",
    "error",
    "done",
    # streamed agent runs (llm_client.agent) add these three
    "tool_call_start",
    "tool_result",
    "turn",
]


@dataclass(frozen=True, slots=True)
class LLMEvent:
    """One streaming event. ``result`` is set on ``done`` (and on ``error``) events."""

    type: EventType
    data: Mapping[str, Any] = field(default_factory=dict)
    result: LLMResult | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "data": dict(self.data)}


def to_sse(event: LLMEvent) -> str:
    """Encode one event as a Server-Sent Events frame."""
    payload = json.dumps(dict(event.data), separators=(",", ":"), default=str)
    return f"event: {event.type}\ndata: {payload}\n\n"


async def collect(stream: AsyncIterator[LLMEvent]) -> LLMResult | None:
    """Drain a stream and return its final result (from ``done`` or ``error``)."""
    final: LLMResult | None = None
    async for event in stream:
        if event.result is not None:
            final = event.result
    return final
