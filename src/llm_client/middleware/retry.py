"""Retry: a loop (mechanism) plus a :class:`RetryPolicy` (decision).

Why here: inside the cache and token counting (counted once, hits never retried), outside the
limiter (every attempt acquires rate-limit budget again, and a 429 has already told the limiter
to pause before the next attempt asks). It is the only retry layer: the SDK's own retries are
off. Streams are retried only until the stream is handed back — once events may have reached
the user, a failure ends the stream with an ``error`` event instead.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from .. import exceptions
from ..clock import DEFAULT_CLOCK, Clock
from ..exceptions import (
    RETRYABLE_STATUSES,
    ConfigurationError,
    LLMClientError,
    error_for_status,
)
from ..headers import parse_retry_after
from ..pipeline import Call, EventStream, Next, Reply
from ..result import LLMResult
from ..streaming import LLMEvent
from ..usage import Usage
from ._stream import aclose, replay

__all__ = ["RETRYABLE_STATUSES", "ExponentialBackoff", "Retry", "RetryPolicy"]

# RETRYABLE_STATUSES is defined in llm_client.exceptions (with is_transient_status) and
# re-exported here, where it has always been importable from.


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
        if not error.retryable:  # per class, agreeing with exceptions.is_transient_status
            return None
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            return error.retry_after
        return float(self.rng() * min(self.cap, self.base * 2 ** (attempt - 1)))


def _error_of(result: LLMResult) -> LLMClientError:
    """The error an ``error`` event's result stands for (its class is named in ``error``)."""
    name, _, message = result.error.partition(": ")
    cls = getattr(exceptions, name, None)
    if isinstance(cls, type) and issubclass(cls, LLMClientError):
        err = cls(message or result.error, status=result.status)
    else:
        err = error_for_status(result.status, result.error)
    err.retry_after = parse_retry_after(result.headers)
    return err


class Retry:
    """Try a call up to ``attempts`` times (``call.attempts`` overrides per call).

    Usage reported by failed attempts is added to the final result, never hidden, and the
    result says how many attempts were made — for streams too: a stream is retried while
    nothing but its ``meta`` event has come (the ``meta`` is held back until then), and its
    ``usage`` and ``done``/``error`` events carry every attempt's usage and the attempt count.
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
        policy = self.policy
        if call.backoff is not None and isinstance(policy, ExponentialBackoff):
            policy = ExponentialBackoff(
                base=call.backoff,
                cap=policy.cap,
                max_retry_after=policy.max_retry_after,
                rng=policy.rng,
            )
        run = _Run(
            call,
            next,
            call.attempts if call.attempts is not None else self.attempts,
            policy,
            self.clock,
        )
        reply = await run.reply()
        if isinstance(reply, LLMResult):
            return run.settle(reply)
        return run.stream(reply)


class _Run:
    """The attempts of one call: how many so far, and the usage of those that failed."""

    __slots__ = ("attempt", "attempts", "call", "clock", "next", "policy", "spent")

    def __init__(
        self, call: Call, next: Next, attempts: int, policy: RetryPolicy, clock: Clock
    ) -> None:
        self.call = call
        self.clock = clock
        self.next = next
        self.attempts = attempts
        self.policy = policy
        self.attempt = 0
        self.spent = Usage()

    def _wait(self, error: LLMClientError) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if self.attempt >= self.attempts:
            return None
        wait = self.policy.delay(self.attempt, error)
        deadline = self.call.deadline
        if wait is not None and deadline is not None and self.clock.now() + wait >= deadline:
            return None  # the wait alone would overrun the deadline: give up now
        return wait

    async def reply(self) -> Reply:
        """Attempt until a reply comes back; giving up raises the last error (with every
        attempt's usage and the attempt count)."""
        call = self.call
        while True:
            self.attempt += 1
            try:
                return await self.next(
                    call
                    if self.attempt == 1
                    else call.replace(context={**call.context, "attempt": self.attempt - 1})
                )
            except LLMClientError as exc:
                if isinstance(exc.usage, Usage):
                    self.spent = self.spent + exc.usage
                wait = self._wait(exc)
                if wait is None:
                    exc.usage = self.spent
                    exc.attempts = self.attempt
                    raise
                await self.clock.sleep(wait)

    def settle(self, result: LLMResult) -> LLMResult:
        """``result`` with every attempt's usage and the attempt count."""
        if self.attempt == 1 and not self.spent.total_tokens:
            return result
        return result.replace(usage=self.spent + result.usage, attempts=self.attempt)

    def _settled(self, event: LLMEvent) -> LLMEvent:
        if self.attempt == 1 and not self.spent.total_tokens:
            return event
        if event.result is not None:
            result = self.settle(event.result)
            data = result.to_dict() if event.type == "done" else event.data
            return LLMEvent(event.type, data, result)
        if event.type == "usage":
            return LLMEvent("usage", (self.spent + Usage.from_dict(event.data)).to_dict())
        return event

    async def stream(self, stream: EventStream) -> AsyncIterator[LLMEvent]:
        """Pass the stream on; while nothing but ``meta`` has come, a retryable failure is
        retried like a failed call. Closes what it reads as soon as it stops."""
        held: LLMEvent | None = None
        try:
            while True:
                first: LLMEvent | None = None
                async for event in stream:
                    if event.type == "meta" and first is None:
                        held = event
                        continue
                    first = event
                    break
                if first is not None and first.type == "error" and first.result is not None:
                    failed = first.result
                    error = _error_of(failed)
                    wait = self._wait(error)
                    if wait is not None:
                        self.spent = self.spent + failed.usage
                        await aclose(stream)
                        await self.clock.sleep(wait)
                        try:
                            reply = await self.reply()
                        except LLMClientError as exc:
                            if held is not None:
                                yield held
                            yield self._error_event(exc)
                            return
                        stream = replay(reply) if isinstance(reply, LLMResult) else reply
                        continue
                if held is not None:
                    yield held
                if first is None:
                    return
                yield self._settled(first)
                async for event in stream:
                    yield self._settled(event)
                return
        finally:
            await aclose(stream)

    def _error_event(self, exc: LLMClientError) -> LLMEvent:
        call = self.call
        result = LLMResult.from_error(
            exc,
            params=call.params,
            operation=call.operation,
            model=call.model,
        )
        return LLMEvent("error", {"status": result.status, "error": result.error}, result)
