"""llm_client.middleware.timeout: one deadline over the whole call, and the streams' idle default.

The end-to-end deadline tests (a slow server, retries under a deadline, streams cut by it) are in
tests/test_client.py and tests/test_streams.py; these drive the step itself, with the next step
written as a plain coroutine that records the call it receives.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest

from llm_client import ConfigurationError, GPT5Nano
from llm_client.exceptions import DeadlineExceededError
from llm_client.middleware import Timeout
from llm_client.pipeline import Call
from llm_client.result import LLMResult


def make_call(**changes: Any) -> Call:
    messages = [{"role": "user", "content": "hi"}]
    return Call(profile=GPT5Nano, operation="chat", params={"messages": messages}, **changes)


class Recorder:
    """A next step that answers at once and keeps the call it was given."""

    def __init__(self) -> None:
        self.seen: list[Call] = []

    async def __call__(self, call: Call) -> LLMResult:
        self.seen.append(call)
        return LLMResult(params=call.params, output="ok")


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, True, "5"])
@pytest.mark.parametrize("name", ["timeout", "stream_idle_timeout"])
def test_bad_settings_name_the_parameter(name: str, bad: Any) -> None:
    kwargs = {"default": bad} if name == "timeout" else {"stream_idle_timeout": bad}
    with pytest.raises(ConfigurationError, match=name):
        Timeout(**kwargs)


async def test_without_a_timeout_the_call_passes_unchanged() -> None:
    nxt = Recorder()
    call = make_call()
    result = await Timeout()(call, nxt)
    assert result.output == "ok"
    assert nxt.seen == [call] and nxt.seen[0].deadline is None


async def test_the_deadline_is_absolute_and_an_earlier_outer_one_wins() -> None:
    nxt = Recorder()
    before = time.monotonic()
    await Timeout(100)(make_call(), nxt)
    assert nxt.seen[0].deadline is not None and nxt.seen[0].deadline > before
    outer = time.monotonic() + 1
    await Timeout(100)(make_call(deadline=outer), nxt)
    assert nxt.seen[1].deadline == outer


async def test_the_calls_own_timeout_wins_over_the_default() -> None:
    nxt = Recorder()
    await Timeout(1000)(make_call(timeout=1), nxt)
    deadline = nxt.seen[0].deadline
    assert deadline is not None and deadline <= time.monotonic() + 1


async def test_the_idle_default_applies_to_streams_only_and_the_calls_own_wins() -> None:
    nxt = Recorder()
    step = Timeout(stream_idle_timeout=2)
    await step(make_call(), nxt)
    await step(make_call(stream=True), nxt)
    await step(make_call(stream=True, stream_idle_timeout=0.5), nxt)
    assert [c.stream_idle_timeout for c in nxt.seen] == [None, 2, 0.5]


async def test_a_call_past_its_deadline_raises_408_and_the_step_below_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def never(call: Call) -> LLMResult:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    with pytest.raises(DeadlineExceededError, match=r"within its timeout of 0\.05s") as info:
        await Timeout(0.05)(make_call(), never)
    assert info.value.status == 408 and info.value.attempts == 1
    assert cancelled.is_set()
