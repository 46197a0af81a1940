"""How a :class:`~llm_client_redis.rate_limit.RedisLimiter` admits a call on the shared
schedule: ``limit()``'s context manager reserves the call's slot in one round trip (or, while
Redis is down, admits it on the local share) and sleeps until the slot comes; a caller
cancelled while it waits gives its slot back (those of one process together, before its next
reservation); on exit the call's real usage is settled (a refund or a charge). A mixin of
``RedisLimiter``, holding its reservation side apart from its configuration and statistics."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from llm_client.clock import Clock
from llm_client.rate_limit import Lease

from ._layout import reply_float
from ._link import RedisLink, Unavailable

if TYPE_CHECKING:
    from .limiter import RedisLimiter

__all__ = ["Admission", "RedisLimit"]


class RedisLimit(AbstractAsyncContextManager[Lease]):
    """``async with limiter.limit(...)`` on Redis, or on the local fallback while it is down."""

    __slots__ = ("_inner", "_lease", "_limiter", "_rates", "_seq")

    def __init__(self, limiter: RedisLimiter, tokens: float, requests: float) -> None:
        self._limiter = limiter
        self._lease = Lease(tokens, requests)
        self._inner: AbstractAsyncContextManager[Lease] | None = None
        self._seq = 0
        self._rates = (limiter._tpm, limiter._rpm)  # the budget the reservation is made in

    async def __aenter__(self) -> Lease:
        limiter = self._limiter
        limiter._check(self._lease)
        self._rates = (limiter._tpm, limiter._rpm)
        try:
            self._seq = await limiter._reserve(self._lease)
        except Unavailable:
            self._inner = limiter._local().limit(self._lease.tokens, self._lease.requests)  # type: ignore[arg-type]
            limiter._fallback_calls += 1
            return await self._inner.__aenter__()
        return self._lease

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._inner is not None:
            await self._inner.__aexit__(exc_type, exc, tb)
            return
        await self._limiter._settle(self._lease, exc, self._rates)


class Admission:
    """The reservation side of ``RedisLimiter`` (its state is set up by
    ``RedisLimiter.__init__``)."""

    # Declared for the type checker; RedisLimiter.__init__ sets every one of them.
    _tpm: float
    _rpm: float
    _clock: Clock
    _link: RedisLink
    _lock: asyncio.Lock
    _member: str
    _members: int
    _limits_loaded: bool
    _level_tokens: float
    _level_requests: float
    _waiting: int
    _wakes: list[float]
    _in_flight: int
    _queued_calls: int
    _total_wait: float
    _admitted_tokens: float
    _admitted_requests: float
    _refunded_tokens: float
    _refunded_requests: float
    _charged_tokens: float
    _lost_slots: int
    _to_cancel: list[int]

    if TYPE_CHECKING:  # RedisLimiter's own (and HeaderFollowing's)

        def _shape(self) -> list[str]: ...

        def _now_arg(self) -> str: ...

        async def _load_limits(self) -> None: ...

    async def _reserve(self, lease: Lease) -> int:
        """Reserve the call's slot in the shared schedule and sleep until it comes."""
        if not self._limits_loaded:
            await self._load_limits()
        args = [self._now_arg(), repr(lease.tokens), repr(lease.requests), *self._shape()]
        args.append(self._member)
        async with self._lock:  # this process's callers reserve in arrival order
            task = self._link.spawn(self._link.run("reserve", args))
            try:
                reply = await asyncio.shield(task)
            except asyncio.CancelledError:
                task.add_done_callback(self._undo_when_done)
                raise
        at, now, seq = reply_float(reply[0]), reply_float(reply[1]), int(reply[2])
        self._members = int(reply[3])
        self._level_tokens, self._level_requests = reply_float(reply[4]), reply_float(reply[5])
        lease.admitted_at = at / 1e6
        wait = (at - now) / 1e6
        # Wake no earlier than the callers of this process that reserved before: each wake-up
        # time is rounded on its own, and two slots the server made equal must not swap.
        local_now = self._clock.now()
        wake = max([local_now + max(wait, 0.0), *self._wakes])
        if wake > local_now:
            self._waiting += 1
            self._queued_calls += 1
            self._wakes.append(wake)
            try:
                await self._clock.sleep(wake - local_now)
            except asyncio.CancelledError:
                self._give_back(seq)
                raise
            finally:
                self._waiting -= 1
                self._wakes.remove(wake)
            self._total_wait += wake - local_now
        self._in_flight += 1
        self._admitted_tokens += lease.tokens
        self._admitted_requests += lease.requests
        return seq

    def _undo_when_done(self, task: asyncio.Task[Any]) -> None:
        """A caller was cancelled while its reservation was on the wire: undo it once it lands."""
        if not task.cancelled() and task.exception() is None:
            self._give_back(int(task.result()[2]))

    def _give_back(self, seq: int) -> None:
        """Queue a cancelled reservation; waiters cancelled together go back in one trip."""
        self._to_cancel.append(seq)
        if len(self._to_cancel) == 1:
            self._link.spawn(self._cancel())

    async def _cancel(self) -> None:
        # The lock puts the cancellations ahead of this process's next reservation, which
        # may then take the slots they free.
        async with self._lock:
            seqs, self._to_cancel = self._to_cancel, []
            if not seqs:
                return
            try:
                undone = await self._link.run("cancel", [self._now_arg(), *self._shape(), *seqs])
            except Unavailable:
                return  # the schedule keeps the slots: never over budget, at worst unused
        self._lost_slots += len(seqs) - int(undone)

    async def _settle(
        self, lease: Lease, exc: BaseException | None, rates: tuple[float, float] | None = None
    ) -> None:
        """Reconcile a finished call reserved when the budget was ``rates`` (tpm, rpm)."""
        self._in_flight -= 1
        token_delta, request_delta = lease.settlement(exc)
        if not token_delta and not request_delta:
            return
        if token_delta < 0:
            self._refunded_tokens -= token_delta
        else:
            self._charged_tokens += token_delta
        self._refunded_requests -= request_delta
        credit_t, credit_r = -token_delta, -request_delta
        if rates is not None:
            # A limit lowered since the reservation: a refund gives back the time it took at
            # the old rate, not that many tokens at the new, slower one (which could fill the
            # smaller bucket at once and let a large request through over the window bound).
            if credit_t > 0 and self._tpm < rates[0]:
                credit_t *= self._tpm / rates[0]
            if credit_r > 0 and self._rpm < rates[1]:
                credit_r *= self._rpm / rates[1]
        args = [self._now_arg(), repr(credit_t), repr(credit_r), *self._shape()]
        task = self._link.spawn(self._link.run("settle", args))
        try:
            reply = await asyncio.shield(task)
        except Unavailable:
            return  # Redis is down: the estimate stands (the fallback takes over from here)
        self._level_tokens, self._level_requests = reply_float(reply[2]), reply_float(reply[3])
        self._settled(reply_float(reply[0]) / 1e6, reply_float(reply[4]), reply_float(reply[5]))

    def _settled(self, at: float, credit_tokens: float, credit_requests: float) -> None:
        """Hook: a reconciliation took effect at ``at`` (server seconds); for subclasses.

        The credits are what the server really applied: a refund (positive) can be less
        than the lease's, when the bucket was already full at ``at`` or calls waiting for the
        latest slot leave no room for it; a charge (negative) is applied in full.
        """
