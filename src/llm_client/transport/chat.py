"""Chat Completions: a JSON answer, or a stream of chunks, read into our result and events.

A stream must reach a ``finish_reason``; one that ends without it ends in an ``error`` event
(:class:`~llm_client.exceptions.StreamInterruptedError`), never in a truncated success.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import openai

from ..exceptions import ResponseDecodeError, StreamInterruptedError
from ..meter import meter_of
from ..result import LLMResult
from ..streaming import LLMEvent
from ..usage import Usage, parse_usage
from .errors import _kept_headers
from .results import (
    estimated_usage,
    left_early,
    meta_event,
    mid_stream_error,
    result_of,
    stream_failed,
)
from .sdk import _close_sdk_stream

if TYPE_CHECKING:
    from ..pipeline import Call

log = logging.getLogger("llm_client.transport")


def chat_result(call: Call, body: Mapping[str, Any], headers: Mapping[str, str]) -> LLMResult:
    """The result of a chat completion from its JSON body."""
    try:
        choice = body["choices"][0]
        message = choice.get("message") or {}
    except (KeyError, IndexError, TypeError) as exc:
        raise ResponseDecodeError("the chat completion has no choices") from exc
    tool_calls = tuple(
        {
            "id": tc.get("id"),
            "name": (tc.get("function") or {}).get("name"),
            "arguments": (tc.get("function") or {}).get("arguments", ""),
        }
        for tc in (message.get("tool_calls") or ())
    )
    return result_of(
        call,
        output=message.get("content"),
        usage=parse_usage(body.get("usage"), call.profile),
        tool_calls=tool_calls,
        finish_reason=choice.get("finish_reason"),
        response_id=body.get("id"),
        headers=headers,
    )


async def chat_events(call: Call, stream: Any) -> AsyncIterator[LLMEvent]:
    """Read the SDK's chunks into our events; the HTTP response is closed as soon as this
    ends, whether the stream finished, failed, or its consumer stopped reading."""
    headers = _kept_headers(stream.response.headers)
    texts: list[str] = []
    tools: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    usage: Usage | None = None
    response_id: str | None = None
    try:
        yield meta_event(call)
        try:
            while True:
                try:
                    chunk = await stream.__anext__()
                except StopAsyncIteration:
                    break
                if not isinstance(chunk, dict):
                    raise ResponseDecodeError("the API sent a stream chunk that is not an object")
                response_id = response_id or chunk.get("id")
                if chunk.get("usage") is not None:
                    usage = parse_usage(chunk["usage"], call.profile)
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    content = delta.get("content")
                    if content:
                        texts.append(content)
                        yield LLMEvent("text_delta", {"text": content})
                    refusal = delta.get("refusal")
                    if refusal:
                        yield LLMEvent("refusal_delta", {"text": refusal})
                    for tc in delta.get("tool_calls") or ():
                        index = tc.get("index", 0)
                        first = index not in tools
                        slot = tools.setdefault(index, {"id": None, "name": None, "arguments": ""})
                        fn = tc.get("function") or {}
                        if tc.get("id"):
                            slot["id"] = tc["id"]
                        if fn.get("name"):
                            slot["name"] = fn["name"]
                        arguments = fn.get("arguments") or ""
                        slot["arguments"] += arguments
                        # OpenAI sends the id and name on a call's first chunk only; every
                        # event carries the id, the first one the name (docs/streaming.md)
                        yield LLMEvent(
                            "tool_call_delta",
                            {
                                "index": index,
                                "id": slot["id"],
                                "name": slot["name"] if first else None,
                                "arguments": arguments,
                            },
                        )
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            err = mid_stream_error(call, exc)
            async for event in stream_failed(call, err, usage, texts, headers):
                yield event
            return
        if finish is None:
            err = StreamInterruptedError(
                "the stream ended before the model finished (no finish_reason): the answer"
                " is truncated"
            )
            async for event in stream_failed(call, err, usage, texts, headers):
                yield event
            return
        if usage is None:
            log.warning("stream finished without a usage chunk; usage is estimated")
            usage = estimated_usage(call, "".join(texts))
        meter = meter_of(call)
        if meter is not None:
            meter.ended(usage)
        yield LLMEvent("usage", usage.to_dict())
        result = result_of(
            call,
            output="".join(texts),
            usage=usage,
            tool_calls=tuple(tools[i] for i in sorted(tools)),
            finish_reason=finish,
            response_id=response_id,
            headers=headers,
        )
        yield LLMEvent("done", result.to_dict(), result)
    finally:
        left_early(call, usage, texts)
        await _close_sdk_stream(stream)
