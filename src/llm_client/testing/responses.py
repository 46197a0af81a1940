"""The Responses API (``POST /v1/responses``) of the fake server."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .answers import _Answer, _BadRequest, _plan, _tool_specs
from .content import _argument_pieces, _dumps, _normalize, _pieces, _short_hash
from .exchange import Exchange, _sse_event
from .faults import Fault

__all__ = ["ResponsesAPI"]


class ResponsesAPI(Exchange):
    """The Responses handler of :class:`~llm_client.testing.server.FakeOpenAI`."""

    def _responses_answer(self, body: dict[str, Any]) -> _Answer:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest("you must provide a model parameter", "model")
        conversation = body.get("input")
        if not isinstance(conversation, (str, list)):
            raise _BadRequest("'input' must be a string or an array of input items", "input")
        instructions = body.get("instructions")
        schema = None
        json_object = False
        text_config = body.get("text")
        if isinstance(text_config, dict) and isinstance(text_config.get("format"), dict):
            fmt = text_config["format"]
            if fmt.get("type") == "json_schema":
                schema = fmt.get("schema", {})
            json_object = fmt.get("type") == "json_object"
        specs = _tool_specs(body.get("tools"), flat=True)
        return self._refused(
            _plan(
                _normalize(conversation, instructions if isinstance(instructions, str) else None),
                specs=specs,
                tool_choice=body.get("tool_choice"),
                parallel=body.get("parallel_tool_calls", True) is not False,
                scripted=self._scripted(conversation, "responses", body, specs),
                flat=True,
                schema=schema,
                json_object=json_object,
                stop=None,
                max_tokens=body.get("max_output_tokens"),
            )
        )

    def _responses_usage(self, answer: _Answer) -> dict[str, Any]:
        prompt, completion, cached, reasoning = self._usage_numbers(answer)
        return {
            "input_tokens": prompt,
            "input_tokens_details": {
                "cached_tokens": cached,
                "cache_write_tokens": min(self.cache_write_tokens, prompt - cached),
            },
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion,
        }

    def _response_object(
        self,
        body: dict[str, Any],
        response_id: str,
        created: int,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        *,
        error: dict[str, Any] | None = None,
        incomplete_reason: str | None = None,
    ) -> dict[str, Any]:
        return {
            "id": response_id,
            "object": "response",
            "created_at": created,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": (
                {"reason": incomplete_reason} if incomplete_reason is not None else None
            ),
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": body["model"],
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": usage,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def _reasoning_items(self, body: dict[str, Any], answer: _Answer) -> list[dict[str, Any]]:
        """A reasoning item with a summary first, when the request asks for a summary
        (``reasoning={"summary": "auto" | "concise" | "detailed"}``), as OpenAI's reasoning
        models send it."""
        reasoning = body.get("reasoning")
        if not isinstance(reasoning, dict) or reasoning.get("summary") is None:
            return []
        what = "call a tool" if answer.tool_calls else "answer directly"
        summary = f"**Planning the reply**\n\nThe request is clear; I will {what}."
        return [
            {
                "type": "reasoning",
                "id": self._new_id("rs_"),
                "summary": [{"type": "summary_text", "text": summary}],
            }
        ]

    def _output_items(self, answer: _Answer, item_status: str) -> list[dict[str, Any]]:
        if answer.tool_calls:
            return [
                {
                    "type": "function_call",
                    "id": "fc_" + _short_hash(call.call_id),
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "status": item_status,
                }
                for call in answer.tool_calls
            ]
        return [
            {
                "type": "message",
                "id": self._new_id("msg_"),
                "role": "assistant",
                "status": item_status,
                "content": [
                    {"type": "refusal", "refusal": answer.refusal}
                    if answer.refusal is not None
                    else {"type": "output_text", "text": answer.text or "", "annotations": []}
                ],
            }
        ]

    async def _handle_responses(self, request: web.Request) -> web.StreamResponse:
        admitted = await self._admit_answer(
            request, "responses", self._responses_answer, frozenset({"stream_error"})
        )
        if isinstance(admitted, web.StreamResponse):
            return admitted
        body, answer, fault, stream = admitted
        incomplete = answer.finish_reason == "length"
        status = "incomplete" if incomplete else "completed"
        reason = "max_output_tokens" if incomplete else None
        response_id = self._new_id("resp_")
        created = int(time.time())
        output = self._reasoning_items(body, answer) + self._output_items(answer, status)
        usage = self._responses_usage(answer)
        if not stream:
            if fault is not None and fault.kind == "response_failed":
                payload = self._response_object(
                    body, response_id, created, "failed", [], None, error=self._failure(fault)
                )
                return self._json_response(_dumps(payload))
            payload = self._response_object(
                body, response_id, created, status, output, usage, incomplete_reason=reason
            )
            return await self._send_unary(request, _dumps(payload), fault)
        final = self._response_object(
            body, response_id, created, status, output, usage, incomplete_reason=reason
        )
        events = self._responses_stream_events(body, response_id, created, answer, final)
        # a stream fault always strikes before the terminal response.completed event
        cut = min(fault.after_chunks, len(events) - 1) if fault else 0
        failure = None
        if fault is not None and fault.kind == "response_failed":
            failed = self._response_object(
                body, response_id, created, "failed", [], None, error=self._failure(fault)
            )
            failure = _sse_event("response.failed", {"response": failed, "sequence_number": cut})
        elif fault is not None and fault.kind == "stream_error":
            failure = _sse_event(
                "error",
                {
                    "code": "server_error",
                    "message": fault.message or "The server had an error while streaming.",
                    "param": None,
                    "sequence_number": cut,
                },
            )
        return await self._send_stream(request, events, fault, cut, failure)

    @staticmethod
    def _failure(fault: Fault) -> dict[str, Any]:
        return {
            "code": "server_error",
            "message": fault.message or "The model failed to generate a response.",
        }

    def _responses_stream_events(
        self,
        body: dict[str, Any],
        response_id: str,
        created: int,
        answer: _Answer,
        final: dict[str, Any],
    ) -> list[bytes]:
        events: list[bytes] = []

        def emit(kind: str, data: dict[str, Any]) -> None:
            data["sequence_number"] = len(events)
            events.append(_sse_event(kind, data))

        started = self._response_object(body, response_id, created, "in_progress", [], None)
        emit("response.created", {"response": started})
        emit("response.in_progress", {"response": started})
        for index, item in enumerate(final["output"]):
            item_id = item["id"]
            if item["type"] == "function_call":
                emit(
                    "response.output_item.added",
                    {
                        "output_index": index,
                        "item": {**item, "arguments": "", "status": "in_progress"},
                    },
                )
                for piece in _argument_pieces(item["arguments"]):
                    emit(
                        "response.function_call_arguments.delta",
                        {"item_id": item_id, "output_index": index, "delta": piece},
                    )
                emit(
                    "response.function_call_arguments.done",
                    {
                        "item_id": item_id,
                        "output_index": index,
                        "name": item["name"],
                        "arguments": item["arguments"],
                    },
                )
            elif item["type"] == "reasoning":
                emit(
                    "response.output_item.added",
                    {"output_index": index, "item": {**item, "summary": []}},
                )
                for n, summary in enumerate(item["summary"]):
                    position = {"item_id": item_id, "output_index": index, "summary_index": n}
                    emit(
                        "response.reasoning_summary_part.added",
                        {**position, "part": {**summary, "text": ""}},
                    )
                    for piece in _pieces(summary["text"]):
                        emit("response.reasoning_summary_text.delta", {**position, "delta": piece})
                    emit(
                        "response.reasoning_summary_text.done",
                        {**position, "text": summary["text"]},
                    )
                    emit("response.reasoning_summary_part.done", {**position, "part": summary})
            elif item["content"][0]["type"] == "refusal":
                part = item["content"][0]
                emit(
                    "response.output_item.added",
                    {
                        "output_index": index,
                        "item": {**item, "content": [], "status": "in_progress"},
                    },
                )
                position = {"item_id": item_id, "output_index": index, "content_index": 0}
                emit("response.content_part.added", {**position, "part": {**part, "refusal": ""}})
                for piece in _pieces(part["refusal"]):
                    emit("response.refusal.delta", {**position, "delta": piece})
                emit("response.refusal.done", {**position, "refusal": part["refusal"]})
                emit("response.content_part.done", {**position, "part": part})
            else:
                part = item["content"][0]
                emit(
                    "response.output_item.added",
                    {
                        "output_index": index,
                        "item": {**item, "content": [], "status": "in_progress"},
                    },
                )
                position = {"item_id": item_id, "output_index": index, "content_index": 0}
                emit(
                    "response.content_part.added",
                    {**position, "part": {**part, "text": ""}},
                )
                for piece in _pieces(part["text"]):
                    emit("response.output_text.delta", {**position, "delta": piece, "logprobs": []})
                emit(
                    "response.output_text.done",
                    {**position, "text": part["text"], "logprobs": []},
                )
                emit("response.content_part.done", {**position, "part": part})
            emit("response.output_item.done", {"output_index": index, "item": item})
        terminal = (
            "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        )
        emit(terminal, {"response": final})
        return events
