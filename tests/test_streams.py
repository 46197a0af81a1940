"""Streams end to end, through the real SDK against the fake server: closing an abandoned
stream at once, a connection cut mid-way, attempts and usage of retried streams, and no
reference cycles or memory left behind.

The whole-stream deadline, the idle timeout and the usage of calls cut by the deadline are in
tests/middleware/test_timeout.py; what an abandoned stream counts is in
tests/middleware/test_cost.py."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator

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


# --- a stream cut mid-way ----------------------------------------------------------------------


def final(events: list[LLMEvent]) -> LLMEvent:
    assert events[0].type == "meta", [e.type for e in events]
    assert [e.type for e in events].count("error") + [e.type for e in events].count("done") == 1
    return events[-1]


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


# --- nothing of a stream is left behind -------------------------------------------------------


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
