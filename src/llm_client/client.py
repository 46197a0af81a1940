"""``OpenAIClient``: the seed's API on top of the middleware chain."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pluggy

from .clock import Clock
from .config import (
    DEFAULT_CHAIN_ONLY,
    SHORTCUTS,
    CacheConfig,
    ClientConfig,
    OpenAIConfig,
    RateLimitConfig,
    RetryConfig,
    TimeoutConfig,
    did_you_mean,
    keyword_names,
)
from .defaults import default_pipeline
from .exceptions import (
    ConfigurationError,
    InvalidRequestError,
    LLMClientError,
)
from .middleware._stream import aclose, replay
from .middleware.cost import CostAccounting
from .models import ModelProfile, TextEmbedding3Small, warn_if_retiring
from .pipeline import Call, Next, Operation, Pipeline
from .request import Api, CallOptions, build_call
from .result import LLMResult
from .streaming import LLMEvent

if TYPE_CHECKING:
    from .batch import BatchSummary

__all__ = ["OpenAIClient"]

#: Errors that mean the request itself is bad: raised to the caller, never turned into a
#: result or an error event (nothing was sent).
_NOT_SENT = (InvalidRequestError, ConfigurationError)


class OpenAIClient:
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
    :param options: the seed's flat keywords (:data:`llm_client.config.SHORTCUTS`:
        ``cache_backend``, ``cache_dir``, ``cache_collection``, ``cache_ttl``, ``pg_dsn``,
        ``redis_url``, ``qdrant_url``, ``qdrant_api_key``, ``semantic_cache_threshold``,
        ``semantic_cache_model``, ``rate_limit_backend``, ``tokens_per_minute``,
        ``requests_per_minute``, ``burst_seconds``, ``limiter``, ``attempts``, ``backoff``,
        ``api_key``, ``base_url``, ``organization``, ``project``, ``http_client``) and the
        chosen backends' own options (``redis_ttl_seconds``, ``fsync`` ...). Anything else
        raises :class:`ConfigurationError` naming the nearest valid option.
    """

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

    def stream_sse(
        self,
        messages: Any = None,
        *,
        identifier: str | None = None,
        last_event_id: str | None = None,
        heartbeat: float | None = 15.0,
        retry: int | None = None,
        buffer: Any = None,
        linger: float | str | None = "auto",
        **kwargs: Any,
    ) -> AsyncIterator[str]:
        """:meth:`stream` as Server-Sent Events frames for a web response, resumable with
        ``Last-Event-ID`` when an ``identifier`` is given (see :func:`llm_client.sse.stream_sse`
        and docs/streaming.md)."""
        from .sse import stream_sse

        return stream_sse(
            self,
            messages,
            identifier=identifier,
            last_event_id=last_event_id,
            heartbeat=heartbeat,
            retry=retry,
            buffer=buffer,
            linger=linger,
            **kwargs,
        )

    # --- sinks -----------------------------------------------------------------------------------

    def sink(self, name: str, /, **options: Any) -> Any:
        """Build the sink a plugin registered as ``name`` (``"pusher"``, ``"redis"``,
        ``"memory"``), looked up in this client's plugin manager; see docs/sinks.md."""
        from .sinks import make_sink

        return make_sink(name, plugin_manager=self.plugin_manager, **options)

    async def stream_to_sink(
        self,
        sink: Any,
        messages: Any = None,
        *,
        sink_max_buffer: int = 1000,
        sink_send_timeout: float | None = 10.0,
        sink_drain_timeout: float = 5.0,
        **kwargs: Any,
    ) -> LLMResult:
        """Stream one call into ``sink`` and return its final :class:`LLMResult`.

        ``kwargs`` are :meth:`stream`'s. The sink gets the events in batches from a background
        task fed through a buffer of ``sink_max_buffer`` events: a failing or slow sink never
        fails or slows the call (see :class:`llm_client.sinks.SinkFeed`). After the stream
        ends, this waits at most ``sink_drain_timeout`` seconds for the sink to take the rest.
        The sink is not closed: open it with ``async with``.
        """
        from .sinks import SinkFeed

        events = self.stream(messages, **kwargs)  # checks the request before anything else
        feed = SinkFeed(
            sink,
            counters=self._sink_counters(),
            max_buffer=sink_max_buffer,
            send_timeout=sink_send_timeout,
            drain_timeout=sink_drain_timeout,
        )
        final: LLMResult | None = None
        try:
            async for event in events:
                feed.put(event)
                if event.result is not None:
                    final = event.result
        except BaseException:
            await aclose(events)
            await feed.abort()
            raise
        await feed.finish()
        if final is None:  # a custom pipeline's stream that ended without a result
            raise LLMClientError("the stream ended without a result")
        return final

    def _sink_counters(self) -> Any:
        from .sinks import SinkCounters

        counters = self.__dict__.get("_sink_stats")
        if counters is None:
            counters = self.__dict__["_sink_stats"] = SinkCounters()
        return counters

    # --- batches ---------------------------------------------------------------------------------

    async def run_batch(
        self, coros: Iterable[Awaitable[Any]], *, max_concurrency: int | None = None
    ) -> list[Any]:
        """Await many calls with at most ``max_concurrency`` running at once; results keep the
        input order, and an exception becomes ``{"status": ..., "error": ...}``."""
        limit = asyncio.Semaphore(max_concurrency or self.max_concurrency)

        async def one(aw: Awaitable[Any]) -> Any:
            async with limit:
                try:
                    return await aw
                except Exception as exc:  # wrapped, never lost
                    return _error_dict(exc)

        return list(await asyncio.gather(*(one(aw) for aw in coros)))

    async def iter_batch(
        self, coros: Iterable[Awaitable[Any]], *, max_concurrency: int | None = None
    ) -> AsyncIterator[Any]:
        """Like :meth:`run_batch`, but yield each result as soon as it completes."""
        limit = asyncio.Semaphore(max_concurrency or self.max_concurrency)

        async def one(aw: Awaitable[Any]) -> Any:
            async with limit:
                try:
                    return await aw
                except Exception as exc:
                    return _error_dict(exc)

        tasks = [asyncio.ensure_future(one(aw)) for aw in coros]
        try:
            for done in asyncio.as_completed(tasks):
                yield await done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_file(
        self,
        path: str | os.PathLike[str],
        output: str | os.PathLike[str],
        **options: Any,
    ) -> BatchSummary:
        """Run a JSONL file of requests (OpenAI's Batch API input format) through this client's
        pipeline and append OpenAI-style output lines to ``output``; resumable. The options
        and behaviour are those of :func:`llm_client.batch.run_file` (``llm-client batch``)."""
        from .batch import run_file

        return await run_file(self, path, output, **options)

    # --- lifecycle and observability ------------------------------------------------------

    def _step_with(self, attribute: str) -> Any:
        """The first step that has ``attribute`` set (duck-typed, so custom steps count)."""
        for _, step in self.pipeline:
            if getattr(step, attribute, None) is not None:
                return step
        return None

    @property
    def cache(self) -> Any:
        """The cache backend of the pipeline's cache step, or ``None``."""
        step = self._step_with("backend")
        return step.backend if step is not None else None

    @property
    def limiter(self) -> Any:
        """The rate limiter of the pipeline's limit step, or ``None``."""
        step = self._step_with("limiter")
        return step.limiter if step is not None else None

    def stats(self) -> dict[str, Any]:
        """Totals (requests, hits, tokens, USD spent and saved), the cache step's counters and
        the limiter's state (level, waiters, wait time, throttle events)."""
        cost = self.pipeline.find(CostAccounting)
        limiter = self.limiter
        cache_step = self._step_with("backend")
        return {
            "model": self.profile.key,
            "totals": cost.totals.as_dict() if cost is not None else {},
            "cache": cache_step.stats() if hasattr(cache_step, "stats") else {},
            "limiter": limiter.stats() if limiter is not None else {},
            "sinks": self._sink_counters().as_dict(),
        }

    async def warm_cache(self) -> None:
        """Create the cache's tables/collections/folders now rather than on first use."""
        backend = self.cache
        if backend is not None:
            await backend.warm()

    async def close(self) -> None:
        """Finish the cache's pending writes, then close the cache backend, the limiter and the
        SDK's HTTP client."""
        backend = self.cache
        limiter = self.limiter
        cache_step = self._step_with("backend")
        try:
            if cache_step is not None and hasattr(cache_step, "flush"):
                await cache_step.flush()  # answers still on their way into the cache
            if backend is not None:
                await backend.aclose()
            if limiter is not None and hasattr(limiter, "aclose"):
                await limiter.aclose()
        finally:
            await self._transport.aclose()

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


