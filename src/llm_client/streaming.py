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

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from .result import LLMResult

__all__ = ["EVENT_FIELDS", "EventType", "LLMEvent", "to_sse"]

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
