"""Single-flight: identical calls in flight at once share one answer.

The first call with a key *leads*: it reads the cache and, on a miss, calls the API. Calls
with the same key that arrive meanwhile wait for the leader's outcome instead of calling the
API themselves. Waiters receive the leader's answer only if it is a success; otherwise each
goes on alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..result import LLMResult

__all__ = ["Flight", "Shared", "SingleFlight"]


@dataclass(slots=True)
class Shared:
    """What a single-flight leader hands to the calls that waited for it.

    :param result: the answer (as read from the cache or as the API gave it).
    :param similarity: the cosine similarity of a semantic hit, ``None`` otherwise.
    :param stored: whether the answer is (or is being) stored, so waiters need not store it.
    :param hit: ``result`` is already the hit every call with this key receives (an exact
        hit built straight from the stored value), so it is handed on as it is.
    """

    result: LLMResult
    similarity: float | None
    stored: bool
    hit: bool = False


class Flight:
    """One leading call. The future its waiters await is made when the first one arrives:
    most calls lead alone, and a future per call was a measurable share of a cache hit."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[Shared | None] | None = None


class SingleFlight:
    """The calls currently leading, by key."""

    __slots__ = ("_flights",)

    def __init__(self) -> None:
        self._flights: dict[str, Flight] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._flights

    def running(self, key: str) -> asyncio.Future[Shared | None] | None:
        """The outcome of the call leading for ``key`` (await it shielded), if one is."""
        flight = self._flights.get(key)
        if flight is None:
            return None
        if flight.future is None:
            flight.future = asyncio.get_running_loop().create_future()
        return flight.future

    def begin(self, key: str) -> Flight:
        """Lead for ``key`` until :meth:`end`; calls with the same key wait for it meanwhile."""
        flight = self._flights[key] = Flight()
        return flight

    def end(self, key: str, flight: Flight, outcome: Shared | None) -> None:
        """Stop leading (call it in a ``finally``, so a failure or a cancellation ends the
        flight too): the waiters get ``outcome`` if it is a successful answer, else ``None``
        and each goes on alone."""
        future = flight.future
        if future is not None and not future.done():
            future.set_result(outcome if outcome is not None and outcome.result.ok else None)
        if self._flights.get(key) is flight:
            del self._flights[key]
