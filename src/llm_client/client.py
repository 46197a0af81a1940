"""``OpenAIClient``: the seed's API on top of the middleware chain."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, overload

import pluggy

from ._client_batch import BatchMixin
from ._client_checks import _check_types, _refuse_beside_pipeline
from ._client_lifecycle import LifecycleMixin
from ._client_streams import StreamsMixin
from .clock import Clock
from .config import (
    CacheConfig,
    ClientConfig,
    OpenAIConfig,
    RateLimitConfig,
    RetryConfig,
    TimeoutConfig,
)
from .defaults import default_pipeline
from .exceptions import (
    ConfigurationError,
    InvalidRequestError,
    LLMClientError,
)
from .middleware._stream import aclose, replay
from .models import ModelProfile, TextEmbedding3Small, warn_if_retiring
from .pipeline import Call, Next, Operation, Pipeline
from .request import Api, CallOptions, build_call
from .result import LLMResult
from .streaming import LLMEvent

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from typing import Unpack
    else:
        from typing_extensions import Unpack

    from .config import ClientKeywords

__all__ = ["OpenAIClient"]

#: Errors that mean the request itself is bad: raised to the caller, never turned into a
#: result or an error event (nothing was sent).
_NOT_SENT = (InvalidRequestError, ConfigurationError)


class OpenAIClient(StreamsMixin, BatchMixin, LifecycleMixin):
    """An async OpenAI client whose every call flows through a middleware chain.

    Configuration comes in one object per concern (see :mod:`llm_client.config`), or as the
    seed's flat keywords, which fill those objects::

        OpenAIClient(GPT5Nano, caching=CacheConfig(backend="fs", dir="cache/"),
                     retry=RetryConfig(attempts=5), timeout=30)
        OpenAIClient(GPT5Nano, cache_backend="fs", cache_dir="cache/", attempts=5, timeout=30)

    :param model: a :class:`ModelProfile` or a registered key (``"gpt-5-nano"``).
    :param api: ``"chat"`` (Chat Completions, the default) or ``"responses"``; embeddings
        profiles always use the embeddings API.
    :param caching: a :class:`~llm_client.config.CacheConfig` (default: no cache).
    :param rate_limit: a :class:`~llm_client.config.RateLimitConfig` (default: local limiter
        with the profile's budgets).
    :param retry: a :class:`~llm_client.config.RetryConfig` (default: 3 attempts).
    :param timeouts: a :class:`~llm_client.config.TimeoutConfig`; ``timeout`` and
        ``stream_idle_timeout`` are its shortcuts.
    :param connection: an :class:`~llm_client.config.OpenAIConfig` (key, base URL,
        organization, project, HTTP client; the SDK's environment variables otherwise).
    :param timeout: deadline per call in seconds, over every attempt and wait (a stream
        included, up to its last event).
    :param stream_idle_timeout: for streams, the longest wait (seconds) for the next piece,
        before the first included; ``None`` waits as long as the deadline allows.
    :param max_concurrency: how many calls :meth:`run_batch` runs at once.
    :param pipeline: a custom :class:`Pipeline` instead of the default chain; the options that
        only the default chain uses (cache, rate limit, retry, timeout) are refused beside it.
    :param plugin_manager: a pluggy manager (see :func:`llm_client.plugins.new_plugin_manager`).
    :param sdk: a ready ``openai.AsyncOpenAI`` (then ``connection`` must be left out).
    :param clock: time source of every wait and deadline: the timeout, retry and limiter steps
        and the transport (tests inject a manual one).
    :param options: the seed's flat keywords (:data:`llm_client.config.SHORTCUTS`, typed by
        :class:`llm_client.config.ClientKeywords`: ``cache_backend``, ``cache_dir``,
        ``cache_collection``, ``cache_ttl``, ``pg_dsn``, ``redis_url``, ``qdrant_url``,
        ``qdrant_api_key``, ``semantic_cache_threshold``, ``semantic_cache_model``,
        ``rate_limit_backend``, ``tokens_per_minute``, ``requests_per_minute``,
        ``burst_seconds``, ``limiter``, ``attempts``, ``backoff``, ``api_key``, ``base_url``,
        ``organization``, ``project``, ``http_client``) and the own options of the chosen
        backends and of plugin middleware (``redis_ttl_seconds``, ``fsync`` ...), checked when
        the client is made. Anything else raises :class:`ConfigurationError` naming the
        nearest valid option.
    """

    # Two signatures for type checkers: the flat keywords typed (ClientKeywords, which IDEs
    # complete), then any keyword, for the options of backends and plugins that the core cannot
    # name (a TypedDict cannot say "and any other key" to mypy); both checked at run time.
    @overload
    def __init__(
        self,
        model: ModelProfile | str,
        *,
        api: Api = "chat",
        caching: CacheConfig | None = None,
        rate_limit: RateLimitConfig | None = None,
        retry: RetryConfig | None = None,
        timeouts: TimeoutConfig | None = None,
        connection: OpenAIConfig | None = None,
        timeout: float | None = None,
        stream_idle_timeout: float | None = None,
        max_concurrency: int = 64,
        pipeline: Pipeline | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
        sdk: Any = None,
        clock: Clock | None = None,
        **options: Unpack[ClientKeywords],
    ) -> None: ...

    @overload
    def __init__(
        self,
        model: ModelProfile | str,
        *,
        api: Api = "chat",
        caching: CacheConfig | None = None,
        rate_limit: RateLimitConfig | None = None,
        retry: RetryConfig | None = None,
        timeouts: TimeoutConfig | None = None,
        connection: OpenAIConfig | None = None,
        timeout: float | None = None,
        stream_idle_timeout: float | None = None,
        max_concurrency: int = 64,
        pipeline: Pipeline | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
        sdk: Any = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> None: ...

    def __init__(
        self,
        model: ModelProfile | str,
        *,
        api: Api = "chat",
        caching: CacheConfig | None = None,
        rate_limit: RateLimitConfig | None = None,
        retry: RetryConfig | None = None,
        timeouts: TimeoutConfig | None = None,
        connection: OpenAIConfig | None = None,
        timeout: float | None = None,
        stream_idle_timeout: float | None = None,
        max_concurrency: int = 64,
        pipeline: Pipeline | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
        sdk: Any = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> None:
        self.profile = ModelProfile.get(model)
        warn_if_retiring(self.profile)
        _check_types(pipeline=pipeline, plugin_manager=plugin_manager, clock=clock)
        given = {
            "api": api,
            "caching": caching,
            "rate_limit": rate_limit,
            "retry": retry,
            "timeouts": timeouts,
            "connection": connection,
            "timeout": timeout,
            "stream_idle_timeout": stream_idle_timeout,
            "max_concurrency": max_concurrency,
            **options,
        }
        if pipeline is not None:
            _refuse_beside_pipeline(given)
        self.config = ClientConfig.from_keywords(given)
        self.api: Api = api
        self.max_concurrency = max_concurrency
        #: The injected plugin manager, if any (agents look tool names up in it).
        self.plugin_manager = plugin_manager
        from .transport import Transport

        conn = self.config.connection
        if sdk is not None and conn != OpenAIConfig():
            raise ConfigurationError(
                "sdk= is a ready openai.AsyncOpenAI with its own key, base URL and HTTP client:"
                " pass those to it, not api_key/base_url/organization/project/http_client here"
            )
        try:
            self._transport = Transport(
                sdk=sdk,
                api_key=conn.api_key,
                base_url=conn.base_url,
                organization=conn.organization,
                project=conn.project,
                http_client=conn.http_client,
                clock=clock,
            )
        except Exception as exc:  # the SDK raises OpenAIError without a key
            raise ConfigurationError(
                f"could not create the OpenAI SDK client: {exc}. Pass api_key=... or set"
                " OPENAI_API_KEY (a .env file is loaded on import)."
            ) from exc
        caching = self.config.caching
        self._semantic_profile = (
            ModelProfile.get(caching.semantic_model)
            if caching.semantic_model
            else TextEmbedding3Small
        )
        if pipeline is None:
            pipeline = default_pipeline(
                self.profile,
                self.config,
                embed=self._embed if caching.semantic_threshold else None,
                plugin_manager=plugin_manager,
                clock=clock,
            )
        self.pipeline = pipeline.copy()
        self._handler: Next = self.pipeline.build(self._transport)

    # --- building calls ------------------------------------------------------------------------

    @property
    def operation(self) -> Operation:
        return "embeddings" if self.profile.is_embeddings else self.api

    # --- the seed's API ------------------------------------------------------------------------

    async def invoke(
        self,
        messages: Any = None,
        *,
        input: Any = None,
        raise_on_error: bool = False,
        options: CallOptions | None = None,
        **params: Any,
    ) -> LLMResult:
        """Run one call and return an :class:`LLMResult`.

        :param messages: the conversation (Chat Completions), or Responses API input items.
        :param input: text or items (Responses API), or what to embed (embeddings models).
        :param raise_on_error: raise the matching :class:`LLMClientError` instead of returning
            a failed result.
        :param options: a :class:`~llm_client.request.CallOptions` (cache behaviour, attempts,
            timeout, api); its fields may also be given as flat keywords (``identifier=...``,
            ``cache_response=False``, ``timeout=30`` ...), which take precedence.
        :param params: generation parameters sent to OpenAI (``temperature``, ``tools`` ...).

        Failures come back as a result with ``status`` and ``error`` unless ``raise_on_error``.
        Bad input raises :class:`InvalidRequestError` either way, before anything is sent:
        malformed arguments when the call is built, an input over the model's limit when its
        tokens are counted, and a keyword that misspells one of our options (``timout=``).
        """
        if type(raise_on_error) is not bool:
            raise InvalidRequestError(
                f"raise_on_error must be True or False, got {raise_on_error!r:.60}"
            )
        call = build_call(
            self.profile, self.api, messages, input, params, stream=False, options=options
        )
        identifier = call.cache.identifier
        try:
            reply = await self._handler(call)
        except _NOT_SENT:
            raise  # bad input found inside the chain (over-long input): never a result
        except LLMClientError as exc:
            if raise_on_error:
                raise
            return LLMResult.from_error(
                exc,
                params=call.params,
                operation=call.operation,
                model=call.model,
                identifier=identifier,
            )
        if not isinstance(reply, LLMResult):  # a custom pipeline answered with a stream
            from .streaming import collect

            final = await collect(reply)
            if final is None:
                raise LLMClientError("the pipeline's stream ended without a result")
            reply = final
        if reply.identifier is None and identifier is not None:
            reply = reply.replace(identifier=identifier)
        if raise_on_error:
            reply.raise_for_status()
        return reply

    async def get_response(
        self,
        messages: Any = None,
        *,
        input: Any = None,
        options: CallOptions | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Run one call; return the seed's dict (``params``, ``output``, ``usage``, ``status``,
        ``error``, ``identifier``, plus ``cached``, ``attempts``, ``tool_calls`` ...).

        Takes what :meth:`invoke` takes, except ``raise_on_error``."""
        result = await self.invoke(messages, input=input, options=options, **params)
        return result.to_dict()

    def stream(
        self,
        messages: Any = None,
        *,
        input: Any = None,
        options: CallOptions | None = None,
        **params: Any,
    ) -> AsyncIterator[LLMEvent]:
        """Stream one call as :class:`LLMEvent` s: ``meta``, ``text_delta`` ..., ``usage``,
        ``done`` — or ending in one ``error`` event; never silently cut short.

        Takes what :meth:`get_response` takes. The request is checked when this is called
        (malformed input raises at once); it is sent when iteration starts. ``timeout`` bounds
        the whole stream, ``stream_idle_timeout`` each wait for the next piece (both end the
        stream with an ``error`` event, 408). Stop early with ``break`` or ``aclose()``: the
        HTTP response is closed at once.
        """
        if self.profile.is_embeddings:
            raise InvalidRequestError(
                f"{self.profile.key} is an embeddings model: it cannot stream"
            )
        call = build_call(
            self.profile, self.api, messages, input, params, stream=True, options=options
        )
        return self._stream(call)

    async def _stream(self, call: Call) -> AsyncIterator[LLMEvent]:
        try:
            reply = await self._handler(call)
        except _NOT_SENT:
            raise  # bad input (an over-long input) raises from the first iteration
        except LLMClientError as exc:
            result = LLMResult.from_error(
                exc,
                params=call.params,
                operation=call.operation,
                model=call.model,
                identifier=call.cache.identifier,
            )
            yield LLMEvent("error", {"status": result.status, "error": result.error}, result)
            return
        if isinstance(reply, LLMResult):  # a custom pipeline answered a stream with a result
            reply = replay(reply)
        try:
            async for event in reply:
                yield event
        finally:  # the consumer stopped (or the stream ended): close everything below now
            await aclose(reply)

    # --- streams to users (stream_sse, sink, stream_to_sink): _client_streams.StreamsMixin -----
    # --- batches (run_batch, iter_batch, run_file): _client_batch.BatchMixin -------------------

    # --- lifecycle and observability (cache, limiter, stats, warm_cache, close):
    # _client_lifecycle.LifecycleMixin -----------------------------------------------------------

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _embed(self, text: str) -> list[float]:
        """Embed ``text`` for the semantic cache (straight to the transport: no limiter)."""
        call = Call(
            profile=self._semantic_profile,
            operation="embeddings",
            params={"model": self._semantic_profile.model_name, "input": text},
        )
        reply = await self._transport(call)
        assert isinstance(reply, LLMResult)
        return list(reply.output)

    def __repr__(self) -> str:
        return f"OpenAIClient({self.profile.key!r}, api={self.api!r}, pipeline={self.pipeline!r})"
