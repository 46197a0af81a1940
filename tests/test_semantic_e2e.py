"""The semantic cache end to end: ``OpenAIClient`` with ``semantic_cache_threshold`` against
the fake OpenAI server, whose embeddings are hashed bags of words.

With such embeddings the cosine similarity of two prompts is their word overlap,
``|A ∩ B| / sqrt(|A| |B|)`` for prompts without repeated words, so every expected hit and miss
below can be checked against :func:`llm_client.testing.embed_text` before it is asserted.
Both semantic-capable backends run: ``qdrant`` (embedded, ``:memory:``) and ``memory``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from llm_client import GPT5Nano, ModelProfile, OpenAIClient, TextEmbedding3Small
from llm_client.middleware.cache import CacheMiddleware
from llm_client.plugins import get_registry
from llm_client.testing import FakeOpenAI, embed_text, expected_text

THRESHOLD = 0.8
ORIGINAL = "recommend a good book about ancient rome"
#: the same words plus one: similarity 7 / sqrt(7 * 8) ~ 0.935
PARAPHRASE = "please recommend a good book about ancient rome"
#: same template, different key words: similarity 5 / 7 ~ 0.714
NEAR_MISS = "recommend a good book about modern japan"
SYSTEM = "You are a librarian."


def cosine(a: str, b: str) -> float:
    va, vb = embed_text(a), embed_text(b)
    return math.fsum(x * y for x, y in zip(va, vb, strict=True))


def ask(text: str, system: str = SYSTEM) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


class Clients:
    def __init__(self, backend: str, server: FakeOpenAI) -> None:
        self.backend = backend
        self.server = server
        self.made: list[OpenAIClient] = []

    def __call__(self, model: ModelProfile = GPT5Nano, **options: Any) -> OpenAIClient:
        if self.backend == "qdrant" and "qdrant_path" not in options:
            options.setdefault("qdrant_location", ":memory:")
        options.setdefault("api_key", "sk-test")
        client = OpenAIClient(
            model,
            cache_backend=self.backend,
            cache_collection="semantic_e2e",
            base_url=self.server.base_url,
            **options,
        )
        self.made.append(client)
        return client

    async def aclose(self) -> None:
        for client in self.made:
            await client.close()


@pytest.fixture(params=["qdrant", "memory"])
async def make_client(request: pytest.FixtureRequest, server: FakeOpenAI) -> AsyncIterator[Clients]:
    if request.param not in get_registry().cache_backends:
        pytest.skip(f"cache backend {request.param!r} is not installed (llm-client-qdrant)")
    clients = Clients(request.param, server)
    try:
        yield clients
    finally:
        await clients.aclose()


def test_the_prompts_are_what_the_tests_say():
    assert cosine(ORIGINAL, PARAPHRASE) == pytest.approx(7 / math.sqrt(56), abs=1e-4)
    assert cosine(ORIGINAL, PARAPHRASE) >= THRESHOLD
    assert cosine(ORIGINAL, NEAR_MISS) == pytest.approx(5 / 7, abs=1e-4)
    assert cosine(ORIGINAL, NEAR_MISS) < THRESHOLD


async def test_a_paraphrase_hits(make_client: Clients, server: FakeOpenAI):
    client = make_client(semantic_cache_threshold=THRESHOLD)
    first = await client.get_response(messages=ask(ORIGINAL))
    assert first["status"] == 200 and first["cached"] is False
    assert first["cache_similarity"] is None
    assert server.count("chat") == 1
    assert server.count("embeddings") == 1  # the prompt, embedded once for lookup and store
    assert server.last_request("embeddings").json["input"] == ORIGINAL
    assert server.last_request("embeddings").json["model"] == "text-embedding-3-small"

    hit = await client.get_response(messages=ask(PARAPHRASE))
    assert hit["status"] == 200
    assert hit["cached"] is True and hit["attempts"] == 0
    assert hit["output"] == first["output"] == expected_text(ask(ORIGINAL))
    assert hit["cache_similarity"] >= THRESHOLD
    assert hit["cache_similarity"] == pytest.approx(cosine(ORIGINAL, PARAPHRASE), abs=1e-3)
    assert hit["identifier"] == first["identifier"]
    assert hit["usage"]["total_cost"] == 0
    assert hit["usage"]["saved_cost"] == pytest.approx(first["usage"]["total_cost"])
    assert server.count("chat") == 1
    assert server.count("embeddings") == 2

    # the identical prompt is an exact hit: no embedding needed
    exact = await client.get_response(messages=ask(ORIGINAL))
    assert exact["cached"] is True and exact["cache_similarity"] is None
    assert server.count("embeddings") == 2

    # a stream of the paraphrase replays the stored answer as well
    events = [event async for event in client.stream(messages=ask(PARAPHRASE))]
    assert events[0].type == "meta" and events[0].data["cached"] is True
    assert events[-1].type == "done"
    assert "".join(e.data["text"] for e in events if e.type == "text_delta") == first["output"]
    assert server.count("chat") == 1
    stats = client.pipeline["cache"].stats()  # type: ignore[attr-defined]
    assert stats["semantic_hits"] == 2


async def test_a_near_miss_does_not_hit(make_client: Clients, server: FakeOpenAI):
    client = make_client(semantic_cache_threshold=THRESHOLD)
    await client.get_response(messages=ask(ORIGINAL))
    other = await client.get_response(messages=ask(NEAR_MISS))
    assert other["cached"] is False and other["cache_similarity"] is None
    assert other["output"] == expected_text(ask(NEAR_MISS))
    assert server.count("chat") == 2
    # both are stored: each one's paraphrase now hits its own answer
    hit = await client.get_response(messages=ask(f"please {NEAR_MISS}"))
    assert hit["cached"] is True and hit["output"] == other["output"]
    assert server.count("chat") == 2


async def test_a_different_scope_never_hits(make_client: Clients, server: FakeOpenAI):
    client = make_client(semantic_cache_threshold=THRESHOLD)
    await client.get_response(messages=ask(ORIGINAL))

    warmer = await client.get_response(messages=ask(ORIGINAL), temperature=0.7)
    assert warmer["cached"] is False
    assert server.count("chat") == 2
    paraphrase_warmer = await client.get_response(messages=ask(PARAPHRASE), temperature=0.3)
    assert paraphrase_warmer["cached"] is False
    assert server.count("chat") == 3
    other_system = await client.get_response(messages=ask(PARAPHRASE, "You are a chef."))
    assert other_system["cached"] is False
    assert server.count("chat") == 4
    responses_api = await client.get_response(messages=ask(PARAPHRASE), api="responses")
    assert responses_api["cached"] is False
    assert server.count("responses") == 1

    # within its own scope the temperature=0.7 answer is found again by a paraphrase
    same_scope = await client.get_response(messages=ask(PARAPHRASE), temperature=0.7)
    assert same_scope["cached"] is True
    assert same_scope["response_id"] == warmer["response_id"]
    assert server.count("chat") == 4


async def test_without_a_threshold_there_are_no_semantic_hits(
    make_client: Clients, server: FakeOpenAI
):
    client = make_client()
    first = await client.get_response(messages=ask(ORIGINAL))
    paraphrase = await client.get_response(messages=ask(PARAPHRASE))
    assert first["cached"] is False and paraphrase["cached"] is False
    assert paraphrase["cache_similarity"] is None
    assert server.count("chat") == 2
    assert server.count("embeddings") == 0  # nothing is embedded at all
    assert (await client.get_response(messages=ask(ORIGINAL)))["cached"] is True


async def test_an_explicit_identifier_skips_semantic_lookup(
    make_client: Clients, server: FakeOpenAI
):
    client = make_client(semantic_cache_threshold=THRESHOLD)
    await client.get_response(messages=ask(ORIGINAL), identifier="rome")
    assert server.count("embeddings") == 0
    other = await client.get_response(messages=ask(PARAPHRASE), identifier="rome-again")
    assert other["cached"] is False
    assert server.count("chat") == 2 and server.count("embeddings") == 0
    shared = await client.get_response(messages=ask(NEAR_MISS), identifier="rome")
    assert shared["cached"] is True and shared["cache_similarity"] is None


async def test_the_prompt_is_the_last_user_turn(make_client: Clients, server: FakeOpenAI):
    client = make_client(semantic_cache_threshold=THRESHOLD)
    # Responses API with a plain input string: the string is the prompt
    first = await client.get_response(input=ORIGINAL, api="responses")
    hit = await client.get_response(input=PARAPHRASE, api="responses")
    assert first["cached"] is False and hit["cached"] is True
    assert hit["output"] == first["output"] == expected_text(ORIGINAL)
    assert server.count("responses") == 1

    # earlier turns are part of the scope: a paraphrase after another history misses
    history = [
        {"role": "user", "content": "I like history."},
        {"role": "assistant", "content": "Noted."},
    ]
    chat = await client.get_response(messages=[*history, *ask(ORIGINAL)[1:]])
    same_history = await client.get_response(messages=[*history, *ask(PARAPHRASE)[1:]])
    assert chat["cached"] is False and same_history["cached"] is True
    other_history = [history[0], {"role": "assistant", "content": "Noted!"}]
    other = await client.get_response(messages=[*other_history, *ask(PARAPHRASE)[1:]])
    assert other["cached"] is False
    assert server.count("chat") == 2


async def test_prompts_with_the_api_key_are_not_stored(make_client: Clients, server: FakeOpenAI):
    secret = "sk-test-SECRET-123456789012345"
    client = make_client(semantic_cache_threshold=THRESHOLD, api_key=secret)
    prompt = f"my key is {secret} so recommend a good book about ancient rome"
    first = await client.get_response(messages=ask(prompt))
    assert first["status"] == 200
    await client.pipeline.find(CacheMiddleware).flush()
    assert [entry async for entry in client.cache.export()] == []
    miss = await client.get_response(messages=ask(f"please {prompt}"))
    assert miss["cached"] is False
    assert server.count("chat") == 2


async def test_embeddings_calls_are_never_semantic(make_client: Clients, server: FakeOpenAI):
    embedder = make_client(model=TextEmbedding3Small, semantic_cache_threshold=THRESHOLD)
    first = await embedder.get_response(input=ORIGINAL)
    again = await embedder.get_response(input=ORIGINAL)
    near = await embedder.get_response(input=PARAPHRASE)
    assert (first["cached"], again["cached"], near["cached"]) == (False, True, False)
    assert near["output"] == embed_text(PARAPHRASE)
    assert server.count("embeddings") == 2  # the two real calls; no lookup embeddings


@pytest.mark.parametrize("backend", ["sqlite", "fs"])
async def test_backends_without_vector_search_ignore_the_threshold(
    backend: str, server: FakeOpenAI, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="llm_client.middleware.cache")
    client = OpenAIClient(
        GPT5Nano,
        cache_backend=backend,
        cache_dir=tmp_path,
        semantic_cache_threshold=THRESHOLD,
        base_url=server.base_url,
        api_key="sk-test",
    )
    try:
        await client.get_response(messages=ask(ORIGINAL))
        paraphrase = await client.get_response(messages=ask(PARAPHRASE))
        exact = await client.get_response(messages=ask(ORIGINAL))
    finally:
        await client.close()
    assert paraphrase["cached"] is False and exact["cached"] is True
    assert server.count("chat") == 2 and server.count("embeddings") == 0
    notes = [r for r in caplog.records if "semantic caching is off" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO


async def test_a_rewritten_entry_is_never_served_by_similarity(
    make_client: Clients, server: FakeOpenAI
):
    """``rewrite_cache`` replaces the entry; a paraphrase must not get the replaced answer,
    even when the new answer had to be stored without a vector (embeddings were down)."""
    client = make_client(semantic_cache_threshold=THRESHOLD)
    old = await client.get_response(messages=ask(ORIGINAL))
    server.fail_next(status=500, endpoint="embeddings")
    new = await client.get_response(messages=ask(ORIGINAL), rewrite_cache=True)
    assert new["cached"] is False and new["response_id"] != old["response_id"]
    exact = await client.get_response(messages=ask(ORIGINAL))
    assert exact["cached"] is True and exact["response_id"] == new["response_id"]

    paraphrase = await client.get_response(messages=ask(PARAPHRASE))
    assert paraphrase["response_id"] != old["response_id"], (
        "a semantic lookup served the answer that rewrite_cache replaced"
    )
    if paraphrase["cached"]:
        assert paraphrase["response_id"] == new["response_id"]


async def test_qdrant_vectors_persist_in_a_folder(server: FakeOpenAI, tmp_path: Path):
    if "qdrant" not in get_registry().cache_backends:
        pytest.skip("cache backend 'qdrant' is not installed (llm-client-qdrant)")
    clients = Clients("qdrant", server)
    try:
        first = clients(semantic_cache_threshold=THRESHOLD, qdrant_path=str(tmp_path))
        stored = await first.get_response(messages=ask(ORIGINAL))
        await first.close()
        clients.made.remove(first)
        reopened = clients(semantic_cache_threshold=THRESHOLD, qdrant_path=str(tmp_path))
        hit = await reopened.get_response(messages=ask(PARAPHRASE))
        assert hit["cached"] is True and hit["response_id"] == stored["response_id"]
        assert hit["cache_similarity"] >= THRESHOLD
        assert server.count("chat") == 1
    finally:
        await clients.aclose()


async def test_expired_entries_are_not_found_by_similarity(
    make_client: Clients, server: FakeOpenAI
):
    client = make_client(semantic_cache_threshold=THRESHOLD, cache_ttl=1)
    await client.get_response(messages=ask(ORIGINAL))
    assert (await client.get_response(messages=ask(PARAPHRASE)))["cached"] is True
    await asyncio.sleep(1.1)
    late = await client.get_response(messages=ask(f"could you {PARAPHRASE}"))
    assert late["cached"] is False
    assert server.count("chat") == 2


async def test_embedding_failures_fall_back_to_exact_matches(
    make_client: Clients, server: FakeOpenAI, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    client = make_client(semantic_cache_threshold=THRESHOLD)
    server.fail_next(status=500, endpoint="embeddings", times=2)
    first = await client.get_response(messages=ask(ORIGINAL))
    assert first["status"] == 200 and first["cached"] is False
    exact = await client.get_response(messages=ask(ORIGINAL))
    assert exact["cached"] is True
    paraphrase = await client.get_response(messages=ask(PARAPHRASE))
    assert paraphrase["status"] == 200 and paraphrase["cached"] is False
    assert server.count("chat") == 2 and server.count("embeddings") == 2
    warnings = [
        r
        for r in caplog.records
        if r.name == "llm_client.middleware.cache" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "embedding" in warnings[0].getMessage()

    # once embeddings work again, new answers are stored with their vector and found
    fresh = "suggest three quiet walks along the river thames in london"
    await client.get_response(messages=ask(fresh))
    hit = await client.get_response(messages=ask(f"please {fresh}"))
    assert hit["cached"] is True and hit["cache_similarity"] >= THRESHOLD
    assert server.count("chat") == 3


async def test_a_hung_embedding_call_costs_the_lookup_its_share_not_the_call(
    make_client: Clients, server: FakeOpenAI, caplog: pytest.LogCaptureFixture
):
    """The prompt's embedding is bounded like a backend read (half the call's time left):
    when the embeddings endpoint hangs, the call is answered by the API within its timeout
    (before, the lookup waited and the call ended in a 408), and the answer is still stored
    with its vector once the embedding works, so a paraphrase finds it."""
    caplog.set_level(logging.INFO)
    client = make_client(semantic_cache_threshold=THRESHOLD, timeout=3)
    server.delay_next(30, endpoint="embeddings")
    first = await client.get_response(messages=ask(ORIGINAL))
    assert first["status"] == 200, first["error"]
    assert first["cached"] is False and server.count("chat") == 1
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "llm_client.middleware.cache" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1 and "no answer within" in warnings[0], warnings
    for _ in range(200):  # the background store embeds the prompt again, without a deadline
        if client.stats()["cache"]["pending_stores"] == 0:
            break
        await asyncio.sleep(0.05)
    hit = await client.get_response(messages=ask(PARAPHRASE))
    assert hit["cached"] is True and hit["cache_similarity"] >= THRESHOLD
    assert server.count("chat") == 1
