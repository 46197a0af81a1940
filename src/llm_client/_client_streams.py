"""The client's streams to users: :class:`StreamsMixin`, the part of
:class:`~llm_client.OpenAIClient` that turns :meth:`~llm_client.OpenAIClient.stream` into
Server-Sent Events frames or feeds it into a sink."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, cast

from .exceptions import LLMClientError
from .middleware._stream import aclose
from .result import LLMResult

if TYPE_CHECKING:
    import pluggy

    from .client import OpenAIClient
    from .request import CallOptions
    from .streaming import LLMEvent

__all__ = ["StreamsMixin"]


class StreamsMixin:
    """``stream_sse``, ``sink``, ``stream_to_sink`` and the sink counters of
    :class:`~llm_client.OpenAIClient` (its only subclass)."""

    if TYPE_CHECKING:  # provided by OpenAIClient
        plugin_manager: pluggy.PluginManager | None

        def stream(
            self,
            messages: Any = None,
            *,
            input: Any = None,
            options: CallOptions | None = None,
            **params: Any,
        ) -> AsyncIterator[LLMEvent]: ...

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
            cast("OpenAIClient", self),  # the mixin's only subclass
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
