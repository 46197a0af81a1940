"""The terminal of every chain and the only module that imports ``openai``.

It builds ``AsyncOpenAI(max_retries=0)`` (our :class:`~llm_client.middleware.retry.Retry` is
the one retry layer), on the SDK's aiohttp HTTP client by default, passes what is left of the
call's deadline as the per-request timeout, and turns every SDK failure into an
:class:`~llm_client.exceptions.LLMClientError` with an HTTP-like ``status``.

Non-streamed bodies are read as JSON and normalized here, without building the SDK's pydantic
models (faster, and a malformed body becomes :class:`ResponseDecodeError` instead of escaping as
a bare ``json.JSONDecodeError``). Streams are checked for completeness: a Chat stream must reach
a ``finish_reason`` and a Responses stream its ``response.completed`` (or ``incomplete``) event,
otherwise the stream ends in an ``error`` event — a truncated answer is never a success.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from array import array
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Mapping
from typing import TYPE_CHECKING, Any

import openai

from .clock import DEFAULT_CLOCK, Clock
from .exceptions import (
    APIConnectionError,
    APITimeoutError,
    LLMClientError,
    ResponseDecodeError,
    StreamInterruptedError,
    error_for_status,
)
from .headers import parse_retry_after
from .known_secrets import remember_secret
from .meter import meter_of
from .result import LLMResult
from .streaming import LLMEvent
from .tokens import count_text_tokens
from .usage import Usage, parse_usage, price

if TYPE_CHECKING:
    from .pipeline import Call, Reply

__all__ = ["Transport", "decode_embedding", "translate"]

log = logging.getLogger("llm_client.transport")

#: Headers kept on results for the rate limiter (never stored, never logged).
_KEPT_HEADERS = ("retry-after", "retry-after-ms", "x-request-id")


def _kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        k.lower(): v
        for k, v in headers.items()
        if k.lower().startswith("x-ratelimit-") or k.lower() in _KEPT_HEADERS
    }


def _error_message(body: object, fallback: str) -> str:
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
    return fallback


def translate(exc: BaseException) -> LLMClientError:
    """Map an SDK (or decode) exception to our hierarchy."""
    if isinstance(exc, LLMClientError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        headers = exc.response.headers
        err: LLMClientError = error_for_status(
            exc.status_code,
            _error_message(exc.body, exc.message),
            retry_after=parse_retry_after(headers),
        )
        err.headers = _kept_headers(headers)
        return err
    if isinstance(exc, openai.APITimeoutError):
        return APITimeoutError("the request to the API timed out")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return APIConnectionError(f"could not reach the API: {cause!s}".rstrip(": "))
    if isinstance(exc, json.JSONDecodeError):
        return ResponseDecodeError(f"the API sent malformed JSON: {exc}")
    if isinstance(exc, openai.APIResponseValidationError):
        return ResponseDecodeError(f"the API sent an unexpected body: {exc.message}")
    if isinstance(exc, openai.APIError):  # an error event inside a stream
        return error_for_status(500, f"the API reported an error in the stream: {exc.message}")
    if isinstance(exc, openai.OpenAIError):
        return APIConnectionError(f"{type(exc).__name__}: {exc}")
    raise exc


_LITTLE_ENDIAN = sys.byteorder == "little"

# The SDK's own HTTP response class (openai >= 3 is built on httpx2), used as ``cast_to``.
import httpx2  # noqa: E402
from httpx2 import Response as _HTTP_RESPONSE  # noqa: E402


def _timeout_option(options: Mapping[str, Any]) -> dict[str, Any]:
    return {"timeout": options["timeout"]} if "timeout" in options else {}


#: The SDK's overall per-request timeout when the call has no deadline (openai.DEFAULT_TIMEOUT).
_SDK_TIMEOUT = 600.0


def _sdk_timeout(call: Call, now: float) -> float | httpx2.Timeout | None:
    """The SDK's per-request timeout: the time left before the call's deadline, and for a
    stream with ``stream_idle_timeout`` the longest wait for the next bytes (the HTTP read
    timeout, which restarts with every chunk that arrives). ``now`` is the time on the
    client's clock, the clock the deadline was set on."""
    remaining = None
    if call.deadline is not None:
        remaining = max(0.001, call.deadline - now)
    idle = call.stream_idle_timeout if call.stream else None
    if idle is None:
        return remaining
    total = remaining if remaining is not None else _SDK_TIMEOUT
    return httpx2.Timeout(total, read=min(idle, total))


