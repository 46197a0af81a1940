"""Server-Sent Events end to end: frames as the WHATWG standard says (checked with httpx-sse, a
maintained SSE parser), heartbeats, the web responses for aiohttp and Starlette, a disconnect
closing the upstream call, and resuming with Last-Event-ID from the memory buffer, the Redis
buffer and the cache, with one model request."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import aiohttp
import httpx
import pytest
from aiohttp import web
from httpx_sse import aconnect_sse

from llm_client import GPT5Nano, OpenAIClient
from llm_client.sse import SSE_HEADERS, aiohttp_response, parse_last_event_id, starlette_response
from llm_client.streaming import MemoryEventBuffer, sse_comment, sse_frame
from llm_client.testing import FakeOpenAI

PROMPT = "Tell me a long story about a lighthouse keeper and the sea."


# --- framing ----------------------------------------------------------------------------------


def test_frame_splits_data_into_one_line_per_line():
    frame = sse_frame("a\nb\r\nc\rd", event="text_delta", id="7.3", retry=1500)
    assert frame == (
        "event: text_delta\nid: 7.3\nretry: 1500\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
    )
    assert sse_frame("") == "data: \n\n"
    assert sse_comment() == ":\n\n"
    assert sse_comment("hi\nthere") == ": hi\n: there\n\n"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"id": "1\x002"}, "NUL"),
        ({"id": "1\n2"}, "one line"),
        ({"event": "a\rb"}, "one line"),
        ({"retry": -1}, "retry"),
        ({"retry": 1.5}, "retry"),
        ({"retry": True}, "retry"),
    ],
)
def test_frame_refuses_what_a_browser_would_misread(kwargs, words):
    with pytest.raises(ValueError, match=words):
        sse_frame("x", **kwargs)


def test_last_event_id_parsing():
    assert parse_last_event_id("12.345") == (12, 345)
    assert parse_last_event_id("12") == (12, 0)
    assert parse_last_event_id(None) == (0, 0)
    assert parse_last_event_id("garbage") == (0, 0)


# --- a web app around a client ----------------------------------------------------------------


class App:
    """An aiohttp app that streams ``client.stream_sse`` at ``GET /sse?prompt=&id=``."""

    def __init__(self, client: OpenAIClient, **sse_kw) -> None:
        self.client = client
        self.sse_kw = sse_kw
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        frames = self.client.stream_sse(
            [{"role": "user", "content": request.query["prompt"]}],
            identifier=request.query.get("id") or None,
            last_event_id=request.headers.get("Last-Event-ID"),
            **self.sse_kw,
        )
        return await aiohttp_response(request, frames)

    async def __aenter__(self) -> App:
        app = web.Application()
        app.router.add_get("/sse", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/sse"
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def make_client(server: FakeOpenAI, **kw) -> OpenAIClient:
    kw.setdefault("rate_limit_backend", None)
    kw.setdefault("cache_backend", None)
    return OpenAIClient(GPT5Nano, base_url=server.base_url, api_key="sk-test", **kw)


async def read_sse(url: str, *, stop_after: int | None = None, last_event_id: str | None = None):
    """The events httpx-sse parses from ``url`` (stopping early after ``stop_after``)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    seen = []
    async with (
        httpx.AsyncClient(timeout=30) as http,
        aconnect_sse(http, "GET", url, headers=headers) as source,
    ):
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for sse in source.aiter_sse():
            seen.append(sse)
            if stop_after is not None and len(seen) >= stop_after:
                break
    return seen


def text_of(events) -> str:
    return "".join(json.loads(e.data)["text"] for e in events if e.event == "text_delta")


async def test_frames_parse_back_to_the_stream(server):
    async with App(make_client(server)) as app:
        events = await read_sse(app.url + "?prompt=" + PROMPT)
    kinds = [e.event for e in events]
    assert kinds[0] == "meta" and kinds[-2:] == ["usage", "done"]
    assert text_of(events) == server.expected_text(PROMPT)
    seqs = [parse_last_event_id(e.id)[0] for e in events]
    assert seqs == list(range(1, len(events) + 1))  # increasing ids
    done = json.loads(events[-1].data)
    assert done["output"] == server.expected_text(PROMPT)
    assert "params" not in done  # the request (system prompt, tools) stays on the server


