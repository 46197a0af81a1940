"""Streams end to end, through the real SDK against the fake server: closing an abandoned
stream at once, the whole-stream deadline and the idle timeout, attempts and usage of retried
streams, and how cut calls report their usage."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from llm_client import GPT5Nano, OpenAIClient
from llm_client.streaming import LLMEvent
from llm_client.testing import FakeOpenAI
from llm_client.testing.wire import AnswerRecord

MESSAGES = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]
#: The issue's bound: the server sees an abandoned stream's connection close within 100 ms.
CLOSE_BOUND = 0.1


def make_client(server: FakeOpenAI, **kw) -> OpenAIClient:
    kw.setdefault("rate_limit_backend", None)
    kw.setdefault("backoff", 0.01)
    return OpenAIClient(GPT5Nano, base_url=server.base_url, api_key="sk-test-secret", **kw)


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as s:  # in the test's loop: it sees a close as soon as it happens
        yield s


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Nothing may rely on the garbage collector to close a stream."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def closed_within(server: FakeOpenAI, t0: float, bound: float) -> AnswerRecord:
    """The one stream answer, once the server saw its connection end (polled up to ``bound``
    after ``t0``, then once more)."""
    (record,) = server.answers
    for _ in range(int(bound / 0.002) + 1):
        if record.closed is not None or time.monotonic() - t0 >= bound:
            break
        await asyncio.sleep(0.002)
    return record


async def settled(server: FakeOpenAI) -> AnswerRecord:
    """The one answer, once the server has seen how it ended (waits, never asserts time)."""
    (record,) = server.answers
    for _ in range(1000):
        if record.closed is not None:
            break
        await asyncio.sleep(0.005)
    return record


CHAINS = {
    "bare": {},
    "full": {"cache_backend": "memory", "rate_limit_backend": "local", "timeout": 30},
}


@pytest.mark.usefixtures("no_gc")
@pytest.mark.parametrize("chain", sorted(CHAINS))
@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_aclose_closes_the_connection_at_once(server, api, chain):
    server.drip_next(interval=0.2)  # the whole answer would take seconds
    client = make_client(server, **CHAINS[chain])
    stream = client.stream(MESSAGES, api=api)
    async for event in stream:
        if event.type == "text_delta":
            break
    t0 = time.monotonic()
    await stream.aclose()
    record = await closed_within(server, t0, CLOSE_BOUND)
    await client.close()
    assert record.outcome == "client_closed", record
    assert record.events_sent < record.events_total
    assert record.closed is not None and record.closed - t0 <= CLOSE_BOUND


@pytest.mark.usefixtures("no_gc")
async def test_leaving_stream_sse_closes_the_connection_at_once(server):
    server.drip_next(interval=0.2)
    client = make_client(server, **CHAINS["full"])
    frames = client.stream_sse(MESSAGES)
    async for frame in frames:
        if frame.startswith("event: text_delta"):
            break
    t0 = time.monotonic()
    await frames.aclose()
    record = await closed_within(server, t0, CLOSE_BOUND)
    await client.close()
    assert record.outcome == "client_closed", record
    assert record.closed is not None and record.closed - t0 <= CLOSE_BOUND


@pytest.mark.usefixtures("no_gc")
@pytest.mark.parametrize("chain", sorted(CHAINS))
async def test_break_closes_the_connection_at_once(server, chain):
    server.drip_next(interval=0.2)
    client = make_client(server, **CHAINS[chain])

    async def first_delta() -> LLMEvent:
        async for event in client.stream(MESSAGES):
            if event.type == "text_delta":
                return event  # leaves the loop: the stream is dropped unfinished
        raise AssertionError("no text")

    await first_delta()
    t0 = time.monotonic()
    record = await closed_within(server, t0, CLOSE_BOUND)
    await client.close()
    assert record.outcome == "client_closed", record
    assert record.closed is not None and record.closed - t0 <= CLOSE_BOUND


# --- the deadline bounds the whole stream; the idle timeout bounds each wait ------------------


def final(events: list[LLMEvent]) -> LLMEvent:
    assert events[0].type == "meta", [e.type for e in events]
    assert [e.type for e in events].count("error") + [e.type for e in events].count("done") == 1
    return events[-1]


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_timeout_bounds_a_stream_that_keeps_sending(server, api):
    server.drip_next(interval=0.4)  # every chunk on time, the whole answer far too late
    client = make_client(server, timeout=1)
    events = [e async for e in client.stream(MESSAGES, api=api)]
    await client.close()
    last = final(events)
    assert last.type == "error" and last.data["status"] == 408
    assert "DeadlineExceededError" in last.data["error"]
    record = await settled(server)
    assert record.outcome == "client_closed" and record.events_sent < record.events_total
    text = "".join(e.data["text"] for e in events if e.type == "text_delta")
    assert last.result is not None and last.result.output == (text or None)


async def test_per_call_timeout_bounds_a_stream(server):
    server.drip_next(interval=0.4)
    client = make_client(server)
    events = [e async for e in client.stream(MESSAGES, timeout=1)]
    await client.close()
    assert final(events).data["status"] == 408


@pytest.mark.parametrize("where", ["client", "call"])
async def test_idle_timeout_ends_a_stalled_stream(server, where):
    server.stall_next(after_chunks=3)
    if where == "client":
        client = make_client(server, stream_idle_timeout=0.3, attempts=1)
        stream = client.stream(MESSAGES)
    else:
        client = make_client(server, attempts=1)
        stream = client.stream(MESSAGES, stream_idle_timeout=0.3)
    events = [e async for e in stream]
    await client.close()
    last = final(events)
    assert last.type == "error" and last.data["status"] == 408
    assert "stream_idle_timeout" in last.data["error"]
    assert last.result is not None and last.result.output  # what arrived is kept
    assert last.result.usage.estimated and last.result.usage.output_tokens > 0
    record = await settled(server)
    assert record.outcome == "client_closed"


async def test_idle_timeout_lets_a_slow_but_steady_stream_finish(server):
    server.drip_next(interval=0.05)
    client = make_client(server, stream_idle_timeout=5)
    events = [e async for e in client.stream(MESSAGES)]
    await client.close()
    assert final(events).type == "done"


async def test_idle_timeout_is_checked():
    from llm_client import ConfigurationError, InvalidRequestError

    client = OpenAIClient(GPT5Nano, api_key="k", rate_limit_backend=None)
    for bad in (0, -1, float("nan"), float("inf"), "1", True):
        with pytest.raises(InvalidRequestError, match="stream_idle_timeout"):
            client.stream(MESSAGES, stream_idle_timeout=bad)
    await client.close()
    for bad in (0, float("nan"), "1"):
        with pytest.raises(ConfigurationError, match="stream_idle_timeout"):
            OpenAIClient(GPT5Nano, api_key="k", stream_idle_timeout=bad)


# --- a stream cut mid-way ----------------------------------------------------------------------


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_connection_cut_mid_stream_is_stream_interrupted_502(server, api):
    server.cut_next(after_chunks=3 if api == "chat" else 6)  # after some text
    client = make_client(server)
    events = [e async for e in client.stream(MESSAGES, api=api)]
    await client.close()
    last = final(events)
    assert last.type == "error" and last.data["status"] == 502
    assert last.data["error"].startswith("StreamInterruptedError: ")
    assert server.count() == 1  # text had reached the consumer: never retried


# --- retried streams report every attempt ----------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    ["429", "500", "drop", "cut_before_text", "truncate_before_text"],
)
async def test_retried_stream_reports_its_attempts_and_usage(server, fault):
    if fault == "429":
        server.rate_limit_next(retry_after=0.01)
    elif fault == "500":
        server.fail_next(500)
    elif fault == "drop":
        server.drop_next()
    elif fault == "cut_before_text":
        server.cut_next(after_chunks=0)
    else:
        server.truncate_next(after_chunks=1)  # the role chunk only: no text yet
    client = make_client(server)
    events = [e async for e in client.stream(MESSAGES)]
    stats = client.stats()["totals"]
    await client.close()
    last = final(events)
    assert last.type == "done", last.data
    assert server.count("chat") == 2
    assert last.result is not None and last.result.attempts == 2
    assert last.data["attempts"] == 2
    billed = [a.billed_tokens for a in server.answers if a.usage is not None]
    assert billed == [(last.result.usage.input_tokens, last.result.usage.output_tokens)]
    usage_event = next(e for e in events if e.type == "usage")
    assert usage_event.data == last.result.usage.to_dict()
    assert stats["attempts"] == 2 and stats["succeeded"] == 1
    assert [e.type for e in events].count("meta") == 1


async def test_stream_that_keeps_failing_before_text_reports_all_attempts(server):
    server.cut_next(after_chunks=0, times=3)
    client = make_client(server, attempts=3)
    events = [e async for e in client.stream(MESSAGES)]
    stats = client.stats()["totals"]
    await client.close()
    last = final(events)
    assert last.type == "error" and last.data["status"] == 502
    assert last.result is not None and last.result.attempts == 3
    assert server.count("chat") == 3 and stats["attempts"] == 3


# --- a call cut short reports its usage as an estimate ----------------------------------------


async def test_unary_call_cut_by_the_deadline_reports_estimated_usage(server):
    server.stall_next()  # sent and received: the answer never comes
    client = make_client(server, timeout=0.5)
    result = await client.invoke(MESSAGES)
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


async def test_stream_cut_by_the_deadline_reports_estimated_usage_the_same_way(server):
    server.stall_next(after_chunks=3)
    client = make_client(server, timeout=0.5)
    events = [e async for e in client.stream(MESSAGES)]
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


async def test_call_not_yet_sent_when_cut_reports_no_usage(server):
    client = make_client(server, rate_limit_backend="local", requests_per_minute=1)
    await client.invoke(MESSAGES)  # uses the one request of this minute
    result = await client.invoke(MESSAGES, timeout=0.3)  # waits in the limiter, never sent
    await client.close()
    assert result.status == 408
    assert result.usage.total_tokens == 0 and not result.usage.estimated
    assert server.count("chat") == 1


async def test_abandoned_stream_counts_what_it_spent(server):
    server.drip_next(interval=0.2)
    client = make_client(server)
    stream = client.stream(MESSAGES)
    async for event in stream:
        if event.type == "text_delta":
            break
    await stream.aclose()
    stats = client.stats()["totals"]
    await client.close()
    assert stats["abandoned"] == 1 and stats["failed"] == 0 and stats["estimated"] == 1
    assert stats["input_tokens"] > 0 and stats["output_tokens"] > 0 and stats["attempts"] == 1


async def test_streams_leave_no_reference_cycles(server, no_gc):
    """With the garbage collector off, nothing of a stream may be left for it to find."""
    client = make_client(server, rate_limit_backend="local", cache_backend="memory", timeout=30)
    [e async for e in client.stream(MESSAGES)]  # warm up
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for i in range(3):
            [e async for e in client.stream([{"role": "user", "content": f"question {i}"}])]
            stream = client.stream([{"role": "user", "content": f"left {i}"}])
            async for event in stream:
                if event.type == "text_delta":
                    break
            await stream.aclose()
        gc.collect()
        kinds = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    await client.close()
    assert not kinds & {"async_generator", "_SDKEvents", "_LocalLease", "GeneratorExit"}, kinds


async def test_two_thousand_streams_a_third_abandoned_leave_memory_where_it_was(server):
    """Issue 10's soak: 2,000 streamed calls (a third left after their first delta, by
    ``break`` or ``aclose()``) through the default chain; the memory Python holds after them
    is within a small fixed bound of what it held before, measured with tracemalloc."""
    import tracemalloc

    client = make_client(server, rate_limit_backend="local", cache_backend=None, timeout=30)

    async def one(i: int) -> None:
        stream = client.stream([{"role": "user", "content": f"story {i % 50}"}])
        if i % 3:
            async for _ in stream:
                pass
            return
        async for event in stream:
            if event.type == "text_delta":
                break
        if i % 2:
            await stream.aclose()
        else:
            del stream  # left without aclose(): a plain break, as most callers write it

    async def wave(start: int, n: int, width: int = 32) -> None:
        for k in range(start, start + n, width):
            await asyncio.gather(*(one(i) for i in range(k, min(k + width, start + n))))

    try:
        await wave(0, 200)  # warm up: connections, encoders, interned strings
        await asyncio.sleep(0.05)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await wave(200, 2000)
        await asyncio.sleep(0.05)
        server.reset()  # the fake server's own request log grows by design; it is not ours
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        await client.close()
    assert after - before < 1024 * 1024, f"grew by {(after - before) / 1024:.0f} KiB"
