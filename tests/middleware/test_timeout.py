"""llm_client.middleware.timeout: one deadline over the whole call, and the streams' idle default.

The first tests drive the step itself, with the next step written as a plain coroutine that
records the call it receives. Then end to end, through the real SDK against the fake server: a
deadline over all attempts of a slow call, streams bounded by the deadline and by the idle
timeout, and the usage a call cut by the deadline reports (an estimate once it was sent).

The tests at the end drive deadlines on an injected ManualClock, without sleeping: the timeout
step, the retry step's deadline check and the transport all read the client's clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import pytest

from llm_client import ConfigurationError, GPT5Nano, OpenAIClient
from llm_client.clock import ManualClock
from llm_client.exceptions import DeadlineExceededError, InvalidRequestError, RateLimitError
from llm_client.middleware import Retry, Timeout
from llm_client.pipeline import Call
from llm_client.result import LLMResult
from llm_client.streaming import LLMEvent
from llm_client.testing import FakeOpenAI, Fault
from llm_client.testing.wire import AnswerRecord


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


# --- end to end: a slow server, streams and calls cut by the deadline, the idle timeout --------
# Through the real SDK against the fake server.

GREETING = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello, how are you?"},
]
STORY = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


def make_client(server: FakeOpenAI, **kw: Any) -> OpenAIClient:
    kw.setdefault("rate_limit_backend", None)
    kw.setdefault("backoff", 0.01)
    return OpenAIClient(GPT5Nano, base_url=server.base_url, api_key="sk-test-secret", **kw)


def final(events: list[LLMEvent]) -> LLMEvent:
    assert events[0].type == "meta", [e.type for e in events]
    assert [e.type for e in events].count("error") + [e.type for e in events].count("done") == 1
    return events[-1]


async def settled(server: FakeOpenAI) -> AnswerRecord:
    """The one answer, once the server has seen how it ended (waits, never asserts time)."""
    (record,) = server.answers
    for _ in range(1000):
        if record.closed is not None:
            break
        await asyncio.sleep(0.005)
    return record


async def test_timeout_is_a_deadline_over_all_attempts(server: FakeOpenAI) -> None:
    client = make_client(server)
    server.add_fault(Fault("latency", delay=2.0, times=5))
    loop = asyncio.get_running_loop()
    start = loop.time()
    r = await client.get_response(messages=GREETING, timeout=0.3, attempts=5)
    elapsed = loop.time() - start
    await client.close()
    assert r["status"] == 408
    assert elapsed < 1.5


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_timeout_bounds_a_stream_that_keeps_sending(server: FakeOpenAI, api: str) -> None:
    server.drip_next(interval=0.4)  # every chunk on time, the whole answer far too late
    client = make_client(server, timeout=1)
    events = [e async for e in client.stream(STORY, api=api)]
    await client.close()
    last = final(events)
    assert last.type == "error" and last.data["status"] == 408
    assert "DeadlineExceededError" in last.data["error"]
    record = await settled(server)
    assert record.outcome == "client_closed" and record.events_sent < record.events_total
    text = "".join(e.data["text"] for e in events if e.type == "text_delta")
    assert last.result is not None and last.result.output == (text or None)


async def test_per_call_timeout_bounds_a_stream(server: FakeOpenAI) -> None:
    server.drip_next(interval=0.4)
    client = make_client(server)
    events = [e async for e in client.stream(STORY, timeout=1)]
    await client.close()
    assert final(events).data["status"] == 408


@pytest.mark.parametrize("where", ["client", "call"])
async def test_idle_timeout_ends_a_stalled_stream(server: FakeOpenAI, where: str) -> None:
    server.stall_next(after_chunks=3)
    if where == "client":
        client = make_client(server, stream_idle_timeout=0.3, attempts=1)
        stream = client.stream(STORY)
    else:
        client = make_client(server, attempts=1)
        stream = client.stream(STORY, stream_idle_timeout=0.3)
    events = [e async for e in stream]
    await client.close()
    last = final(events)
    assert last.type == "error" and last.data["status"] == 408
    assert "stream_idle_timeout" in last.data["error"]
    assert last.result is not None and last.result.output  # what arrived is kept
    assert last.result.usage.estimated and last.result.usage.output_tokens > 0
    record = await settled(server)
    assert record.outcome == "client_closed"


async def test_idle_timeout_lets_a_slow_but_steady_stream_finish(server: FakeOpenAI) -> None:
    server.drip_next(interval=0.05)
    client = make_client(server, stream_idle_timeout=5)
    events = [e async for e in client.stream(STORY)]
    await client.close()
    assert final(events).type == "done"


async def test_idle_timeout_is_checked() -> None:
    client = OpenAIClient(GPT5Nano, api_key="k", rate_limit_backend=None)
    for bad in (0, -1, float("nan"), float("inf"), "1", True):
        with pytest.raises(InvalidRequestError, match="stream_idle_timeout"):
            client.stream(STORY, stream_idle_timeout=bad)
    await client.close()
    for bad in (0, float("nan"), "1"):
        with pytest.raises(ConfigurationError, match="stream_idle_timeout"):
            OpenAIClient(GPT5Nano, api_key="k", stream_idle_timeout=bad)


async def test_unary_call_cut_by_the_deadline_reports_estimated_usage(server: FakeOpenAI) -> None:
    server.stall_next()  # sent and received: the answer never comes
    client = make_client(server, timeout=0.5)
    result = await client.invoke(STORY)
    stats = client.stats()["totals"]
    await client.close()
    assert result.status == 408 and "DeadlineExceededError" in result.error
    assert result.usage.estimated
    assert result.usage.input_tokens > 0 and result.usage.total_cost > 0
    assert result.usage.output_tokens == 0
    assert result.attempts == 1
    assert stats["estimated"] == 1 and stats["failed"] == 1
    assert stats["input_tokens"] == result.usage.input_tokens
    assert stats["cost_usd"] == pytest.approx(result.usage.total_cost)


async def test_stream_cut_by_the_deadline_reports_estimated_usage_the_same_way(
    server: FakeOpenAI,
) -> None:
    server.stall_next(after_chunks=3)
    client = make_client(server, timeout=0.5)
    events = [e async for e in client.stream(STORY)]
    unary = await client.invoke([{"role": "user", "content": "other"}], timeout=30)
    stats = client.stats()["totals"]
    await client.close()
    last = final(events)
    assert last.type == "error" and last.data["status"] == 408
    usage = last.result.usage
    assert usage.estimated and usage.input_tokens > 0 and usage.output_tokens > 0
    assert last.result.attempts == 1
    assert not unary.usage.estimated
    assert stats["estimated"] == 1
    assert stats["input_tokens"] == usage.input_tokens + unary.usage.input_tokens


async def test_call_not_yet_sent_when_cut_reports_no_usage(server: FakeOpenAI) -> None:
    client = make_client(server, rate_limit_backend="local", requests_per_minute=1)
    await client.invoke(STORY)  # uses the one request of this minute
    result = await client.invoke(STORY, timeout=0.3)  # waits in the limiter, never sent
    await client.close()
    assert result.status == 408
    assert result.usage.total_tokens == 0 and not result.usage.estimated
    assert server.count("chat") == 1


# --- deadlines on an injected clock ----------------------------------------------------------

CALL = Call(profile=GPT5Nano, operation="chat", params={"messages": []})
MESSAGES = [{"role": "user", "content": "hello"}]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_deadline_on_a_manual_clock_cuts_a_call_that_never_answers() -> None:
    clock = ManualClock(start=1000.0)
    seen: list[Call] = []
    cancelled = asyncio.Event()

    async def hang(call: Call) -> LLMResult:
        seen.append(call)
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    task = asyncio.ensure_future(Timeout(5, clock=clock)(CALL, hang))
    await settle()
    assert seen[0].deadline == 1005.0  # set on the injected clock
    clock.advance(4.9)
    await settle()
    assert not task.done()
    clock.advance(0.1)
    with pytest.raises(DeadlineExceededError, match="within its timeout of 5s"):
        await task
    assert cancelled.is_set()  # what was still running below was cancelled


async def test_an_answer_before_the_deadline_passes_through() -> None:
    clock = ManualClock()

    async def answer(call: Call) -> LLMResult:
        await clock.sleep(3)
        return LLMResult(params=call.params, output="ok")

    task = asyncio.ensure_future(Timeout(5, clock=clock)(CALL, answer))
    await settle()
    clock.advance(3)
    result = await task
    assert isinstance(result, LLMResult) and result.output == "ok"
    assert clock.sleepers == 0  # the deadline's timer is gone too


async def test_a_stream_is_cut_at_the_deadline_on_a_manual_clock() -> None:
    clock = ManualClock()

    async def events():
        yield LLMEvent("meta", {"model": "gpt-5-nano", "operation": "chat", "cached": False})
        yield LLMEvent("text_delta", {"text": "Hel"})
        await asyncio.Event().wait()  # goes quiet
        yield LLMEvent("text_delta", {"text": "lo"})

    async def stream(call: Call):
        return events()

    reply = await Timeout(2, clock=clock)(CALL.replace(stream=True), stream)
    got = [await reply.__anext__(), await reply.__anext__()]
    pending = asyncio.ensure_future(reply.__anext__())
    await settle()
    assert not pending.done()
    clock.advance(2)
    got.append(await pending)
    assert [e.type for e in got] == ["meta", "text_delta", "error"]
    assert got[-1].result is not None
    assert got[-1].result.status == 408 and got[-1].result.output == "Hel"


async def test_retry_checks_the_deadline_on_its_clock() -> None:
    clock = ManualClock(start=50.0)
    errors = [RateLimitError("slow down", retry_after=1)]

    async def flaky(call: Call) -> LLMResult:
        if errors:
            raise errors.pop()
        return LLMResult(params=call.params, output="ok")

    # A 1 s wait fits before a deadline 5 s ahead on the same clock: retried after it.
    task = asyncio.ensure_future(Retry(3, clock=clock)(CALL.replace(deadline=55.0), flaky))
    await settle()
    assert clock.sleepers == 1
    clock.advance(1)
    result = await task
    assert isinstance(result, LLMResult) and result.attempts == 2

    # A 6 s wait would overrun it: given up at once, nothing slept.
    errors.append(RateLimitError("slow down", retry_after=6))
    with pytest.raises(RateLimitError):
        await Retry(3, clock=clock)(CALL.replace(deadline=55.0), flaky)


async def test_the_client_sets_and_reads_its_deadline_on_its_clock() -> None:
    """End to end: with a manual clock that never moves, the transport gives the SDK the
    whole timeout (read on that clock), and the call is answered."""
    clock = ManualClock(start=0.0)
    async with FakeOpenAI() as server:
        client = OpenAIClient(
            GPT5Nano, base_url=server.base_url, api_key="sk-test", clock=clock, timeout=30
        )
        try:
            r = await client.get_response(messages=MESSAGES)
            events = [e async for e in client.stream(messages=MESSAGES)]
        finally:
            await client.close()
    assert r["status"] == 200, r
    assert events[-1].type == "done"


async def test_the_client_cuts_a_hung_call_when_its_clock_passes_the_deadline() -> None:
    clock = ManualClock()
    async with FakeOpenAI() as server:
        server.stall_next(after_chunks=1)
        client = OpenAIClient(
            GPT5Nano, base_url=server.base_url, api_key="sk-test", clock=clock, timeout=30
        )
        try:
            task = asyncio.ensure_future(client.get_response(messages=MESSAGES, attempts=1))
            for _ in range(1000):  # until the request hangs at the server
                if server.count("chat") or task.done():
                    break
                await asyncio.sleep(0.01)
            assert not task.done() and clock.sleepers == 1  # only the deadline's timer
            clock.advance(30)
            r = await task
        finally:
            await client.close()
    assert r["status"] == 408, r


async def test_the_cache_step_reads_the_deadline_on_the_same_clock() -> None:
    """The cache step gives each backend operation a share of the time left before
    ``call.deadline``: read on the client's clock, a manual clock's deadline leaves it time."""
    clock = ManualClock()
    async with FakeOpenAI() as server:
        client = OpenAIClient(
            GPT5Nano,
            base_url=server.base_url,
            api_key="sk-test",
            clock=clock,
            timeout=30,
            cache_backend="memory",
        )
        try:
            first = await client.get_response(messages=MESSAGES)
            await client.pipeline["cache"].flush()  # the store is written in the background
            second = await client.get_response(messages=MESSAGES)
        finally:
            await client.close()
    assert first["status"] == 200 and second["status"] == 200
    assert second["cached"] is True
    assert server.count("chat") == 1
