"""Pipelines are data: edit them, reorder them, add your own middleware."""

from __future__ import annotations

import pytest

from llm_client import Call, ConfigurationError, GPT5Nano, OpenAIClient, Pipeline
from llm_client.middleware import CostAccounting, Retry, Timeout, TokenCounting
from llm_client.result import LLMResult
from llm_client.testing import FakeOpenAI, expected_text


class Redact:
    """A user's 10-line middleware: scrub e-mail addresses before anything else sees them."""

    async def __call__(self, call, next):
        messages = [
            {**m, "content": m["content"].replace("bob@example.com", "[email]")}
            for m in call.params["messages"]
        ]
        return await next(call.replace(params={**call.params, "messages": messages}))


@pytest.fixture
async def server():
    async with FakeOpenAI() as s:
        yield s


def test_default_order_and_editing():
    p = Pipeline.default(GPT5Nano, cache_backend=None, rate_limit_backend=None)
    assert p.names() == ["cost", "timeout", "tokens", "retry"]
    p.insert_before("tokens", "redact", Redact())
    p.insert_after("redact", "noop", Redact())
    p.remove("noop")
    p.replace("retry", Retry(1))
    assert p.names() == ["cost", "timeout", "redact", "tokens", "retry"]
    with pytest.raises(ConfigurationError, match="already has"):
        p.append("cost", CostAccounting())
    with pytest.raises(KeyError, match="no middleware named 'nope'"):
        p.remove("nope")


async def test_user_middleware_between_two_builtins(server):
    p = Pipeline.default(GPT5Nano, cache_backend=None, rate_limit_backend=None)
    p.insert_after("timeout", "redact", Redact())
    client = OpenAIClient(GPT5Nano, pipeline=p, base_url=server.base_url, api_key="k")
    msg = [{"role": "user", "content": "mail bob@example.com now"}]
    r = await client.get_response(messages=msg)
    await client.close()
    sent = server.requests[0].json["messages"][0]["content"]
    assert sent == "mail [email] now"
    assert r["output"] == expected_text([{"role": "user", "content": "mail [email] now"}])


async def test_pipeline_is_copied_at_construction(server):
    p = Pipeline.default(GPT5Nano, cache_backend=None, rate_limit_backend=None)
    client = OpenAIClient(GPT5Nano, pipeline=p, base_url=server.base_url, api_key="k")
    p.insert_after("timeout", "redact", Redact())  # later edits do not reach the client
    await client.get_response(messages=[{"role": "user", "content": "bob@example.com"}])
    await client.close()
    assert server.requests[0].json["messages"][0]["content"] == "bob@example.com"


async def test_middleware_sees_replies_and_can_answer(server):
    class Canned:
        async def __call__(self, call: Call, next):
            if call.params["messages"][-1]["content"] == "ping":
                return LLMResult(params=call.params, output="pong", model="local")
            return await next(call)

    p = Pipeline(
        [
            ("cost", CostAccounting()),
            ("canned", Canned()),
            ("timeout", Timeout(5)),
            ("tokens", TokenCounting()),
        ]
    )
    client = OpenAIClient(GPT5Nano, pipeline=p, base_url=server.base_url, api_key="k")
    r = await client.get_response(messages=[{"role": "user", "content": "ping"}])
    r2 = await client.get_response(messages=[{"role": "user", "content": "other"}])
    await client.close()
    assert r["output"] == "pong" and server.count() == 1
    assert r2["output"] == expected_text([{"role": "user", "content": "other"}])
    assert client.stats()["totals"]["requests"] == 2


async def test_brief_literal_order_also_works(server):
    """The design brief's order, taken literally: tokens, rate limiting, cache, retry,
    timeout, cost, transport. It is a valid pipeline: calls, hits and retries all work."""
    from llm_client.cache import MemoryCache
    from llm_client.middleware.cache import CacheMiddleware
    from llm_client.middleware.limit import RateLimit
    from llm_client.rate_limit import Limiter

    limiter = Limiter(1_000_000, 10_000)
    p = Pipeline(
        [
            ("tokens", TokenCounting()),
            ("limit", RateLimit(limiter)),
            ("cache", CacheMiddleware(MemoryCache())),
            ("retry", Retry(3, backoff=0.01)),
            ("timeout", Timeout(10)),
            ("cost", CostAccounting()),
        ]
    )
    client = OpenAIClient(GPT5Nano, pipeline=p, base_url=server.base_url, api_key="k")
    msg = [{"role": "user", "content": "literal order"}]
    server.fail_next(status=500)
    first = await client.get_response(messages=msg)
    second = await client.get_response(messages=msg)
    await client.close()
    assert first["status"] == 200 and first["attempts"] == 2 and not first["cached"]
    assert second["cached"] and second["output"] == first["output"]
    assert server.count("chat") == 2  # one failure + one success; the hit never left
    # In this order the hit still went through the limiter: it spent budget (2 requests).
    assert limiter.stats()["admitted_requests"] == 2


def test_the_model_name_of_a_call_is_derived_in_one_place():
    messages = [{"role": "user", "content": "hi"}]
    plain = Call(profile=GPT5Nano, operation="chat", params={"messages": messages})
    assert plain.model == GPT5Nano.model_name
    routed = plain.replace(params={**plain.params, "model": "gpt-5-mini"})
    assert routed.model == "gpt-5-mini"
    assert plain.replace(params={**plain.params, "model": None}).model == GPT5Nano.model_name


async def test_a_stream_cut_below_a_routing_step_names_the_routed_model():
    class Route:
        async def __call__(self, call, next):
            return await next(call.replace(params={**call.params, "model": "gpt-5-mini"}))

    async with FakeOpenAI() as server:
        server.truncate_next(after_chunks=3)
        pipeline = Pipeline.default(GPT5Nano)
        pipeline.insert_before("retry", "route", Route())
        client = OpenAIClient(
            GPT5Nano, base_url=server.base_url, api_key="sk-test", pipeline=pipeline
        )
        stream = client.stream(messages=[{"role": "user", "content": "hi"}], attempts=1)
        events = [e async for e in stream]
        await client.close()
    assert events[-1].type == "error", events[-1]
    assert events[-1].result.model == "gpt-5-mini"