async def test_multiline_text_survives_the_parser(server):
    server.tool_script = None
    client = make_client(server)
    # the fake model echoes part of the prompt; a prompt with line breaks gives data lines
    async with App(client) as app:
        events = await read_sse(app.url + "?prompt=" + "one%0Atwo%0D%0Athree")
    assert text_of(events) == server.expected_text("one\ntwo\r\nthree")


async def test_headers_retry_and_heartbeat(server):
    server.stall_next(after_chunks=2)  # the model goes silent after two chunks
    client = make_client(server)
    async with (
        App(client, heartbeat=0.05, retry=2500, timeout=1.0) as app,
        aiohttp.ClientSession() as http,
        http.get(app.url + "?prompt=hi") as resp,
    ):
        for name, value in SSE_HEADERS.items():
            assert resp.headers[name] == value
        raw = (await resp.read()).decode()
    assert raw.startswith("retry: 2500\n\n")
    assert "\n:\n\n" in raw or raw.count(":\n\n") >= 2  # comment heartbeats while silent
    assert "event: error" in raw  # the deadline ended the silent stream


async def test_disconnect_closes_the_upstream_call(server):
    server.drip_next(interval=0.2)
    client = make_client(server, rate_limit_backend="local")
    async with App(client) as app:
        events = await read_sse(app.url + "?prompt=" + PROMPT, stop_after=3)
        assert len(events) == 3
        (record,) = server.answers
        for _ in range(400):
            if record.closed is not None:
                break
            await asyncio.sleep(0.01)
        for _ in range(400):
            if client.stats()["limiter"]["in_flight"] == 0:
                break
            await asyncio.sleep(0.01)
    assert record.outcome == "client_closed"
    assert record.events_sent < record.events_total
    # the limiter settled the abandoned call: no slot held, the estimate of what it used stays
    assert client.stats()["limiter"]["in_flight"] == 0
    assert client.stats()["totals"]["requests"] == 1


# --- resume -----------------------------------------------------------------------------------


async def _resume_once(server: FakeOpenAI, client: OpenAIClient, **sse_kw) -> None:
    server.drip_next(interval=0.05)
    ident = uuid.uuid4().hex
    async with App(client, **sse_kw) as app:
        url = f"{app.url}?prompt={PROMPT}&id={ident}"
        first = await read_sse(url, stop_after=4)
        rest = await read_sse(url, last_event_id=first[-1].id)
    assert rest[0].id != first[0].id
    assert [e.event for e in rest][-1] == "done"
    assert text_of(first) + text_of(rest) == server.expected_text(PROMPT)
    assert server.count("chat") == 1  # the reconnect made no second model call


async def test_resume_from_the_memory_buffer_during_the_stream(server):
    await _resume_once(server, make_client(server), buffer=MemoryEventBuffer())


async def test_resume_after_the_stream_finished(server):
    ident = uuid.uuid4().hex
    buffer = MemoryEventBuffer()
    async with App(make_client(server), buffer=buffer) as app:
        url = f"{app.url}?prompt={PROMPT}&id={ident}"
        whole = await read_sse(url)
        again = await read_sse(url, last_event_id=whole[2].id)
        fresh = await read_sse(url)  # a new page with the same id: the whole stream again
    assert text_of(whole[:3]) + text_of(again) == text_of(whole)
    assert [e.data for e in fresh] == [e.data for e in whole]
    assert server.count("chat") == 1


async def test_resume_from_the_cache_after_the_buffer_expired(server):
    now = [0.0]
    buffer = MemoryEventBuffer(ttl=10, clock=lambda: now[0])
    ident = uuid.uuid4().hex
    client = make_client(server, cache_backend="memory")
    async with App(client, buffer=buffer) as app:
        url = f"{app.url}?prompt={PROMPT}&id={ident}"
        whole = await read_sse(url)
        now[0] += 60  # the buffer forgot the stream; the cache still has the answer
        rest = await read_sse(url, last_event_id=whole[3].id)
    assert text_of(whole[:4]) + text_of(rest) == server.expected_text(PROMPT)
    assert rest[-1].event == "done" and json.loads(rest[-1].data)["cached"] is True
    assert server.count("chat") == 1


async def test_expired_and_uncached_stream_says_so(server):
    now = [0.0]
    buffer = MemoryEventBuffer(ttl=10, clock=lambda: now[0])
    ident = uuid.uuid4().hex
    async with App(make_client(server), buffer=buffer) as app:
        url = f"{app.url}?prompt={PROMPT}&id={ident}"
        whole = await read_sse(url)
        now[0] += 60
        rest = await read_sse(url, last_event_id=whole[3].id)
    assert [e.event for e in rest] == ["error"]
    assert json.loads(rest[0].data)["status"] == 410


