"""PusherSink end to end: a real stream through the real SDK against the fake OpenAI server,
published to the local Pusher server, which checks every signature, timestamp, body MD5 and
limit the way Pusher does."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from llm_client_pusher import PusherError, PusherSink
from llm_client_pusher.signing import signed_query
from llm_client_pusher.testing import PusherServer

from llm_client import GPT5Nano, OpenAIClient
from llm_client.exceptions import ConfigurationError
from llm_client.sinks import SinkFeed
from llm_client.streaming import LLMEvent
from llm_client.testing import FakeOpenAI

MESSAGES = [{"role": "user", "content": "Explain how a lighthouse lens gathers light."}]
ENV_NAMES = [
    "PUSHER_APP_ID",
    "PUSHER_AUTH_KEY",
    "PUSHER_AUTH_SECRET",
    "PUSHER_APP_CLUSTER",
    "PUSHER_AUTH_VERSION",
]


@pytest.fixture(autouse=True)
def no_pusher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as s:
        yield s


@pytest.fixture
async def pusher() -> AsyncIterator[PusherServer]:
    async with PusherServer() as s:
        yield s


def make_client(server: FakeOpenAI) -> OpenAIClient:
    return OpenAIClient(
        GPT5Nano, base_url=server.base_url, api_key="sk-test-secret", rate_limit_backend=None
    )


def make_sink(pusher: PusherServer, **kw) -> PusherSink:
    kw.setdefault("flush_interval", 0)
    kw.setdefault("backoff", 0.001)
    return PusherSink("chat-1", base_url=pusher.base_url, **pusher.credentials, **kw)


async def test_a_stream_reaches_the_channel_complete_and_in_order(
    openai: FakeOpenAI, pusher: PusherServer
) -> None:
    async with make_client(openai) as client, make_sink(pusher) as sink:
        result = await client.stream_to_sink(sink, MESSAGES)
    assert result.ok and result.output
    assert pusher.rejections == []
    events = pusher.channel_events("chat-1")
    names = [e.name for e in events]
    assert names[0] == "meta" and names[-2:] == ["usage", "done"]
    payloads = [e.json() for e in events]
    assert [p["seq"] for p in payloads] == list(range(len(events)))
    text = "".join(p["text"] for p in payloads if "text" in p)
    assert text == result.output
    done = payloads[-1]
    assert done["status"] == 200 and done["usage"] == result.usage.to_dict()
    assert "params" not in done and "output" not in done  # the prompt stays home
    assert all(status == 200 for _, status in pusher.requests)
    assert client.stats()["sinks"]["delivered"] == client.stats()["sinks"]["events"]


async def test_built_by_name_from_the_seed_environment(
    openai: FakeOpenAI, pusher: PusherServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSHER_APP_ID", pusher.app_id)
    monkeypatch.setenv("PUSHER_AUTH_KEY", pusher.key)
    monkeypatch.setenv("PUSHER_AUTH_SECRET", pusher.secret)
    monkeypatch.setenv("PUSHER_AUTH_VERSION", "1.0")
    monkeypatch.setenv("PUSHER_APP_CLUSTER", "eu")
    async with make_client(openai) as client:
        default = client.sink("pusher", channel="room")
        assert default.base_url == "https://api-eu.pusher.com"
        async with client.sink("pusher", channel="room", base_url=pusher.base_url) as sink:
            result = await client.stream_to_sink(sink, MESSAGES)
    assert "".join(
        e.json()["text"] for e in pusher.channel_events("room") if e.name == "text_delta"
    ) == result.output


@pytest.mark.parametrize(
    ("missing", "argument"),
    [
        ("PUSHER_APP_ID", "app_id"),
        ("PUSHER_AUTH_KEY", "key"),
        ("PUSHER_AUTH_SECRET", "secret"),
        ("PUSHER_APP_CLUSTER", "cluster"),
    ],
)
def test_a_missing_credential_is_named(
    monkeypatch: pytest.MonkeyPatch, missing: str, argument: str
) -> None:
    values = {
        "PUSHER_APP_ID": "1",
        "PUSHER_AUTH_KEY": "k",
        "PUSHER_AUTH_SECRET": "s",
        "PUSHER_APP_CLUSTER": "mt1",
    }
    for name, value in values.items():
        if name != missing:
            monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=f"{argument}=.*{missing}"):
        PusherSink("chat")


def test_bad_options_are_refused() -> None:
    creds = {"app_id": "1", "key": "k", "secret": "s", "cluster": "mt1"}
    with pytest.raises(ConfigurationError, match="only contain"):
        PusherSink("no spaces", **creds)
    with pytest.raises(ConfigurationError, match="auth_version"):
        PusherSink("chat", auth_version="2.0", **creds)
    with pytest.raises(ConfigurationError, match="max_event_bytes"):
        PusherSink("chat", max_event_bytes=20_000, **creds)
    with pytest.raises(ConfigurationError, match="reserved"):
        PusherSink("chat", event_prefix="pusher:", **creds)
    assert "s'" not in repr(PusherSink("chat", **creds))  # the secret never shows


async def test_long_deltas_are_split_in_order_under_10kb(pusher: PusherServer) -> None:
    text = ('quote " backslash \\ é € 😀 \n' * 4000) + "end"
    async with make_sink(pusher) as sink:
        await sink.send([LLMEvent("text_delta", {"text": text})])
        await sink.send(
            [LLMEvent("tool_call_delta", {"index": 0, "id": "call_1", "arguments": "x" * 25_000})]
        )
    assert pusher.rejections == []
    events = pusher.channel_events("chat-1")
    assert all(len(e.data.encode()) <= 10_000 for e in events)
    deltas = [e.json() for e in events if e.name == "text_delta"]
    assert len(deltas) > 10  # more than one batch request was needed
    assert "".join(d["text"] for d in deltas) == text
    calls = [e.json() for e in events if e.name == "tool_call_delta"]
    assert len(calls) == 3 and "".join(c["arguments"] for c in calls) == "x" * 25_000
    assert all(c["id"] == "call_1" for c in calls)
    seqs = [e.json()["seq"] for e in events]
    assert seqs == sorted(seqs)
    assert all(path.endswith("batch_events") for path, _ in pusher.requests[:-1])


async def test_small_deltas_are_merged(pusher: PusherServer) -> None:
    async with make_sink(pusher) as sink:
        feed = SinkFeed(sink)
        feed.put(LLMEvent("meta", {"model": "m"}))
        for i in range(50):
            feed.put(LLMEvent("text_delta", {"text": f"{i} "}))
        feed.put(LLMEvent("done", {"status": 200, "params": {}, "output": "..."}))
        await feed.finish()
    assert [e.name for e in pusher.events] == ["meta", "text_delta", "done"]
    assert pusher.events[1].json()["text"] == "".join(f"{i} " for i in range(50))
    assert len(pusher.requests) == 1


async def test_requests_keep_the_flush_interval(pusher: PusherServer) -> None:
    async with make_sink(pusher, flush_interval=0.05) as sink:
        for i in range(4):
            await sink.send([LLMEvent("text_delta", {"text": str(i)})])
    gaps = [b - a for a, b in zip(pusher.arrivals, pusher.arrivals[1:], strict=False)]
    assert len(gaps) == 3 and min(gaps) >= 0.045  # a lower bound: load only widens it


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_5xx_and_429_are_retried(pusher: PusherServer, status: int) -> None:
    pusher.fail_next(status, times=2)
    async with make_sink(pusher) as sink:
        await sink.send([LLMEvent("text_delta", {"text": "hello"})])
    assert sink.retries == 2
    assert [s for _, s in pusher.requests] == [status, status, 200]
    assert pusher.events[0].json()["text"] == "hello"


async def test_4xx_is_not_retried_and_retries_end(pusher: PusherServer) -> None:
    pusher.fail_next(403)
    async with make_sink(pusher) as sink:
        with pytest.raises(PusherError, match="403") as info:
            await sink.send([LLMEvent("text_delta", {"text": "x"})])
        assert info.value.status == 403
        pusher.fail_next(502, times=4)
        with pytest.raises(PusherError, match="after 4 attempts"):
            await sink.send([LLMEvent("text_delta", {"text": "x"})])
    assert len(pusher.requests) == 5


async def test_a_rejecting_pusher_never_touches_the_call(
    openai: FakeOpenAI, pusher: PusherServer, caplog: pytest.LogCaptureFixture
) -> None:
    sink = PusherSink(
        "chat-1", base_url=pusher.base_url, app_id=pusher.app_id, key=pusher.key,
        secret="wrong-secret", flush_interval=0,
    )
    async with make_client(openai) as client, sink:
        expected = await client.invoke(MESSAGES, cache_response=False)
        with caplog.at_level(logging.WARNING, logger="llm_client.sinks"):
            result = await client.stream_to_sink(sink, MESSAGES)
        stats = client.stats()["sinks"]
    assert result.ok and result.output == expected.output
    assert pusher.events == [] and {r.status for r in pusher.rejections} == {401}
    assert "Invalid signature" in pusher.rejections[0].reason
    assert stats["failed"] == stats["events"] and stats["send_errors"] >= 1
    logged = [r.getMessage() for r in caplog.records if "PusherSink" in r.getMessage()]
    assert len(logged) == 1 and "401" in logged[0]
    assert "wrong-secret" not in caplog.text


async def _post(pusher: PusherServer, path: str, body: bytes, **sign_kw) -> tuple[int, str]:
    kw = {"key": pusher.key, "secret": pusher.secret, "method": "POST", "path": path}
    kw.update(sign_kw)
    query = signed_query(body=body, **kw)
    async with aiohttp.ClientSession() as session, session.post(
        pusher.base_url + path, params=query, data=body
    ) as response:
        return response.status, await response.text()


async def test_the_verifying_server_rejects_what_pusher_rejects(pusher: PusherServer) -> None:
    path = f"/apps/{pusher.app_id}/events"
    good = json.dumps({"name": "e", "channels": ["c"], "data": "{}"}).encode()
    assert (await _post(pusher, path, good))[0] == 200
    assert (await _post(pusher, path, good, secret="nope"))[0] == 401
    assert (await _post(pusher, path, good, key="other"))[0] == 401
    old = int(time.time()) - 601
    status, reason = await _post(pusher, path, good, timestamp=old)
    assert status == 401 and "Timestamp expired" in reason
    assert (await _post(pusher, path, good, timestamp=int(time.time()) - 500))[0] == 200
    # a body changed after signing: its MD5 no longer matches
    query = signed_query(key=pusher.key, secret=pusher.secret, method="POST", path=path, body=good)
    async with aiohttp.ClientSession() as session, session.post(
        pusher.base_url + path, params=query, data=good.replace(b"{}", b"[]")
    ) as response:
        assert response.status == 401 and "body_md5" in await response.text()
    assert (await _post(pusher, "/apps/999/events", good))[0] == 404
    big = json.dumps({"name": "e", "channels": ["c"], "data": "é" * 5121}).encode()
    assert (await _post(pusher, path, big))[0] == 413
    fits = json.dumps({"name": "e", "channels": ["c"], "data": "é" * 5120}).encode()
    assert (await _post(pusher, path, fits))[0] == 200
    batch_path = f"/apps/{pusher.app_id}/batch_events"
    eleven = {"batch": [{"channel": "c", "name": "e", "data": "x"}] * 11}
    status, reason = await _post(pusher, batch_path, json.dumps(eleven).encode())
    assert status == 400 and "Batch too large" in reason
    ten = {"batch": [{"channel": "c", "name": "e", "data": "x"}] * 10}
    assert (await _post(pusher, batch_path, json.dumps(ten).encode()))[0] == 200
    bad_channel = json.dumps({"name": "e", "channels": ["a b"], "data": "x"}).encode()
    assert (await _post(pusher, path, bad_channel))[0] == 400
    assert (await _post(pusher, path, b"\xff\xfe"))[0] == 400
    assert len(pusher.events) == 1 + 1 + 1 + 10


async def test_feed_isolates_a_slow_pusher(openai: FakeOpenAI, pusher: PusherServer) -> None:
    """A Pusher that answers slowly delays neither the stream nor its result."""
    sink = make_sink(pusher, flush_interval=0.2)
    async with make_client(openai) as client, sink:
        result = await asyncio.wait_for(client.stream_to_sink(sink, MESSAGES), 30)
    assert result.ok
    text = "".join(e.json()["text"] for e in pusher.events if e.name == "text_delta")
    assert text == result.output


def test_the_seed_import_works() -> None:
    from llm_client import PusherSink as SeedSpelling

    assert SeedSpelling is PusherSink
