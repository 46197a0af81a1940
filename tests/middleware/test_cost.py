"""llm_client.middleware.cost: the totals of every call, through the client and the fake server."""

from __future__ import annotations

import pytest

from llm_client import GPT5Nano, OpenAIClient
from llm_client.middleware import CostAccounting
from llm_client.testing import FakeOpenAI

MESSAGES = [{"role": "user", "content": "What is a token?"}]


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
