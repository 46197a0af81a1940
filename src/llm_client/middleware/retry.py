"""Retry: a loop (mechanism) plus a :class:`RetryPolicy` (decision).

Why here: inside the cache and token counting (counted once, hits never retried), outside the
limiter (every attempt acquires rate-limit budget again, and a 429 has already told the limiter
to pause before the next attempt asks). It is the only retry layer: the SDK's own retries are
off. Streams are retried only until the stream is handed back — once events may have reached
the user, a failure ends the stream with an ``error`` event instead.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Protocol

from ..clock import DEFAULT_CLOCK, Clock
from ..exceptions import ConfigurationError, LLMClientError
from ..pipeline import Call, Next, Reply
from ..result import LLMResult
from ..usage import Usage

__all__ = ["RETRYABLE_STATUSES", "ExponentialBackoff", "Retry", "RetryPolicy"]

#: Statuses worth another attempt (as the SDK's own policy): timeouts, conflicts, rate limits,
#: server errors. Never 400/401/403/404/422: the same request would fail the same way.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


class RetryPolicy(Protocol):
    """Decides whether and when to try again."""

    def delay(self, attempt: int, error: LLMClientError) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` (1-based ``attempt`` just failed),
        or ``None`` to give up."""
        ...


class ExponentialBackoff:
    """Exponential back-off with full jitter, honouring ``Retry-After``.

    The wait before retry *n* is uniform in ``[0, min(cap, base * 2**(n-1))]`` ("full
    jitter", so a crowd of clients spreads out). A server's ``Retry-After`` is a floor; one
    longer than ``max_retry_after`` means give up rather than hold the call for minutes.
    """

    def __init__(
        self,
        *,
        base: float = 0.5,
        cap: float = 8.0,
        max_retry_after: float = 120.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if base < 0 or cap < 0:
            raise ConfigurationError("backoff base and cap must not be negative")
        self.base = base
        self.cap = cap
        self.max_retry_after = max_retry_after
        self.rng = rng

    def delay(self, attempt: int, error: LLMClientError) -> float | None:
        if not error.retryable:  # set per class: see RETRYABLE_STATUSES and exceptions.py
            return None
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            return error.retry_after
        return float(self.rng() * min(self.cap, self.base * 2 ** (attempt - 1)))


class Retry:
    """Try a call up to ``attempts`` times (``call.attempts`` overrides per call).

    Usage reported by failed attempts is added to the final result, never hidden, and the
    result says how many attempts were made.
    """

    def __init__(
        self,
        attempts: int = 3,
        *,
        backoff: float = 0.5,
        policy: RetryPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(attempts, int) or attempts < 1:
            raise ConfigurationError(f"attempts must be an integer >= 1, got {attempts!r}")
        self.attempts = attempts
        self.policy: RetryPolicy = policy or ExponentialBackoff(base=backoff)
        self.clock = clock or DEFAULT_CLOCK

    async def __call__(self, call: Call, next: Next, /) -> Reply:
        attempts = call.attempts if call.attempts is not None else self.attempts
        policy = self.policy
        if call.backoff is not None and isinstance(policy, ExponentialBackoff):
            policy = ExponentialBackoff(
                base=call.backoff,
                cap=policy.cap,
                max_retry_after=policy.max_retry_after,
                rng=policy.rng,
            )
        spent = Usage()
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = await next(
                    call
                    if attempt == 1
                    else call.replace(context={**call.context, "attempt": attempt - 1})
                )
            except LLMClientError as exc:
                if isinstance(exc.usage, Usage):
                    spent = spent + exc.usage
                wait = policy.delay(attempt, exc) if attempt < attempts else None
                if (
                    wait is not None
                    and call.deadline is not None
                    and time.monotonic() + wait >= call.deadline
                ):
                    wait = None  # the wait alone would overrun the deadline: give up now
                if wait is None:
                    exc.usage = spent
                    exc.attempts = attempt
                    raise
                await self.clock.sleep(wait)
                continue
            if isinstance(reply, LLMResult) and (attempt > 1 or spent.total_tokens):
                return reply.replace(usage=spent + reply.usage, attempts=attempt)
            return reply
