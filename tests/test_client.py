"""End-to-end behaviour of OpenAIClient through the real SDK against the fake server."""

from __future__ import annotations

import asyncio
import json

import pytest

from llm_client import (
    GPT5Nano,
    InvalidRequestError,
    LLMResult,
    OpenAIClient,
    RateLimitError,
    TextEmbedding3Small,
    UnknownModelError,
)
from llm_client.testing import FakeOpenAI, expected_text

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello, how are you?"},
]


def make_client(server: FakeOpenAI, model=GPT5Nano, **kw) -> OpenAIClient:
    kw.setdefault("rate_limit_backend", None)
    kw.setdefault("backoff", 0.01)
    return OpenAIClient(model, base_url=server.base_url, api_key="sk-test-secret", **kw)


@pytest.fixture
async def server():
    async with FakeOpenAI() as s:
        yield s


async def test_quickstart_returns_the_seed_dict(server):
    client = make_client(server, cache_backend=None)
    response = await client.get_response(messages=MESSAGES)
    await client.close()
    assert set(response) >= {"params", "output", "usage", "status", "error", "identifier"}
    assert response["status"] == 200
    assert response["error"] == "OK"
    assert response["output"] == expected_text(MESSAGES)
    assert response["params"]["model"] == "gpt-5-nano"
    assert response["usage"]["input_tokens"] > 0
    assert response["usage"]["total_cost"] > 0
    assert response["attempts"] == 1


def test_quickstart_unchanged_with_openai_base_url(fake_openai):
    """The seed's quickstart, unchanged, finds the server through OPENAI_BASE_URL."""

    async def main() -> str:
        client = OpenAIClient(GPT5Nano, cache_backend=None)
        response = await client.get_response(messages=MESSAGES)
        await client.close()
        return str(response["output"])

    assert asyncio.run(main()) == expected_text(MESSAGES)
    assert fake_openai.count("chat") == 1


async def test_invoke_returns_llmresult_and_key_resolution(server):
    client = make_client(server, model="gpt-5-nano")
    result = await client.invoke(MESSAGES)
    await client.close()
    assert isinstance(result, LLMResult)
    assert result.ok and result.output == expected_text(MESSAGES)
    assert result.to_dict()["output"] == result.output


async def test_responses_api_normalized_to_the_same_shape(server):
    client = make_client(server, api="responses")
    chat = await client.get_response(messages=MESSAGES, api="chat")
    resp = await client.get_response(messages=MESSAGES)
    await client.close()
    assert resp["operation"] == "responses" and chat["operation"] == "chat"
    assert resp["output"] == chat["output"]
    assert resp["usage"]["input_tokens"] == chat["usage"]["input_tokens"]
    assert [r.endpoint for r in server.requests] == ["chat", "responses"]


async def test_tool_calls_in_both_apis(server):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "Get the time in a zone.",
                "parameters": {
                    "type": "object",
                    "properties": {"zone": {"type": "string"}},
                    "required": ["zone"],
                },
            },
        }
    ]
    client = make_client(server)
    for api in ("chat", "responses"):
        r = await client.invoke(
            [{"role": "user", "content": "what time is it?"}],
            tools=tools,
            tool_choice="required",
            api=api,
        )
        assert r.finish_reason == "tool_calls", api
        assert r.tool_calls[0]["name"] == "get_time"
        assert "zone" in json.loads(r.tool_calls[0]["arguments"])
    # Responses got the flat tool form
    assert server.requests[-1].json["tools"][0]["name"] == "get_time"
    await client.close()


async def test_embeddings_base64_on_the_wire_floats_out(server):
    client = make_client(server, model=TextEmbedding3Small)
    one = await client.get_response(input="Some text to embed")
    many = await client.get_response(input=["first text", "second text"])
    await client.close()
    assert server.requests[0].json["encoding_format"] == "base64"
    assert isinstance(one["output"], list) and len(one["output"]) == 1536
    assert all(isinstance(x, float) for x in one["output"])
    assert len(many["output"]) == 2 and len(many["output"][1]) == 1536
    norm = sum(x * x for x in one["output"]) ** 0.5
    assert norm == pytest.approx(1.0, rel=1e-5)


async def test_server_error_is_retried_and_attempts_reported(server):
    client = make_client(server)
    server.fail_next(status=500, times=2)
    r = await client.get_response(messages=MESSAGES)
    await client.close()
    assert r["status"] == 200 and r["attempts"] == 3
    assert server.count("chat") == 3
    retries = [req.headers.get("x-stainless-retry-count") for req in server.requests]
    assert retries == ["0", "1", "2"]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_client_errors_are_not_retried(server, status):
    client = make_client(server)
    server.fail_next(status=status)
    r = await client.get_response(messages=MESSAGES)
    await client.close()
    assert r["status"] == status
    assert r["error"] != "OK" and r["output"] is None
    assert server.count("chat") == 1