@pytest.mark.redis
async def test_resume_from_the_redis_buffer(server):
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set")
    client = make_client(server)
    await _resume_once(server, client, buffer="redis")
    from llm_client import sse

    buffer = sse._named_buffers.pop("redis")
    await buffer.aclose()


# --- Starlette --------------------------------------------------------------------------------


async def test_starlette_response(server):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    client = make_client(server)

    async def endpoint(request: Request):
        return starlette_response(client.stream_sse([{"role": "user", "content": PROMPT}]))

    app = Starlette(routes=[Route("/sse", endpoint)])
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http,
        aconnect_sse(http, "GET", "/sse") as source,
    ):
        assert source.response.headers["cache-control"] == "no-cache"
        assert source.response.headers["x-accel-buffering"] == "no"
        events = [e async for e in source.aiter_sse()]
    assert text_of(events) == server.expected_text(PROMPT)


# --- the memory buffer ------------------------------------------------------------------------


async def test_memory_buffer_bounds_and_expiry():
    now = [0.0]
    buf = MemoryEventBuffer(ttl=10, max_events=3, max_streams=2, clock=lambda: now[0])
    assert await buf.claim("a") and not await buf.claim("a")
    await buf.append("a", [ev(i) for i in range(1, 6)])
    events, finished = await buf.read("a", 0, 0.01)
    assert [e.seq for e in events] == [3, 4, 5] and not finished  # only the last max_events
    assert await buf.claim("b") and await buf.claim("c")  # "a", the oldest, made room
    assert await buf.read("a", 0, 0.01) is None
    await buf.finish("b")
    assert await buf.read("b", 0, 0.01) == ([], True)
    now[0] += 11
    assert await buf.read("b", 0, 0.01) is None  # expired
    for bad in ({"ttl": 0}, {"max_events": -1}, {"max_streams": True}):
        with pytest.raises(ValueError):
            MemoryEventBuffer(**bad)


async def test_memory_buffer_wakes_a_waiting_reader():
    buf = MemoryEventBuffer()
    await buf.claim("k")
    reader = asyncio.create_task(buf.read("k", 0, 10))
    await asyncio.sleep(0.01)
    await buf.append("k", [ev(1)])
    assert await asyncio.wait_for(reader, 5) == ([ev(1)], False)


async def test_bad_sse_arguments_raise_before_anything_is_sent(server):
    client = make_client(server)
    with pytest.raises(ValueError, match="heartbeat"):
        client.stream_sse("hi", heartbeat=0)
    with pytest.raises(ValueError, match="retry"):
        client.stream_sse("hi", retry=-5)
    with pytest.raises(TypeError, match="buffer"):
        client.stream_sse("hi", identifier="x", buffer=object())
    assert server.count() == 0


def ev(seq: int):
    from llm_client.streaming import BufferedEvent

    return BufferedEvent(seq, seq, "text_delta", "{}")


async def test_resumable_stream_closes_upstream_when_every_reader_left(server):
    """With ``linger``, a resumable stream nobody reads any more closes its call (the limiter
    settles it as an abandoned stream); a late reconnect gets what came and a 499 error."""
    server.drip_next(interval=0.2)
    client = make_client(server, rate_limit_backend="local")
    ident = uuid.uuid4().hex
    async with App(client, buffer=MemoryEventBuffer(), linger=0.2) as app:
        url = f"{app.url}?prompt={PROMPT}&id={ident}"
        first = await read_sse(url, stop_after=2)
        (record,) = server.answers
        for _ in range(500):
            if record.closed is not None:
                break
            await asyncio.sleep(0.01)
        assert record.outcome == "client_closed"
        rest = await read_sse(url, last_event_id=first[-1].id)
    assert rest[-1].event == "error" and json.loads(rest[-1].data)["status"] == 499
    assert server.count("chat") == 1
    for _ in range(200):
        if client.stats()["limiter"]["in_flight"] == 0:
            break
        await asyncio.sleep(0.01)
    assert client.stats()["limiter"]["in_flight"] == 0


async def test_bad_linger_is_refused(server):
    client = make_client(server)
    for bad in (0, -1, "soon", True, float("nan")):
        with pytest.raises(ValueError, match="linger"):
            client.stream_sse("hi", identifier="x", linger=bad)
