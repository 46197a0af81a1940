"""The stream's event contract on both APIs, through the real SDK against the fake server:
tool-call deltas carry index, call id and (first) name; refusals and reasoning summaries have
their own events; event types the client does not know are skipped."""

from __future__ import annotations

import pytest
from aiohttp import web

from llm_client import GPT5Nano, OpenAIClient
from llm_client.request import Api
from llm_client.streaming import EVENT_FIELDS, LLMEvent
from llm_client.testing import FakeOpenAI, ToolScript

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Local time in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
]
MESSAGES = [{"role": "user", "content": "Weather and time in Paris?"}]


def make_client(base_url: str, api: Api = "chat") -> OpenAIClient:
    return OpenAIClient(
        GPT5Nano,
        base_url=base_url,
        api_key="sk-test",
        api=api,
        rate_limit_backend=None,
        cache_backend=None,
    )


async def events_of(client: OpenAIClient, **kw) -> list[LLMEvent]:
    try:
        return [e async for e in client.stream(MESSAGES, **kw)]
    finally:
        await client.close()


def check_contract(events: list[LLMEvent]) -> None:
    """Every event carries at least the documented fields."""
    for event in events:
        assert set(event.data) >= set(EVENT_FIELDS[event.type]), event


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_tool_call_deltas_carry_index_call_id_and_first_name(server, api):
    server.tool_script = ToolScript.of(
        [("get_weather", {"city": "Paris"}), ("get_time", {"city": "Paris"})], final="Done."
    )
    tools = TOOLS if api == "chat" else [{"type": "function", **t["function"]} for t in TOOLS]
    events = await events_of(make_client(server.base_url, api), tools=tools)
    check_contract(events)
    deltas = [e.data for e in events if e.type == "tool_call_delta"]
    result = events[-1].result
    assert events[-1].type == "done" and result is not None
    assert [tc["name"] for tc in result.tool_calls] == ["get_weather", "get_time"]
    for index, call in enumerate(result.tool_calls):
        mine = [d for d in deltas if d["index"] == index]
        assert len(mine) >= 2  # the arguments come in pieces
        assert call["id"].startswith("call_")
        assert all(d["id"] == call["id"] for d in mine)  # the id the result uses, every time
        assert mine[0]["name"] == call["name"]
        assert all(d["name"] is None for d in mine[1:])
        assert "".join(d["arguments"] for d in mine) == call["arguments"]
    # the follow-up works with the streamed id: feed the results back as a transcript
    assert {d["index"] for d in deltas} == {0, 1}


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_refusal_streams_as_its_own_event(server, api):
    server.refusal = "I'm sorry, I can't help with that."
    events = await events_of(make_client(server.base_url, api))
    check_contract(events)
    kinds = [e.type for e in events]
    assert "text_delta" not in kinds
    refusal = "".join(e.data["text"] for e in events if e.type == "refusal_delta")
    assert refusal == server.refusal
    assert kinds[-1] == "done"


async def test_reasoning_summary_streams_on_responses(server):
    events = await events_of(
        make_client(server.base_url, "responses"), reasoning={"summary": "auto"}
    )
    check_contract(events)
    kinds = [e.type for e in events]
    summary = "".join(e.data["text"] for e in events if e.type == "reasoning_delta")
    assert summary.startswith("**Planning the reply**")
    assert kinds.index("reasoning_delta") < kinds.index("text_delta")  # it comes first
    assert {e.data["index"] for e in events if e.type == "reasoning_delta"} == {0}
    text = "".join(e.data["text"] for e in events if e.type == "text_delta")
    assert text == events[-1].result.output


async def test_unknown_event_types_are_skipped():
    """A Responses stream with an event type the SDK and the client have never heard of:
    skipped, and the stream still completes. (The fake server only sends what OpenAI sends,
    so a raw aiohttp server plays a future OpenAI here.)"""
    async with FakeOpenAI() as fake:  # borrow a genuine stream from the fake server
        client = make_client(fake.base_url, "responses")
        try:
            reference = [e async for e in client.stream(MESSAGES)]
        finally:
            await client.close()
        raw = await _raw_stream(fake)
    lines = raw.split(b"\n\n")
    unknown = b'event: response.brand_new\ndata: {"type":"response.brand_new","x":1}'
    body = b"\n\n".join([*lines[:3], unknown, *lines[3:]])

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(body)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/responses", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        events = await events_of(make_client(f"http://127.0.0.1:{port}/v1", "responses"))
    finally:
        await runner.cleanup()
    assert [e.type for e in events] == [e.type for e in reference]
    assert events[-1].result.output == reference[-1].result.output


async def _raw_stream(fake: FakeOpenAI) -> bytes:
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.base_url}/responses",
            json={"model": "gpt-5-nano", "input": MESSAGES, "stream": True},
            headers={"Authorization": "Bearer sk-test"},
        ) as resp,
    ):
        return await resp.read()
