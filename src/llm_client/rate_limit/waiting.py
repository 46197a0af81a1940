"""The waiting line of a :class:`~llm_client.rate_limit.Limiter`: one FIFO queue of calls that
do not fit yet, admitted strictly in order from its head as the buckets refill, with a single
timer (on the event loop, or a task sleeping on an injected clock) armed for the head's wait.
A mixin of :class:`~llm_client.rate_limit.Limiter`, kept apart from the buckets and the lease
bookkeeping (admission, refunds, settlement), which stay in ``limiter.py``."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..clock import Clock
    from .limiter import _LocalLease

__all__ = ["WaitQueue"]


class _Waiter:
    __slots__ = ("enqueued", "future", "lease")

    def __init__(self, lease: _LocalLease, future: asyncio.Future[None], enqueued: float) -> None:
        self.lease = lease
        self.future = future
        self.enqueued = enqueued


class WaitQueue:
    """The queue half of :class:`~llm_client.rate_limit.Limiter` (its state is set up by
    ``Limiter.__init__``; the buckets' side, ``_check_size``, ``_wait``, ``_admit`` and
    ``_give_back``, is the limiter's own)."""

    # Declared for the type checker; Limiter.__init__ sets every one of them.
    _clock: Clock
    _queue: deque[_Waiter]
    _live: int
    _loop_timers: bool
    _now: Callable[[], float]
    _timer: asyncio.TimerHandle | asyncio.Task[None] | None
    _timer_at: float
    _closed: bool
    _total_wait: float
    _queued_calls: int

    if TYPE_CHECKING:  # Limiter's own (no stubs at run time, so nothing can shadow them)

        def _check_size(self, tokens: float, requests: float) -> None: ...
        def _wait(self, lease: _LocalLease, now: float) -> float: ...
        def _admit(self, lease: _LocalLease, now: float) -> None: ...
        def _give_back(self, lease: _LocalLease) -> None: ...

    async def _acquire(self, lease: _LocalLease) -> None:
        if self._closed:
            raise RuntimeError("this rate limiter is closed")
        self._check_size(lease.tokens, lease.requests)
        now = self._now()
        if not self._live and not self._wait(lease, now):
            self._admit(lease, now)
            return
        waiter = _Waiter(lease, asyncio.get_running_loop().create_future(), now)
        self._queue.append(waiter)
        self._live += 1
        self._queued_calls += 1
        if self._live == 1:
            self._dispatch()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                # Admitted, but cancelled before it could run: give it all back.
                self._give_back(lease)
            else:
                waiter.future.cancel()
                self._live -= 1
                self._dispatch()
            raise

    def _dispatch(self) -> None:
        """Admit waiters from the head of the queue while they fit; then arm one timer."""
        queue = self._queue
        now = self._now()
        while queue:
            head = queue[0]
            if head.future.done():  # cancelled while waiting
                queue.popleft()
                continue
            lease = head.lease
            wait = self._wait(lease, now)
            if wait > 0.0:
                self._arm(head.future.get_loop(), now, wait)
                return
            queue.popleft()
            self._live -= 1
            self._admit(lease, now)
            self._total_wait += now - head.enqueued
            head.future.set_result(None)
        self._disarm()

    def _arm(self, loop: asyncio.AbstractEventLoop, now: float, wait: float) -> None:
        at = now + wait
        if self._timer is not None:
            if self._timer_at <= at:
                return  # an earlier wake-up is due anyway; it will look again
            self._disarm()
        self._timer_at = at
        if self._loop_timers:
            self._timer = loop.call_later(wait, self._on_timer)
        else:
            self._timer = loop.create_task(self._sleep_then_dispatch(wait))

    def _disarm(self) -> None:
        timer, self._timer = self._timer, None
        self._timer_at = math.inf
        if timer is not None:
            timer.cancel()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self._dispatch()

    async def _sleep_then_dispatch(self, wait: float) -> None:
        await self._clock.sleep(wait)
        self._on_timer()

    async def aclose(self) -> None:
        """Stop the timer and fail every waiter; the limiter accepts no more calls."""
        self._closed = True
        self._disarm()
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(RuntimeError("this rate limiter was closed"))
        self._live = 0
