"""Output lines in OpenAI's Batch output format (``BatchRequestOutput``), with the endpoint's
response body rebuilt from a normalized result."""

from __future__ import annotations

import secrets
import time
from typing import Any

from ..exceptions import APIConnectionError, APIError, LLMClientError
from ..result import LLMResult
from ..usage import Usage

__all__ = ["failure_line", "response_body", "success_line"]


def _new_line_id() -> str:
    return f"batch_req_{secrets.token_hex(12)}"


def response_body(result: LLMResult) -> dict[str, Any]:
    """The endpoint's response body, rebuilt from a normalized result."""
    u = result.usage
    created = int(time.time())
    if result.operation == "embeddings":
        vectors = result.output
        if vectors and not isinstance(vectors[0], list):
            vectors = [vectors]
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v}
                for i, v in enumerate(vectors or [])
            ],
            "model": result.model,
            "usage": {"prompt_tokens": u.input_tokens, "total_tokens": u.total_tokens},
        }
    if result.operation == "responses":
        output: list[dict[str, Any]] = []
        if result.output:
            output.append(
                {
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": result.output, "annotations": []}],
                }
            )
        for tc in result.tool_calls:
            output.append(
                {
                    "type": "function_call",
                    "call_id": tc.get("id"),
                    "name": tc.get("name"),
                    "arguments": tc.get("arguments", ""),
                    "status": "completed",
                }
            )
        incomplete = result.finish_reason not in (None, "stop", "tool_calls")
        return {
            "id": result.response_id,
            "object": "response",
            "created_at": created,
            "status": "incomplete" if incomplete else "completed",
            "incomplete_details": (
                {
                    "reason": "max_output_tokens"
                    if result.finish_reason == "length"
                    else result.finish_reason
                }
                if incomplete
                else None
            ),
            "model": result.model,
            "output": output,
            "usage": {
                "input_tokens": u.input_tokens,
                "input_tokens_details": {"cached_tokens": u.cached_input_tokens},
                "output_tokens": u.output_tokens,
                "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
                "total_tokens": u.total_tokens,
            },
        }
    message: dict[str, Any] = {"role": "assistant", "content": result.output, "refusal": None}
    if result.tool_calls:
        message["tool_calls"] = [
            {
                "id": tc.get("id"),
                "type": "function",
                "function": {"name": tc.get("name"), "arguments": tc.get("arguments", "")},
            }
            for tc in result.tool_calls
        ]
    return {
        "id": result.response_id,
        "object": "chat.completion",
        "created": created,
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": u.input_tokens,
            "completion_tokens": u.output_tokens,
            "total_tokens": u.total_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        },
    }


def _usage_fields(usage: Usage, cached: bool) -> dict[str, Any]:
    return {"usage": usage.to_dict(), "cost": usage.total_cost, "cached": cached}


def success_line(custom_id: str, result: LLMResult) -> dict[str, Any]:
    """One output line for a successful result."""
    return {
        "id": _new_line_id(),
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": result.headers.get("x-request-id"),
            "body": response_body(result),
        },
        "error": None,
        **_usage_fields(result.usage, result.cached),
    }


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def failure_line(custom_id: str, exc: BaseException) -> dict[str, Any]:
    """One output line for a failure: an HTTP error keeps its status and OpenAI's error body;
    a failure without an HTTP answer (connection, timeout, deadline) fills ``error``."""
    usage = exc.usage if isinstance(exc, LLMClientError) and isinstance(exc.usage, Usage) else None
    extra = _usage_fields(usage or Usage(), False)
    message = exc.message if isinstance(exc, LLMClientError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, APIError) and not isinstance(exc, APIConnectionError):
        status = exc.status
        return {
            "id": _new_line_id(),
            "custom_id": custom_id,
            "response": {
                "status_code": status,
                "request_id": (exc.headers or {}).get("x-request-id"),
                "body": {
                    "error": {
                        "message": message,
                        "type": _ERROR_TYPES.get(status, "server_error"),
                        "param": None,
                        "code": None,
                    }
                },
            },
            "error": None,
            **extra,
        }
    code = type(exc).__name__
    return {
        "id": _new_line_id(),
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
        **extra,
    }
