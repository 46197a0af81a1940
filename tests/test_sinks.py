"""Sinks end to end through the real SDK against the fake server: ``stream_to_sink`` hands a
sink every event of the stream, sinks are built by name from what plugins registered, and a
sink that fails, hangs or is slow never fails or holds up the caller's stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from llm_client import GPT5Nano, OpenAIClient, UnknownBackendError
from llm_client.exceptions import ConfigurationError, InvalidRequestError
from llm_client.hookspecs import hookimpl
from llm_client.plugins import new_plugin_manager
from llm_client.sinks import BaseSink, MemorySink, Sink, SinkFeed, make_sink, wire_data
from llm_client.streaming import LLMEvent
from llm_client.testing import FakeOpenAI

MESSAGES = [{"role": "user", "content": "Tell me about lighthouses and the people who keep them."}]
#: Guards against a hang (a failure here), never a performance bound.
HANG = 30


def make_client(server: FakeOpenAI, **kw) -> OpenAIClient:
    kw.setdefault("rate_limit_backend", None)
    return OpenAIClient(GPT5Nano, base_url=server.base_url, api_key="sk-test-secret", **kw)


def delivery_tasks() -> list[asyncio.Task]:
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "") == "SinkFeed._deliver"
    ]


class FailingSink(BaseSink):
    def __init__(self) -> None:
        self.calls = 0

    async def send(self, events: Sequence[LLMEvent]) -> None:
        self.calls += 1
        raise RuntimeError("the push service is down")


class HangingSink(BaseSink):
    def __init__(self) -> None:
        self.started = 0

    async def send(self, events: Sequence[LLMEvent]) -> None:
        self.started += 1
        await asyncio.Event().wait()  # never returns


class SlowSink(MemorySink):
    """Takes a while per batch, so events pile up and go out together."""

    async def send(self, events: Sequence[LLMEvent]) -> None:
        await asyncio.sleep(0.02)
        await super().send(events)


async def test_stream_to_sink_delivers_every_event_in_order(server: FakeOpenAI) -> None:
    async with make_client(server) as client:
        plain = [e async for e in client.stream(MESSAGES)]
        async with MemorySink() as sink:
            result = await client.stream_to_sink(sink, MESSAGES)
        assert sink.closed
    assert result.ok and result.output
    assert [e.type for e in sink.events] == [e.type for e in plain]
    assert [e.data for e in sink.events if e.type != "done"] == [
        e.data for e in plain if e.type != "done"
    ]
    assert sink.text == result.output
    assert sink.events[-1].result == result
    stats = client.stats()["sinks"]
    assert stats["streams"] == 1
    assert stats["events"] == stats["delivered"] == len(plain)
    assert stats["failed"] == stats["dropped"] == 0


async def test_slow_sink_gets_coalesced_batches_and_everything(server: FakeOpenAI) -> None:
    async with make_client(server) as client:
        sink = SlowSink()
        result = await client.stream_to_sink(sink, MESSAGES)
    assert sink.text == result.output
    assert len(sink.batches) < len(sink.events)  # piled-up events went out together


async def test_failing_sink_never_fails_the_call_and_is_logged_once(
    server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FailingSink()
    async with make_client(server) as client:
        expected = await client.invoke(MESSAGES, cache_response=False)
        with caplog.at_level(logging.WARNING, logger="llm_client.sinks"):
            first = await client.stream_to_sink(sink, MESSAGES)
            second = await client.stream_to_sink(sink, MESSAGES)
    assert first.ok and second.ok
    assert first.output == second.output == expected.output  # the answer is untouched
    assert sink.calls >= 2
    warnings = [r for r in caplog.records if "FailingSink" in r.getMessage()]
    assert len(warnings) == 1
    assert "push service is down" in warnings[0].getMessage()
    stats = client.stats()["sinks"]
    assert stats["streams"] == 2
    assert stats["send_errors"] == sink.calls
    assert stats["delivered"] == 0
    assert stats["failed"] == stats["events"]


async def test_hanging_sink_is_cut_at_the_drain_timeout(server: FakeOpenAI) -> None:
    sink = HangingSink()
    async with make_client(server) as client:
        result = await asyncio.wait_for(
            client.stream_to_sink(
                sink, MESSAGES, sink_send_timeout=None, sink_drain_timeout=0.05
            ),
            HANG,
        )
        assert result.ok and result.output
        stats = client.stats()["sinks"]
    assert sink.started == 1
    assert stats["delivered"] == 0
    assert stats["dropped"] == stats["events"]  # the batch in flight and the rest
    assert not delivery_tasks()


async def test_send_timeout_counts_and_moves_on(server: FakeOpenAI) -> None:
    sink = HangingSink()
    async with make_client(server) as client:
        result = await asyncio.wait_for(
            client.stream_to_sink(sink, MESSAGES, sink_send_timeout=0.01, sink_drain_timeout=HANG),
            HANG,
        )
        stats = client.stats()["sinks"]
    assert result.ok
    assert stats["send_timeouts"] == sink.started >= 1
    assert stats["failed"] == stats["events"]


async def test_full_buffer_drops_new_events_but_keeps_the_last(server: FakeOpenAI) -> None:
    sink = HangingSink()
    async with make_client(server) as client:
        await client.stream_to_sink(
            sink, MESSAGES, sink_max_buffer=1, sink_send_timeout=None, sink_drain_timeout=0
        )
        stats = client.stats()["sinks"]
    assert stats["events"] > 3
    assert stats["dropped"] == stats["events"]


async def test_feed_keeps_done_when_full() -> None:
    sink = MemorySink()
    feed = SinkFeed(sink, max_buffer=2)
    for i in range(5):
        feed.put(LLMEvent("text_delta", {"text": str(i)}))
    feed.put(LLMEvent("done", {"status": 200}))
    await feed.finish()
    # the task only runs once this coroutine yields: 2 deltas fit, then done squeezes in
    assert [e.type for e in sink.events] == ["text_delta", "text_delta", "done"]
    assert feed.counters.dropped == 3 and feed.counters.delivered == 3


async def test_cancelled_caller_stops_delivery(server: FakeOpenAI) -> None:
    sink = HangingSink()
    async with make_client(server) as client:
        task = asyncio.ensure_future(
            client.stream_to_sink(sink, MESSAGES, sink_send_timeout=None, sink_drain_timeout=HANG)
        )
        for _ in range(1000):
            if sink.started:
                break
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not delivery_tasks()


def test_make_sink_by_name_and_unknown_names() -> None:
    pm = new_plugin_manager(autoload=False)
    sink = make_sink("memory", plugin_manager=pm)
    assert isinstance(sink, MemorySink)
    assert isinstance(sink, Sink)
    with pytest.raises(UnknownBackendError) as info:
        make_sink("pusher", plugin_manager=pm)
    message = str(info.value)
    assert "'memory'" in message and "llm-client-pusher" in message
    with pytest.raises(UnknownBackendError, match="installed: 'memory'"):
        make_sink("carrier-pigeon", plugin_manager=pm)


def test_sinks_registered_by_a_plugin_are_built_by_name(fake_openai: FakeOpenAI) -> None:
    class Plugin:
        @hookimpl
        def register_sinks(self, register):
            register("collect", lambda **options: MemorySink())
            register("broken", lambda **options: object())

    pm = new_plugin_manager(autoload=False)
    pm.register(Plugin())
    client = OpenAIClient(GPT5Nano, plugin_manager=pm, rate_limit_backend=None)
    assert isinstance(client.sink("collect"), MemorySink)
    with pytest.raises(ConfigurationError, match="no async send"):
        client.sink("broken")


def test_bad_feed_options_name_the_parameter() -> None:
    with pytest.raises(ConfigurationError, match="sink_max_buffer"):
        SinkFeed(MemorySink(), max_buffer=0)
    with pytest.raises(ConfigurationError, match="sink_send_timeout"):
        SinkFeed(MemorySink(), send_timeout=-1)
    with pytest.raises(ConfigurationError, match="sink_drain_timeout"):
        SinkFeed(MemorySink(), drain_timeout=float("nan"))
    with pytest.raises(ConfigurationError, match="send"):
        SinkFeed(object())


def test_done_wire_data_leaves_the_prompt_and_output_home() -> None:
    data = {"params": {"messages": MESSAGES}, "output": "hi", "status": 200, "usage": {}}
    assert wire_data(LLMEvent("done", data)) == {"status": 200, "usage": {}}
    assert wire_data(LLMEvent("text_delta", {"text": "x"})) == {"text": "x"}


async def test_bad_input_or_options_raise_before_anything_is_sent(server: FakeOpenAI) -> None:
    async with make_client(server) as client:
        with pytest.raises(InvalidRequestError):
            await client.stream_to_sink(MemorySink(), [{"role": "nobody", "content": "x"}])
        with pytest.raises(ConfigurationError, match="sink_max_buffer"):
            await client.stream_to_sink(MemorySink(), MESSAGES, sink_max_buffer=0)
        with pytest.raises(ConfigurationError, match="send"):
            await client.stream_to_sink(object(), MESSAGES)
        assert client.stats()["sinks"]["streams"] == 0
    assert server.count() == 0


def test_a_misspelt_sink_option_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigurationError, match="max_bufer"):
        make_sink("memory", max_bufer=3)  # the memory sink takes no options at all
    with pytest.raises(ConfigurationError, match="did you mean `stream`"):
        make_sink("redis", streem="events")  # llm-client-redis declares its sink's options