async def test_429_honours_retry_after(server):
    client = make_client(server)
    server.fail_next(status=429, retry_after=0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    r = await client.get_response(messages=MESSAGES)
    elapsed = loop.time() - start
    await client.close()
    assert r["status"] == 200 and r["attempts"] == 2
    assert elapsed >= 0.2  # waited what the server asked, not a random jitter


async def test_exhausted_attempts_return_the_error(server):
    client = make_client(server)
    server.fail_next(status=503, times=5)
    r = await client.get_response(messages=MESSAGES, attempts=2)
    await client.close()
    assert r["status"] == 503 and r["attempts"] == 2
    assert server.count("chat") == 2


async def test_invoke_can_raise(server):
    client = make_client(server)
    server.fail_next(status=429, times=3, retry_after=0)
    with pytest.raises(RateLimitError) as info:
        await client.invoke(MESSAGES, raise_on_error=True, attempts=3)
    await client.close()
    assert info.value.status == 429 and info.value.attempts == 3


async def test_connection_drop_is_retried(server):
    client = make_client(server)
    server.drop_next()
    r = await client.get_response(messages=MESSAGES)
    await client.close()
    assert r["status"] == 200 and r["attempts"] == 2


async def test_malformed_json_is_an_error_not_a_crash(server):
    client = make_client(server)
    server.malformed_next(times=3)
    r = await client.get_response(messages=MESSAGES, attempts=1)
    await client.close()
    assert r["status"] == 502 and "malformed JSON" in r["error"]


async def test_truncated_unary_body_is_an_error(server):
    client = make_client(server)
    server.truncate_next(times=3)
    r = await client.get_response(messages=MESSAGES, attempts=1)
    await client.close()
    assert r["status"] >= 500 and r["output"] is None


async def test_identifier_is_reported(server):
    client = make_client(server)
    r = await client.get_response(messages=MESSAGES, identifier="my-key")
    await client.close()
    assert r["identifier"] == "my-key"


def test_bad_input_raises_at_once():
    with pytest.raises(UnknownModelError, match="gpt-5-nano"):
        OpenAIClient("gpt-9000", api_key="k")
    client = OpenAIClient(GPT5Nano, api_key="k", rate_limit_backend=None)
    with pytest.raises(InvalidRequestError, match="role"):
        asyncio.run(client.get_response(messages=[{"content": "no role"}]))
    with pytest.raises(InvalidRequestError, match="list"):
        asyncio.run(client.get_response(messages="hello"))
    with pytest.raises(InvalidRequestError, match="attempts"):
        asyncio.run(client.get_response(messages=MESSAGES, attempts=-1))
    with pytest.raises(InvalidRequestError, match="timeout"):
        asyncio.run(client.get_response(messages=MESSAGES, timeout=-5))
    with pytest.raises(InvalidRequestError, match="api_key"):
        asyncio.run(client.get_response(messages=MESSAGES, api_key="x"))
    asyncio.run(client.close())


async def test_stream_events_and_usage(server):
    client = make_client(server)
    events = [e async for e in client.stream(MESSAGES)]
    await client.close()
    kinds = [e.type for e in events]
    assert kinds[0] == "meta" and kinds[-2:] == ["usage", "done"]
    text = "".join(e.data["text"] for e in events if e.type == "text_delta")
    assert text == expected_text(MESSAGES)
    assert server.requests[0].json["stream_options"] == {"include_usage": True}
    assert events[-1].result is not None and events[-1].result.usage.total_cost > 0
    assert client.stats()["totals"]["cost_usd"] == pytest.approx(events[-1].result.usage.total_cost)


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_cut_off_stream_ends_in_error_event(server, api):
    client = make_client(server)
    # cut after some text (a Responses stream's first delta is its 5th event): no retry then
    server.truncate_next(after_chunks=2 if api == "chat" else 6)
    events = [e async for e in client.stream(MESSAGES, api=api)]
    await client.close()
    assert events[-1].type == "error"
    assert "truncated" in events[-1].data["error"]
    assert all(e.type != "done" for e in events)


@pytest.mark.parametrize("kind", ["response_failed", "stream_error"])
async def test_responses_stream_failures_become_errors(server, kind):
    from llm_client.testing import Fault

    client = make_client(server)
    server.add_fault(Fault(kind))  # before any text, so attempts=1 keeps it from a retry
    events = [e async for e in client.stream(MESSAGES, api="responses", attempts=1)]
    await client.close()
    assert events[-1].type == "error"


async def test_responses_stream_incomplete_says_why(server):
    from llm_client.testing import Fault

    client = make_client(server)
    server.add_fault(Fault("response_incomplete"))
    events = [e async for e in client.stream(MESSAGES, api="responses")]
    await client.close()
    assert events[-1].type == "done"
    assert events[-1].result.finish_reason == "length"


async def test_stream_error_before_first_event_is_retried(server):
    client = make_client(server)
    server.fail_next(status=500)
    events = [e async for e in client.stream(MESSAGES)]
    await client.close()
    assert events[-1].type == "done"
    assert server.count("chat") == 2


async def test_run_batch_keeps_order_and_wraps_errors(server):
    client = make_client(server, max_concurrency=4)
    server.fail_next(status=404)

    async def boom():
        raise ValueError("bad coroutine")

    prompts = [f"question {i}" for i in range(10)]
    coros = [client.get_response(messages=[{"role": "user", "content": p}]) for p in prompts]
    results = await client.run_batch([*coros, boom()])
    await client.close()
    assert len(results) == 11
    assert results[-1]["status"] == 500 and "bad coroutine" in results[-1]["error"]
    ok = [r for r in results[:10] if r["status"] == 200]
    assert len(ok) == 9
    for prompt, r in zip(prompts, results[:10], strict=True):
        if r["status"] == 200:
            assert r["output"] == expected_text([{"role": "user", "content": prompt}])


async def test_iter_batch_yields_as_completed(server):
    client = make_client(server)
    coros = [client.get_response(messages=[{"role": "user", "content": f"q{i}"}]) for i in range(5)]
    seen = [r async for r in client.iter_batch(coros)]
    await client.close()
    assert sorted(r["output"] for r in seen) == sorted(
        expected_text([{"role": "user", "content": f"q{i}"}]) for i in range(5)
    )


async def test_secrets_never_reach_results(server):
    client = make_client(server)
    r = await client.get_response(messages=MESSAGES)
    await client.close()
    assert "sk-test-secret" not in json.dumps(r)


def test_stream_checks_input_when_called():
    client = OpenAIClient(GPT5Nano, api_key="k", rate_limit_backend=None)
    with pytest.raises(InvalidRequestError, match="role"):
        client.stream(messages=[{"content": "no role"}])
    asyncio.run(client.close())


async def test_stats_report_totals_cache_and_limiter(server):
    client = make_client(server, cache_backend="memory", rate_limit_backend="local")
    await client.get_response(messages=MESSAGES)
    await client.get_response(messages=MESSAGES)
    stats = client.stats()
    await client.close()
    assert stats["totals"]["requests"] == 2 and stats["totals"]["cache_hits"] == 1
    assert stats["totals"]["saved_usd"] > 0
    assert stats["cache"]["hits"] == 1
    assert stats["limiter"]["admitted_requests"] == 1


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_malformed_stream_chunk_ends_in_error_event(server, api):
    client = make_client(server)
    server.malformed_next(after_chunks=2)
    events = [e async for e in client.stream(MESSAGES, api=api, attempts=1)]
    await client.close()
    assert events[-1].type == "error"
    assert events[-1].data["status"] == 502 and "malformed JSON" in events[-1].data["error"]
    assert all(e.type != "done" for e in events)


async def test_usage_of_a_failed_stream_attempt_is_not_hidden(server):
    client = make_client(server)
    server.truncate_next(after_chunks=3)
    events = [e async for e in client.stream(MESSAGES)]
    await client.close()
    err = events[-1]
    assert err.type == "error" and err.result is not None
    assert err.result.output  # what arrived before the cut is kept
    assert err.result.usage.output_tokens > 0  # estimated, never silently zero
    assert client.stats()["totals"]["failed"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tokens_per_minute": 0}, "tokens_per_minute"),
        ({"requests_per_minute": -5}, "requests_per_minute"),
        ({"tokens_per_minute": "lots"}, "tokens_per_minute"),
        ({"attempts": 0}, "attempts"),
        ({"timeout": -1}, "timeout"),
        ({"api": "completions"}, "'chat' or 'responses'"),
        ({"cache_backend": "fs"}, "cache_dir"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"semantic_cache_threshold": 1.5}, "semantic_cache_threshold"),
    ],
)
def test_bad_client_configuration_is_named(kwargs, message):
    from llm_client import ConfigurationError

    with pytest.raises(ConfigurationError, match=message):
        OpenAIClient(GPT5Nano, api_key="k", **kwargs)
