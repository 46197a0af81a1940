"""The :class:`Transport`: the SDK client's lifecycle and the dispatch of one call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import openai

# The SDK's own HTTP response class (openai >= 3 is built on httpx2), used as ``cast_to``.
from httpx2 import Response as _HTTP_RESPONSE

from ..clock import DEFAULT_CLOCK, Clock
from ..exceptions import LLMClientError, ResponseDecodeError
from ..known_secrets import remember_secret
from ..meter import meter_of
from ..result import LLMResult
from ..streaming import LLMEvent
from ..usage import Usage
from .batches import BatchAPI
from .chat import chat_events, chat_result
from .embeddings import embeddings_result
from .errors import _kept_headers, translate
from .responses import responses_events, responses_result
from .results import estimated_usage
from .sdk import _close_when_loop_ends, _sdk_timeout, _SDKEvents, _timeout_option

if TYPE_CHECKING:
    from ..pipeline import Call, Reply


class Transport(BatchAPI):
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

    # --- files and batches: the methods are in .batches; this is their way into the SDK -------

    async def _sdk_call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            await self._bind(loop)
        try:
            return await fn(*args, **kwargs)
        except (openai.OpenAIError, json.JSONDecodeError) as exc:
            raise translate(exc) from exc

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
            meter.sent(lambda: estimated_usage(call, ""))
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

    async def _chat(self, call: Call, options: dict[str, Any]) -> LLMResult:
        body, headers = await self._post_json("/chat/completions", call.params, options)
        return chat_result(call, body, headers)

    async def _responses(self, call: Call, options: dict[str, Any]) -> LLMResult:
        body, headers = await self._post_json("/responses", call.params, options)
        return responses_result(call, body, headers)

    async def _embeddings(self, call: Call, options: dict[str, Any]) -> LLMResult:
        params = dict(call.params)
        params.setdefault("encoding_format", "base64")
        body, headers = await self._post_json("/embeddings", params, options)
        return embeddings_result(call, body, headers)

    # --- streams -------------------------------------------------------------------------------

    async def _chat_stream(self, call: Call, options: dict[str, Any]) -> AsyncIterator[LLMEvent]:
        params = dict(call.params)
        params["stream_options"] = {**(params.get("stream_options") or {}), "include_usage": True}
        stream = await self._post_stream("/chat/completions", params, options)
        return _SDKEvents(chat_events(call, stream), stream)

    async def _responses_stream(
        self, call: Call, options: dict[str, Any]
    ) -> AsyncIterator[LLMEvent]:
        stream = await self._post_stream("/responses", call.params, options)
        return _SDKEvents(responses_events(call, stream), stream)

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