async def _close_sdk_stream(stream: Any) -> None:
    """Close an SDK stream's HTTP response (the connection goes at once), then its iterator."""
    try:
        await stream.close()
    finally:
        iterator = getattr(stream, "_iterator", None)  # AsyncStream's generator: finish it too
        if iterator is not None:
            await iterator.aclose()


class _SDKEvents:
    """The transport's events over one SDK stream.

    ``aclose()`` closes the HTTP response even if nobody ever iterated (an async generator
    that never started runs no ``finally``).
    """

    __slots__ = ("_events", "_stream")

    def __init__(self, events: AsyncIterator[LLMEvent], stream: Any) -> None:
        self._events = events
        self._stream = stream

    def __aiter__(self) -> _SDKEvents:
        return self

    def __anext__(self) -> Awaitable[LLMEvent]:
        return self._events.__anext__()

    async def aclose(self) -> None:
        try:
            await self._events.aclose()  # type: ignore[attr-defined]
        finally:
            await _close_sdk_stream(self._stream)


def decode_embedding(value: Any) -> list[float]:
    """A base64 float32 (little-endian) vector, or a float list, as ``list[float]``."""
    if isinstance(value, str):
        floats = array("f")
        floats.frombytes(base64.b64decode(value))
        if not _LITTLE_ENDIAN:  # pragma: no cover - big-endian hosts
            floats.byteswap()
        return floats.tolist()
    if isinstance(value, list):
        return [float(x) for x in value]
    raise ResponseDecodeError(f"embedding has an unexpected type {type(value).__name__}")


async def _close_when_loop_ends(sdk: openai.AsyncOpenAI) -> AsyncGenerator[None, None]:
    """Suspended on its first ``yield`` for as long as the SDK client is in use.

    The SDK's aiohttp client opens an ``aiohttp.ClientSession`` bound to the event loop of the
    first request, and nothing closes it unless someone awaits ``close()``: a client that is
    simply dropped leaves the session to be garbage collected, and aiohttp then reports
    "Unclosed client session" / "Unclosed connector". An async generator that has started is
    tracked by its event loop, which closes it in ``loop.shutdown_asyncgens()`` (the step
    ``asyncio.run`` and ``asyncio.Runner`` take before closing the loop) and, if it is dropped
    while the loop runs, through the loop's async-generator finalizer. Either way the
    ``finally`` below runs on that loop and closes the session cleanly.
    """
    try:
        yield
    finally:
        await sdk.close()


