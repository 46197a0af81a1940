"""Injected failures: :class:`Fault`, and the server's queue of pending faults.

Faults are consumed in the order they were queued; a request that finds none may still get a
random one from a :class:`~llm_client.testing.wire.FaultDraw`. What each kind does on the wire
is described in ``docs/testing.md`` (the stream faults are carried out in :mod:`.wire`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal, get_args

from . import wire
from .wire import FaultDraw

__all__ = ["ENDPOINTS", "FAULT_KINDS", "Fault", "FaultInjection", "FaultKind"]


FaultKind = Literal[
    "status",
    "drop",
    "truncate",
    "malformed",
    "latency",
    "response_failed",
    "response_incomplete",
    "stream_error",
    "stall",
    "drip",
    "cut",
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
#: Endpoint names used in the request log and as fault filters.
ENDPOINTS: frozenset[str] = frozenset({"chat", "responses", "embeddings", "models", "other"})


@dataclass(frozen=True)
class Fault:
    """One injected failure; see ``docs/testing.md`` for what each kind does on the wire.

    ``times`` is how many matching requests it affects; ``endpoint`` restricts it to one of
    ``"chat"``, ``"responses"``, ``"embeddings"``, ``"models"`` (None matches any request).
    ``delay`` seconds are waited before the fault acts (for ``"latency"`` that is the fault).
    ``after_chunks`` is how many stream chunks/events go out before a stream fault strikes.
    ``interval`` is the pause between pieces of a ``"drip"`` (see :mod:`.wire`).
    """

    kind: FaultKind
    _: KW_ONLY
    times: int = 1
    endpoint: str | None = None
    status: int = 500
    retry_after: float | None = None
    retry_after_ms: float | None = None
    headers: Mapping[str, str] | None = None
    after_chunks: int = 2
    delay: float = 0.0
    message: str | None = None
    interval: float = 0.05

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {sorted(FAULT_KINDS)}")
        if self.endpoint is not None and self.endpoint not in ENDPOINTS:
            raise ValueError(
                f"unknown endpoint {self.endpoint!r}; use None or one of {sorted(ENDPOINTS)}"
            )
        if self.times < 1:
            raise ValueError("times must be >= 1")
        if self.after_chunks < 0:
            raise ValueError("after_chunks must be >= 0")
        if self.delay < 0 or self.interval < 0:
            raise ValueError("delay and interval must be >= 0")
        if not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")

    def matches(self, endpoint: str) -> bool:
        """Whether this fault applies to a request for ``endpoint``."""
        return self.endpoint is None or self.endpoint == endpoint


@dataclass
class _PendingFault:
    fault: Fault
    remaining: int = field(default=0)


class FaultInjection:
    """The fault methods of :class:`~llm_client.testing.server.FakeOpenAI`."""

    _lock: threading.Lock
    _faults: list[_PendingFault]
    _wire: wire.WireLog

    def add_fault(self, fault: Fault) -> None:
        """Queue ``fault``; faults are consumed in the order they were added."""
        with self._lock:
            self._faults.append(_PendingFault(fault, fault.times))

    @property
    def faults(self) -> list[Fault]:
        """Pending faults, with ``times`` set to the uses left."""
        with self._lock:
            return [dataclasses.replace(p.fault, times=p.remaining) for p in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for i, pending in enumerate(self._faults):
                if pending.fault.matches(endpoint):
                    pending.remaining -= 1
                    if pending.remaining <= 0:
                        del self._faults[i]
                    return pending.fault
        draw = self._wire.draw
        return draw(endpoint) if draw is not None else None

    def fail_next(
        self,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        endpoint: str | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The next ``times`` matching requests get an error ``status`` with OpenAI's body."""
        self.add_fault(
            Fault(
                "status",
                times=times,
                status=status,
                retry_after=retry_after,
                retry_after_ms=retry_after_ms,
                endpoint=endpoint,
                message=message,
                headers=headers,
            )
        )

    def rate_limit_next(
        self,
        *,
        times: int = 1,
        retry_after: float | None = 1.0,
        retry_after_ms: float | None = None,
        endpoint: str | None = None,
    ) -> None:
        """The next ``times`` matching requests get a 429 with ``retry-after``."""
        self.fail_next(
            429,
            times=times,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            endpoint=endpoint,
        )

    def drop_next(self, *, times: int = 1, endpoint: str | None = None) -> None:
        """The next ``times`` matching requests have their connection aborted, unanswered."""
        self.add_fault(Fault("drop", times=times, endpoint=endpoint))

    def truncate_next(
        self, *, after_chunks: int = 2, times: int = 1, endpoint: str | None = None
    ) -> None:
        """Streams end cleanly after ``after_chunks`` chunks; unary bodies are cut in half."""
        self.add_fault(Fault("truncate", times=times, endpoint=endpoint, after_chunks=after_chunks))

    def malformed_next(
        self, *, after_chunks: int = 2, times: int = 1, endpoint: str | None = None
    ) -> None:
        """Unary bodies are invalid JSON; streams carry one invalid chunk after ``after_chunks``."""
        self.add_fault(
            Fault("malformed", times=times, endpoint=endpoint, after_chunks=after_chunks)
        )

    def delay_next(self, delay: float, *, times: int = 1, endpoint: str | None = None) -> None:
        """The next ``times`` matching requests are answered normally after ``delay`` seconds."""
        self.add_fault(Fault("latency", times=times, endpoint=endpoint, delay=delay))

    def fail_stream_next(
        self,
        kind: Literal["response_failed", "response_incomplete", "stream_error"] = "stream_error",
        *,
        after_chunks: int = 2,
        times: int = 1,
        endpoint: str | None = None,
        message: str | None = None,
    ) -> None:
        """Queue one of the stream-level faults (see :class:`Fault`)."""
        self.add_fault(
            Fault(kind, times=times, endpoint=endpoint, after_chunks=after_chunks, message=message)
        )

    def stall_next(
        self, *, after_chunks: int = 2, times: int = 1, endpoint: str | None = None
    ) -> None:
        """Send ``after_chunks`` stream events (a unary answer: no headers), then hang."""
        self.add_fault(Fault("stall", times=times, endpoint=endpoint, after_chunks=after_chunks))

    def drip_next(
        self, interval: float = 0.05, *, times: int = 1, endpoint: str | None = None
    ) -> None:
        """Send every stream event (a unary body: in pieces) ``interval`` seconds apart."""
        self.add_fault(Fault("drip", times=times, endpoint=endpoint, interval=interval))

    def cut_next(
        self, *, after_chunks: int = 2, times: int = 1, endpoint: str | None = None
    ) -> None:
        """Send ``after_chunks`` stream events (a unary body: half), then reset the connection."""
        self.add_fault(Fault("cut", times=times, endpoint=endpoint, after_chunks=after_chunks))

    def draw_faults(self, draw: FaultDraw | None) -> None:
        """Give ``draw.rate`` of the requests without a queued fault a random fault from
        ``draw.faults``; None stops drawing."""
        self._wire.draw = draw
