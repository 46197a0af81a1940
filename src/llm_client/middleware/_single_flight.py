"""Single-flight: identical calls in flight at once share one answer.

The first call with a key *leads*: it reads the cache and, on a miss, calls the API. Calls
with the same key that arrive meanwhile wait for the leader's outcome instead of calling the
API themselves. Waiters receive the leader's answer only if it is a success; otherwise each
goes on alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from ..result import LLMResult

__all__ = ["Leader", "Shared", "SingleFlight"]


@dataclass(slots=True)
class Shared:
    """What a single-flight leader hands to the calls that waited for it.

    :param result: the answer (as read from the cache or as the API gave it).
    :param similarity: the cosine similarity of a semantic hit, ``None`` otherwise.
    :param stored: whether the answer is (or is being) stored, so waiters need not store it.
    """

    result: LLMResult
    similarity: float | None
    stored: bool


class Leader:
    """The leading call's handle: set :attr:`outcome` before leaving :meth:`SingleFlight.lead`."""

    __slots__ = ("outcome",)

    def __init__(self) -> None:
        self.outcome: Shared | None = None


class SingleFlight:
    """The calls currently leading, by key."""

    __slots__ = ("_flights",)

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future[Shared | None]] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._flights

    def running(self, key: str) -> asyncio.Future[Shared | None] | None:
        """The outcome of the call leading for ``key`` (await it shielded), if one is."""
        return self._flights.get(key)

    @contextlib.contextmanager
    def lead(self, key: str) -> Iterator[Leader]:
        """Lead for ``key`` for the duration of the block.

        On leaving (normally, by an exception or a cancellation) the waiters get
        ``leader.outcome`` if it is a successful answer, else ``None``.
        """
        future: asyncio.Future[Shared | None] = asyncio.get_running_loop().create_future()
        self._flights[key] = future
        leader = Leader()
        try:
            yield leader
        finally:
            if not future.done():  # waiters get an answer only if it is a success
                shared = leader.outcome
                future.set_result(shared if shared is not None and shared.result.ok else None)
            if self._flights.get(key) is future:
                del self._flights[key]
