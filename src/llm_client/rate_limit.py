"""Token-aware rate limiting: pace calls so they never exceed a tokens and a requests budget.

A :class:`Limiter` holds two :class:`TokenBucket` s, one for tokens and one for requests. A
call enters ``async with limiter.limit(tokens, requests) as lease``: it waits in one FIFO
queue until *both* buckets allow it, and then takes from both at once (or from neither).
When the block ends, the lease is reconciled with the real usage given to
:meth:`Lease.record`: as OpenAI does, the token bucket keeps the estimate (and charges usage
beyond it); an optional usage-based bucket is reconciled to the real usage both ways.

Rules (docs/rate-limiting.md explains them at more length):

* **Burst.** A bucket holds ``burst_seconds`` worth of its per-minute rate (default
  :data:`DEFAULT_BURST_SECONDS`, 1 s; at least one request), not a whole minute: calls are
  paced smoothly, as OpenAI also enforces its limits over periods shorter than a minute.
* **Large requests.** A request larger than the burst (but within the per-minute limit) is
  admitted as soon as the bucket is full, and the level goes negative: the debt is waited out
  by the requests behind it. A request larger than the per-minute limit can never run and
  raises :class:`~llm_client.exceptions.RequestTooLargeError` at once. In every window of
  ``w`` seconds the tokens admitted (net of refunds) never exceed
  ``max(burst, largest single request) + rate * w``.
* **Fairness.** Waiters are admitted strictly first in, first out, whatever their size; a
  newcomer never overtakes a waiter. Per dimension, a waiter waits at most for what is
  queued ahead of it plus its own need (at most one burst), less the level it found, divided
  by the rate; its wait is bounded by the sum of that over tokens and requests (unless usage
  charged afterwards or a 429 adds debt).
* **Reconciliation.** :meth:`Lease.record` sets the real total tokens (prompt + output): the
  token bucket charges what exceeds the estimate (never refunds the rest), a usage-based
  bucket takes the real figure. On exit without ``record`` the estimate stays charged and
  the request stays spent (the call reached the server), unless :meth:`Lease.refund` was
  called or the block raised one of :data:`NOT_SENT_ERRORS` (raised before anything is
  sent): then the tokens and the request are given back. A refund never lifts a bucket
  over its capacity.
* **Cancellation.** A call cancelled while it waits leaves no trace in the budget. A call
  cancelled while it runs is reconciled like any other exit: to what it recorded, else to
  its estimate (the server may already have processed it).
* **OpenAI's accounting.** The token bucket counts what the server charges when a request
  arrives: its estimate (input by characters plus the output cap), never refunded when the
  answer is shorter. :meth:`Lease.record` only charges usage *beyond* the estimate there. A
  usage-based budget (``usage_tokens_per_minute``, or OpenAI's
  ``x-ratelimit-*-tokens_usage_based`` headers) is a third bucket, reconciled to real usage.
* **Headers.** :meth:`Limiter.update_from_headers` follows ``x-ratelimit-limit-*`` both ways
  (the starting limits are only a guess until the server has spoken), never above an explicit
  ceiling (``max_tokens_per_minute`` / ``max_requests_per_minute``; by default the starting
  limits). ``remaining-*`` only lowers levels; a 429 pauses for ``retry-after-ms`` /
  ``retry-after`` (else ``reset-*``), at most :data:`MAX_HEADER_PAUSE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Protocol, runtime_checkable

from .clock import DEFAULT_CLOCK, Clock, MonotonicClock
from .exceptions import (
    ConfigurationError,
    InvalidRequestError,
    RequestTooLargeError,
)

__all__ = [
    "DEFAULT_BURST_SECONDS",
    "DEFAULT_PAUSE_SECONDS",
    "MAX_HEADER_PAUSE_SECONDS",
    "NOT_SENT_ERRORS",
    "Lease",
    "Limiter",
    "RateLimitHeaders",
    "RateLimiter",
    "TokenBucket",
    "bucket_capacity",
    "check_amount",
    "check_burst_seconds",
    "check_ceiling",
    "check_rate",
    "parse_reset_duration",
    "parse_retry_after",
]

DEFAULT_BURST_SECONDS = 1.0
"""Default burst: one second of the per-minute rate (at least one request)."""

DEFAULT_PAUSE_SECONDS = 1.0
"""How long a 429 pauses the exhausted dimension when the response says nothing about it."""

MAX_HEADER_PAUSE_SECONDS = 60.0
"""The longest pause a limiter (local or Redis) takes from a response's headers
(``retry-after-ms``, ``retry-after``, ``x-ratelimit-reset-*``). OpenAI's limits are per
minute, so no honest 429 asks for more; a larger value (a proxy's mistake, a hostile server)
would otherwise freeze the client, and through Redis every process sharing the budget. The
retry step decides separately whether to retry a call at all."""

MAX_TOKEN_PAD = 1.5
"""The most a limiter multiplies token estimates by after tokens-429s (see
:meth:`Limiter.update_from_headers`)."""

TOKEN_PAD_STEP = 1.05
"""Each tokens-429 multiplies the pad on token estimates by this (up to MAX_TOKEN_PAD)."""

NOT_SENT_ERRORS: tuple[type[BaseException], ...] = (InvalidRequestError, ConfigurationError)
"""Exceptions that prove a call never reached the server (bad input, raised before sending):
leaving a lease with one of these gives back its tokens and its request."""

_EPSILON = 1e-9
"""Relative slack when comparing a level to a need, so float rounding cannot strand a waiter."""


# --- validation -----------------------------------------------------------------------------


def check_rate(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise ConfigurationError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ConfigurationError(f"{name} must be a positive, finite number, got {value!r}")
    return number


def check_amount(name: str, value: object) -> float:
    """Return a per-call amount (tokens, requests) as a float; it must be a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(f"{name} must be a number >= 0, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise InvalidRequestError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def check_burst_seconds(value: object) -> float:
    """Return ``burst_seconds`` (``None``: the default) if it is in (0, 60], else raise."""
    if value is None:
        return DEFAULT_BURST_SECONDS
    seconds = check_rate("burst_seconds", value)
    if seconds > 60:
        raise ConfigurationError(
            f"burst_seconds must be at most 60 (a whole minute of budget), got {value!r}"
        )
    return seconds


def bucket_capacity(per_minute: float, burst_seconds: float) -> float:
    """The capacity of a bucket: ``burst_seconds`` of its rate, but never less than 1."""
    return max(1.0, per_minute / 60.0 * burst_seconds)


# --- one dimension ----------------------------------------------------------------------------


class TokenBucket:
    """One budget dimension: a level that refills at ``rate`` per second up to ``capacity``.

    Pure, synchronous arithmetic on an injected clock. The level may go *negative* (debt):
    :meth:`take` of an amount larger than the capacity is allowed once the bucket is full,
    and :meth:`charge` bills usage beyond an estimate. Nothing ever lifts the level above
    ``capacity``.

    An amount *fits* when the level reaches ``min(amount, capacity)``; so a request larger
    than the burst waits for a full bucket rather than forever.
    """

    __slots__ = ("_capacity", "_clock", "_level", "_rate", "_scale", "_updated")

    def __init__(
        self,
        capacity: float,
        rate: float,
        *,
        clock: Clock | None = None,
        level: float | None = None,
    ) -> None:
        self._capacity = check_rate("capacity", capacity)
        self._rate = check_rate("rate", rate)
        self._clock = clock if clock is not None else DEFAULT_CLOCK
        self._level = self._capacity if level is None else min(float(level), self._capacity)
        self._updated = self._clock.now()
        self._scale = 1.0

    def __repr__(self) -> str:
        return (
            f"TokenBucket(capacity={self._capacity:g}, rate={self._rate:g}/s, level={self.level:g})"
        )

    @property
    def capacity(self) -> float:
        """The most the bucket holds: the largest burst."""
        return self._capacity

    @property
    def rate(self) -> float:
        """Refill per second."""
        return self._rate

    @property
    def scale(self) -> float:
        """What a unit taken now is worth in the units of the original rate: the rate in force
        over the first one (each change multiplies it by new rate / old rate). See
        :meth:`refund`."""
        return self._scale

    @property
    def level(self) -> float:
        """What is available now (negative while in debt)."""
        self._refill(self._clock.now())
        return self._level

    def _refill(self, now: float) -> None:
        elapsed = now - self._updated
        if elapsed > 0:
            level = self._level + elapsed * self._rate
            self._level = level if level < self._capacity else self._capacity
            self._updated = now

    def _deficit(self, amount: float, now: float) -> float:
        """How far the level (refilled to ``now``) is below what ``amount`` waits for:
        ``amount`` itself, or a full bucket if it is larger. 0 when it fits."""
        if now > self._updated:
            self._refill(now)
        deficit = (amount if amount < self._capacity else self._capacity) - self._level
        return deficit if deficit > _EPSILON * self._capacity else 0.0

    def wait_time(self, amount: float, now: float | None = None) -> float:
        """Seconds until ``amount`` fits (0 when it fits now)."""
        return self._deficit(amount, self._clock.now() if now is None else now) / self._rate

    def fits(self, amount: float, now: float | None = None) -> bool:
        """Whether ``amount`` may be taken now."""
        return not self._deficit(amount, self._clock.now() if now is None else now)

    def take(self, amount: float) -> None:
        """Take ``amount`` unconditionally (check :meth:`fits` first); may leave a debt."""
        self._refill(self._clock.now())
        self._level -= amount

    def try_take(self, amount: float) -> bool:
        """Take ``amount`` if it fits now; return whether it did."""
        if not self.fits(amount):
            return False
        self._level -= amount
        return True

    def refund(self, amount: float, *, scale: float | None = None) -> float:
        """Give back ``amount`` (capped at capacity); return how much the level rose.

        ``scale`` is :attr:`scale` when the amount was taken: if the rate was lowered since,
        the amount is given back in proportion (``amount * scale_now / scale``), as the time
        it stood for at the old rate, since it was spent under the old budget (a full refund
        at the new, slower rate would count as more than was taken).
        """
        self._refill(self._clock.now())
        if scale is not None and self._scale < scale:
            amount *= self._scale / scale
        before = self._level
        level = before + amount
        self._level = level if level < self._capacity else self._capacity
        return self._level - before

    def charge(self, amount: float) -> None:
        """Bill ``amount`` more (usage beyond an estimate); the level may go into debt."""
        self._refill(self._clock.now())
        self._level -= amount

    def lower_to(self, level: float) -> None:
        """Lower the level to at most ``level`` (a re-sync or a pause); never raises it."""
        self._refill(self._clock.now())
        if level < self._level:
            self._level = level

    def reconfigure(self, capacity: float, rate: float) -> None:
        """Change capacity and rate from now on; a lower budget does not refill the bucket.

        A positive level is lowered (never raised) so that the time until the bucket is full
        keeps what it was: with a capacity proportional to the rate, it keeps the same
        fraction of the burst. Merely capping it at a smaller capacity would count what was
        just spent under the old budget as refilled, and a request larger than the new burst
        (admitted on a full bucket) could go out at once, over the window bound. A debt is
        kept as it is (at a lower rate it takes longer to wait out), as is a level under a
        larger capacity. A lower rate also lowers :attr:`scale`, so a later refund of what
        was taken before counts for its time at the old rate, not for more.
        """
        self._refill(self._clock.now())
        capacity = check_rate("capacity", capacity)
        rate = check_rate("rate", rate)
        level = self._level
        if level > 0:
            # The level that leaves the same time to full at the new rate, but no debt.
            same_wait = capacity - (self._capacity - level) * (rate / self._rate)
            level = min(level, max(0.0, same_wait))
        self._scale *= rate / self._rate  # scale follows the rate, both ways
        self._capacity = capacity
        self._rate = rate
        self._level = min(level, capacity)


# --- leases -----------------------------------------------------------------------------------


class Lease:
    """What a call took from the limiter; tell it the real usage before the block ends.

    :ivar tokens: the token estimate taken at entry.
    :ivar requests: the requests taken at entry.
    :ivar admitted_at: when the call was admitted, on the limiter's clock.
    """

    __slots__ = ("_refunded", "_used", "admitted_at", "requests", "tokens")

    def __init__(self, tokens: float, requests: float) -> None:
        self.tokens = tokens
        self.requests = requests
        self.admitted_at: float | None = None
        self._used: float | None = None
        self._refunded = False

    def __repr__(self) -> str:
        return f"Lease(tokens={self.tokens:g}, requests={self.requests:g}, used={self._used})"

    def record(self, tokens: int) -> None:
        """Set the real total tokens the call used (prompt + output); the last call wins."""
        self._used = check_amount("tokens", tokens)

    def refund(self) -> None:
        """Declare that the call never reached the server: give back its tokens and request."""
        self._refunded = True

    @property
    def used(self) -> float | None:
        """The recorded usage, or ``None`` if :meth:`record` was not called."""
        return self._used

    @property
    def refunded(self) -> bool:
        """Whether :meth:`refund` was called."""
        return self._refunded

    def settlement(self, exc: BaseException | None) -> tuple[float, float]:
        """How to reconcile at exit: (token delta, request delta) to charge (negative: refund).

        A refund or a :data:`NOT_SENT_ERRORS` exception without a recorded usage gives
        everything back. Otherwise the estimate stands, as on OpenAI's per-minute token
        limit; recorded usage above it is charged as well.
        """
        if self._refunded or (self._used is None and isinstance(exc, NOT_SENT_ERRORS)):
            return -self.tokens, -self.requests
        if self._used is None:
            return 0.0, 0.0
        # OpenAI charges its estimate when the request arrives and gives nothing back for a
        # shorter answer: only usage beyond the estimate is charged (docs/rate-limiting.md).
        over = self._used - self.tokens
        return (over if over > 0.0 else 0.0), 0.0

    def usage_settlement(self, exc: BaseException | None) -> float:
        """The token delta for a *usage-based* budget (negative: refund): the estimate is
        reconciled to the recorded usage both ways; a call that was never sent gives all
        back; without a record the estimate stands."""
        if self._refunded or (self._used is None and isinstance(exc, NOT_SENT_ERRORS)):
            return -self.tokens
        if self._used is None:
            return 0.0
        return self._used - self.tokens


@runtime_checkable
class RateLimiter(Protocol):
    """What the client needs from a limiter; :class:`Limiter` and the Redis limiter fit it."""

    def limit(self, tokens: int, requests: int = 1) -> AbstractAsyncContextManager[Lease]: ...

    def update_from_headers(
        self, headers: Mapping[str, str], *, status: int | None = None
    ) -> None: ...

    def stats(self) -> dict[str, float | int]: ...

    async def aclose(self) -> None: ...


# --- headers ----------------------------------------------------------------------------------

_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:h|ms|m|s|us|µs|μs|ns))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|μs|ns)")
_UNIT_SECONDS = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ns": 1e-9,
}


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_reset_duration(value: str | None) -> float | None:
    """Seconds in an ``x-ratelimit-reset-*`` value, or ``None`` if it says nothing usable.

    OpenAI writes Go durations: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1m30.5s"``,
    ``"2h0m0s"``; a bare number is taken as seconds. ``"-1"``, negatives, empty and
    unparseable values give ``None``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    number = _number(text)
    if number is not None:
        return number if number >= 0 else None
    if _DURATION.fullmatch(text) is None:
        return None
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def _lowered(headers: Mapping[str, str]) -> Mapping[str, str]:
    """The headers with lower-case names (httpx and aiohttp headers already match any case)."""
    if all(k == k.lower() for k in headers):
        return headers
    return {k.lower(): v for k, v in headers.items()}


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds a response asks us to wait, from ``retry-after-ms`` or ``retry-after``.

    ``retry-after`` may be seconds or an HTTP date (compared with ``now``, epoch seconds;
    default ``time.time()``). A date in the past gives 0. Missing or unparseable: ``None``.
    """
    h = _lowered(headers)
    ms = _number(h.get("retry-after-ms"))
    if ms is not None and ms >= 0:
        return ms / 1000.0
    raw = h.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is not None:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class RateLimitHeaders:
    """The rate-limit facts in one response; ``None`` where a header is missing or ``-1``."""

    limit_tokens: float | None = None
    limit_requests: float | None = None
    remaining_tokens: float | None = None
    remaining_requests: float | None = None
    reset_tokens: float | None = None
    reset_requests: float | None = None
    retry_after: float | None = None
    limit_usage_tokens: float | None = None
    remaining_usage_tokens: float | None = None
    reset_usage_tokens: float | None = None

    @classmethod
    def parse(cls, headers: Mapping[str, str], *, now: float | None = None) -> RateLimitHeaders:
        """Read ``x-ratelimit-{limit,remaining,reset}-{tokens,requests}``, their
        ``-tokens_usage_based`` variants (OpenAI's usage-based token budget) and retry-after."""
        h = _lowered(headers)

        def count(name: str) -> float | None:
            number = _number(h.get(name))
            return number if number is not None and number >= 0 else None

        return cls(
            limit_tokens=count("x-ratelimit-limit-tokens"),
            limit_requests=count("x-ratelimit-limit-requests"),
            remaining_tokens=count("x-ratelimit-remaining-tokens"),
            remaining_requests=count("x-ratelimit-remaining-requests"),
            reset_tokens=parse_reset_duration(h.get("x-ratelimit-reset-tokens")),
            reset_requests=parse_reset_duration(h.get("x-ratelimit-reset-requests")),
            retry_after=parse_retry_after(h, now=now),
            limit_usage_tokens=count("x-ratelimit-limit-tokens_usage_based"),
            remaining_usage_tokens=count("x-ratelimit-remaining-tokens_usage_based"),
            reset_usage_tokens=parse_reset_duration(h.get("x-ratelimit-reset-tokens_usage_based")),
        )

    def exhausted(self) -> tuple[bool, bool]:
        """Which dimensions a 429 with these headers ran out of: (tokens, requests).

        A remaining count of 0 names its dimension. Otherwise, when requests remain the
        call needed more tokens than remained; with nothing known, both.
        """
        rt, rr = self.remaining_tokens, self.remaining_requests
        tokens_out = rt is not None and rt <= 0
        requests_out = rr is not None and rr <= 0
        if tokens_out or requests_out:
            return tokens_out, requests_out
        if rr is not None:
            return True, False
        return True, True

    def pause_seconds(self, *, tokens: bool) -> float:
        """How long a 429 pauses the tokens (or requests) dimension: ``retry-after``, else
        that dimension's ``reset-*``, else :data:`DEFAULT_PAUSE_SECONDS`; never more than
        :data:`MAX_HEADER_PAUSE_SECONDS`."""
        if self.retry_after is not None:
            return min(self.retry_after, MAX_HEADER_PAUSE_SECONDS)
        reset = self.reset_tokens if tokens else self.reset_requests
        if reset is not None:
            return min(reset, MAX_HEADER_PAUSE_SECONDS)
        return DEFAULT_PAUSE_SECONDS


