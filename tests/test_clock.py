"""llm_client.clock: the injectable clock, and the manual one the tests advance by hand."""

from __future__ import annotations

import asyncio

import pytest

from llm_client.clock import DEFAULT_CLOCK, Clock, ManualClock, MonotonicClock


def test_both_clocks_are_clocks() -> None:
    assert isinstance(ManualClock(), Clock) and isinstance(MonotonicClock(), Clock)
    assert isinstance(DEFAULT_CLOCK, MonotonicClock)


async def test_the_real_clock_moves_forward_and_a_negative_sleep_returns() -> None:
    before = DEFAULT_CLOCK.now()
    await DEFAULT_CLOCK.sleep(-1)
    assert DEFAULT_CLOCK.now() >= before


async def test_a_sleeper_wakes_only_when_its_time_has_come() -> None:
    clock = ManualClock(start=10)
    woke: list[float] = []

    async def nap(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.now())

    tasks = [asyncio.ensure_future(nap(s)) for s in (1, 3)]
    await asyncio.sleep(0)
    assert clock.sleepers == 2
    clock.advance(2)
    await asyncio.sleep(0)
    assert woke == [12] and clock.sleepers == 1
    clock.advance(1)
    await asyncio.gather(*tasks)
    assert woke == [12, 13] and clock.sleepers == 0


async def test_a_cancelled_sleeper_is_forgotten_and_zero_sleeps_yield() -> None:
    clock = ManualClock()
    task = asyncio.ensure_future(clock.sleep(5))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0
    await clock.sleep(0)  # returns without advancing
    assert clock.now() == 0


def test_time_never_goes_backwards() -> None:
    with pytest.raises(ValueError, match="backwards"):
        ManualClock().advance(-1)