def _refuse_beside_pipeline(given: dict[str, Any]) -> None:
    """``pipeline=`` replaces the default chain, so its options would be silently ignored."""
    for name, value in given.items():
        if name in ("api", "connection", "max_concurrency") or (
            name in SHORTCUTS and (SHORTCUTS[name][0][0] == "connection")
        ):
            continue
        if name in DEFAULT_CHAIN_ONLY and value is None:
            continue
        if name not in DEFAULT_CHAIN_ONLY and name not in SHORTCUTS:
            valid = keyword_names()
            raise ConfigurationError(
                f"OpenAIClient got an unknown option {name!r}{did_you_mean(name, valid)}."
                " The options are listed in docs/api.md (llm_client.config)"
            )
        raise ConfigurationError(
            f"{name}= configures the default chain, which pipeline= replaces, so it would be"
            " ignored. Configure the steps of your own chain instead: build it with"
            " Pipeline.default(model, ...) and change it (insert_before, replace, remove), or"
            " construct the step itself (e.g. Retry(attempts), RateLimit(Limiter(...)),"
            " CacheMiddleware(backend)) and pass the result as pipeline="
        )


def _check_types(*, pipeline: Any, plugin_manager: Any, clock: Any) -> None:
    """Objects the client is handed must be what it will use, or it fails later and bare."""
    if pipeline is not None and not isinstance(pipeline, Pipeline):
        raise ConfigurationError(
            f"pipeline must be a llm_client.Pipeline, got {type(pipeline).__name__}"
        )
    if plugin_manager is not None and not isinstance(plugin_manager, pluggy.PluginManager):
        raise ConfigurationError(
            "plugin_manager must be a pluggy.PluginManager (llm_client.plugins."
            f"new_plugin_manager()), got {type(plugin_manager).__name__}"
        )
    if clock is not None and not (
        callable(getattr(clock, "now", None)) and callable(getattr(clock, "sleep", None))
    ):
        raise ConfigurationError(
            "clock must have now() and async sleep(seconds) (llm_client.clock.Clock),"
            f" got {type(clock).__name__}"
        )


def _error_dict(exc: BaseException) -> dict[str, Any]:
    status = exc.status if isinstance(exc, LLMClientError) else 500
    return {"status": status, "error": f"{type(exc).__name__}: {exc}", "output": None}
