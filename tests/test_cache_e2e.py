"""Cache semantics end to end, on every backend.

Each test drives the real ``OpenAIClient`` (full default pipeline, real ``openai`` SDK, real
sockets) against the bundled fake OpenAI server and counts what reaches the server. The same
tests run on ``memory``, ``fs``, ``sqlite``, ``redis``, ``postgres``, ``pg_redis`` and
``qdrant`` (embedded). Backends that need a server read ``PG_DSN`` / ``REDIS_URL`` (default:
the local ones) and are skipped with a one-line reason when it is not reachable, unless
``LLM_CLIENT_REQUIRE_SERVICES=1`` turns the skip into a failure. Every test works in its own
collection (table, key prefix, folder) and removes it afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llm_client import (
    ContextLengthExceededError,
    GPT5Mini,
    GPT5Nano,
    ModelProfile,
    OpenAIClient,
    TextEmbedding3Small,
)
from llm_client.cache import CacheEntry
from llm_client.middleware.cache import CacheMiddleware
from llm_client.plugins import get_registry
from llm_client.streaming import LLMEvent
from llm_client.testing import FakeOpenAI, Fault, embed_text, expected_text
from llm_client.testing.services import free_port, reachable, unavailable

PG_DSN = os.environ.get("PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
API_KEY = "sk-test"

BACKENDS = ("memory", "fs", "sqlite", "redis", "postgres", "pg_redis", "qdrant")
#: Backends whose entries outlive the client (qdrant with ``qdrant_path``).
PERSISTENT = frozenset({"fs", "sqlite", "redis", "postgres", "pg_redis", "qdrant"})
#: Services each backend needs: (name, url, default port).
SERVICES: dict[str, tuple[tuple[str, str, int], ...]] = {
    "redis": (("Redis", REDIS_URL, 6379),),
    "postgres": (("PostgreSQL", PG_DSN, 5432),),
    "pg_redis": (("PostgreSQL", PG_DSN, 5432), ("Redis", REDIS_URL, 6379)),
}
PACKAGES = {
    "redis": "llm-client-redis",
    "postgres": "llm-client-postgres",
    "pg_redis": "llm-client-postgres",
    "qdrant": "llm-client-qdrant",
}
CACHE_LOGGER = "llm_client.middleware.cache"


# -- services ---------------------------------------------------------------------------------

_reachable_cache: dict[str, bool] = {}


def _reachable(url: str, default_port: int) -> bool:
    if url not in _reachable_cache:
        _reachable_cache[url] = reachable(url, default_port)
    return _reachable_cache[url]


def _require_backend(backend: str, *, services: bool = True) -> None:
    if backend not in get_registry().cache_backends:
        unavailable(f"cache backend {backend!r} needs {PACKAGES.get(backend, '?')} installed")
    for what, url, port in SERVICES.get(backend, ()) if services else ():
        if not _reachable(url, port):
            unavailable(f"{what} is not reachable at {url}")


# -- harness ----------------------------------------------------------------------------------


class Harness:
    """Clients of one backend on one unique collection; closes them and cleans up."""

    def __init__(self, backend: str, server: FakeOpenAI, tmp_path: Path) -> None:
        self.backend = backend
        self.server = server
        self.tmp_path = tmp_path
        self.collection = f"e2e_{uuid.uuid4().hex[:12]}"
        self.clients: list[OpenAIClient] = []
        self.collections = [self.collection]
        self.cleanup = True

    def extra_collection(self) -> str:
        """Another unique collection, cleaned up with the first."""
        name = f"e2e_{uuid.uuid4().hex[:12]}"
        self.collections.append(name)
        return name

    def options(self, *, persistent: bool = False) -> dict[str, Any]:
        backend = self.backend
        if backend == "fs":
            return {"cache_dir": self.tmp_path / "fs-cache"}
        if backend == "sqlite":
            return {"cache_dir": self.tmp_path / "sqlite-cache"}
        if backend == "redis":
            return {"redis_url": REDIS_URL}
        if backend == "postgres":
            return {"pg_dsn": PG_DSN, "pg_application_name": f"e2e-{self.collection}"}
        if backend == "pg_redis":
            return {
                "pg_dsn": PG_DSN,
                "redis_url": REDIS_URL,
                "pg_application_name": f"e2e-{self.collection}",
            }
        if backend == "qdrant":
            if persistent:
                return {"qdrant_path": str(self.tmp_path / "qdrant-cache")}
            return {"qdrant_location": ":memory:"}
        return {}

    def client(
        self,
        model: ModelProfile = GPT5Nano,
        *,
        api_key: str = API_KEY,
        persistent: bool = False,
        **overrides: Any,
    ) -> OpenAIClient:
        options = {
            "cache_collection": self.collection,
            **self.options(persistent=persistent),
            **overrides,
        }
        client = OpenAIClient(
            model,
            cache_backend=self.backend,
            base_url=self.server.base_url,
            api_key=api_key,
            **options,
        )
        self.clients.append(client)
        return client

    async def close(self, client: OpenAIClient) -> None:
        self.clients.remove(client)
        await client.close()

    async def aclose(self) -> None:
        clients, self.clients = self.clients, []
        for client in clients:
            await client.close()
        if not self.cleanup or self.backend not in ("redis", "postgres", "pg_redis"):
            return  # in-process or under tmp_path: nothing outlives the test
        for collection in self.collections:
            cleaner = OpenAIClient(
                GPT5Nano,
                cache_backend=self.backend,
                cache_collection=collection,
                base_url=self.server.base_url,
                api_key=API_KEY,
                rate_limit_backend=None,
                **self.options(),
            )
            try:
                await cleaner.cache.clear()
                drop = getattr(cleaner.cache, "drop", None)
                if drop is not None:
                    await drop()  # the PostgreSQL table
            finally:
                await cleaner.close()


@pytest.fixture(params=BACKENDS)
async def harness(
    request: pytest.FixtureRequest, server: FakeOpenAI, tmp_path: Path
) -> AsyncIterator[Harness]:
    _require_backend(request.param)
    made = Harness(request.param, server, tmp_path)
    try:
        yield made
    finally:
        await made.aclose()


def ask(text: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": text},
    ]


async def settle(client: OpenAIClient) -> None:
    """Wait for the answers still on their way into the cache (stores run in the background)."""
    step = client.pipeline.find(CacheMiddleware)
    if step is not None:
        await step.flush()


async def entries(client: OpenAIClient) -> list[CacheEntry]:
    await settle(client)
    return [entry async for entry in client.cache.export()]


async def cache_stats(client: OpenAIClient) -> dict[str, Any]:
    await settle(client)
    return dict(await client.cache.stats())


def text_of(events: list[LLMEvent]) -> str:
    return "".join(e.data["text"] for e in events if e.type == "text_delta")


async def _until_requests(server: FakeOpenAI, n: int, endpoint: str = "chat") -> None:
    """Wait until the fake server has received ``n`` requests (the n-th one is in flight)."""
    for _ in range(500):
        if server.count(endpoint) >= n:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"the server never saw request {n}")


# -- 1. miss, then hit ------------------------------------------------------------------------


async def test_miss_then_hit_and_params_are_part_of_the_key(harness: Harness, server: FakeOpenAI):
    client = harness.client()
    msgs = ask("What is the capital of France?")

    first = await client.get_response(messages=msgs)
    assert first["status"] == 200, first["error"]
    assert first["cached"] is False and first["attempts"] == 1
    assert first["output"] == expected_text(msgs)
    assert first["usage"]["total_cost"] > 0 and first["usage"]["saved_cost"] == 0
    assert server.count("chat") == 1

    second = await client.get_response(messages=msgs)
    assert second["status"] == 200
    assert second["cached"] is True
    assert second["attempts"] == 0
    assert second["output"] == first["output"]
    assert second["identifier"] == first["identifier"] is not None
    assert second["response_id"] == first["response_id"]
    assert second["usage"]["total_cost"] == 0
    assert second["usage"]["saved_cost"] > 0
    assert second["usage"]["saved_cost"] == pytest.approx(first["usage"]["total_cost"])
    assert second["usage"]["input_tokens"] == first["usage"]["input_tokens"]
    assert second["usage"]["output_tokens"] == first["usage"]["output_tokens"]
    assert server.count("chat") == 1

    warmer = await client.get_response(messages=msgs, temperature=0.5)
    assert warmer["cached"] is False and warmer["status"] == 200
    assert warmer["identifier"] != first["identifier"]
    assert server.count("chat") == 2
    assert server.last_request("chat").json["temperature"] == 0.5
    again = await client.get_response(messages=msgs, temperature=0.5)
    assert again["cached"] is True
    shorter = await client.get_response(messages=msgs, max_tokens=3)
    assert shorter["cached"] is False
    assert server.count("chat") == 3

    totals = client.stats()["totals"]
    assert totals["cache_hits"] == 2
    assert totals["saved_usd"] > 0
    assert len(await entries(client)) == 3


async def test_operations_models_and_embeddings_have_their_own_entries(
    harness: Harness, server: FakeOpenAI
):
    nano = harness.client()
    msgs = ask("Which API answered this?")
    chat = await nano.get_response(messages=msgs)
    responses = await nano.get_response(messages=msgs, api="responses")
    assert chat["cached"] is False and responses["cached"] is False
    assert (server.count("chat"), server.count("responses")) == (1, 1)
    assert (await nano.get_response(messages=msgs, api="responses"))["cached"] is True
    assert (await nano.get_response(messages=msgs))["cached"] is True
    assert (server.count("chat"), server.count("responses")) == (1, 1)

    if harness.backend in PERSISTENT:  # a second client shares the store, not the model
        mini = harness.client(GPT5Mini)
        other = await mini.get_response(messages=msgs)
        assert other["cached"] is False and other["model"] != chat["model"]
        assert server.count("chat") == 2
        assert (await mini.get_response(messages=msgs))["cached"] is True
        assert (await nano.get_response(messages=msgs))["output"] == chat["output"]
        assert server.count("chat") == 2

    embedder = harness.client(TextEmbedding3Small)
    one = await embedder.get_response(input="the quick brown fox")
    many = await embedder.get_response(input=["first text", "second text"])
    small = await embedder.get_response(input="the quick brown fox", dimensions=8)
    assert server.count("embeddings") == 3
    assert one["output"] == embed_text("the quick brown fox")
    assert many["output"] == [embed_text("first text"), embed_text("second text")]
    assert small["output"] == embed_text("the quick brown fox", 8)
    again = [
        await embedder.get_response(input="the quick brown fox"),
        await embedder.get_response(input=["first text", "second text"]),
        await embedder.get_response(input="the quick brown fox", dimensions=8),
    ]
    assert all(r["cached"] is True for r in again)
    assert [r["output"] for r in again] == [one["output"], many["output"], small["output"]]
    assert again[0]["usage"]["saved_cost"] == pytest.approx(one["usage"]["total_cost"])
    assert server.count("embeddings") == 3


async def test_the_key_ignores_what_cannot_change_the_answer(harness: Harness, server: FakeOpenAI):
    client = harness.client()
    msgs = ask("Is the key canonical?")
    first = await client.get_response(messages=msgs, temperature=1, seed=7)
    assert first["cached"] is False

    reordered = [{"content": m["content"], "role": m["role"]} for m in msgs]
    same = [
        await client.get_response(messages=reordered, temperature=1, seed=7),
        await client.get_response(messages=msgs, temperature=1.0, seed=7.0),
        await client.get_response(messages=msgs, temperature=1, seed=7, top_p=None),
        await client.get_response(
            messages=msgs,
            temperature=1,
            seed=7,
            user="alice",
            safety_identifier="user-123",
            metadata={"team": "a"},
            prompt_cache_key="pck",
        ),
    ]
    assert all(r["cached"] is True for r in same)
    assert {r["identifier"] for r in same} == {first["identifier"]}
    assert server.count("chat") == 1

    changed = [
        await client.get_response(messages=msgs, temperature=1, seed=8),
        await client.get_response(messages=msgs, temperature=1, seed=7, stop=["zzz"]),
        await client.get_response(messages=msgs, temperature=1, seed=7, n=1),
        await client.get_response(messages=ask("Is the key canonical? "), temperature=1, seed=7),
    ]
    assert all(r["cached"] is False for r in changed)
    assert server.count("chat") == 5


# -- 2. cache_response=False ------------------------------------------------------------------


async def test_cache_response_false_reads_but_does_not_store(harness: Harness, server: FakeOpenAI):
    client = harness.client()
    msgs = ask("Name three rivers in Europe.")

    r1 = await client.get_response(messages=msgs, cache_response=False)
    r2 = await client.get_response(messages=msgs, cache_response=False)
    assert (r1["cached"], r2["cached"]) == (False, False)
    assert r1["status"] == r2["status"] == 200
    assert server.count("chat") == 2
    assert await entries(client) == []

    r3 = await client.get_response(messages=msgs)
    assert r3["cached"] is False
    assert server.count("chat") == 3

    r4 = await client.get_response(messages=msgs, cache_response=False)
    assert r4["cached"] is True and r4["output"] == r3["output"]
    assert r4["response_id"] == r3["response_id"]
    assert server.count("chat") == 3
    assert len(await entries(client)) == 1


# -- 3. rewrite_cache -------------------------------------------------------------------------


async def test_rewrite_cache_calls_the_api_and_replaces_the_entry(
    harness: Harness, server: FakeOpenAI
):
    client = harness.client()
    msgs = ask("Summarise the plot of Hamlet.")
    original = await client.get_response(messages=msgs)
    assert original["cached"] is False

    rewritten = await client.get_response(messages=msgs, rewrite_cache=True)
    assert rewritten["cached"] is False and rewritten["attempts"] == 1
    assert rewritten["response_id"] != original["response_id"]
    assert server.count("chat") == 2

    hit = await client.get_response(messages=msgs)
    assert hit["cached"] is True
    assert hit["response_id"] == rewritten["response_id"]
    assert server.count("chat") == 2

    # With an explicit identifier the replacement is visible in the text itself.
    first = await client.get_response(messages=ask("first question"), identifier="rewrite-me")
    second = await client.get_response(
        messages=ask("second question"), identifier="rewrite-me", rewrite_cache=True
    )
    assert second["cached"] is False
    assert second["output"] == expected_text(ask("second question")) != first["output"]
    assert server.count("chat") == 4
    third = await client.get_response(messages=ask("third question"), identifier="rewrite-me")
    assert third["cached"] is True
    assert third["output"] == second["output"]
    assert server.count("chat") == 4
    assert len(await entries(client)) == 2

    # While a rewrite is in flight, other calls keep reading the old entry.
    server.delay_next(0.15, endpoint="chat")
    refresh = asyncio.ensure_future(client.get_response(messages=msgs, rewrite_cache=True))
    await _until_requests(server, 5)
    during = await client.get_response(messages=msgs)
    assert during["cached"] is True
    assert during["response_id"] == rewritten["response_id"]
    refreshed = await refresh
    assert refreshed["cached"] is False
    assert refreshed["response_id"] != rewritten["response_id"]
    after = await client.get_response(messages=msgs)
    assert after["response_id"] == refreshed["response_id"]
    assert server.count("chat") == 5


# -- 4. regen_cache ---------------------------------------------------------------------------


async def test_regen_cache_ignores_the_entry_recomputes_and_replaces(
    harness: Harness, server: FakeOpenAI
):
    client = harness.client()
    msgs = ask("Explain photosynthesis in one sentence.")
    original = await client.get_response(messages=msgs)

    regenerated = await client.get_response(messages=msgs, regen_cache=True)
    assert regenerated["cached"] is False and regenerated["attempts"] == 1
    assert regenerated["response_id"] != original["response_id"]
    assert server.count("chat") == 2

    hit = await client.get_response(messages=msgs)
    assert hit["cached"] is True
    assert hit["response_id"] == regenerated["response_id"]
    assert server.count("chat") == 2

    first = await client.get_response(messages=ask("old wording"), identifier="regen-me")
    second = await client.get_response(
        messages=ask("new wording"), identifier="regen-me", regen_cache=True
    )
    assert second["cached"] is False
    assert second["output"] == expected_text(ask("new wording")) != first["output"]
    third = await client.get_response(messages=ask("any wording"), identifier="regen-me")
    assert third["cached"] is True and third["output"] == second["output"]
    assert server.count("chat") == 4

    # Calls arriving while a regen is in flight miss the deleted entry and share the new answer.
    server.delay_next(0.15, endpoint="chat")
    regen = asyncio.ensure_future(client.get_response(messages=msgs, regen_cache=True))
    await _until_requests(server, 5)
    during = await client.get_response(messages=msgs)
    renewed = await regen
    assert renewed["cached"] is False
    assert renewed["response_id"] != regenerated["response_id"]
    assert during["cached"] is True
    assert during["response_id"] == renewed["response_id"]
    assert server.count("chat") == 5
    chat_calls = 5

    # regen on a key that has no entry yet simply stores the answer
    fresh = await client.get_response(messages=ask("never asked before"), regen_cache=True)
    assert fresh["cached"] is False
    stored = await client.get_response(messages=ask("never asked before"))
    assert stored["cached"] is True
    assert server.count("chat") == chat_calls + 1


# -- 5. failures ------------------------------------------------------------------------------


async def test_failures_are_not_stored_by_default(harness: Harness, server: FakeOpenAI):
    client = harness.client()
    msgs = ask("This request is rejected once.")
    server.fail_next(status=400)
    failed = await client.get_response(messages=msgs)
    assert failed["status"] == 400 and failed["cached"] is False
    assert server.count("chat") == 1
    assert await entries(client) == []

    ok = await client.get_response(messages=msgs)
    assert ok["status"] == 200 and ok["cached"] is False
    assert server.count("chat") == 2
    hit = await client.get_response(messages=msgs)
    assert hit["cached"] is True and hit["status"] == 200
    assert server.count("chat") == 2


async def test_cache_errors_stores_request_failures_only(harness: Harness, server: FakeOpenAI):
    # No limiter: it slows down the call after a 5xx, which is not what this test is about.
    client = harness.client(rate_limit_backend=None)
    msgs = ask("This request is rejected and the rejection is cached.")
    server.fail_next(status=400)
    failed = await client.get_response(messages=msgs, cache_errors=True)
    assert failed["status"] == 400 and failed["cached"] is False
    assert server.count("chat") == 1

    replayed = await client.get_response(messages=msgs, cache_errors=True)
    assert replayed["status"] == 400
    assert replayed["cached"] is True and replayed["attempts"] == 0
    assert replayed["error"] == failed["error"]
    assert server.count("chat") == 1

    # A stored failure is served only to calls that ask for cache_errors.
    ok = await client.get_response(messages=msgs)
    assert ok["status"] == 200 and ok["cached"] is False
    assert server.count("chat") == 2
    hit = await client.get_response(messages=msgs)
    assert hit["status"] == 200 and hit["cached"] is True
    assert server.count("chat") == 2

    # An input over the model's limit is bad input: it raises before anything is sent, every
    # time, and is never stored, even with cache_errors.
    tiny = dataclasses.replace(GPT5Nano, key="gpt-5-nano-e2e-tiny", max_input=20)
    small = harness.client(tiny, rate_limit_backend=None)
    long_prompt = ask("word " * 50)
    before = server.count("chat")
    for _ in range(2):
        with pytest.raises(ContextLengthExceededError, match="at most 20 input tokens"):
            await small.get_response(messages=long_prompt, cache_errors=True)
    with pytest.raises(ContextLengthExceededError):
        await small.get_response(messages=long_prompt)
    assert server.count("chat") == before

    # Conflicts and server errors describe a moment, not the request: never stored.
    for n, status in enumerate((409, 500)):
        transient = ask(f"A transient failure, number {n}.")
        server.fail_next(status=status)
        first = await client.get_response(messages=transient, cache_errors=True, attempts=1)
        assert first["status"] == status
        before = server.count("chat")
        second = await client.get_response(messages=transient, cache_errors=True, attempts=1)
        assert second["status"] == 200 and second["cached"] is False
        assert server.count("chat") == before + 1


# -- 6. identifiers ---------------------------------------------------------------------------


async def test_identifier_override_and_hash_as_identifier_false(
    harness: Harness, server: FakeOpenAI
):
    client = harness.client()
    apples = await client.get_response(messages=ask("Tell me about apples."), identifier="fruit")
    pears = await client.get_response(messages=ask("Tell me about pears."), identifier="fruit")
    assert apples["cached"] is False and pears["cached"] is True
    assert pears["output"] == apples["output"] == expected_text(ask("Tell me about apples."))
    assert apples["identifier"] == pears["identifier"] == "fruit"
    assert server.count("chat") == 1

    msgs = ask("Never cache this one.")
    for n in range(3):
        r = await client.get_response(messages=msgs, hash_as_identifier=False)
        assert r["status"] == 200 and r["cached"] is False
        assert server.count("chat") == 2 + n
    assert [e.key for e in await entries(client)] == ["fruit"]
    if harness.backend == "fs":  # the seed's layout: <cache_dir>/<collection>/<identifier>.json
        path = harness.options()["cache_dir"] / harness.collection / "fruit.json"
        assert await asyncio.to_thread(path.is_file)

    # any text is a usable identifier; on disk none of them escapes the cache folder
    hostile = [
        "../../outside",
        "/etc/passwd",
        "reports/q1",
        "ключ ü/日本",
        "x" * 300,
        "a'; DROP TABLE users; --",
        "C:\\windows\\..\\path",
    ]
    for n, identifier in enumerate(hostile):
        miss = await client.get_response(messages=ask(f"hostile {n}"), identifier=identifier)
        hit = await client.get_response(messages=ask(f"other {n}"), identifier=identifier)
        assert miss["cached"] is False and hit["cached"] is True, identifier
        assert hit["identifier"] == identifier and hit["output"] == miss["output"]
    assert sorted(e.key for e in await entries(client)) == sorted(["fruit", *hostile])
    if harness.backend == "fs":
        root = harness.options()["cache_dir"]
        files = await asyncio.to_thread(lambda: [p for p in root.rglob("*") if p.is_file()])
        assert all(p.is_relative_to(root / harness.collection) for p in files), files
        assert not (harness.tmp_path / "outside.json").exists()
    calls = server.count("chat")

    # hash_as_identifier=False does not read an existing entry either
    stored = ask("Cached, but bypassed on request.")
    await client.get_response(messages=stored)
    before = server.count("chat")
    bypassed = await client.get_response(messages=stored, hash_as_identifier=False)
    assert bypassed["cached"] is False
    assert server.count("chat") == before + 1 == calls + 2


# -- 7. streams -------------------------------------------------------------------------------


async def test_streams_store_and_replay(harness: Harness, server: FakeOpenAI):
    client = harness.client()
    msgs = ask("Tell a long story about a lighthouse keeper, the sea and a lost ship at night.")

    live = [event async for event in client.stream(messages=msgs)]
    assert live[0].type == "meta" and live[0].data["cached"] is False
    assert live[-1].type == "done"
    assert text_of(live) == expected_text(msgs)
    assert server.count("chat") == 1
    assert server.last_request("chat").stream
    live_result = live[-1].result
    assert live_result is not None and live_result.status == 200
    assert live_result.usage.total_cost > 0

    replayed = [event async for event in client.stream(messages=msgs)]
    types = [event.type for event in replayed]
    assert types[0] == "meta" and replayed[0].data["cached"] is True
    assert replayed[0].data["identifier"] == live[0].data["identifier"]
    assert types[-2:] == ["usage", "done"]
    assert set(types[1:-2]) == {"text_delta"}
    assert text_of(replayed) == expected_text(msgs)
    usage = replayed[-2].data
    assert usage["total_cost"] == 0 and usage["saved_cost"] > 0
    assert usage["saved_cost"] == pytest.approx(live_result.usage.total_cost)
    done = replayed[-1].result
    assert done is not None and done.cached and done.attempts == 0
    assert done.output == expected_text(msgs)
    assert server.count("chat") == 1

    plain = await client.get_response(messages=msgs)
    assert plain["cached"] is True and plain["output"] == expected_text(msgs)
    assert server.count("chat") == 1

    # stream options: cache_response=False stores nothing, regen_cache replaces the entry
    unstored = ask("A stream that is not kept.")
    kept = [event async for event in client.stream(messages=unstored, cache_response=False)]
    assert kept[-1].type == "done"
    assert (await client.get_response(messages=unstored))["cached"] is False
    assert server.count("chat") == 3
    regen = [event async for event in client.stream(messages=msgs, regen_cache=True)]
    assert regen[0].data["cached"] is False and regen[-1].type == "done"
    assert server.count("chat") == 4
    regen_result = regen[-1].result
    assert regen_result is not None
    latest = await client.get_response(messages=msgs)
    assert latest["cached"] is True
    assert latest["response_id"] == regen_result.response_id != live_result.response_id
    chat_calls = server.count("chat")

    # and the other way round: a stream replays what a plain call stored
    other = ask("A plain call first, then a stream.")
    stored = await client.get_response(messages=other)
    assert stored["cached"] is False
    events = [event async for event in client.stream(messages=other)]
    assert events[0].data["cached"] is True and events[-1].type == "done"
    assert text_of(events) == stored["output"]
    assert server.count("chat") == chat_calls + 1


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}


async def test_tool_calls_and_responses_streams_round_trip(harness: Harness, server: FakeOpenAI):
    client = harness.client()
    msgs = ask("Use get_weather for Paris, please.")
    first = await client.get_response(messages=msgs, tools=[WEATHER_TOOL])
    assert first["finish_reason"] == "tool_calls"
    assert [t["name"] for t in first["tool_calls"]] == ["get_weather"]
    assert json.loads(first["tool_calls"][0]["arguments"]) == {"city": "fake_city", "unit": "c"}
    hit = await client.get_response(messages=msgs, tools=[WEATHER_TOOL])
    assert hit["cached"] is True
    assert hit["tool_calls"] == first["tool_calls"]
    assert hit["finish_reason"] == "tool_calls"
    events = [event async for event in client.stream(messages=msgs, tools=[WEATHER_TOOL])]
    deltas = [e.data for e in events if e.type == "tool_call_delta"]
    assert events[0].data["cached"] is True
    assert deltas == [{"index": 0, **first["tool_calls"][0]}]
    # without the tool it is another request
    plain = await client.get_response(messages=msgs)
    assert plain["cached"] is False and plain["tool_calls"] == []
    assert server.count("chat") == 2

    # Responses API streams are stored and replayed the same way
    question = "What does the Responses API say?"
    live = [event async for event in client.stream(input=question, api="responses")]
    assert live[-1].type == "done" and live[0].data["cached"] is False
    assert server.count("responses") == 1
    replayed = [event async for event in client.stream(input=question, api="responses")]
    assert replayed[0].data["cached"] is True and replayed[-1].type == "done"
    assert text_of(replayed) == text_of(live) == expected_text(question)
    again = await client.get_response(input=question, api="responses")
    assert again["cached"] is True and again["output"] == expected_text(question)
    assert server.count("responses") == 1


async def test_failed_or_abandoned_streams_store_nothing(harness: Harness, server: FakeOpenAI):
    client = harness.client()
    msgs = ask("A story that is cut off half way through, about a very long journey home.")
    server.truncate_next(after_chunks=2, endpoint="chat")
    cut = [event async for event in client.stream(messages=msgs)]
    assert cut[-1].type == "error"
    assert server.count("chat") == 1
    assert await entries(client) == []
    whole = [event async for event in client.stream(messages=msgs)]
    assert whole[0].data["cached"] is False and whole[-1].type == "done"
    assert server.count("chat") == 2
    assert len(await entries(client)) == 1

    # a consumer that stops reading early leaves nothing behind
    other = ask("A stream nobody reads to the end, about mountains, rivers and the sky.")
    stream = client.stream(messages=other)
    async for event in stream:
        if event.type == "text_delta":
            break
    await stream.aclose()
    assert server.count("chat") == 3
    after = await client.get_response(messages=other)
    assert after["cached"] is False and after["status"] == 200
    assert server.count("chat") == 4

    # a request failure stored with cache_errors replays as meta + error
    rejected = ask("A stream the API rejects.")
    server.fail_next(status=400)
    failed = [event async for event in client.stream(messages=rejected, cache_errors=True)]
    assert failed[-1].type == "error" and failed[-1].data["status"] == 400
    assert server.count("chat") == 5
    replayed = [event async for event in client.stream(messages=rejected, cache_errors=True)]
    assert [event.type for event in replayed] == ["meta", "error"]
    assert replayed[0].data["cached"] is True and replayed[1].data["status"] == 400
    assert server.count("chat") == 5


async def test_stats_and_clear_through_the_client(harness: Harness, server: FakeOpenAI):
    client = harness.client()
    for n in range(3):
        await client.get_response(messages=ask(f"Question number {n}."))
    assert (await cache_stats(client))["entries"] == 3
    assert await client.cache.clear() == 3
    assert (await cache_stats(client))["entries"] == 0
    assert await entries(client) == []
    # the cache goes on working after a clear
    again = await client.get_response(messages=ask("Question number 0."))
    assert again["cached"] is False
    assert (await client.get_response(messages=ask("Question number 0.")))["cached"] is True
    assert server.count("chat") == 4
    assert (await cache_stats(client))["entries"] == 1


# -- 8. expiry --------------------------------------------------------------------------------


async def test_ttl_expires_entries(harness: Harness, server: FakeOpenAI):
    # Every backend supports expiry (docs/caching.md, docs/cache-backends.md).
    client = harness.client(cache_ttl=1)
    msgs = ask("How long does this answer live?")
    first = await client.get_response(messages=msgs)
    hit = await client.get_response(messages=msgs)
    assert first["cached"] is False and hit["cached"] is True
    assert server.count("chat") == 1

    await asyncio.sleep(1.1)
    expired = await client.get_response(messages=msgs)
    assert expired["cached"] is False and expired["status"] == 200
    assert server.count("chat") == 2
    renewed = await client.get_response(messages=msgs)
    assert renewed["cached"] is True
    assert server.count("chat") == 2


# -- 9. warm, close, persistence --------------------------------------------------------------


async def _pg_sessions(application_name: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(PG_DSN)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                application_name,
            )
        )
    finally:
        await conn.close()


async def test_warm_close_and_persistence(harness: Harness, server: FakeOpenAI):
    client = harness.client(persistent=True)
    await client.warm_cache()
    msgs = ask("Does this survive a restart?")
    first = await client.get_response(messages=msgs)
    assert first["status"] == 200 and first["cached"] is False
    assert (await client.get_response(messages=msgs))["cached"] is True
    await harness.close(client)
    await client.close()  # closing twice is harmless

    if harness.backend == "sqlite":  # the last connection closed checkpoints the WAL away
        wal = harness.options()["cache_dir"] / "llm_cache.sqlite3-wal"
        assert not await asyncio.to_thread(wal.exists)
    if harness.backend in ("postgres", "pg_redis"):
        name = harness.options()["pg_application_name"]
        for _ in range(40):  # the server notices closed sessions a moment later
            if await _pg_sessions(name) == 0:
                break
            await asyncio.sleep(0.05)
        assert await _pg_sessions(name) == 0, "close() left PostgreSQL sessions open"

    if harness.backend not in PERSISTENT:
        return
    # Another collection on the same store shares nothing.
    neighbour = harness.client(persistent=True, cache_collection=harness.extra_collection())
    elsewhere = await neighbour.get_response(messages=msgs)
    assert elsewhere["cached"] is False
    assert server.count("chat") == 2
    await harness.close(neighbour)

    # A new client on the same store (for embedded Qdrant this also needs the first client to
    # have released its folder lock).
    reopened = harness.client(persistent=True)
    await reopened.warm_cache()
    again = await reopened.get_response(messages=msgs)
    assert again["cached"] is True
    assert again["output"] == first["output"]
    assert again["response_id"] == first["response_id"]
    assert len(await entries(reopened)) == 1
    assert server.count("chat") == 2


# -- 10. single-flight ------------------------------------------------------------------------


async def test_single_flight_fifty_identical_calls_one_request(
    harness: Harness, server: FakeOpenAI
):
    client = harness.client()
    msgs = ask("Everyone asks this at the same moment.")
    server.delay_next(0.1, endpoint="chat")
    results = await asyncio.gather(*(client.get_response(messages=msgs) for _ in range(50)))
    assert server.count("chat") == 1
    assert all(r["status"] == 200 for r in results)
    assert {r["output"] for r in results} == {expected_text(msgs)}
    assert len({r["response_id"] for r in results}) == 1
    assert sum(not r["cached"] for r in results) == 1
    assert all(r["attempts"] == 0 for r in results if r["cached"])
    assert len(await entries(client)) == 1


async def test_single_flight_waiters_survive_a_failed_or_cancelled_peer(
    harness: Harness, server: FakeOpenAI
):
    client = harness.client()
    msgs = ask("The first caller of this is rejected.")
    server.add_fault(Fault("status", status=400, delay=0.1, endpoint="chat"))
    leader = asyncio.ensure_future(client.get_response(messages=msgs))
    await _until_requests(server, 1)
    waiters = await asyncio.gather(*(client.get_response(messages=msgs) for _ in range(4)))
    first = await leader
    assert first["status"] == 400
    # the leader's failure is not handed on: each waiter carries on by itself
    assert all(w["status"] == 200 for w in waiters)
    assert all(w["output"] == expected_text(msgs) for w in waiters)
    assert server.count("chat") >= 2

    # a waiter that gives up (its own timeout) does not cancel the leader
    other = ask("A slow answer that one impatient caller does not wait for.")
    server.delay_next(0.2, endpoint="chat")
    before = server.count("chat")
    slow = asyncio.ensure_future(client.get_response(messages=other))
    await _until_requests(server, before + 1)
    impatient = await client.get_response(messages=other, timeout=0.05)
    assert impatient["status"] == 408
    done = await slow
    assert done["status"] == 200 and done["cached"] is False
    assert (await client.get_response(messages=other))["cached"] is True
    assert server.count("chat") == before + 1


async def test_single_flight_streams_wait_for_an_in_flight_plain_call(
    harness: Harness, server: FakeOpenAI
):
    client = harness.client()
    msgs = ask("Plain calls and streams, all at once.")

    async def streamed() -> list[LLMEvent]:
        return [event async for event in client.stream(messages=msgs)]

    server.delay_next(0.1, endpoint="chat")
    plain = [asyncio.ensure_future(client.get_response(messages=msgs)) for _ in range(10)]
    streams = [asyncio.ensure_future(streamed()) for _ in range(10)]
    await asyncio.gather(*plain, *streams)
    assert server.count("chat") == 1
    assert {task.result()["output"] for task in plain} == {expected_text(msgs)}
    for task in streams:
        events = task.result()
        assert events[0].data["cached"] is True and events[-1].type == "done"
        assert text_of(events) == expected_text(msgs)


# -- 13. wrong-shaped entries -----------------------------------------------------------------

#: Values another program (or an older version, or a hand edit) could leave under a key: each
#: is valid JSON, none is a result this library wrote.
WRONG_SHAPES: dict[str, Any] = {
    "empty object": {},
    "boolean status": {"status": True},
    "status out of range": {"status": 99},
    "tool_calls as text": {"tool_calls": "abc"},
    "tool_call without an object": {"tool_calls": [1]},
    "cost as text": {"usage": {"input_tokens": 3, "total_cost": "cheap", "output_cost": "x"}},
    "negative tokens": {"usage": {"input_tokens": -4}},
    "number as output": {"output": 42},
    "usage as a list": {"usage": [1, 2]},
    "another operation": {"operation": "embeddings"},
}


@pytest.mark.parametrize("harness", ["memory", "sqlite", "redis", "pg_redis"], indirect=True)
async def test_wrong_shaped_entries_are_a_logged_miss_and_get_overwritten(
    harness: Harness, server: FakeOpenAI, caplog: pytest.LogCaptureFixture
):
    client = harness.client()
    caplog.set_level(logging.WARNING, CACHE_LOGGER)
    for n, (shape, patch) in enumerate(sorted(WRONG_SHAPES.items()), start=1):
        msgs = ask(f"Shape check: {shape}.")
        first = await client.get_response(messages=msgs)
        stored = next(e for e in await entries(client) if e.value["output"] == first["output"])
        value = {} if not patch else {**stored.value, **patch}
        await client.cache.put(dataclasses.replace(stored, value=value))

        caplog.clear()
        again = await client.get_response(messages=msgs)
        assert again["status"] == 200 and again["cached"] is False, (shape, again)
        assert again["output"] == first["output"] == expected_text(msgs)
        assert server.count("chat") == 2 * n
        assert any("not a valid chat result" in r.getMessage() for r in caplog.records), shape
        assert client.stats()["cache"]["invalid"] == n

        third = await client.get_response(messages=msgs)  # the answer replaced the bad entry
        assert third["cached"] is True and third["output"] == first["output"], shape
        assert server.count("chat") == 2 * n


@pytest.mark.parametrize("harness", ["memory"], indirect=True)
async def test_wrong_shaped_embedding_entries_are_a_miss(harness: Harness, server: FakeOpenAI):
    client = harness.client(TextEmbedding3Small)
    first = await client.get_response(input="embed me")
    [stored] = await entries(client)
    for bad in ("text", [], [1.0, "x"], [1.0, True], [[1.0], ["x"]], None):
        await settle(client)  # the previous answer's store is done: overwrite it
        await client.cache.put(dataclasses.replace(stored, value={**stored.value, "output": bad}))
        again = await client.get_response(input="embed me")
        assert again["cached"] is False and again["output"] == first["output"], bad
    hit = await client.get_response(input="embed me")
    assert hit["cached"] is True and hit["output"] == embed_text("embed me")


# -- 12. secrets ------------------------------------------------------------------------------


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_api_key_never_reaches_the_store(
    harness: Harness, server: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    secret = "sk-test-SECRET-123456789012345"
    client = harness.client(api_key=secret)
    plain = await client.get_response(messages=ask("An ordinary question."))
    caplog.set_level(logging.WARNING, CACHE_LOGGER)
    echoed_msgs = ask(f"Please repeat my key {secret} back.")
    echoed = await client.get_response(messages=echoed_msgs)
    assert plain["status"] == echoed["status"] == 200
    assert echoed["output"] == expected_text(echoed_msgs)  # the answer itself is untouched
    assert server.last_request("chat").headers["authorization"] == f"Bearer {secret}"

    stored = await entries(client)
    assert len(stored) == 1  # the entry holding the key was not stored at all
    assert "SECRET-123456789012345" not in json.dumps([entry.to_dict() for entry in stored])
    refusals = [r for r in caplog.records if "not caching an answer" in r.getMessage()]
    assert len(refusals) == 1 and "API key" in refusals[0].getMessage()
    assert secret not in caplog.text
    assert client.stats()["cache"]["refused"] == 1

    # for the file-based stores, not even the bytes on disk hold it
    assert await asyncio.to_thread(_files_holding, tmp_path, secret.encode()) == []

    hit = await client.get_response(messages=ask("An ordinary question."))
    assert hit["cached"] is True
    again = await client.get_response(messages=echoed_msgs)
    assert again["cached"] is False and again["output"] == echoed["output"]


ANSWERS_THAT_LOOK_SECRET = (
    "how do I tune postgres?",  # POSTGRES_PASSWORD=postgres is set below
    "what does Authorization: Bearer abcdef1234567890XYZ mean?",
    "is sk-proj-ABCDEFGHIJ0123456789KLMN a real key?",
    "connect to postgresql://me:hunter2hunter2@db/x please",
)


async def test_hits_equal_misses_even_when_the_text_looks_secret(
    harness: Harness, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("POSTGRES_PASSWORD", "postgres")  # a common development setting
    client = harness.client()
    for question in ANSWERS_THAT_LOOK_SECRET:
        msgs = ask(question)
        miss = await client.get_response(messages=msgs)
        hit = await client.get_response(messages=msgs)
        assert miss["cached"] is False and hit["cached"] is True, question
        assert hit["output"] == miss["output"] == expected_text(msgs)
        assert hit["params"]["messages"] == msgs
    streamed = [e async for e in client.stream(messages=ask(ANSWERS_THAT_LOOK_SECRET[0]))]
    assert streamed[0].data["cached"] is True
    assert text_of(streamed) == expected_text(ask(ANSWERS_THAT_LOOK_SECRET[0]))
    assert server.count("chat") == len(ANSWERS_THAT_LOOK_SECRET)


async def test_an_environment_secret_in_the_text_means_no_entry(
    harness: Harness, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
):
    token = "tok-4f9a27c1e8b3d605"
    monkeypatch.setenv("BILLING_SERVICE_TOKEN", token)
    client = harness.client()
    msgs = ask(f"my token is {token}, keep it safe")
    first = await client.get_response(messages=msgs)
    second = await client.get_response(messages=msgs)
    assert first["output"] == second["output"] == expected_text(msgs)
    assert first["cached"] is second["cached"] is False
    assert server.count("chat") == 2
    assert token not in json.dumps([e.to_dict() for e in await entries(client)])


# -- 11. degradation --------------------------------------------------------------------------


def _warnings(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and (r.name == logger or r.name.startswith(logger + "."))
    ]


async def test_pg_redis_with_redis_down_caches_in_postgres(
    server: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    _require_backend("postgres")  # PostgreSQL only: Redis is the part that is down
    caplog.set_level(logging.INFO)
    harness = Harness("pg_redis", server, tmp_path)
    port = free_port()
    try:
        client = harness.client(redis_url=f"redis://127.0.0.1:{port}/0")
        msgs = ask("Cached in PostgreSQL while Redis is away.")
        results = [await client.get_response(messages=msgs) for _ in range(5)]
        assert all(r["status"] == 200 for r in results)
        assert [r["cached"] for r in results] == [False, True, True, True, True]
        assert server.count("chat") == 1
        assert len(await entries(client)) == 1
        stats = await cache_stats(client)
        assert stats["redis_up"] is False and stats["postgres_up"] is True

        redis_warnings = _warnings(caplog, "llm_client_postgres")
        assert len(redis_warnings) == 1, [r.getMessage() for r in redis_warnings]
        assert "Redis" in redis_warnings[0].getMessage()
        assert str(port) in redis_warnings[0].getMessage()
        assert _warnings(caplog, CACHE_LOGGER) == []  # the backend carried on: no outage
    finally:
        await harness.aclose()


async def test_pg_redis_with_postgres_down_serves_from_redis(
    server: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    _require_backend("pg_redis")  # PostgreSQL is needed for the clean-up only
    caplog.set_level(logging.INFO)
    harness = Harness("pg_redis", server, tmp_path)
    port = free_port()
    try:
        client = harness.client(pg_dsn=f"postgresql://postgres@127.0.0.1:{port}/test")
        msgs = ask("Cached in Redis alone while PostgreSQL is away.")
        results = [await client.get_response(messages=msgs) for _ in range(4)]
        assert all(r["status"] == 200 for r in results)
        assert [r["cached"] for r in results] == [False, True, True, True]
        assert server.count("chat") == 1
        stats = await cache_stats(client)
        assert stats["postgres_up"] is False and stats["redis_up"] is True

        pg_warnings = _warnings(caplog, "llm_client_postgres")
        assert len(pg_warnings) == 1, [r.getMessage() for r in pg_warnings]
        assert "PostgreSQL" in pg_warnings[0].getMessage()
        assert _warnings(caplog, CACHE_LOGGER) == []
    finally:
        await harness.aclose()


@pytest.mark.parametrize(
    ("backend", "logger"),
    [("redis", "llm_client_redis"), ("postgres", "llm_client_postgres")],
)
async def test_only_service_down_calls_go_on_uncached(
    backend: str,
    logger: str,
    server: FakeOpenAI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    _require_backend(backend, services=False)  # the service is meant to be missing
    caplog.set_level(logging.INFO)
    port = free_port()
    harness = Harness(backend, server, tmp_path)
    harness.cleanup = False  # nothing can have been stored
    if backend == "redis":
        broken = {"redis_url": f"redis://127.0.0.1:{port}/0"}
    else:
        broken = {"pg_dsn": f"postgresql://postgres@127.0.0.1:{port}/test"}
    try:
        client = harness.client(**broken)
        msgs = ask("Answered although the cache is down.")
        results = [await client.get_response(messages=msgs) for _ in range(4)]
        streamed = [event async for event in client.stream(messages=msgs)]
        assert all(r["status"] == 200 and r["error"] == "OK" for r in results)
        assert all(r["cached"] is False for r in results)
        assert all(r["output"] == expected_text(msgs) for r in results)
        assert streamed[-1].type == "done" and text_of(streamed) == expected_text(msgs)
        assert server.count("chat") == 5

        middleware = _warnings(caplog, CACHE_LOGGER)
        assert len(middleware) == 1, [r.getMessage() for r in middleware]
        assert repr(backend) in middleware[0].getMessage()
        service = _warnings(caplog, logger)
        assert len(service) == 1, [r.getMessage() for r in service]
        assert str(port) in service[0].getMessage()
    finally:
        await harness.aclose()
