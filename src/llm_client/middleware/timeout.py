"""Timeout: one deadline over the whole call, streams included.

Why here: outside cache, retry and the limiter, so the ``timeout`` a user gives bounds
everything the call does — limiter waits, every attempt and the back-off between them —
rather than each attempt alone. The absolute deadline is put on the :class:`Call`, so the
transport passes the time left as the SDK's per-request timeout and retry never sleeps past it.

A stream is bounded to its last event: once the deadline passes, whatever is still reading
below is cancelled (which closes the HTTP response) and the stream ends with an ``error``
event of status 408, as a unary call would. A call cut after it was sent reports the usage it
ran up as an estimate (see :class:`~llm_client.meter.CallMeter`), never 0.

``stream_idle_timeout`` (this step's default, or the call's own) bounds the wait for each piece
of a stream instead, before the first included; the transport enforces it as the HTTP read
timeout, so a stream that goes quiet fails like any other read timeout (408).
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any, cast

from ..clock import DEFAULT_CLOCK, Clock, MonotonicClock
from ..exceptions import ConfigurationError, DeadlineExceededError
from ..meter import CallMeter, meter_of
from ..pipeline import Call, Next, Reply
from ..result import LLMResult
from ..streaming import LLMEvent
from ._stream import aclose

__all__ = ["Timeout"]


def _check(name: str, value: Any) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")


async def _before(deadline: float, step: Awaitable[Any], clock: Clock) -> Any:
    """Await ``step`` unless ``deadline`` (on ``clock``) passes first: then raise TimeoutError.

    On the real clock the event loop's own timeout does it; on any other clock (a test's
    :class:`~llm_client.clock.ManualClock`) the step races a sleep on that clock, so a
    deadline can be driven without sleeping."""
    if type(clock) is MonotonicClock:
        if sys.version_info >= (3, 11):
            loop = asyncio.get_running_loop()
            async with asyncio.timeout_at(loop.time() + (deadline - clock.now())):
                return await step
        return await asyncio.wait_for(step, deadline - clock.now())  # pragma: no cover
    task = asyncio.ensure_future(step)
    timer = asyncio.ensure_future(clock.sleep(deadline - clock.now()))
    try:
        await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # cancelled from outside: stop both
        task.cancel()
        timer.cancel()
        raise
    if task.done():
        timer.cancel()
        return task.result()
    task.cancel()  # what is still reading below is cancelled, as on the real clock
    await asyncio.gather(task, return_exceptions=True)
    raise TimeoutError


class Timeout:
    """Bound a call by ``call.timeout`` (or this step's ``default``) seconds.

    :param default: the client's ``timeout``: one deadline over the whole call.
    :param stream_idle_timeout: the client's default for streams: the longest wait for the
        next piece of a stream (``None``: no limit but the deadline).
    :param clock: the clock the deadline is set and enforced on (the client's; tests inject
        a :class:`~llm_client.clock.ManualClock`).
    """

    def __init__(
        self,
        default: float | None = None,
        *,
        stream_idle_timeout: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        _check("timeout", default)
        _check("stream_idle_timeout", stream_idle_timeout)
        self.default = default
        self.stream_idle_timeout = stream_idle_timeout
        self.clock: Clock = clock if clock is not None else DEFAULT_CLOCK

    def __call__(self, call: Call, next: Next, /) -> Coroutine[Any, Any, Reply]:
        if call.stream and call.stream_idle_timeout is None and self.stream_idle_timeout:
            call = call.replace(stream_idle_timeout=self.stream_idle_timeout)
        seconds = call.timeout if call.timeout is not None else self.default
        if seconds is None:
            # nothing to bound: the next step's own coroutine, without one of this step's
            # around it (every call, cache hits included, passes here)
            return cast("Coroutine[Any, Any, Reply]", next(call))
        return self._within(call, next, seconds)

    async def _within(self, call: Call, next: Next, seconds: float) -> Reply:
        deadline = self.clock.now() + seconds
        if call.deadline is not None:
            deadline = min(deadline, call.deadline)
        meter = meter_of(call)
        if meter is None:
            meter = CallMeter()
            call = call.replace(deadline=deadline, context={**call.context, "meter": meter})
        else:
            call = call.replace(deadline=deadline)
        try:
            reply = await _before(deadline, next(call), self.clock)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise self._expired(seconds, meter, "call") from exc
        if isinstance(reply, LLMResult):
            return reply
        return self._bounded(reply, call, deadline, seconds, meter)

    @staticmethod
    def _expired(seconds: float, meter: CallMeter, what: str) -> DeadlineExceededError:
        err = DeadlineExceededError(
            f"the {what} did not finish within its timeout of {seconds:g}s"
            " (over all attempts and waits)"
        )
        err.attempts = max(1, meter.attempts)
        spent = meter.spent()
        if spent.total_tokens or meter.attempts:
            err.usage = spent
        return err

    async def _bounded(
        self,
        stream: AsyncIterator[LLMEvent],
        call: Call,
        deadline: float,
        seconds: float,
        meter: CallMeter,
    ) -> AsyncIterator[LLMEvent]:
        """Pass ``stream`` on until the deadline; then cut it and end with an ``error``."""
        texts: list[str] = []
        meta_sent = False
        try:
            while True:
                if self.clock.now() >= deadline:
                    break
                try:
                    event = await _before(deadline, stream.__anext__(), self.clock)
                except StopAsyncIteration:
                    return
                except (TimeoutError, asyncio.TimeoutError):
                    break
                if event.type == "text_delta":
                    texts.append(str(event.data.get("text", "")))
                elif event.type == "meta":
                    meta_sent = True
                yield event
                if event.type in ("done", "error"):
                    return
            await aclose(stream)  # settles the meter with the estimate of the cut attempt
            err = self._expired(seconds, meter, "stream")
            result = LLMResult.from_error(
                err,
                params=call.params,
                operation=call.operation,
                model=call.model,
                identifier=call.cache.identifier,
            ).replace(output="".join(texts) or None)
            if not meta_sent:
                yield LLMEvent(
                    "meta",
                    {"model": result.model, "operation": call.operation, "cached": False},
                )
            yield LLMEvent("error", {"status": result.status, "error": result.error}, result)
        finally:
            await aclose(stream)
