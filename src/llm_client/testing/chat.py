"""The Chat Completions API (``POST /v1/chat/completions``) of the fake server."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .answers import _Answer, _BadRequest, _plan, _tool_specs
from .content import _argument_pieces, _dumps, _normalize, _pieces
from .exchange import Exchange, _error_body, _status_error_fields

__all__ = ["ChatAPI"]


class ChatAPI(Exchange):
    """The chat handler of :class:`~llm_client.testing.server.FakeOpenAI`."""

    def _chat_answer(self, body: dict[str, Any]) -> _Answer:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest("you must provide a model parameter", "model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("'messages' must be a non-empty array", "messages")
        n = body.get("n")
        if n is not None and n != 1:
            raise _BadRequest("FakeOpenAI supports only n=1", "n")
        response_format = body.get("response_format")
        schema = None
        json_object = False
        if isinstance(response_format, dict):
            if response_format.get("type") == "json_schema":
                spec = response_format.get("json_schema")
                schema = spec.get("schema", {}) if isinstance(spec, dict) else {}
            json_object = response_format.get("type") == "json_object"
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        specs = _tool_specs(body.get("tools"), flat=False)
        return self._refused(
            _plan(
                _normalize(messages),
                specs=specs,
                tool_choice=body.get("tool_choice"),
                parallel=body.get("parallel_tool_calls", True) is not False,
                scripted=self._scripted(messages, "chat", body, specs),
                flat=False,
                schema=schema,
                json_object=json_object,
                stop=body.get("stop"),
                max_tokens=max_tokens,
            )
        )

    def _chat_usage(self, answer: _Answer) -> dict[str, Any]:
        prompt, completion, cached, reasoning = self._usage_numbers(answer)
        details: dict[str, int] = {"cached_tokens": cached, "audio_tokens": 0}
        if self.cache_write_tokens:
            details["cache_write_tokens"] = min(self.cache_write_tokens, prompt - cached)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": details,
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        # Not streamed, a fault meant for a stream becomes a plain error status.
        admitted = await self._admit_answer(
            request, "chat", self._chat_answer, frozenset({"response_failed", "stream_error"})
        )
        if isinstance(admitted, web.StreamResponse):
            return admitted
        body, answer, fault, stream = admitted
        model = body["model"]
        completion_id = self._new_id("chatcmpl-")
        created = int(time.time())
        if not stream:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": answer.text,
                "refusal": answer.refusal,
                "annotations": [],
            }
            if answer.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": call.call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in answer.tool_calls
                ]
            payload = {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": answer.finish_reason,
                    }
                ],
                "usage": self._chat_usage(answer),
                "service_tier": "default",
                "system_fingerprint": "fp_fakeopenai",
            }
            return await self._send_unary(request, _dumps(payload), fault)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        events = self._chat_stream_events(answer, completion_id, created, model, include_usage)
        # a stream fault always strikes before the finish_reason chunk
        cut = min(fault.after_chunks, len(events) - 2 - include_usage) if fault else 0
        failure = None
        if fault is not None and fault.kind in ("response_failed", "stream_error"):
            type_, code, default_message = _status_error_fields(fault.status)
            failure = b"data: " + _error_body(fault.message or default_message, type_, None, code)
            failure += b"\n\n"
        return await self._send_stream(request, events, fault, cut, failure)

    def _chat_stream_events(
        self, answer: _Answer, completion_id: str, created: int, model: str, include_usage: bool
    ) -> list[bytes]:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            obj: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fakeopenai",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if include_usage:
                obj["usage"] = None
            return b"data: " + _dumps(obj) + b"\n\n"

        if answer.tool_calls:
            events = [chunk({"role": "assistant", "content": None, "refusal": None})]
            for index, call in enumerate(answer.tool_calls):
                events.append(
                    chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": call.call_id,
                                    "type": "function",
                                    "function": {"name": call.name, "arguments": ""},
                                }
                            ]
                        }
                    )
                )
                for piece in _argument_pieces(call.arguments):
                    events.append(
                        chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                    )
        elif answer.refusal is not None:
            events = [chunk({"role": "assistant", "content": None, "refusal": ""})]
            events.extend(chunk({"refusal": piece}) for piece in _pieces(answer.refusal))
        else:
            events = [chunk({"role": "assistant", "content": "", "refusal": None})]
            events.extend(chunk({"content": piece}) for piece in _pieces(answer.text or ""))
        events.append(chunk({}, answer.finish_reason))
        if include_usage:
            usage_chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fakeopenai",
                "choices": [],
                "usage": self._chat_usage(answer),
            }
            events.append(b"data: " + _dumps(usage_chunk) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return events
