"""Event sinks: where a streamed call's events go besides the caller (Pusher, Redis ...).

A *sink* receives batches of :class:`~llm_client.streaming.LLMEvent` through an async
``send(events)``, is closed with ``aclose()``, and is an async context manager. Plugins make
sinks available by name through the ``register_sinks`` hook; :func:`make_sink` (or
:meth:`llm_client.OpenAIClient.sink`) builds one by name.

:meth:`llm_client.OpenAIClient.stream_to_sink` feeds a sink through a :class:`SinkFeed`: the
caller's stream only appends to a bounded buffer, and a background task delivers batches to
the sink. A sink that raises, hangs or is slow therefore never fails or delays the stream: its
failures are logged once per sink, events that do not fit in the buffer are dropped, and both
are counted in ``client.stats()["sinks"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import pluggy

from .exceptions import ConfigurationError
from .hookspecs import hookimpl
from .streaming import LLMEvent

__all__ = [
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_BUFFER",
    "BaseSink",
    "MemorySink",
    "Sink",
    "SinkCounters",
    "SinkFeed",
    "make_sink",
    "sink_names",
    "wire_data",
]

logger = logging.getLogger(__name__)

#: Events a feed holds for a sink before it starts dropping new ones.
DEFAULT_MAX_BUFFER = 1000
#: Most events handed to one ``send`` call.
DEFAULT_MAX_BATCH = 100

#: Fields of the final result a ``done`` event carries to a sink. The request's ``params``
#: (the user's whole prompt) and the assembled ``output`` (already sent as deltas) stay home.
_DONE_FIELDS = (
    "status",
    "error",
    "identifier",
    "operation",
    "model",
    "finish_reason",
    "response_id",
    "attempts",
    "cached",
    "usage",
    "tool_calls",
)


@runtime_checkable
class Sink(Protocol):
    """What :meth:`~llm_client.OpenAIClient.stream_to_sink` needs from a sink."""

    async def send(self, events: Sequence[LLMEvent]) -> None:
        """Deliver ``events`` (in stream order). Raising marks the batch as failed."""

    async def aclose(self) -> None:
        """Deliver what is still pending and release connections."""

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class BaseSink:
    """A convenient base: the context manager calls :meth:`aclose`. Subclasses write
    :meth:`send` (and :meth:`aclose` when they hold connections)."""

    async def send(self, events: Sequence[LLMEvent]) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class MemorySink(BaseSink):
    """Keeps every event it receives in :attr:`events` (and each batch in :attr:`batches`):
    for tests and for examples. Registered as ``"memory"``."""

    def __init__(self) -> None:
        self.events: list[LLMEvent] = []
        self.batches: list[list[LLMEvent]] = []
        self.closed = False

    async def send(self, events: Sequence[LLMEvent]) -> None:
        self.batches.append(list(events))
        self.events.extend(events)

    async def aclose(self) -> None:
        self.closed = True

    @property
    def text(self) -> str:
        """The text of the ``text_delta`` events received, joined."""
        return "".join(str(e.data.get("text", "")) for e in self.events if e.type == "text_delta")


def wire_data(event: LLMEvent) -> dict[str, Any]:
    """The JSON-ready payload a sink publishes for ``event``.

    It is ``event.data``, except for ``done``: that carries the final status, usage, finish
    reason, tool calls and identifiers, but not the request's ``params`` nor the ``output``
    (the text already went out as ``text_delta`` events), so a prompt never reaches a
    channel other people may subscribe to.
    """
    data = dict(event.data)
    if event.type == "done":
        return {k: data[k] for k in _DONE_FIELDS if k in data}
    return data


# --- counting ----------------------------------------------------------------------------------


@dataclass
class SinkCounters:
    """What a client's sinks did: ``client.stats()["sinks"]``."""

    streams: int = 0  #: streams fed to a sink
    events: int = 0  #: events the streams offered to sinks
    delivered: int = 0  #: events in batches that ``send`` accepted
    failed: int = 0  #: events in batches whose ``send`` raised or timed out
    dropped: int = 0  #: events never sent: the buffer was full, or the drain time ran out
    send_errors: int = 0  #: ``send`` calls that raised
    send_timeouts: int = 0  #: ``send`` calls cut at ``send_timeout``

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class _LogOnce:
    """Remembers which sinks already had a failure logged (weakly, when it can)."""

    def __init__(self) -> None:
        self._weak: weakref.WeakSet[Any] = weakref.WeakSet()
        self._ids: set[int] = set()

    def first(self, sink: Any) -> bool:
        try:
            if sink in self._weak:
                return False
            self._weak.add(sink)
            return True
        except TypeError:  # not weak-referenceable: fall back to its id
            if id(sink) in self._ids:
                return False
            self._ids.add(id(sink))
            return True


_LOGGED = _LogOnce()


# --- delivery ----------------------------------------------------------------------------------


def _positive(name: str, value: Any, *, allow_none: bool = False, integer: bool = False) -> Any:
    if value is None and allow_none:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not value > 0 or value != value:
        kind = "an integer >= 1" if integer else "a positive number of seconds"
        extra = " or None" if allow_none else ""
        raise ConfigurationError(f"{name} must be {kind}{extra}, got {value!r:.60}")
    return value


