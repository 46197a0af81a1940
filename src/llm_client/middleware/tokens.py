"""Token counting: once per call, before retry and the limiter.

Why here: inside the cache (a hit needs no count) and outside retry (every attempt sends the
same input, so it is counted once). The count does two jobs: a request whose input is larger
than the model's input limit fails here, before anything is sent, with both numbers; and the
limiter gets an estimate (input + the output the call may produce) to reserve.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..exceptions import ContextLengthExceededError
from ..pipeline import Call, Next, Reply
from ..tokens import count_tokens

__all__ = ["TokenCounting", "estimate_output_tokens"]

#: Output reserved for a call that names no max token count (reconciled with real usage).
DEFAULT_EXPECTED_OUTPUT = 1024


def estimate_output_tokens(params: Mapping[str, Any], max_output: int) -> int:
    for name in ("max_output_tokens", "max_completion_tokens", "max_tokens"):
        value = params.get(name)
        if isinstance(value, int) and value > 0:
            return min(value, max_output) if max_output else value
    return min(DEFAULT_EXPECTED_OUTPUT, max_output) if max_output else 0


def _input_of(call: Call) -> Any:
    params = call.params
    if call.operation == "chat":
        return params.get("messages") or []
    if call.operation == "responses":
        value = params.get("input")
        instructions = params.get("instructions")
        if isinstance(instructions, str) and instructions:
            if isinstance(value, str):
                return [
                    {"role": "developer", "content": instructions},
                    {"role": "user", "content": value},
                ]
            return [{"role": "developer", "content": instructions}, *(value or [])]
        if isinstance(value, list) and not all(isinstance(v, Mapping) for v in value):
            return [str(v) for v in value]
        return value or ""
    return params.get("input") or ""


class TokenCounting:
    """Count input tokens into ``call.context``: ``input_tokens`` and ``reserve_tokens``."""

    async def __call__(self, call: Call, next: Next, /) -> Reply:
        if "input_tokens" in call.context:
            return await next(call)
        profile = call.profile
        tools = call.params.get("tools") if call.operation != "embeddings" else None
        n = count_tokens(_input_of(call), model=profile, tools=tools)
        if n > profile.max_input:
            # Bad input, raised (never a result: the client re-raises it) before anything is sent.
            field = "messages" if call.operation == "chat" else "input"
            raise ContextLengthExceededError(
                f"{field} is too long: {n} tokens (tools and instructions included), but"
                f" {profile.key} accepts at most {profile.max_input} input tokens; shorten it"
                " or use a model with a larger input limit"
            )
        reserve = n
        if call.operation != "embeddings":
            reserve += estimate_output_tokens(call.params, profile.max_output)
        context = {**call.context, "input_tokens": n, "reserve_tokens": reserve}
        return await next(call.replace(context=context))
