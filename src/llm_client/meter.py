"""What one call has spent so far, for the steps that cut a call short.

A call cut by its deadline after it was sent, or a stream whose consumer stopped reading,
ends without the server's usage: the server billed the work, but its answer never arrived.
The transport keeps a :class:`CallMeter` (found in ``call.context["meter"]``) up to date: the
attempts it sent, the usage of the attempts that ended, and an estimate for the attempt in
flight (the input tokens counted before sending, plus the output that has streamed in). The
step that cuts the call — the timeout, or cost accounting for an abandoned stream — reports
that sum, marked :attr:`Usage.estimated <llm_client.usage.Usage.estimated>`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .usage import Usage

if TYPE_CHECKING:
    from .pipeline import Call

__all__ = ["CallMeter", "meter_of"]


class CallMeter:
    """Attempts sent, usage settled, and the estimate of the attempt in flight.

    Cheap on the common path: an estimate is a function, called only if the call is cut.
    """

    __slots__ = ("attempts", "in_flight", "settled")

    def __init__(self) -> None:
        self.attempts = 0
        self.settled: Usage | None = None
        self.in_flight: Usage | Callable[[], Usage] | None = None

    def sent(self, estimate: Callable[[], Usage]) -> None:
        """An attempt went out; ``estimate()`` is what it costs if no answer ever comes."""
        self.attempts += 1
        self.in_flight = estimate

    @property
    def open(self) -> bool:
        """Whether an attempt is in flight."""
        return self.in_flight is not None

    def update(self, estimate: Usage) -> None:
        """A better estimate for the attempt in flight (e.g. with the output streamed so far)."""
        if self.in_flight is not None:
            self.in_flight = estimate

    def ended(self, usage: Usage | None) -> None:
        """The attempt in flight ended with ``usage`` (reported on its result or error)."""
        self.in_flight = None
        if usage is not None:
            self.settled = usage if self.settled is None else self.settled + usage

    def spent(self) -> Usage:
        """Everything spent so far; ``estimated`` if an attempt is still in flight."""
        settled = self.settled or Usage()
        in_flight = self.in_flight
        if in_flight is None:
            return settled
        return settled + (in_flight if isinstance(in_flight, Usage) else in_flight())


def meter_of(call: Call) -> CallMeter | None:
    meter = call.context.get("meter")
    return meter if isinstance(meter, CallMeter) else None
