"""What the chat, Responses and embeddings readers share: building a result, the ``meta`` event,
our own usage estimate, and how a stream that fails or is left early settles its call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import APIConnectionError, APITimeoutError, LLMClientError, StreamInterruptedError
from ..meter import meter_of
from ..result import LLMResult
from ..streaming import LLMEvent
from ..tokens import count_text_tokens
from ..usage import Usage, price
from .errors import translate

if TYPE_CHECKING:
    from ..pipeline import Call


def result_of(call: Call, **fields: Any) -> LLMResult:
    return LLMResult(
        params=call.params,
        operation=call.operation,
        model=call.model,
        **fields,
    )


def meta_event(call: Call) -> LLMEvent:
    return LLMEvent(
        "meta",
        {
            "model": call.model,
            "operation": call.operation,
            "cached": False,
        },
    )


def estimated_usage(call: Call, text: str) -> Usage:
    """Our own count: the input counted before sending, the output from ``text``."""
    prompt = call.context.get("input_tokens")
    inp = prompt if isinstance(prompt, int) else 0
    out = count_text_tokens(text, call.profile.encoding) if text else 0
    usage = Usage(input_tokens=inp, output_tokens=out, total_tokens=inp + out, estimated=True)
    return price(usage, call.profile)


def mid_stream_error(call: Call, exc: BaseException) -> LLMClientError:
    """What a failure while reading a stream means for the caller."""
    err = translate(exc)
    if isinstance(err, APITimeoutError):
        idle = call.stream_idle_timeout
        if idle is not None:
            return APITimeoutError(
                f"the stream sent nothing for {idle:g}s (stream_idle_timeout): the answer"
                " is truncated"
            )
        return err
    if type(err) is APIConnectionError:
        cause = exc.__cause__ or exc
        detail = f"{type(cause).__name__}: {cause}".rstrip(": ")
        return StreamInterruptedError(
            f"the connection broke off mid-stream ({detail}): the answer is truncated"
        )
    return err


def left_early(call: Call, usage: Usage | None, texts: list[str]) -> None:
    """A stream that ends without its final event (cut by the deadline, or its consumer
    stopped): leave the best estimate of its usage on the call's meter."""
    meter = meter_of(call)
    if meter is not None and meter.open:
        meter.update(usage or estimated_usage(call, "".join(texts)))


async def stream_failed(
    call: Call,
    err: LLMClientError,
    usage: Usage | None,
    texts: list[str],
    headers: Mapping[str, str],
) -> AsyncIterator[LLMEvent]:
    if usage is None and texts:  # the server billed what it sent: count it, never 0
        usage = estimated_usage(call, "".join(texts))
    err.usage = usage
    err.headers = dict(headers)
    meter = meter_of(call)
    if meter is not None:
        meter.ended(usage)
    result = LLMResult.from_error(
        err,
        params=call.params,
        operation=call.operation,
        model=call.model,
    ).replace(output="".join(texts) or None, headers=dict(headers))
    yield LLMEvent("error", {"status": result.status, "error": result.error}, result)
