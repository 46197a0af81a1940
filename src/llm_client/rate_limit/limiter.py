"""The in-process :class:`Limiter`: a FIFO queue in front of a token and a request bucket
(and an optional usage-based one), following the server's rate-limit headers.

This module holds the limiter's buckets and its lease bookkeeping: sizing and padding a call,
the fast path, taking a lease from every bucket on admission, giving it back, and settling it
against the real usage on exit. The waiting line (the queue, its dispatch and timer) is the
:class:`~.waiting.WaitQueue` mixin in ``waiting.py``; learning from the server's headers is
the :class:`~.following.HeaderFollowing` mixin in ``following.py``."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType

from ..clock import DEFAULT_CLOCK, Clock, MonotonicClock
from ..exceptions import RequestTooLargeError
from .buckets import Lease, TokenBucket
from .checks import (
    bucket_capacity,
    check_amount,
    check_burst_seconds,
    check_ceiling,
    check_rate,
)
from .following import HeaderFollowing
from .waiting import WaitQueue, _Waiter

# --- the limiter ------------------------------------------------------------------------------


class _LocalLease(Lease, AbstractAsyncContextManager[Lease]):
    """The lease of a :class:`Limiter`, and the ``async with`` that takes and settles it."""

    __slots__ = ("_asked", "_limiter", "_scale_requests", "_scale_tokens", "_scale_usage")

    def __init__(self, limiter: Limiter, tokens: float, requests: float) -> None:
        self.tokens = tokens
        self.requests = requests
        self.admitted_at = None
        self._used = None
        self._refunded = False
        self._limiter = limiter
        self._asked = tokens  # before any pad (see Limiter._learn_charge)
        # The buckets' scales when admitted: refunds after a lower limit are given back in
        # proportion (TokenBucket.refund).
        self._scale_tokens = 1.0
        self._scale_requests = 1.0
        self._scale_usage = 0.0  # 0: not taken from a usage-based bucket

    async def __aenter__(self) -> Lease:
        limiter = self._limiter
        if limiter._live or not limiter._try_admit(self):
            await limiter._acquire(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None and self._used is None and not self._refunded:
            self._limiter._in_flight -= 1  # the estimate stands: nothing to reconcile
        else:
            self._limiter._settle(self, exc)


class Limiter(WaitQueue, HeaderFollowing):
    """A token- and request-aware limiter for one process (see the module docs for the rules).

    :param tokens_per_minute: the token budget to start with (the model's TPM).
    :param requests_per_minute: the request budget to start with (the model's RPM).
    :param burst_seconds: how many seconds of budget may go out at once (default 1 s; at
        most 60). Each bucket holds at least one request / one token.
    :param clock: the clock to wait on (tests inject :class:`~llm_client.clock.ManualClock`).
    :param max_tokens_per_minute: the most the token budgets (per-minute and usage-based)
        may become when the server's ``x-ratelimit-limit-*`` headers raise them. ``None``
        (the default): ``tokens_per_minute`` itself, so the budget you pass is a ceiling that
        headers only lower. ``math.inf``: follow the server both ways; the client does this
        with the model profile's limits, which are only a conservative start.
    :param max_requests_per_minute: the same for the request budget.
    :param usage_tokens_per_minute: a usage-based token budget (a third bucket, reconciled
        to the real usage of each call). ``None``: none until the server sends
        ``x-ratelimit-limit-tokens_usage_based``.
    """

    def __init__(
        self,
        tokens_per_minute: float,
        requests_per_minute: float,
        *,
        burst_seconds: float | None = None,
        clock: Clock | None = None,
        max_tokens_per_minute: float | None = None,
        max_requests_per_minute: float | None = None,
        usage_tokens_per_minute: float | None = None,
    ) -> None:
        start_tpm = check_rate("tokens_per_minute", tokens_per_minute)
        start_rpm = check_rate("requests_per_minute", requests_per_minute)
        self._ceiling_tpm = check_ceiling("max_tokens_per_minute", max_tokens_per_minute, start_tpm)
        self._ceiling_rpm = check_ceiling(
            "max_requests_per_minute", max_requests_per_minute, start_rpm
        )
        self._tpm = min(start_tpm, self._ceiling_tpm)
        self._rpm = min(start_rpm, self._ceiling_rpm)
        # The largest call that can ever run: the ceiling until the server names its limit.
        self._largest_t = self._ceiling_tpm
        self._largest_r = self._ceiling_rpm
        self._burst_seconds = check_burst_seconds(burst_seconds)
        self._clock: Clock = clock if clock is not None else DEFAULT_CLOCK
        self._tokens = TokenBucket(
            bucket_capacity(self._tpm, self._burst_seconds), self._tpm / 60.0, clock=self._clock
        )
        self._requests = TokenBucket(
            bucket_capacity(self._rpm, self._burst_seconds), self._rpm / 60.0, clock=self._clock
        )
        self._usage: TokenBucket | None = None
        self._usage_tpm = 0.0
        if usage_tokens_per_minute is not None:
            self._set_usage_limit(check_rate("usage_tokens_per_minute", usage_tokens_per_minute))
        self._pad = 1.0
        self._pad_after = -math.inf
        self._queue: deque[_Waiter] = deque()
        self._live = 0
        # With the real clock, timers go on the event loop; any other clock gets a task that
        # sleeps on it, so a ManualClock drives the limiter in tests.
        self._loop_timers = type(self._clock) is MonotonicClock
        self._now: Callable[[], float] = time.monotonic if self._loop_timers else self._clock.now
        self._timer: asyncio.TimerHandle | asyncio.Task[None] | None = None
        self._timer_at = math.inf
        self._closed = False
        self._in_flight = 0
        self._admitted_tokens = 0.0
        self._admitted_requests = 0.0
        self._refunded_tokens = 0.0
        self._refunded_requests = 0.0
        self._charged_tokens = 0.0
        self._total_wait = 0.0
        self._queued_calls = 0
        self._throttle_events = 0
        self._header_syncs = 0
        self._limit_changes = 0
        self._paused_until = -math.inf

    def __repr__(self) -> str:
        return (
            f"Limiter(tokens_per_minute={self._tpm:g}, requests_per_minute={self._rpm:g}, "
            f"burst_seconds={self._burst_seconds:g}, waiters={self._live})"
        )

    # -- configuration ---------------------------------------------------------------------

    @property
    def tokens_per_minute(self) -> float:
        """The token budget in force (the server's limit once it has named one)."""
        return self._tpm

    @property
    def requests_per_minute(self) -> float:
        """The request budget in force (the server's limit once it has named one)."""
        return self._rpm

    @property
    def usage_tokens_per_minute(self) -> float | None:
        """The usage-based token budget in force, or ``None`` if there is none."""
        return self._usage_tpm if self._usage is not None else None

    @property
    def max_tokens_per_minute(self) -> float:
        """The ceiling on the token budgets (``math.inf``: none)."""
        return self._ceiling_tpm

    @property
    def max_requests_per_minute(self) -> float:
        """The ceiling on the request budget (``math.inf``: none)."""
        return self._ceiling_rpm

    @property
    def token_pad(self) -> float:
        """What token estimates are multiplied by (raised by tokens-429s; 1.0 until one)."""
        return self._pad

    @property
    def burst_seconds(self) -> float:
        return self._burst_seconds

    @property
    def token_bucket(self) -> TokenBucket:
        return self._tokens

    @property
    def request_bucket(self) -> TokenBucket:
        return self._requests

    @property
    def usage_bucket(self) -> TokenBucket | None:
        """The usage-based token bucket, if there is one."""
        return self._usage

    # -- acquiring ---------------------------------------------------------------------------

    def limit(self, tokens: int, requests: int = 1) -> AbstractAsyncContextManager[Lease]:
        """Wait until ``tokens`` and ``requests`` fit, take them, and reconcile on exit.

        :raises InvalidRequestError: an amount is negative or not a number.
        :raises RequestTooLargeError: (on entry) the call needs more than a minute's budget.
        """
        t: float = tokens if type(tokens) is int and tokens >= 0 else check_amount("tokens", tokens)
        r: float = (
            requests
            if type(requests) is int and requests >= 0
            else check_amount("requests", requests)
        )
        asked = t
        if self._pad != 1.0:
            # Padded after tokens-429s, but never past the largest call that can run.
            padded = t * self._pad
            t = padded if padded <= self._largest_t else max(t, self._largest_t)
        lease = _LocalLease(self, t, r)
        lease._asked = asked
        return lease

    def _check_size(self, tokens: float, requests: float) -> None:
        largest_t = self._largest_t
        if self._usage is not None and self._usage_tpm < largest_t:
            largest_t = self._usage_tpm
        if tokens > largest_t:
            raise RequestTooLargeError(
                f"the call needs {tokens:g} tokens but the limit is {largest_t:g} tokens per "
                "minute, so it can never run; shorten the input or max_tokens, or raise "
                "tokens_per_minute"
            )
        if requests > self._largest_r:
            raise RequestTooLargeError(
                f"the call needs {requests:g} requests but the limit is {self._largest_r:g} "
                "requests per minute, so it can never run"
            )

    def _wait(self, lease: _LocalLease, now: float) -> float:
        """Seconds until ``lease`` fits in every bucket (0: now)."""
        wait = self._tokens.wait_time(lease.tokens, now)
        other = self._requests.wait_time(lease.requests, now)
        if other > wait:
            wait = other
        if self._usage is not None:
            other = self._usage.wait_time(lease.tokens, now)
            if other > wait:
                wait = other
        return wait

    def _try_admit(self, lease: _LocalLease) -> bool:
        """The fast path: admit at once if nobody waits and every bucket allows it."""
        tokens, requests = lease.tokens, lease.requests
        if self._closed or tokens > self._largest_t or requests > self._largest_r:
            return False  # the slow path raises the right error
        now = self._now()
        if self._tokens._deficit(tokens, now) or self._requests._deficit(requests, now):
            return False
        if self._usage is not None and self._usage._deficit(tokens, now):
            return False
        self._admit(lease, now)
        return True

    def _admit(self, lease: _LocalLease, now: float) -> None:
        """Take the lease's amounts from every bucket (already refilled to ``now``)."""
        self._tokens._level -= lease.tokens
        self._requests._level -= lease.requests
        lease._scale_tokens = self._tokens._scale
        lease._scale_requests = self._requests._scale
        usage = self._usage
        if usage is not None:
            usage._refill(now)
            usage._level -= lease.tokens
            lease._scale_usage = usage._scale
        self._admitted_tokens += lease.tokens
        self._admitted_requests += lease.requests
        self._in_flight += 1
        lease.admitted_at = now

    def _give_back(self, lease: _LocalLease) -> None:
        self._in_flight -= 1
        self._refunded_tokens += lease.tokens
        self._refunded_requests += lease.requests
        self._tokens.refund(lease.tokens, scale=lease._scale_tokens)
        self._requests.refund(lease.requests, scale=lease._scale_requests)
        if self._usage is not None and lease._scale_usage:
            self._usage.refund(lease.tokens, scale=lease._scale_usage)
        if self._live:
            self._dispatch()

    # -- releasing ---------------------------------------------------------------------------

    def _settle(self, lease: _LocalLease, exc: BaseException | None) -> None:
        if exc is not None and getattr(exc, "status", None) == 429:
            self._learn_charge(lease, getattr(exc, "headers", None))
        token_delta, request_delta = lease.settlement(exc)
        self._in_flight -= 1
        freed = False
        if token_delta < 0:
            self._refunded_tokens += -token_delta
            freed = self._tokens.refund(-token_delta, scale=lease._scale_tokens) > 0 or freed
        elif token_delta > 0:
            self._charged_tokens += token_delta
            self._tokens.charge(token_delta)
        if request_delta < 0:
            self._refunded_requests += -request_delta
            freed = self._requests.refund(-request_delta, scale=lease._scale_requests) > 0 or freed
        usage = self._usage
        if usage is not None and lease._scale_usage:  # taken from it when admitted
            usage_delta = lease.usage_settlement(exc)
            if usage_delta < 0:
                freed = usage.refund(-usage_delta, scale=lease._scale_usage) > 0 or freed
            elif usage_delta > 0:
                usage.charge(usage_delta)
        if freed and self._live:
            self._dispatch()

    # -- observing -------------------------------------------------------------------------

    def stats(self) -> dict[str, float | int]:
        """A snapshot: levels, capacities, waiters, waits, throttling and totals."""
        now = self._now()
        usage = self._usage
        return {
            "level_tokens": self._tokens.level,
            "level_requests": self._requests.level,
            "capacity_tokens": self._tokens.capacity,
            "capacity_requests": self._requests.capacity,
            "tokens_per_minute": self._tpm,
            "requests_per_minute": self._rpm,
            "usage_tokens_per_minute": self._usage_tpm if usage is not None else 0.0,
            "level_usage_tokens": usage.level if usage is not None else 0.0,
            "token_pad": self._pad,
            "limit_changes": self._limit_changes,
            "waiters": self._live,
            "in_flight": self._in_flight,
            "queued_calls": self._queued_calls,
            "total_wait_seconds": self._total_wait,
            "throttle_events": self._throttle_events,
            "header_syncs": self._header_syncs,
            "paused_seconds_left": max(0.0, self._paused_until - now),
            "admitted_tokens": self._admitted_tokens,
            "admitted_requests": self._admitted_requests,
            "refunded_tokens": self._refunded_tokens,
            "refunded_requests": self._refunded_requests,
            "charged_tokens": self._charged_tokens,
        }
