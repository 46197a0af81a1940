"""One budget dimension (:class:`TokenBucket`), the :class:`Lease` a call holds, and the
:class:`RateLimiter` protocol every limiter (local or Redis) fits."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from ..clock import DEFAULT_CLOCK, Clock
from .checks import NOT_SENT_ERRORS, check_amount, check_rate

_EPSILON = 1e-9
"""Relative slack when comparing a level to a need, so float rounding cannot strand a waiter."""

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
