"""The fake server's wire faults (stall, drip, cut), its answer log and its fault draw,
through the raw OpenAI SDK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import openai
import pytest
from openai import AsyncOpenAI

from llm_client.testing import FakeOpenAI, Fault, FaultDraw, expected_text

MESSAGES = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    sdk = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    yield sdk
    await sdk.close()


async def settle(record_of, *, rounds: int = 500) -> None:
    """Let the server's loop run until ``record_of()`` is closed (bounded)."""
    for _ in range(rounds):
        if record_of().closed is not None:
            return
        await asyncio.sleep(0.01)


async def test_answer_log_records_usage_and_completion(fake, client):
    r = await client.chat.completions.create(model="gpt-5-nano", messages=MESSAGES)
    stream = await client.chat.completions.create(
        model="gpt-5-nano", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    unary, streamed = fake.answers
    assert unary.outcome == "completed" and not unary.stream
    assert unary.billed_tokens == (r.usage.prompt_tokens, r.usage.completion_tokens)
    assert streamed.outcome == "completed" and streamed.stream
    assert streamed.events_sent == streamed.events_total
    assert streamed.billed_tokens == (
        chunks[-1].usage.prompt_tokens,
        chunks[-1].usage.completion_tokens,
    )
    assert streamed.prompt == MESSAGES[0]["content"]


async def test_stall_sends_some_chunks_then_nothing_until_the_client_leaves(fake, client):
    fake.stall_next(after_chunks=2)
    stream = await client.chat.completions.create(
        model="gpt-5-nano", messages=MESSAGES, stream=True
    )
    got = [await stream.__anext__(), await stream.__anext__()]
    assert got[1].choices[0].delta.content
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(stream.__anext__(), 0.3)
    (record,) = fake.answers
    assert record.closed is None and record.events_sent == 2
    await stream.close()
    await settle(lambda: fake.answers[0])
    assert record.outcome == "client_closed"


async def test_stalled_unary_answer_never_sends_headers(fake):
    fake.stall_next()
    sdk = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        await sdk.chat.completions.create(model="gpt-5-nano", messages=MESSAGES)
    await sdk.close()
    await settle(lambda: fake.answers[0])
    assert fake.answers[0].outcome == "client_closed"
    assert fake.answers[0].usage is None


async def test_drip_spaces_every_chunk(fake, client):
    fake.drip_next(interval=0.05)
    start = time.monotonic()
    stream = await client.chat.completions.create(
        model="gpt-5-nano", messages=MESSAGES, stream=True
    )
    chunks = [c async for c in stream]
    took = time.monotonic() - start
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected_text(MESSAGES)
    assert took >= 0.05 * (len(chunks) - 1)  # a lower bound only: never flaky under load
    assert fake.answers[0].outcome == "completed" and fake.answers[0].fault == "drip"


async def test_drip_unary_body_arrives_whole(fake, client):
    fake.drip_next(interval=0.01)
    r = await client.chat.completions.create(model="gpt-5-nano", messages=MESSAGES)
    assert r.choices[0].message.content == expected_text(MESSAGES)


async def test_cut_resets_the_connection_mid_stream(fake, client):
    fake.cut_next(after_chunks=3)
    stream = await client.chat.completions.create(
        model="gpt-5-nano", messages=MESSAGES, stream=True
    )
    seen = 0
    with pytest.raises(openai.APIConnectionError):
        async for _ in stream:
            seen += 1
    assert seen == 3
    assert fake.answers[0].outcome == "cut" and fake.answers[0].usage is None


async def test_cut_unary_body(fake, client):
    fake.cut_next()
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model="gpt-5-nano", messages=MESSAGES)


async def test_fault_draw_hits_about_its_rate(fake, client):
    fake.draw_faults(FaultDraw(0.5, [Fault("status", status=500)], seed=7))
    failures = 0
    for i in range(40):
        try:
            await client.chat.completions.create(
                model="gpt-5-nano", messages=[{"role": "user", "content": f"q{i}"}]
            )
        except openai.InternalServerError:
            failures += 1
    fake.draw_faults(None)
    assert 8 <= failures <= 32
    await client.chat.completions.create(model="gpt-5-nano", messages=MESSAGES)


def test_fault_draw_checks_its_arguments():
    with pytest.raises(ValueError, match="rate"):
        FaultDraw(1.5, [Fault("drop")])
    with pytest.raises(ValueError, match="faults"):
        FaultDraw(0.1, [])