# --- the limiter ------------------------------------------------------------------------------


class _Waiter:
    __slots__ = ("enqueued", "future", "lease")

    def __init__(self, lease: _LocalLease, future: asyncio.Future[None], enqueued: float) -> None:
        self.lease = lease
        self.future = future
        self.enqueued = enqueued


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


def check_ceiling(name: str, value: object, default: float) -> float:
    """An explicit ceiling: ``None`` means ``default``; ``math.inf`` means none at all."""
    if value is None:
        return default
    if value == math.inf and not isinstance(value, bool):
        return math.inf
    return check_rate(name, value)


class Limiter:
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

    # -- learning from the server ------------------------------------------------------------

    def update_from_headers(self, headers: Mapping[str, str], *, status: int | None = None) -> None:
        """Learn from a response's ``x-ratelimit-*`` headers (and a 429's retry-after).

        * ``limit-*`` becomes the budget in force, up or down (never above the ceiling).
          A lower budget lowers a positive level with it, so the bucket is not full sooner
          than it would have been (see :meth:`TokenBucket.reconfigure`). A limit on a 429
          counts like any other: the next response's limit replaces it.
          ``limit-tokens_usage_based`` starts (or reshapes) the usage-based bucket.
        * ``remaining-*`` lower than the local level lowers the level (a re-sync).
        * ``status=429`` pauses only the exhausted dimension for ``retry-after-ms`` /
          ``retry-after`` (else that dimension's ``reset-*``, else 1 s), never longer than
          :data:`MAX_HEADER_PAUSE_SECONDS`: its level drops to ``-rate * pause``. Repeated
          429s do not add up: the pause is a floor on the debt, not an increment. A 429 on
          the per-minute token limit also pads later token estimates by
          :data:`TOKEN_PAD_STEP` (once per pause, at most :data:`MAX_TOKEN_PAD`): the server
          counted more than the estimate. When the lease that drew the 429 ends, the pad is
          raised to the ratio the 429 reveals, if larger (see :meth:`_learn_charge`).
        """
        info = RateLimitHeaders.parse(headers)
        changed = self._adopt_limits(info)
        if info.remaining_tokens is not None:
            self._tokens.lower_to(info.remaining_tokens)
        if info.remaining_requests is not None:
            self._requests.lower_to(info.remaining_requests)
        if info.remaining_usage_tokens is not None and self._usage is not None:
            self._usage.lower_to(info.remaining_usage_tokens)
        if (
            info.limit_tokens is not None
            or info.limit_requests is not None
            or info.remaining_tokens is not None
            or info.remaining_requests is not None
        ):
            self._header_syncs += 1
        if status == 429:
            self._throttled(info)
        if changed and self._live:
            self._dispatch()

    def _throttled(self, info: RateLimitHeaders) -> None:
        self._throttle_events += 1
        tokens_out, requests_out = info.exhausted()
        usage_out = False
        ru, rt = info.remaining_usage_tokens, info.remaining_tokens
        if self._usage is not None and ru is not None and ru <= 0 and not requests_out:
            # The usage-based budget ran out, not (necessarily) the per-minute one.
            usage_out = True
            tokens_out = rt is not None and rt <= 0
        now = self._now()
        if tokens_out and now >= self._pad_after:
            self._pad = min(MAX_TOKEN_PAD, self._pad * TOKEN_PAD_STEP)
        for out, bucket, is_tokens in (
            (tokens_out, self._tokens, True),
            (requests_out, self._requests, False),
            (usage_out, self._usage, True),
        ):
            if out and bucket is not None:
                pause = info.pause_seconds(tokens=is_tokens)
                bucket.lower_to(-bucket.rate * pause)
                self._paused_until = max(self._paused_until, now + pause)
                if is_tokens:
                    self._pad_after = max(self._pad_after, now + pause)

    def _learn_charge(self, lease: _LocalLease, headers: Mapping[str, str] | None) -> None:
        """Learn from a tokens-429 what the server charged for this very call.

        The server refuses when the request's charge exceeds what remains, and says when it
        would fit: so its charge is about ``remaining + wait * rate``. When that is more
        than our estimate, later estimates are padded by the ratio (plus 1%), up to
        :data:`MAX_TOKEN_PAD`, so the drift stops at once instead of one step per 429.
        """
        if not headers or not lease._asked:
            return
        info = RateLimitHeaders.parse(headers)
        tokens_out, requests_out = info.exhausted()
        rt, wait = info.remaining_tokens, info.retry_after
        if not tokens_out or requests_out or rt is None or wait is None:
            return
        if wait >= MAX_HEADER_PAUSE_SECONDS:
            return  # no measure in a capped or absurd wait
        limit = info.limit_tokens or self._tpm
        charge = rt + wait * limit / 60.0
        ratio = charge / lease._asked * 1.01
        if ratio > self._pad:
            self._pad = min(MAX_TOKEN_PAD, ratio)

    def _adopt_limits(self, info: RateLimitHeaders) -> bool:
        """Follow the server's ``limit-*`` values, both ways, up to the ceilings."""
        changed = False
        limit = info.limit_tokens
        if limit is not None and limit > 0:
            tpm = limit if limit < self._ceiling_tpm else self._ceiling_tpm
            self._largest_t = tpm
            if tpm != self._tpm:
                self._tpm = tpm
                self._tokens.reconfigure(bucket_capacity(tpm, self._burst_seconds), tpm / 60.0)
                self._limit_changes += 1
                changed = True
        limit = info.limit_requests
        if limit is not None and limit > 0:
            rpm = limit if limit < self._ceiling_rpm else self._ceiling_rpm
            self._largest_r = rpm
            if rpm != self._rpm:
                self._rpm = rpm
                self._requests.reconfigure(bucket_capacity(rpm, self._burst_seconds), rpm / 60.0)
                self._limit_changes += 1
                changed = True
        limit = info.limit_usage_tokens
        if limit is not None and limit > 0:
            usage = limit if limit < self._ceiling_tpm else self._ceiling_tpm
            if self._usage is None or usage != self._usage_tpm:
                self._set_usage_limit(usage)
                self._limit_changes += 1
                changed = True
        return changed

    def _set_usage_limit(self, per_minute: float) -> None:
        capacity = bucket_capacity(per_minute, self._burst_seconds)
        if self._usage is None:
            self._usage = TokenBucket(capacity, per_minute / 60.0, clock=self._clock)
        else:
            self._usage.reconfigure(capacity, per_minute / 60.0)
        self._usage_tpm = per_minute

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

    async def aclose(self) -> None:
        """Stop the timer and fail every waiter; the limiter accepts no more calls."""
        self._closed = True
        self._disarm()
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(RuntimeError("this rate limiter was closed"))
        self._live = 0
