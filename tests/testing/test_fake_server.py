"""The fake OpenAI server, exercised end to end through the real ``openai`` SDK."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from pydantic import BaseModel

from llm_client.testing import (
    FakeOpenAI,
    Fault,
    count_tokens,
    embed_text,
    expected_text,
    format_duration,
    prompt_tokens,
)

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "verbose": {"type": "boolean"},
            },
            "required": ["city", "unit", "days"],
        },
    },
}
FLAT_WEATHER_TOOL: dict[str, Any] = {"type": "function", **WEATHER_TOOL["function"]}
# One TLS context for every client: building one per client costs ~30 ms (the server is plain
# HTTP, so it is never used).
SSL_CONTEXT = ssl.create_default_context()
HELLO = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello there, how are you doing on this fine day?"},
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    async with make_client(fake.base_url, "sk-test") as sdk:
        yield sdk


def make_client(base_url: str, api_key: str, **options: Any) -> AsyncOpenAI:
    options.setdefault("http_client", openai.DefaultAsyncHttpxClient(verify=SSL_CONTEXT))
    return AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, **options)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


# -- chat completions ---------------------------------------------------------------------------


async def test_chat_plain_answer_usage_and_headers(client: AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=HELLO
    )
    completion = raw.parse()
    text = "Fake answer to: Hello there, how are you doing on this fine day?"
    assert expected_text(HELLO) == text
    choice = completion.choices[0]
    assert choice.message.content == text
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    usage = completion.usage
    assert usage is not None
    # system: 4 tokens + 3, user: 12 tokens + 3, reply priming: 3
    assert usage.prompt_tokens == prompt_tokens(HELLO) == 25
    assert usage.completion_tokens == count_tokens(text) == 16
    assert usage.total_tokens == 41
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0
    headers = raw.headers
    assert headers["x-ratelimit-limit-requests"] == "1000000"
    assert headers["x-ratelimit-remaining-tokens"] == "9999999000"
    assert headers["x-ratelimit-reset-requests"] == "6ms"
    assert headers["x-request-id"].startswith("req_")
    assert raw.request_id == headers["x-request-id"]


async def test_chat_answer_is_deterministic_and_truncated(client: AsyncOpenAI) -> None:
    long_text = "word " * 40
    messages: list[Any] = [
        {"role": "user", "content": [{"type": "text", "text": long_text}]},
    ]
    first = await client.chat.completions.create(model="x-unknown-model", messages=messages)
    second = await client.chat.completions.create(model="x-unknown-model", messages=messages)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content == "Fake answer to: " + ("word " * 16).strip()[:80]
    assert first.id != second.id


async def test_chat_usage_knobs(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.output_tokens = 50
    fake.reasoning_tokens = 7
    fake.cached_tokens = 10
    completion = await client.chat.completions.create(model="o4-mini", messages=HELLO)
    usage = completion.usage
    assert usage is not None
    assert usage.completion_tokens == 57
    assert usage.total_tokens == usage.prompt_tokens + 57
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 10
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 7


async def test_chat_max_tokens_and_stop(client: AsyncOpenAI) -> None:
    cut = await client.chat.completions.create(model="m", messages=HELLO, max_tokens=5)
    assert cut.choices[0].finish_reason == "length"
    assert cut.choices[0].message.content == "Fake answer to: Hello"
    assert cut.usage is not None and cut.usage.completion_tokens == 5
    stopped = await client.chat.completions.create(model="m", messages=HELLO, stop=["how"])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == "Fake answer to: Hello there, "


async def test_chat_stream_with_usage(client: AsyncOpenAI) -> None:
    plain = await client.chat.completions.create(model="gpt-4o", messages=HELLO)
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]  # iteration ends at [DONE]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) >= 3
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finish = chunks[-2]
    assert finish.choices[0].finish_reason == "stop"
    assert [c.choices[0].finish_reason for c in chunks[:-2]] == [None] * (len(chunks) - 2)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage == plain.usage
    assert all(c.usage is None for c in chunks[:-1])


async def test_chat_stream_without_usage(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


async def test_chat_tool_call_when_named_in_user_message(client: AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Please use get_weather for Paris"}]
    completion = await client.chat.completions.create(
        model="gpt-4o", messages=messages, tools=[WEATHER_TOOL]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function"
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {
        "city": "fake_city",
        "unit": "celsius",
        "days": 1,
    }
    # the same request gives the same call
    again = await client.chat.completions.create(
        model="gpt-4o", messages=messages, tools=[WEATHER_TOOL]
    )
    assert again.choices[0].message.tool_calls == choice.message.tool_calls

    # the tool result goes back: the model answers in text, quoting it
    follow_up: list[Any] = [
        *messages,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
    ]
    final = await client.chat.completions.create(
        model="gpt-4o", messages=follow_up, tools=[WEATHER_TOOL]
    )
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "Fake answer using tool result: Sunny, 21 C"
    assert expected_text(follow_up) == final.choices[0].message.content


async def test_chat_tool_choice(client: AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "no tool is mentioned here"}]
    auto = await client.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL])
    assert auto.choices[0].message.tool_calls is None
    required = await client.chat.completions.create(
        model="m", messages=messages, tools=[WEATHER_TOOL], tool_choice="required"
    )
    assert required.choices[0].finish_reason == "tool_calls"
    named = await client.chat.completions.create(
        model="m",
        messages=messages,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert named.choices[0].message.tool_calls is not None
    assert named.choices[0].message.tool_calls[0].function.name == "get_weather"
    none = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "get_weather"}],
        tools=[WEATHER_TOOL],
        tool_choice="none",
    )
    assert none.choices[0].message.tool_calls is None


async def test_chat_tool_call_stream(client: AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "get_weather in Oslo"}]
    plain = await client.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL])
    assert plain.choices[0].message.tool_calls is not None
    expected_call = plain.choices[0].message.tool_calls[0]
    stream = await client.chat.completions.create(
        model="m", messages=messages, tools=[WEATHER_TOOL], stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(deltas) >= 3  # header + arguments split across chunks
    assert deltas[0].index == 0
    assert deltas[0].id == expected_call.id
    assert deltas[0].function is not None and deltas[0].function.name == "get_weather"
    assert all(d.id is None for d in deltas[1:])
    arguments = "".join((d.function.arguments or "") for d in deltas if d.function)
    assert arguments == expected_call.function.arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


class Weather(BaseModel):
    city: str
    temperature: float
    tags: list[str]


async def test_chat_structured_output_parses(client: AsyncOpenAI) -> None:
    parsed = await client.chat.completions.parse(
        model="gpt-4o", messages=HELLO, response_format=Weather
    )
    weather = parsed.choices[0].message.parsed
    assert weather == Weather(city="fake_city", temperature=1.0, tags=["fake_tags"])


# -- Responses API -----------------------------------------------------------------------------


async def test_responses_plain(client: AsyncOpenAI) -> None:
    response = await client.responses.create(
        model="gpt-4.1", input="Tell me a joke about cats", instructions="Be brief."
    )
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "Fake answer to: Tell me a joke about cats"
    (item,) = response.output
    assert item.type == "message"
    assert item.role == "assistant"
    assert item.status == "completed"
    assert item.content[0].type == "output_text"
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens == prompt_tokens(
        "Tell me a joke about cats", instructions="Be brief."
    )
    assert usage.output_tokens == count_tokens(response.output_text)
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0


async def test_responses_list_input(client: AsyncOpenAI) -> None:
    items: list[Any] = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "input_text", "text": "second question"}]},
    ]
    response = await client.responses.create(model="gpt-4.1", input=items)
    assert response.output_text == "Fake answer to: second question" == expected_text(items)


async def test_responses_stream(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.reasoning_tokens = 3
    plain = await client.responses.create(model="gpt-4.1", input="Stream me a short story please")
    stream = await client.responses.create(
        model="gpt-4.1", input="Stream me a short story please", stream=True
    )
    events = [event async for event in stream]
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) >= 3
    text = "".join(e.delta for e in deltas)
    assert text == plain.output_text
    done = events[-1]
    assert done.type == "response.completed"
    assert done.response.output_text == text
    assert done.response.usage == plain.usage
    assert done.response.usage is not None
    assert done.response.usage.output_tokens_details.reasoning_tokens == 3
    created = events[0]
    assert created.type == "response.created"
    assert created.response.status == "in_progress"
    assert created.response.id == done.response.id


async def test_responses_function_call(client: AsyncOpenAI) -> None:
    response = await client.responses.create(
        model="gpt-4.1", input="call get_weather for Rome", tools=[FLAT_WEATHER_TOOL]
    )
    (item,) = response.output
    assert item.type == "function_call"
    assert item.name == "get_weather"
    assert item.call_id.startswith("call_")
    assert json.loads(item.arguments)["unit"] == "celsius"
    follow_up: list[Any] = [
        {"role": "user", "content": "call get_weather for Rome"},
        item.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": item.call_id, "output": "Rainy"},
    ]
    final = await client.responses.create(
        model="gpt-4.1", input=follow_up, tools=[FLAT_WEATHER_TOOL]
    )
    assert final.output_text == "Fake answer using tool result: Rainy"


async def test_responses_function_call_stream(client: AsyncOpenAI) -> None:
    stream = await client.responses.create(
        model="gpt-4.1",
        input="anything",
        tools=[FLAT_WEATHER_TOOL],
        tool_choice="required",
        stream=True,
    )
    events = [event async for event in stream]
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.type == "function_call"
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert len(deltas) >= 2
    assert "".join(deltas) == done.arguments
    completed = events[-1]
    assert completed.type == "response.completed"
    item = completed.response.output[0]
    assert item.type == "function_call"
    assert item.arguments == done.arguments


async def test_responses_structured_output_parses(client: AsyncOpenAI) -> None:
    parsed = await client.responses.parse(model="gpt-4.1", input="weather?", text_format=Weather)
    assert parsed.output_parsed == Weather(city="fake_city", temperature=1.0, tags=["fake_tags"])


async def test_responses_max_output_tokens_is_incomplete(client: AsyncOpenAI) -> None:
    response = await client.responses.create(
        model="gpt-4.1", input="Tell me everything", max_output_tokens=4
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "Fake answer to:"


# -- embeddings --------------------------------------------------------------------------------


async def test_embeddings_float_and_sdk_default_base64(client: AsyncOpenAI) -> None:
    texts = ["The quick brown fox", "jumps over the lazy dog"]
    floats = await client.embeddings.create(
        model="text-embedding-3-small", input=texts, encoding_format="float"
    )
    assert [d.index for d in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == 1536
    assert floats.data[0].embedding == embed_text(texts[0])
    assert math.isclose(sum(v * v for v in floats.data[0].embedding), 1.0, rel_tol=1e-5)
    assert floats.usage.prompt_tokens == 9 == floats.usage.total_tokens
    # without encoding_format the SDK asks for base64 and decodes it itself
    default = await client.embeddings.create(model="text-embedding-3-small", input=texts)
    assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]


async def test_embeddings_raw_base64_and_dimensions(client: AsyncOpenAI) -> None:
    raw = await client.embeddings.with_raw_response.create(
        model="text-embedding-3-large", input="hello world", encoding_format="base64"
    )
    body = json.loads(raw.text)
    encoded = body["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = list(struct.unpack("<3072f", base64.b64decode(encoded)))
    assert decoded == embed_text("hello world", 3072)
    small = await client.embeddings.create(
        model="text-embedding-3-large", input="hello world", dimensions=256
    )
    assert len(small.data[0].embedding) == 256
    tokens = await client.embeddings.create(model="any-embedder", input=[[1, 2, 3], [4, 5]])
    assert len(tokens.data) == 2
    assert tokens.usage.prompt_tokens == 5


async def test_embeddings_preserve_similarity(client: AsyncOpenAI) -> None:
    texts = [
        "How do I reset my account password?",
        "How can I reset my account password",
        "Bananas grow in tropical climates near the equator",
    ]
    result = await client.embeddings.create(model="text-embedding-3-small", input=texts)
    a, b, c = (d.embedding for d in result.data)
    assert cosine(a, b) > 0.8
    assert abs(cosine(a, c)) < 0.3
    assert abs(cosine(b, c)) < 0.3


# -- faults as the SDK sees them -----------------------------------------------------------------


async def test_fault_429_rate_limit(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.rate_limit_next(retry_after=2, retry_after_ms=1500)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="m", messages=HELLO)
    error = info.value
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "2"
    assert error.response.headers["retry-after-ms"] == "1500"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.response.headers["x-ratelimit-reset-requests"] == "2s"
    assert isinstance(error.body, dict)
    assert error.body["code"] == "rate_limit_exceeded"
    assert error.body["type"] == "requests"
    # consumed: the next call succeeds
    await client.chat.completions.create(model="m", messages=HELLO)


async def test_fault_500_then_ok_in_order(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.fail_next(500, times=2)
    fake.fail_next(503, message="overloaded")
    assert [f.times for f in fake.faults] == [2, 1]
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="m", messages=HELLO)
        assert info.value.status_code == 500
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="m", messages=HELLO)
    assert info.value.status_code == 503
    assert info.value.message.endswith("overloaded")
    assert fake.faults == []
    await client.chat.completions.create(model="m", messages=HELLO)


async def test_fault_endpoint_filter(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.fail_next(500, endpoint="embeddings")
    await client.chat.completions.create(model="m", messages=HELLO)  # unaffected
    with pytest.raises(openai.InternalServerError):
        await client.embeddings.create(model="e", input="x")
    with pytest.raises(ValueError, match="unknown endpoint"):
        Fault("status", endpoint="chats")
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")  # type: ignore[arg-type]


async def test_fault_drop(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.drop_next()
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="m", messages=HELLO)
    ok = await client.chat.completions.create(model="m", messages=HELLO)
    assert ok.choices[0].message.content == expected_text(HELLO)


async def test_fault_truncate_chat_stream_ends_silently(
    fake: FakeOpenAI, client: AsyncOpenAI
) -> None:
    fake.truncate_next(after_chunks=2)
    stream = await client.chat.completions.create(
        model="m", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]  # the SDK raises nothing
    assert len(chunks) == 2
    assert all(c.choices[0].finish_reason is None for c in chunks)
    assert all(c.usage is None for c in chunks)


async def test_fault_truncate_never_reaches_the_finish_chunk(
    fake: FakeOpenAI, client: AsyncOpenAI
) -> None:
    fake.truncate_next(after_chunks=1000)
    stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected_text(HELLO)
    assert chunks[-1].choices[0].finish_reason is None


async def test_fault_response_incomplete_on_chat(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.fail_stream_next("response_incomplete", after_chunks=2, endpoint="chat")
    reply = await client.chat.completions.create(model="m", messages=HELLO)
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "Fake answer to: Hello there, how "


async def test_chunk_delay_spaces_out_stream_events() -> None:
    async with FakeOpenAI(chunk_delay=0.02) as server, make_client(server.base_url, "k") as sdk:
        stream = await sdk.chat.completions.create(model="m", messages=HELLO, stream=True)
        arrivals = [time.perf_counter() async for _ in stream]
    assert arrivals[-1] - arrivals[0] >= 0.02 * (len(arrivals) - 2)


async def test_fault_truncate_responses_stream(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.truncate_next(after_chunks=5, endpoint="responses")
    stream = await client.responses.create(model="m", input="hi there friend", stream=True)
    events = [event async for event in stream]
    assert len(events) == 5
    assert "response.completed" not in [e.type for e in events]


async def test_fault_truncate_unary_body(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.truncate_next()
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="m", messages=HELLO)


async def test_fault_malformed_json(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.malformed_next()
    # a 200 whose JSON does not parse escapes the SDK as the raw decoder error
    with pytest.raises(json.JSONDecodeError):
        await client.chat.completions.create(model="m", messages=HELLO)
    fake.malformed_next(after_chunks=1)
    stream = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
    seen = []
    with pytest.raises(json.JSONDecodeError):
        async for chunk in stream:
            seen.append(chunk)
    assert len(seen) == 1


async def test_fault_latency(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.delay_next(0.1)
    started = time.perf_counter()
    await client.chat.completions.create(model="m", messages=HELLO)
    assert time.perf_counter() - started >= 0.1
    with pytest.raises(openai.APITimeoutError):
        fake.delay_next(0.5)
        await client.chat.completions.create(model="m", messages=HELLO, timeout=0.05)


async def test_global_latency() -> None:
    async with (
        FakeOpenAI(latency=0.1) as server,
        make_client(server.base_url, "k") as sdk,
    ):
        started = time.perf_counter()
        await sdk.embeddings.create(model="e", input="x")
        assert time.perf_counter() - started >= 0.1


async def test_fault_response_failed(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.fail_stream_next("response_failed", after_chunks=3, message="model melted")
    stream = await client.responses.create(model="m", input="hi", stream=True)
    events = [event async for event in stream]
    assert [e.type for e in events][:3] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
    ]
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.sequence_number == 3
    assert failed.response.status == "failed"
    assert failed.response.error is not None
    assert failed.response.error.message == "model melted"


async def test_fault_response_incomplete(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.fail_stream_next("response_incomplete", after_chunks=1)
    stream = await client.responses.create(
        model="m", input="a rather long question with many words", stream=True
    )
    events = [event async for event in stream]
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.status == "incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == last.response.output_text == "Fake answer to: "


async def test_fault_stream_error(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.fail_stream_next("stream_error", endpoint="responses", message="boom")
    stream = await client.responses.create(model="m", input="hi", stream=True)
    events = [event async for event in stream]
    error = events[-1]
    assert error.type == "error"
    assert error.message == "boom"
    assert error.sequence_number == 2
    # on a chat stream the error arrives as a data chunk, which the SDK raises
    fake.fail_stream_next("stream_error", endpoint="chat", after_chunks=1)
    chat = await client.chat.completions.create(model="m", messages=HELLO, stream=True)
    with pytest.raises(openai.APIError):
        async for _ in chat:
            pass


async def test_faults_through_the_aiohttp_transport(fake: FakeOpenAI) -> None:
    async with make_client(fake.base_url, "k", http_client=openai.DefaultAioHttpClient()) as sdk:
        stream = await sdk.chat.completions.create(model="m", messages=HELLO, stream=True)
        assert "".join([c.choices[0].delta.content or "" async for c in stream]) == expected_text(
            HELLO
        )
        # this transport reports a dropped connection as a (connect) timeout, a subclass
        fake.drop_next()
        with pytest.raises(openai.APIConnectionError):
            await sdk.chat.completions.create(model="m", messages=HELLO)
        fake.truncate_next()
        with pytest.raises(openai.APIConnectionError):
            await sdk.chat.completions.create(model="m", messages=HELLO)
        fake.rate_limit_next(retry_after=3)
        with pytest.raises(openai.RateLimitError) as info:
            await sdk.embeddings.create(model="e", input="x")
        assert info.value.response.headers["retry-after"] == "3"


# -- log, auth, headers, plumbing -----------------------------------------------------------------


async def test_request_log(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    await client.chat.completions.create(model="gpt-4o", messages=HELLO, temperature=0.5)
    await client.embeddings.create(model="e", input="x")
    await client.responses.create(model="gpt-4.1", input="x", stream=True)
    assert fake.count() == 3
    assert fake.count("chat") == fake.count("embeddings") == fake.count("responses") == 1
    first, second, third = fake.requests
    assert (first.method, first.path, first.endpoint) == ("POST", "/v1/chat/completions", "chat")
    assert first.json["temperature"] == 0.5
    assert first.model == "gpt-4o"
    assert first.headers["authorization"] == "Bearer sk-test"
    assert second.endpoint == "embeddings"
    assert third.stream is True
    assert first.time <= second.time <= third.time
    assert fake.last_request("chat") == first
    fake.fail_next()
    fake.reset()
    assert fake.count() == 0
    assert fake.requests == []
    assert fake.faults == []


async def test_auth(fake: FakeOpenAI) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{fake.base_url}/models") as missing:
            assert missing.status == 401
            body = await missing.json()
            assert set(body["error"]) == {"message", "type", "param", "code"}
            assert "x-request-id" in missing.headers
        async with session.post(
            f"{fake.base_url}/chat/completions",
            data=b"{not json",
            headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        ) as bad:
            assert bad.status == 400
            assert (await bad.json())["error"]["type"] == "invalid_request_error"
        async with session.post(
            f"{fake.base_url}/nowhere", headers={"Authorization": "Bearer k"}
        ) as unknown:
            assert unknown.status == 404
    fake.api_key = "sk-right"
    async with make_client(fake.base_url, "sk-wrong-key") as sdk:
        with pytest.raises(openai.AuthenticationError) as info:
            await sdk.chat.completions.create(model="m", messages=HELLO)
        assert isinstance(info.value.body, dict)
        assert info.value.body["code"] == "invalid_api_key"
    async with make_client(fake.base_url, "sk-right") as sdk:
        models = [m.id async for m in sdk.models.list()]
        assert "gpt-4o-mini" in models


async def test_bad_request_shapes(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="m", messages=HELLO, n=2)
    assert info.value.param == "n"
    with pytest.raises(openai.BadRequestError):
        await client.embeddings.create(model="e", input="")


async def test_rate_limit_headers_configurable(fake: FakeOpenAI, client: AsyncOpenAI) -> None:
    fake.set_rate_limit_headers({"remaining-requests": 7, "x-ratelimit-reset-tokens": "6m0s"})
    raw = await client.embeddings.with_raw_response.create(model="e", input="x")
    assert raw.headers["x-ratelimit-remaining-requests"] == "7"
    assert raw.headers["x-ratelimit-reset-tokens"] == "6m0s"
    fake.rate_limit_headers = False
    raw = await client.embeddings.with_raw_response.create(model="e", input="x")
    assert "x-ratelimit-limit-requests" not in raw.headers
    assert "x-request-id" in raw.headers
    assert [format_duration(s) for s in (0.02, 1, 360, 90.5, 3723)] == [
        "20ms",
        "1s",
        "6m0s",
        "1m30.5s",
        "1h2m3s",
    ]


async def test_concurrent_requests(client: AsyncOpenAI, fake: FakeOpenAI) -> None:
    results = await asyncio.gather(
        *(
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"question {i}"}]
            )
            for i in range(20)
        )
    )
    assert [r.choices[0].message.content for r in results] == [
        f"Fake answer to: question {i}" for i in range(20)
    ]
    assert fake.count("chat") == 20


# -- thread mode, fixture, command line -----------------------------------------------------------


def test_thread_mode_sync_context_manager() -> None:
    with FakeOpenAI() as server, OpenAI(base_url=server.base_url, api_key="k") as sdk:
        reply = sdk.chat.completions.create(model="m", messages=HELLO)
        assert reply.choices[0].message.content == expected_text(HELLO)
        assert server.count("chat") == 1
    assert not server.running


def test_fixture_in_sync_test(fake_openai: FakeOpenAI) -> None:
    assert os.environ["OPENAI_BASE_URL"] == fake_openai.base_url
    assert os.environ["OPENAI_API_KEY"] == "sk-fake-test-key"
    with OpenAI(max_retries=0) as sdk:  # configured from the environment
        fake_openai.fail_next(500)
        with pytest.raises(openai.InternalServerError):
            sdk.chat.completions.create(model="m", messages=HELLO)
        reply = sdk.chat.completions.create(model="m", messages=HELLO)
    assert reply.choices[0].message.content == expected_text(HELLO)
    assert fake_openai.requests[-1].headers["authorization"] == "Bearer sk-fake-test-key"


async def test_fixture_in_async_test(fake_openai: FakeOpenAI) -> None:
    async with AsyncOpenAI(max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(model="m", messages=HELLO, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == expected_text(HELLO)
    assert fake_openai.count("chat") == 1


def test_command_line_server() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "llm_client.testing", "--port", "0", "--latency", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        with OpenAI(base_url=base_url, api_key="k", max_retries=0) as sdk:
            reply = sdk.chat.completions.create(model="m", messages=HELLO)
        assert reply.choices[0].message.content == expected_text(HELLO)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