class SinkFeed:
    """Delivers one stream's events to a sink without ever holding the stream up.

    :meth:`put` appends to a buffer of at most ``max_buffer`` events and returns at once; a
    background task hands the sink everything buffered (up to ``max_batch`` events per
    ``send``), so events that pile up while a slow ``send`` runs go out together. A ``send``
    that raises or outlasts ``send_timeout`` counts its events as failed and is logged (once
    per sink object); delivery goes on with the next batch. :meth:`finish` waits at most
    ``drain_timeout`` for the rest, then gives up on it (counted as dropped).
    """

    def __init__(
        self,
        sink: Any,
        *,
        counters: SinkCounters | None = None,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_batch: int = DEFAULT_MAX_BATCH,
        send_timeout: float | None = 10.0,
        drain_timeout: float = 5.0,
    ) -> None:
        if not callable(getattr(sink, "send", None)):
            raise ConfigurationError(
                f"sink must have an async send(events) method, got {type(sink).__name__}"
            )
        self.sink = sink
        self.counters = counters if counters is not None else SinkCounters()
        self.max_buffer: int = _positive("sink_max_buffer", max_buffer, integer=True)
        self.max_batch: int = _positive("sink_max_batch", max_batch, integer=True)
        self.send_timeout: float | None = _positive(
            "sink_send_timeout", send_timeout, allow_none=True
        )
        if isinstance(drain_timeout, bool) or not isinstance(drain_timeout, (int, float)) or not (
            drain_timeout >= 0
        ):
            raise ConfigurationError(
                f"sink_drain_timeout must be a number of seconds >= 0, got {drain_timeout!r:.60}"
            )
        self.drain_timeout = float(drain_timeout)
        self._buffer: deque[LLMEvent] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.counters.streams += 1

    def put(self, event: LLMEvent) -> None:
        """Queue ``event`` for the sink; never blocks. A full buffer drops the event, except a
        stream's last one (``done``/``error``), which always gets in."""
        self.counters.events += 1
        if len(self._buffer) >= self.max_buffer and event.type not in ("done", "error"):
            self.counters.dropped += 1
            return
        self._buffer.append(event)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._deliver())

    async def _deliver(self) -> None:
        while True:
            if not self._buffer:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            n = min(len(self._buffer), self.max_batch)
            batch = [self._buffer.popleft() for _ in range(n)]
            try:
                if self.send_timeout is None:
                    await self.sink.send(batch)
                else:
                    await asyncio.wait_for(self.sink.send(batch), self.send_timeout)
            except asyncio.CancelledError:
                self.counters.dropped += len(batch)
                raise
            except Exception as exc:
                self.counters.failed += len(batch)
                timed_out = isinstance(exc, asyncio.TimeoutError)
                if timed_out:
                    self.counters.send_timeouts += 1
                else:
                    self.counters.send_errors += 1
                if _LOGGED.first(self.sink):
                    what = (
                        f"took longer than {self.send_timeout:g}s"
                        if timed_out
                        else f"failed: {type(exc).__name__}: {exc}"
                    )
                    logger.warning(
                        "sink %s %s; its events are dropped, the stream goes on"
                        " (further failures of this sink are only counted in stats())",
                        type(self.sink).__name__,
                        what,
                    )
            else:
                self.counters.delivered += len(batch)

    async def finish(self) -> None:
        """Let the buffered events go out, waiting at most ``drain_timeout``; then stop."""
        self._closing = True
        self._wake.set()
        task = self._task
        if task is None:
            return
        deadline = time.monotonic() + self.drain_timeout
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), max(0.0, deadline - time.monotonic()))
        except BaseException:  # the caller is cancelled while it waits: stop delivering
            await self.abort()
            raise
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._buffer:
                self.counters.dropped += len(self._buffer)
                self._buffer.clear()
            if _LOGGED.first(self.sink):
                logger.warning(
                    "sink %s did not take the stream's last events within %gs; they are dropped",
                    type(self.sink).__name__,
                    self.drain_timeout,
                )

    async def abort(self) -> None:
        """Stop at once (the caller's task is being cancelled): pending events are dropped."""
        self._closing = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.counters.dropped += len(self._buffer)
        self._buffer.clear()


# --- building sinks by name ----------------------------------------------------------------------


def sink_names(*, plugin_manager: pluggy.PluginManager | None = None) -> list[str]:
    """The names of the sinks that installed plugins registered."""
    from .plugins import get_registry

    return sorted(get_registry(plugin_manager).sinks)


def make_sink(
    name: str, /, *, plugin_manager: pluggy.PluginManager | None = None, **options: Any
) -> Any:
    """Build the sink a plugin registered as ``name`` (``"pusher"``, ``"redis"``, ``"memory"``)
    with ``options``. An unknown name raises :class:`~llm_client.UnknownBackendError`, listing
    the installed sinks and the package that provides the name when it is one of ours."""
    from .config import check_factory_options
    from .plugins import get_registry, lookup

    if not isinstance(name, str):
        raise ConfigurationError(f"a sink name must be a string, got {type(name).__name__}")
    reg = lookup(get_registry(plugin_manager).sinks, "sink", name)
    factory: Callable[..., Any] = reg.factory
    check_factory_options("sink", name, factory, options)
    sink = factory(**options)
    if not callable(getattr(sink, "send", None)) or not callable(getattr(sink, "aclose", None)):
        raise ConfigurationError(
            f"sink {name!r} (plugin {reg.plugin!r}) built a {type(sink).__name__}, which has no"
            " async send(events) and aclose()"
        )
    return sink


@hookimpl
def register_sinks(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("memory", MemorySink)
