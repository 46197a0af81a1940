"""Token counting: once per call, before retry and the limiter.

Why here: inside the cache (a hit needs no count) and outside retry (every attempt sends the
same input, so it is counted once). The count does two jobs: a request whose input is larger
than the model's input limit fails here, before anything is sent, with both numbers; and the
limiter gets what OpenAI will count against the per-minute token limit to reserve: the input
estimated from its characters, plus the output cap the call asks for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..exceptions import ContextLengthExceededError
from ..pipeline import Call, Next, Reply
from ..tokens import count_tokens

__all__ = [
    "CHARS_PER_TOKEN",
    "TokenCounting",
    "estimate_input_tokens",
    "estimate_output_tokens",
    "input_characters",
]

#: Output reserved for a call that names no max token count.
DEFAULT_EXPECTED_OUTPUT = 1024

#: OpenAI's rule of thumb, "one token is about 4 characters of English text"; its rate
#: limiter estimates a request's input tokens from the character count the same way.
CHARS_PER_TOKEN = 4


def input_characters(value: Any) -> int:
    """The characters of text in a request's input: message contents (strings or text
    parts), a Responses input, embedding inputs. Structure (roles, keys) is not counted."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return CHARS_PER_TOKEN  # a token id (embeddings accept token arrays)
    if isinstance(value, Mapping):
        total = 0
        content = value.get("content")
        if content is not None:
            total += input_characters(content)
        text = value.get("text")
        if isinstance(text, str):
            total += len(text)
        return total
    if isinstance(value, (list, tuple)):
        return sum(input_characters(item) for item in value)
    return 0


def estimate_input_tokens(value: Any) -> int:
    """Input tokens as OpenAI's rate limiter estimates them: characters / 4, rounded up."""
    return -(-input_characters(value) // CHARS_PER_TOKEN)


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
        # What OpenAI counts against tokens-per-minute when the request arrives: the input
        # estimated from its characters plus the output cap (docs/rate-limiting.md).
        reserve = estimate_input_tokens(_input_of(call))
        if call.operation != "embeddings":
            reserve += estimate_output_tokens(call.params, profile.max_output)
        context = {**call.context, "input_tokens": n, "reserve_tokens": reserve}
        return await next(call.replace(context=context))
