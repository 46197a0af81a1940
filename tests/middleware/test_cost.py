"""llm_client.middleware.cost: the totals of every call, through the client and the fake server
(answers, failures, cache hits, and what an abandoned stream spent)."""

from __future__ import annotations

import pytest

from llm_client import GPT5Nano, OpenAIClient
from llm_client.middleware import CostAccounting
from llm_client.testing import FakeOpenAI

MESSAGES = [{"role": "user", "content": "What is a token?"}]
STORY = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


@pytest.fixture
async def server():
    async with FakeOpenAI() as s:
        yield s


async def test_answers_failures_and_cache_hits_are_counted_apart(server: FakeOpenAI) -> None:
    client = OpenAIClient(
        GPT5Nano,
        base_url=server.base_url,
        api_key="sk-test",
        cache_backend="memory",
        rate_limit_backend=None,
        attempts=1,
    )
    try:
        first = await client.invoke(MESSAGES)
        hit = await client.invoke(MESSAGES)
        server.fail_next(400)
        failed = await client.invoke([{"role": "user", "content": "another question"}])
        cost = client.pipeline.find(CostAccounting)
        assert cost is not None
        totals = cost.totals
    finally:
        await client.close()
    assert first.ok and hit.cached and failed.status == 400
    assert (totals.requests, totals.succeeded, totals.failed, totals.cache_hits) == (3, 2, 1, 1)
    assert hit.attempts == 0 and totals.attempts == 2  # a cache hit makes no attempt
    # Only the first call was paid for; the hit saved what the first one cost.
    assert totals.input_tokens == first.usage.input_tokens
    assert totals.output_tokens == first.usage.output_tokens
    assert totals.cost_usd == pytest.approx(first.usage.total_cost + hit.usage.total_cost)
    assert totals.saved_usd == pytest.approx(hit.usage.saved_cost) and totals.saved_usd > 0
    assert totals.as_dict()["requests"] == 3
    cost.reset()
    assert cost.totals.requests == 0 and cost.totals.cost_usd == 0


async def test_abandoned_stream_counts_what_it_spent(server: FakeOpenAI) -> None:
    server.drip_next(interval=0.2)
    client = OpenAIClient(
        GPT5Nano,
        base_url=server.base_url,
        api_key="sk-test-secret",
        rate_limit_backend=None,
        backoff=0.01,
    )
    stream = client.stream(STORY)
    async for event in stream:
        if event.type == "text_delta":
            break
    await stream.aclose()
    stats = client.stats()["totals"]
    await client.close()
    assert stats["abandoned"] == 1 and stats["failed"] == 0 and stats["estimated"] == 1
    assert stats["input_tokens"] > 0 and stats["output_tokens"] > 0 and stats["attempts"] == 1