class Transport:
    """Sends a :class:`Call` to OpenAI through the official SDK.

    :param sdk: a ready ``AsyncOpenAI``; if given, other options are ignored (make sure it was
        built with ``max_retries=0``), and closing it stays the caller's business.
    :param api_key, base_url, organization: passed to ``AsyncOpenAI`` (env vars otherwise).
    :param http_client: an ``httpx``-compatible async client; default is the SDK's aiohttp
        client (``openai.DefaultAioHttpClient``), which is about twice as fast.
    :param clock: the client's clock, on which ``call.deadline`` is set (default: the real one).

    An SDK client the transport built itself is closed by :meth:`aclose`. If the transport
    also built the HTTP client and nobody calls :meth:`aclose`, the SDK client is closed when
    the event loop it was used on shuts down, or when the transport is garbage collected (see
    :func:`_close_when_loop_ends`): a client that is never closed exits quietly. Used again
    from a new event loop (a second ``asyncio.run``), it opens a new HTTP session there.
    """

    def __init__(
        self,
        *,
        sdk: openai.AsyncOpenAI | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        http_client: Any = None,
        default_headers: Mapping[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.clock: Clock = clock if clock is not None else DEFAULT_CLOCK
        self._owns_sdk = sdk is None
        #: Rebuild the SDK client on a new event loop (only when the HTTP client is ours).
        self._owns_http = sdk is None and http_client is None
        self._sdk_options: dict[str, Any] = {
            "api_key": api_key,
            "base_url": base_url,
            "organization": organization,
            "project": project,
            "max_retries": 0,
            "default_headers": dict(default_headers or {}),
        }
        self.sdk = sdk if sdk is not None else self._new_sdk(http_client)
        remember_secret(getattr(self.sdk, "api_key", None))  # redacted from errors (exceptions.py)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closer: AsyncGenerator[None, None] | None = None

    def _new_sdk(self, http_client: Any = None) -> openai.AsyncOpenAI:
        if http_client is None:
            http_client = openai.DefaultAioHttpClient()
        return openai.AsyncOpenAI(http_client=http_client, **self._sdk_options)

    async def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """First request on ``loop``: tie the SDK client's HTTP session to its lifetime."""
        if self._loop is not None and self._owns_http:
            # An aiohttp session cannot move between loops; the previous one was closed when
            # its loop shut down (or will be by its closer), so start afresh on this loop.
            self.sdk = self._new_sdk()
        self._loop = loop
        if self._owns_http:  # an HTTP client the caller passed in is theirs to close
            closer = _close_when_loop_ends(self.sdk)
            await closer.__anext__()  # runs to the first yield; the loop now tracks it
            self._closer = closer

    async def aclose(self) -> None:
        closer, self._closer = self._closer, None
        if closer is not None:
            await closer.aclose()  # its ``finally`` closes the SDK client
        elif self._owns_sdk:
            await self.sdk.close()

    async def list_models(self) -> list[dict[str, Any]]:
        """``GET /models`` through the SDK: every model the account can use, as plain dicts
        (``id``, ``created``, ``owned_by`` and, where OpenAI sends it, ``shutdown_date``)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            await self._bind(loop)
        try:
            return [m.model_dump(mode="json") async for m in self.sdk.models.list()]
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            raise translate(exc) from exc

    # --- files and batches (OpenAI's Batch API; used by llm_client.batch_api) -----------------

    async def _sdk_call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            await self._bind(loop)
        try:
            return await fn(*args, **kwargs)
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            raise translate(exc) from exc

    async def upload_file(self, name: str, data: bytes, purpose: str = "batch") -> dict[str, Any]:
        """``files.create``: upload ``data`` as ``name``; the file object as a dict."""
        obj = await self._sdk_call(self.sdk.files.create, file=(name, data), purpose=purpose)
        return dict(obj.model_dump(mode="json"))

    async def file_content(self, file_id: str) -> bytes:
        """``files.content``: the bytes of a file (a batch's output or error file)."""
        response = await self._sdk_call(self.sdk.files.content, file_id)
        return bytes(response.content)

    async def create_batch(
        self, input_file_id: str, endpoint: str, metadata: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``batches.create`` with ``completion_window="24h"`` (the only window OpenAI offers)."""
        obj = await self._sdk_call(
            self.sdk.batches.create,
            input_file_id=input_file_id,
            endpoint=endpoint,
            completion_window="24h",
            metadata=dict(metadata) if metadata else None,
        )
        return dict(obj.model_dump(mode="json"))

    async def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        """``batches.retrieve``: the batch object as a dict."""
        obj = await self._sdk_call(self.sdk.batches.retrieve, batch_id)
        return dict(obj.model_dump(mode="json"))

    async def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        """``batches.cancel``: the batch (now ``cancelling``) as a dict."""
        obj = await self._sdk_call(self.sdk.batches.cancel, batch_id)
        return dict(obj.model_dump(mode="json"))

    # --- the terminal ------------------------------------------------------------------------

    async def __call__(self, call: Call) -> Reply:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            await self._bind(loop)
        options: dict[str, Any] = {
            "extra_headers": {"x-stainless-retry-count": str(call.context.get("attempt", 0))}
        }
        timeout = _sdk_timeout(call, self.clock.now())
        if timeout is not None:
            options["timeout"] = timeout
        meter = meter_of(call)
        if meter is not None:  # from here on the server may bill the input
            meter.sent(lambda: self._estimated_usage(call, ""))
        try:
            reply: Reply
            if call.operation == "embeddings":
                reply = await self._embeddings(call, options)
            elif call.stream:
                if call.operation == "responses":
                    reply = await self._responses_stream(call, options)
                else:
                    reply = await self._chat_stream(call, options)
            elif call.operation == "responses":
                reply = await self._responses(call, options)
            else:
                reply = await self._chat(call, options)
        except LLMClientError as exc:
            if meter is not None:
                meter.ended(exc.usage if isinstance(exc.usage, Usage) else None)
            raise
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            if meter is not None:
                meter.ended(None)
            raise translate(exc) from exc
        if meter is not None and isinstance(reply, LLMResult):
            meter.ended(reply.usage)
        return reply  # a stream settles the meter when it ends

    async def _post_json(
        self, path: str, params: Mapping[str, Any], options: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """POST a JSON body through the SDK and read the raw JSON answer.

        ``AsyncOpenAI.post(..., cast_to=<http response>)`` is the SDK's documented way to reach
        an endpoint without its typed wrappers; it skips the per-request TypedDict transform
        and pydantic parsing, which dominate the SDK's client-side cost. Our params are already
        plain JSON.
        """
        post: Any = self.sdk.post  # RequestOptions is a private TypedDict of the SDK
        raw = await post(
            path,
            body=dict(params),
            cast_to=_HTTP_RESPONSE,
            options={"headers": options["extra_headers"], **_timeout_option(options)},
        )
        headers = _kept_headers(raw.headers)
        try:
            body = json.loads(raw.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            err = ResponseDecodeError(f"the API sent malformed JSON: {exc}")
            err.headers = headers
            raise err from exc
        if not isinstance(body, dict):
            raise ResponseDecodeError("the API sent a JSON body that is not an object")
        return body, headers

    def _result(self, call: Call, **fields: Any) -> LLMResult:
        return LLMResult(
            params=call.params,
            operation=call.operation,
            model=call.model,
            **fields,
        )

    async def _chat(self, call: Call, options: dict[str, Any]) -> LLMResult:
        body, headers = await self._post_json("/chat/completions", call.params, options)
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
        return self._result(
            call,
            output=message.get("content"),
            usage=parse_usage(body.get("usage"), call.profile),
            tool_calls=tool_calls,
            finish_reason=choice.get("finish_reason"),
            response_id=body.get("id"),
            headers=headers,
        )

    async def _responses(self, call: Call, options: dict[str, Any]) -> LLMResult:
        body, headers = await self._post_json("/responses", call.params, options)
        return self._responses_result(call, body, headers)

    def _responses_result(
        self, call: Call, body: Mapping[str, Any], headers: Mapping[str, str]
    ) -> LLMResult:
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
        return self._result(
            call,
            output="".join(texts),
            usage=usage,
            tool_calls=tuple(tool_calls),
            finish_reason=finish,
            response_id=body.get("id"),
            headers=headers,
        )

    async def _embeddings(self, call: Call, options: dict[str, Any]) -> LLMResult:
        params = dict(call.params)
        params.setdefault("encoding_format", "base64")
        body, headers = await self._post_json("/embeddings", params, options)
        data = sorted(body.get("data") or (), key=lambda d: d.get("index", 0))
        vectors = [decode_embedding(d.get("embedding")) for d in data]
        single = isinstance(call.params.get("input"), str)
        if single and len(vectors) != 1:
            raise ResponseDecodeError(f"expected one embedding, got {len(vectors)}")
        return self._result(
            call,
            output=vectors[0] if single else vectors,
            usage=parse_usage(body.get("usage"), call.profile),
            finish_reason="stop",
            headers=headers,
        )

    # --- streams -------------------------------------------------------------------------------

    def _meta(self, call: Call) -> LLMEvent:
        return LLMEvent(
            "meta",
            {
                "model": call.model,
                "operation": call.operation,
                "cached": False,
            },
        )

    def _estimated_usage(self, call: Call, text: str) -> Usage:
        """Our own count: the input counted before sending, the output from ``text``."""
        prompt = call.context.get("input_tokens")
        inp = prompt if isinstance(prompt, int) else 0
        out = count_text_tokens(text, call.profile.encoding) if text else 0
        usage = Usage(input_tokens=inp, output_tokens=out, total_tokens=inp + out, estimated=True)
        return price(usage, call.profile)

    def _mid_stream_error(self, call: Call, exc: BaseException) -> LLMClientError:
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

    async def _chat_stream(self, call: Call, options: dict[str, Any]) -> AsyncIterator[LLMEvent]:
        params = dict(call.params)
        params["stream_options"] = {**(params.get("stream_options") or {}), "include_usage": True}
        stream = await self._post_stream("/chat/completions", params, options)
        return _SDKEvents(self._chat_events(call, stream), stream)

    async def _post_stream(
        self, path: str, params: Mapping[str, Any], options: dict[str, Any]
    ) -> Any:
        """POST a streamed request through the SDK and get its ``AsyncStream`` of plain dicts.

        As :meth:`_post_json` does for unary calls: ``cast_to=object`` makes the SDK hand over
        each chunk's JSON as parsed, skipping the pydantic model it would build per chunk (most
        of the client's CPU time on a stream). The SDK still decodes the SSE, raises
        ``APIError`` for an error chunk and maps timeouts and broken connections.
        """
        post: Any = self.sdk.post
        return await post(
            path,
            body={**params, "stream": True},
            cast_to=object,
            options={"headers": options["extra_headers"], **_timeout_option(options)},
            stream=True,
            stream_cls=openai.AsyncStream[object],
        )

    async def _chat_events(self, call: Call, stream: Any) -> AsyncIterator[LLMEvent]:
        """Read the SDK's chunks into our events; the HTTP response is closed as soon as this
        ends, whether the stream finished, failed, or its consumer stopped reading."""
        headers = _kept_headers(stream.response.headers)
        texts: list[str] = []
        tools: dict[int, dict[str, Any]] = {}
        finish: str | None = None
        usage: Usage | None = None
        response_id: str | None = None
        try:
            yield self._meta(call)
            try:
                while True:
                    try:
                        chunk = await stream.__anext__()
                    except StopAsyncIteration:
                        break
                    if not isinstance(chunk, dict):
                        raise ResponseDecodeError(
                            "the API sent a stream chunk that is not an object"
                        )
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
                            slot = tools.setdefault(
                                index, {"id": None, "name": None, "arguments": ""}
                            )
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
                err = self._mid_stream_error(call, exc)
                async for event in self._stream_failed(call, err, usage, texts, headers):
                    yield event
                return
            if finish is None:
                err = StreamInterruptedError(
                    "the stream ended before the model finished (no finish_reason): the answer"
                    " is truncated"
                )
                async for event in self._stream_failed(call, err, usage, texts, headers):
                    yield event
                return
            if usage is None:
                log.warning("stream finished without a usage chunk; usage is estimated")
                usage = self._estimated_usage(call, "".join(texts))
            meter = meter_of(call)
            if meter is not None:
                meter.ended(usage)
            yield LLMEvent("usage", usage.to_dict())
            result = self._result(
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
            self._left_early(call, usage, texts)
            await _close_sdk_stream(stream)

    def _left_early(self, call: Call, usage: Usage | None, texts: list[str]) -> None:
        """A stream that ends without its final event (cut by the deadline, or its consumer
        stopped): leave the best estimate of its usage on the call's meter."""
        meter = meter_of(call)
        if meter is not None and meter.open:
            meter.update(usage or self._estimated_usage(call, "".join(texts)))

    async def _stream_failed(
        self,
        call: Call,
        err: LLMClientError,
        usage: Usage | None,
        texts: list[str],
        headers: Mapping[str, str],
    ) -> AsyncIterator[LLMEvent]:
        if usage is None and texts:  # the server billed what it sent: count it, never 0
            usage = self._estimated_usage(call, "".join(texts))
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

    async def _responses_stream(
        self, call: Call, options: dict[str, Any]
    ) -> AsyncIterator[LLMEvent]:
        stream = await self._post_stream("/responses", call.params, options)
        return _SDKEvents(self._responses_events(call, stream), stream)

    async def _responses_events(self, call: Call, stream: Any) -> AsyncIterator[LLMEvent]:
        """As :meth:`_chat_events`, for the Responses API's typed events."""
        headers = _kept_headers(stream.response.headers)
        texts: list[str] = []
        #: output_index -> [tool index, call_id, name not yet sent] of each function call
        calls: dict[int, list[Any]] = {}
        final: Mapping[str, Any] | None = None
        failure: LLMClientError | None = None
        usage: Usage | None = None
        try:
            yield self._meta(call)
            try:
                while True:
                    try:
                        event = await stream.__anext__()
                    except StopAsyncIteration:
                        break
                    if not isinstance(event, dict):
                        raise ResponseDecodeError(
                            "the API sent a stream event that is not an object"
                        )
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
                            _error_message(
                                {"error": body.get("error") or {}}, "the response failed"
                            ),
                        )
                        break
                    elif kind == "error":
                        failure = error_for_status(
                            500,
                            f"the API reported an error in the stream: {event.get('message', '')}",
                        )
                        break
            except (openai.OpenAIError, json.JSONDecodeError) as exc:
                failure = self._mid_stream_error(call, exc)
            if failure is None and final is None:
                failure = StreamInterruptedError(
                    "the stream ended before response.completed: the answer is truncated"
                )
            if failure is not None:
                async for ev in self._stream_failed(call, failure, usage, texts, headers):
                    yield ev
                return
            assert final is not None
            result = self._responses_result(call, final, headers)
            if result.finish_reason not in ("stop", "tool_calls"):
                log.info("response incomplete: %s", result.finish_reason)
            usage = result.usage
            meter = meter_of(call)
            if meter is not None:
                meter.ended(usage)
            yield LLMEvent("usage", usage.to_dict())
            yield LLMEvent("done", result.to_dict(), result)
        finally:
            self._left_early(call, usage, texts)
            await _close_sdk_stream(stream)
