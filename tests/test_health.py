"""llm_client.health: outage tracking, the health-checked call of server backends, and the
bounded backend call of the cache step."""

from __future__ import annotations

import asyncio
import logging

import pytest

from llm_client.clock import ManualClock
from llm_client.health import BackendGuard, ServiceDown, ServiceHealth

LOGGER = "test.health"


def health(interval: float = 1.0, clock: ManualClock | None = None) -> ServiceHealth:
    return ServiceHealth(
        "Thing",
        "thing://user:hunter2@host:1",
        logger=logging.getLogger(LOGGER),
        reconnect_interval=interval,
        clock=clock or ManualClock(),
    )


class Refused(OSError):
    pass


class Busy(OSError):
    """An outage type that a caller declares not to be one (like a busy local pool)."""


class Rejected(Exception):
    """The server answered and refused this one request."""


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


# --- ServiceHealth.call ------------------------------------------------------------------------


async def test_call_returns_and_records_success() -> None:
    h = health()

    async def op() -> int:
        return 7

    assert await h.call(op, outages=(OSError,)) == 7
    assert h.up and h.failures == 0


async def test_an_outage_is_logged_once_and_later_calls_are_not_made(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    clock = ManualClock()
    h = health(interval=5.0, clock=clock)
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise Refused("connection refused")

    with pytest.raises(ServiceDown) as info:
        await h.call(down, outages=(OSError,))
    assert isinstance(info.value.__cause__, Refused)
    for _ in range(3):  # within the reconnect interval: not even tried
        with pytest.raises(ServiceDown):
            await h.call(down, outages=(OSError,))
    assert calls == 1 and not h.up
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 1 and "Thing at thing://user:***@host:1" in warnings[0]
    assert "hunter2" not in caplog.text

    clock.advance(5.0)

    async def back() -> str:
        return "ok"

    assert await h.call(back, outages=(OSError,)) == "ok"
    assert h.up and len(lines(caplog, logging.INFO)) == 1


async def test_passthrough_and_unlisted_errors_leave_health_alone() -> None:
    h = health()

    async def busy() -> None:
        raise Busy("pool exhausted")

    async def bug() -> None:
        raise KeyError("a bug in the backend")

    with pytest.raises(Busy):  # checked before outages, although it is an OSError
        await h.call(busy, outages=(OSError,), passthrough=(Busy,))
    with pytest.raises(KeyError):
        await h.call(bug, outages=(OSError,))
    assert h.up and h.failures == 0


async def test_answered_errors_count_as_success_and_are_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    clock = ManualClock()
    h = health(interval=1.0, clock=clock)

    async def down() -> None:
        raise Refused("refused")

    async def rejected() -> None:
        raise Rejected("value too long for the index")

    with pytest.raises(ServiceDown):
        await h.call(down, outages=(OSError,))
    clock.advance(1.0)
    with pytest.raises(Rejected):
        await h.call(rejected, outages=(OSError,), answered=(Rejected,))
    assert h.up  # the server answered: the outage is over
    assert len(lines(caplog, logging.INFO)) == 1


async def test_cancellation_passes_through_untouched() -> None:
    h = health()

    async def hang() -> None:
        await asyncio.sleep(60)

    task = asyncio.ensure_future(h.call(hang, outages=(Exception,)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.up and h.failures == 0


# --- BackendGuard ------------------------------------------------------------------------------


async def test_guard_returns_the_result_or_the_fallback(caplog: pytest.LogCaptureFixture) -> None:
    guard = BackendGuard(health())

    async def ok() -> str:
        return "value"

    async def broken() -> str:
        raise RuntimeError("disk full at sk-proj-0123456789abcdefghijklmnop")

    assert await guard.call("get", ok, limit=1.0, failed=None) == "value"
    assert await guard.call("get", broken, limit=1.0, failed="fallback") == "fallback"
    assert guard.errors == 1 and guard.skips == 0
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 1 and "get: RuntimeError: disk full" in warnings[0]
    assert "0123456789abcdefghij" not in caplog.text  # the reason is redacted
    # a plain failure does not stop the next call from trying
    assert await guard.call("get", ok, limit=1.0, failed=None) == "value"
    assert guard.health.up


async def test_guard_cuts_a_hung_call_and_skips_until_the_next_probe() -> None:
    clock = ManualClock()
    guard = BackendGuard(health(interval=10.0, clock=clock))
    calls = 0

    async def hang() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(60)

    assert await guard.call("get", hang, limit=0.01, failed="cut") == "cut"
    assert guard.errors == 1 and calls == 1 and not guard.health.up
    for _ in range(3):  # skipped without waiting, until the reconnect interval has passed
        assert await guard.call("get", hang, limit=0.01, failed="skipped") == "skipped"
    assert guard.skips == 3 and calls == 1

    clock.advance(10.0)

    async def ok() -> int:
        return 1

    assert await guard.call("get", ok, limit=0.01, failed=None) == 1  # the probe answers
    assert guard.health.up


async def test_guard_tells_its_cut_from_the_backends_own_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = BackendGuard(health())

    async def own_timeout() -> None:
        raise TimeoutError("the backend's socket timed out")

    assert await guard.call("put", own_timeout, limit=5.0, failed=False) is False
    assert "put: TimeoutError: the backend's socket timed out" in lines(caplog, logging.WARNING)[0]

    async def ok() -> bool:
        return True

    # not a cut: the next call is tried at once
    assert await guard.call("put", ok, limit=5.0, failed=False) is True


async def test_guard_skips_when_no_time_is_left() -> None:
    guard = BackendGuard(health())
    called = False

    async def op() -> None:
        nonlocal called
        called = True

    assert await guard.call("get", op, limit=0.0, failed="none") == "none"
    assert guard.skips == 1 and not called and guard.health.up


async def test_guard_passes_cancellation_on() -> None:
    guard = BackendGuard(health())

    async def hang() -> None:
        await asyncio.sleep(60)

    task = asyncio.ensure_future(guard.call("get", hang, limit=None, failed=None))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert guard.errors == 0


async def test_guard_with_a_limit_passes_cancellation_on() -> None:
    guard = BackendGuard(health())

    async def hang() -> None:
        await asyncio.sleep(60)

    task = asyncio.ensure_future(guard.call("get", hang, limit=5.0, failed=None))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert guard.errors == 0 and guard.health.up


async def test_guard_cuts_each_call_at_its_own_limit() -> None:
    """The guard's calls share one timer: a later call with a shorter limit is still cut on
    time, a call already running keeps its longer one, and the task that was cut carries no
    leftover cancellation."""
    guard = BackendGuard(health())
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow answer"

    async def hang() -> None:
        await asyncio.sleep(60)

    long_call = asyncio.ensure_future(guard.call("get", slow, limit=30.0, failed="cut"))
    await asyncio.sleep(0)
    # bounded so that a missed cut fails the test instead of hanging it
    assert await asyncio.wait_for(guard.call("get", hang, limit=0.02, failed="cut"), 10) == "cut"
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0
    await asyncio.sleep(0)  # no stray CancelledError here
    assert not long_call.done()
    release.set()
    assert await long_call == "slow answer"

    async def ok() -> str:
        return "fast"

    # a timer left armed for an answered call does not stop the next hung one being cut
    guard = BackendGuard(health())
    assert await guard.call("get", ok, limit=0.05, failed=None) == "fast"
    assert await asyncio.wait_for(guard.call("get", hang, limit=0.05, failed="cut"), 10) == "cut"
    assert guard.errors == 1
