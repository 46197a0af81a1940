"""The Responses API: a JSON answer, or a stream of typed events, read into our result and events.

A stream must reach ``response.completed`` (or ``response.incomplete``); one that ends without it
ends in an ``error`` event, never in a truncated success.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import openai

from ..exceptions import (
    LLMClientError,
    ResponseDecodeError,
    StreamInterruptedError,
    error_for_status,
)
from ..meter import meter_of
from ..result import LLMResult
from ..streaming import LLMEvent
from ..usage import Usage, parse_usage
from .errors import _error_message, _kept_headers
from .results import left_early, meta_event, mid_stream_error, result_of, stream_failed
from .sdk import _close_sdk_stream

if TYPE_CHECKING:
    from ..pipeline import Call

log = logging.getLogger("llm_client.transport")


def responses_result(call: Call, body: Mapping[str, Any], headers: Mapping[str, str]) -> LLMResult:
    status = body.get("status")
    usage = parse_usage(body.get("usage"), call.profile)
    if status == "failed":
        err_body = body.get("error") or {}
        err = error_for_status(500, _error_message({"error": err_body}, "the response failed"))
        err.usage = usage
        raise err
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for item in body.get("output") or ():
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(str(part.get("text", "")))
        elif kind == "function_call":
            tool_calls.append(
                {
                    "id": item.get("call_id") or item.get("id"),
                    "name": item.get("name"),
                    "arguments": item.get("arguments", ""),
                }
            )
    finish = "tool_calls" if tool_calls else "stop"
    if status == "incomplete":
        reason = (body.get("incomplete_details") or {}).get("reason") or "unknown"
        finish = "length" if reason == "max_output_tokens" else str(reason)
    return result_of(
        call,
        output="".join(texts),
        usage=usage,
        tool_calls=tuple(tool_calls),
        finish_reason=finish,
        response_id=body.get("id"),
        headers=headers,
    )


async def responses_events(call: Call, stream: Any) -> AsyncIterator[LLMEvent]:
    """As :func:`~llm_client.transport.chat.chat_events`, for the Responses API's typed events."""
    headers = _kept_headers(stream.response.headers)
    texts: list[str] = []
    #: output_index -> [tool index, call_id, name not yet sent] of each function call
    calls: dict[int, list[Any]] = {}
    final: Mapping[str, Any] | None = None
    failure: LLMClientError | None = None
    usage: Usage | None = None
    try:
        yield meta_event(call)
        try:
            while True:
                try:
                    event = await stream.__anext__()
                except StopAsyncIteration:
                    break
                if not isinstance(event, dict):
                    raise ResponseDecodeError("the API sent a stream event that is not an object")
                kind = event.get("type", "")
                if kind == "response.output_text.delta":
                    texts.append(event["delta"])
                    yield LLMEvent("text_delta", {"text": event["delta"]})
                elif kind == "response.output_item.added":
                    # a function call's name and call_id come only here (the argument
                    # deltas carry the item id fc_...): see openai-python's
                    # types/responses/response_output_item_added_event.py
                    item = event.get("item") or {}
                    if item.get("type") == "function_call":
                        calls[event["output_index"]] = [
                            len(calls),
                            item.get("call_id") or item.get("id"),
                            item.get("name"),
                        ]
                elif kind == "response.function_call_arguments.delta":
                    position = event.get("output_index", 0)
                    slot = calls.get(position)
                    if slot is None:  # no output_item.added seen: fall back to the item id
                        slot = calls[position] = [len(calls), event.get("item_id"), None]
                    name, slot[2] = slot[2], None  # the name goes on the first delta only
                    yield LLMEvent(
                        "tool_call_delta",
                        {
                            "index": slot[0],
                            "id": slot[1],
                            "name": name,
                            "arguments": event.get("delta", ""),
                        },
                    )
                elif kind == "response.refusal.delta":
                    yield LLMEvent("refusal_delta", {"text": event["delta"]})
                elif kind == "response.reasoning_summary_text.delta":
                    yield LLMEvent(
                        "reasoning_delta",
                        {"text": event["delta"], "index": event.get("summary_index", 0)},
                    )
                elif kind in ("response.completed", "response.incomplete"):
                    final = event.get("response") or {}
                    break
                elif kind == "response.failed":
                    body = event.get("response") or {}
                    usage = parse_usage(body.get("usage"), call.profile)
                    failure = error_for_status(
                        500,
                        _error_message({"error": body.get("error") or {}}, "the response failed"),
                    )
                    break
                elif kind == "error":
                    failure = error_for_status(
                        500,
                        f"the API reported an error in the stream: {event.get('message', '')}",
                    )
                    break
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            failure = mid_stream_error(call, exc)
        if failure is None and final is None:
            failure = StreamInterruptedError(
                "the stream ended before response.completed: the answer is truncated"
            )
        if failure is not None:
            async for ev in stream_failed(call, failure, usage, texts, headers):
                yield ev
            return
        assert final is not None
        result = responses_result(call, final, headers)
        if result.finish_reason not in ("stop", "tool_calls"):
            log.info("response incomplete: %s", result.finish_reason)
        usage = result.usage
        meter = meter_of(call)
        if meter is not None:
            meter.ended(usage)
        yield LLMEvent("usage", usage.to_dict())
        yield LLMEvent("done", result.to_dict(), result)
    finally:
        left_early(call, usage, texts)
        await _close_sdk_stream(stream)
