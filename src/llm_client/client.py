"""``OpenAIClient``: the seed's API on top of the middleware chain."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Iterable
from types import TracebackType
from typing import Any

import pluggy

from .clock import Clock
from .exceptions import (
    ConfigurationError,
    InvalidRequestError,
    LLMClientError,
)
from .middleware._stream import aclose, replay
from .middleware.cost import CostAccounting
from .models import ModelProfile, TextEmbedding3Small, warn_if_retiring
from .pipeline import Call, Next, Operation, Pipeline
from .request import Api, build_call
from .result import LLMResult
from .streaming import LLMEvent

__all__ = ["OpenAIClient"]

#: Errors that mean the request itself is bad: raised to the caller, never turned into a
#: result or an error event (nothing was sent).
_NOT_SENT = (InvalidRequestError, ConfigurationError)


class OpenAIClient:
    """An async OpenAI client whose every call flows through a middleware chain.

    :param model: a :class:`ModelProfile` or a registered key (``"gpt-5-nano"``).
    :param api: ``"chat"`` (Chat Completions, the default) or ``"responses"``; embeddings
        profiles always use the embeddings API.
    :param cache_backend: ``None`` (no cache), or a backend name: ``"memory"``, ``"fs"``,
        ``"sqlite"``, or a plugin's (``"redis"``, ``"pg_redis"``, ``"postgres"``, ``"qdrant"``).
    :param cache_dir, cache_collection, cache_ttl: cache location, namespace and expiry.
    :param pg_dsn, redis_url, qdrant_url, qdrant_api_key: for the server backends (each falls
        back to its environment variable).
    :param semantic_cache_threshold: with a semantic-capable backend (``"qdrant"``), serve a
        stored answer whose prompt embedding has at least this cosine similarity.
    :param rate_limit_backend: ``"local"`` (default), ``"redis"`` (shared across processes)
        or ``None`` (no limiter).
    :param tokens_per_minute, requests_per_minute, burst_seconds: limiter budgets (default:
        the profile's ``rate_limits``).
    :param attempts, backoff, timeout: retry attempts, back-off base seconds, and an overall
        deadline per call (seconds, over every attempt and wait; a stream included).
    :param stream_idle_timeout: for streams, the longest wait (seconds) for the next piece,
        before the first included; ``None`` waits as long as the deadline allows.
    :param max_concurrency: how many calls :meth:`run_batch` runs at once.
    :param pipeline: a custom :class:`Pipeline` instead of the default chain.
    :param plugin_manager: a pluggy manager (see :func:`llm_client.plugins.new_plugin_manager`).
    :param api_key, base_url, organization, http_client: for the OpenAI SDK (env otherwise).
    """

    def __init__(
        self,
        model: ModelProfile | str,
        *,
        api: Api = "chat",
        cache_backend: str | Any | None = None,
        cache_dir: Any = None,
        cache_collection: str | None = None,
        cache_ttl: float | None = None,
        pg_dsn: str | None = None,
        redis_url: str | None = None,
        qdrant_url: str | None = None,
        qdrant_api_key: str | None = None,
        semantic_cache_threshold: float | None = None,
        semantic_cache_model: ModelProfile | str | None = None,
        rate_limit_backend: str | None = "local",
        tokens_per_minute: float | None = None,
        requests_per_minute: float | None = None,
        burst_seconds: float | None = None,
        limiter: Any = None,
        attempts: int = 3,
        backoff: float = 0.5,
        timeout: float | None = None,
        stream_idle_timeout: float | None = None,
        max_concurrency: int = 64,
        pipeline: Pipeline | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        http_client: Any = None,
        sdk: Any = None,
        clock: Clock | None = None,
        **backend_options: Any,
    ) -> None:
        self.profile = ModelProfile.get(model)
        warn_if_retiring(self.profile)
        if api not in ("chat", "responses"):
            raise ConfigurationError(f"api must be 'chat' or 'responses', got {api!r}")
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ConfigurationError(
                f"max_concurrency must be an integer >= 1, got {max_concurrency!r}"
            )
        if semantic_cache_threshold is not None and not (
            isinstance(semantic_cache_threshold, (int, float))
            and not isinstance(semantic_cache_threshold, bool)
            and 0 < semantic_cache_threshold <= 1
        ):
            raise ConfigurationError(
                "semantic_cache_threshold must be a cosine similarity in (0, 1],"
                f" got {semantic_cache_threshold!r:.60}"
            )
        _check_types(pipeline=pipeline, plugin_manager=plugin_manager, clock=clock)
        self.api: Api = api
        self.max_concurrency = max_concurrency
        #: The injected plugin manager, if any (agents look tool names up in it).
        self.plugin_manager = plugin_manager
        from .transport import Transport

        try:
            self._transport = Transport(
                sdk=sdk,
                api_key=api_key,
                base_url=base_url,
                organization=organization,
                http_client=http_client,
            )
        except Exception as exc:  # the SDK raises OpenAIError without a key
            raise ConfigurationError(
                f"could not create the OpenAI SDK client: {exc}. Pass api_key=... or set"
                " OPENAI_API_KEY (a .env file is loaded on import)."
            ) from exc
        self._semantic_profile = (
            ModelProfile.get(semantic_cache_model) if semantic_cache_model else TextEmbedding3Small
        )
        if pipeline is None:
            options = {
                k: v
                for k, v in {
                    "cache_dir": cache_dir,
                    "pg_dsn": pg_dsn,
                    "redis_url": redis_url,
                    "qdrant_url": qdrant_url,
                    "qdrant_api_key": qdrant_api_key,
                }.items()
                if v is not None
            }
            pipeline = Pipeline.default(
                self.profile,
                cache_backend=cache_backend,
                cache_collection=cache_collection,
                cache_ttl=cache_ttl,
                semantic_cache_threshold=semantic_cache_threshold,
                embed=self._embed if semantic_cache_threshold else None,
                limiter=limiter,
                rate_limit_backend=rate_limit_backend,
                tokens_per_minute=tokens_per_minute,
                requests_per_minute=requests_per_minute,
                burst_seconds=burst_seconds,
                attempts=attempts,
                backoff=backoff,
                timeout=timeout,
                stream_idle_timeout=stream_idle_timeout,
                plugin_manager=plugin_manager,
                clock=clock,
                **options,
                **backend_options,
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
        identifier: str | None = None,
        hash_as_identifier: bool = True,
        cache_response: bool = True,
        cache_errors: bool = False,
        rewrite_cache: bool = False,
        regen_cache: bool = False,
        attempts: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        api: Api | None = None,
        raise_on_error: bool = False,
        **params: Any,
    ) -> LLMResult:
        """Run one call and return an :class:`LLMResult`.

        Failures come back as a result with ``status`` and ``error`` unless ``raise_on_error``,
        which raises the matching :class:`LLMClientError` instead. Bad input raises
        :class:`InvalidRequestError` either way, before anything is sent: malformed arguments
        when the call is built, an input over the model's limit when its tokens are counted.
        """
        if type(raise_on_error) is not bool:
            raise InvalidRequestError(
                f"raise_on_error must be True or False, got {raise_on_error!r:.60}"
            )
        call = build_call(
            self.profile,
            self.api,
            messages,
            input,
            params,
            stream=False,
            api=api,
            identifier=identifier,
            hash_as_identifier=hash_as_identifier,
            cache_response=cache_response,
            cache_errors=cache_errors,
            rewrite_cache=rewrite_cache,
            regen_cache=regen_cache,
            attempts=attempts,
            backoff=backoff,
            timeout=timeout,
        )
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
                model=self.profile.model_name,
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
        identifier: str | None = None,
        hash_as_identifier: bool = True,
        cache_response: bool = True,
        cache_errors: bool = False,
        rewrite_cache: bool = False,
        regen_cache: bool = False,
        attempts: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        api: Api | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Run one call; return the seed's dict (``params``, ``output``, ``usage``, ``status``,
        ``error``, ``identifier``, plus ``cached``, ``attempts``, ``tool_calls`` ...)."""
        result = await self.invoke(
            messages,
            input=input,
            identifier=identifier,
            hash_as_identifier=hash_as_identifier,
            cache_response=cache_response,
            cache_errors=cache_errors,
            rewrite_cache=rewrite_cache,
            regen_cache=regen_cache,
            attempts=attempts,
            backoff=backoff,
            timeout=timeout,
            api=api,
            **params,
        )
        return result.to_dict()

    def stream(
        self,
        messages: Any = None,
        *,
        input: Any = None,
        identifier: str | None = None,
        hash_as_identifier: bool = True,
        cache_response: bool = True,
        cache_errors: bool = False,
        rewrite_cache: bool = False,
        regen_cache: bool = False,
        attempts: int | None = None,
        backoff: float | None = None,
        timeout: float | None = None,
        stream_idle_timeout: float | None = None,
        api: Api | None = None,
        **params: Any,
    ) -> AsyncIterator[LLMEvent]:
        """Stream one call as :class:`LLMEvent` s: ``meta``, ``text_delta`` ..., ``usage``,
        ``done`` — or ending in one ``error`` event; never silently cut short.

        The request is checked when this is called (malformed input raises at once); it is
        sent when iteration starts. ``timeout`` bounds the whole stream, ``stream_idle_timeout``
        each wait for the next piece (both end the stream with an ``error`` event, 408).
        Stop early with ``break`` or ``aclose()``: the HTTP response is closed at once.
        """
        if self.profile.is_embeddings:
            raise InvalidRequestError(
                f"{self.profile.key} is an embeddings model: it cannot stream"
            )
        call = build_call(
            self.profile,
            self.api,
            messages,
            input,
            params,
            stream=True,
            api=api,
            identifier=identifier,
            hash_as_identifier=hash_as_identifier,
            cache_response=cache_response,
            cache_errors=cache_errors,
            rewrite_cache=rewrite_cache,
            regen_cache=regen_cache,
            attempts=attempts,
            backoff=backoff,
            timeout=timeout,
        )
        if stream_idle_timeout is not None:
            if (
                isinstance(stream_idle_timeout, bool)
                or not isinstance(stream_idle_timeout, (int, float))
                or not math.isfinite(stream_idle_timeout)
                or stream_idle_timeout <= 0
            ):
                raise InvalidRequestError(
                    "stream_idle_timeout must be a positive number of seconds,"
                    f" got {stream_idle_timeout!r}"
                )
            call = call.replace(stream_idle_timeout=float(stream_idle_timeout))
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
                model=self.profile.model_name,
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
