"""Exact hits decoded once per stored value (``middleware/_answers.py``), as callers see them."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_client.cache import CacheEntry, MemoryCache, SQLiteCache, cache_key
from llm_client.exceptions import ConfigurationError
from llm_client.middleware._answers import StoredAnswer, StoredAnswers
from llm_client.middleware._entries import exact_hit
from llm_client.middleware.cache import CacheMiddleware
from llm_client.models import GPT5Nano, TextEmbedding3Small
from llm_client.pipeline import CacheOptions, Call, Reply
from llm_client.result import LLMResult

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOL_CALL = {"id": "call_1", "name": "weather", "arguments": '{"city": "Paris"}'}


def make_call(*, operation: str = "chat", **options: Any) -> Call:
    if operation == "embeddings":
        return Call(
            profile=TextEmbedding3Small,
            operation="embeddings",
            params={"model": "text-embedding-3-small", "input": "Paris"},
            cache=CacheOptions(**options),
        )
    return Call(
        profile=GPT5Nano,
        operation="chat",
        params={"model": "gpt-5-nano", "messages": [dict(m) for m in MESSAGES]},
        cache=CacheOptions(**options),
    )


def stored_value(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "params": {"model": "gpt-5-nano", "messages": [dict(m) for m in MESSAGES]},
        "output": None,
        "usage": {"input_tokens": 12, "output_tokens": 7, "total_tokens": 19, "input_cost": 1e-6},
        "status": 200,
        "error": "OK",
        "operation": "chat",
        "model": "gpt-5-nano",
        "tool_calls": [dict(TOOL_CALL)],
        "finish_reason": "tool_calls",
    }
    value.update(changes)
    return value


class Unreachable:
    """The API: a test that expects hits must never get here."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, call: Call) -> Reply:
        self.calls += 1
        return LLMResult(params=call.params, output="from the API", operation=call.operation)


async def ask(mw: CacheMiddleware, call: Call, api: Unreachable | None = None) -> LLMResult:
    reply = await mw(call, api or Unreachable())
    assert isinstance(reply, LLMResult)
    return reply


async def test_hits_never_share_mutable_data() -> None:
    backend = MemoryCache()
    await backend.put(CacheEntry(key=cache_key(make_call()), value=stored_value()))
    mw = CacheMiddleware(backend)
    first = await ask(mw, make_call())
    assert first.cached and first.tool_calls == (TOOL_CALL,)
    # a caller that changes everything it was handed...
    first.params["messages"].append({"role": "user", "content": "and tomorrow?"})  # type: ignore[attr-defined]
    first.params["messages"][0]["content"] = "changed"
    first.tool_calls[0]["arguments"] = "{}"  # type: ignore[index]
    first.headers["x-added"] = "by a caller"  # type: ignore[index]
    as_dict = first.to_dict()
    as_dict["params"]["messages"].clear()
    # ...changes nothing the next caller receives
    second = await ask(mw, make_call())
    assert second.params == stored_value()["params"]
    assert second.tool_calls == (TOOL_CALL,)
    assert second.headers == {}
    assert second.params["messages"] is not first.params["messages"]
    assert second.tool_calls[0] is not first.tool_calls[0]
    assert mw.stats()["hits"] == 2 and mw.stats()["memo_entries"] == 1


async def test_an_embedding_hit_is_a_fresh_list_each_time() -> None:
    call = make_call(operation="embeddings")
    value = stored_value(
        params=dict(call.params), output=[0.5, 0.25], operation="embeddings", tool_calls=None
    )
    backend = MemoryCache()
    await backend.put(CacheEntry(key=cache_key(call), value=value))
    mw = CacheMiddleware(backend)
    first = await ask(mw, call)
    first.output.append(1.0)
    second = await ask(mw, call)
    assert second.cached and second.output == [0.5, 0.25]


async def test_a_rewritten_or_deleted_entry_is_read_again() -> None:
    backend = MemoryCache()
    key = cache_key(make_call())
    mw = CacheMiddleware(backend)
    await backend.put(CacheEntry(key=key, value=stored_value(output="first", tool_calls=None)))
    assert (await ask(mw, make_call())).output == "first"
    await backend.put(CacheEntry(key=key, value=stored_value(output="second", tool_calls=None)))
    assert (await ask(mw, make_call())).output == "second"
    await backend.delete(key)
    api = Unreachable()
    miss = await ask(mw, make_call(), api)
    assert not miss.cached and miss.output == "from the API" and api.calls == 1


async def test_a_hit_is_what_a_plain_get_makes_of_the_entry() -> None:
    """The same entry through ``get_decoded`` (memoized) and through ``get`` alone."""

    class PlainGet(MemoryCache):  # overrides get only: the step reads it through get
        async def get(self, key: str) -> CacheEntry | None:
            return await super().get(key)

    value = stored_value(output="text", finish_reason="stop")
    results = []
    for backend in (MemoryCache(), PlainGet()):
        await backend.put(CacheEntry(key=cache_key(make_call()), value=value))
        mw = CacheMiddleware(backend)
        results.append([await ask(mw, make_call()) for _ in range(2)])
        assert mw.stats()["memo_entries"] == (1 if type(backend) is MemoryCache else 0)
    assert results[0] == results[1]
    assert results[0][0].usage.saved_cost == pytest.approx(1e-6)


async def test_a_subclass_overriding_get_is_read_through_get() -> None:
    class Counting(SQLiteCache):
        gets = 0

        async def get(self, key: str) -> CacheEntry | None:
            Counting.gets += 1
            return await super().get(key)

    class Both(Counting):
        decoded = 0

        async def get_decoded(self, key: str, decode: Any) -> Any:
            Both.decoded += 1
            return await super().get_decoded(key, decode)

    for cls in (Counting, Both):
        backend = cls(":memory:")
        await backend.put(CacheEntry(key=cache_key(make_call()), value=stored_value()))
        assert (await ask(CacheMiddleware(backend), make_call())).cached
        await backend.aclose()
    assert Counting.gets == 1 and Both.decoded == 1


async def test_an_instances_own_get_is_honoured() -> None:
    backend = MemoryCache()
    await backend.put(CacheEntry(key=cache_key(make_call()), value=stored_value()))
    mw = CacheMiddleware(backend)

    async def broken(key: str) -> CacheEntry | None:
        raise ConnectionError("down")

    backend.get = broken  # type: ignore[method-assign]
    api = Unreachable()
    assert not (await ask(mw, make_call(), api)).cached and api.calls == 1
    assert mw.stats()["backend_errors"] == 1


async def test_a_get_patched_on_the_class_after_the_step_was_made_is_honoured() -> None:
    from unittest import mock

    backend = MemoryCache()
    await backend.put(CacheEntry(key=cache_key(make_call()), value=stored_value()))
    mw = CacheMiddleware(backend)
    assert (await ask(mw, make_call())).cached
    down = mock.AsyncMock(side_effect=ConnectionError("down"))
    with mock.patch.object(MemoryCache, "get", down):
        api = Unreachable()
        assert not (await ask(mw, make_call(), api)).cached and api.calls == 1
    assert down.await_count == 1 and mw.stats()["backend_errors"] == 1
    assert (await ask(mw, make_call())).cached  # unpatched: read by get_decoded again


async def test_a_wrong_shaped_entry_is_an_invalid_miss_on_every_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = MemoryCache()
    key = cache_key(make_call(identifier="fixed"))
    await backend.put(CacheEntry(key=key, value=stored_value(status="200")))
    mw = CacheMiddleware(backend)
    with caplog.at_level(logging.WARNING, logger="llm_client.middleware.cache"):
        for _ in range(2):  # the second read is of the same bytes: known to be wrong
            api = Unreachable()
            reply = await ask(mw, make_call(identifier="fixed", cache_response=False), api)
            assert not reply.cached and api.calls == 1
    assert mw.stats()["invalid"] == 2
    assert caplog.text.count("is not a valid chat result") == 2


async def test_an_entry_of_another_operation_is_invalid(caplog: pytest.LogCaptureFixture) -> None:
    backend = MemoryCache()
    await backend.put(CacheEntry(key="shared", value=stored_value(output="text")))
    mw = CacheMiddleware(backend)
    assert (await ask(mw, make_call(identifier="shared"))).cached
    embed = make_call(operation="embeddings", identifier="shared", cache_response=False)
    with caplog.at_level(logging.WARNING, logger="llm_client.middleware.cache"):
        reply = await ask(mw, embed)
    assert not reply.cached
    assert "the entry is a 'chat' result, not 'embeddings'" in caplog.text


async def test_a_stored_failure_is_served_only_to_calls_that_ask() -> None:
    backend = MemoryCache()
    failure = stored_value(output=None, tool_calls=None, status=400, error="BadRequestError: no")
    await backend.put(CacheEntry(key=cache_key(make_call()), value=failure))
    mw = CacheMiddleware(backend)
    assert (await ask(mw, make_call(cache_errors=True))).status == 400
    api = Unreachable()
    assert (await ask(mw, make_call(cache_response=False), api)).ok and api.calls == 1


def test_the_memo_is_bounded_by_the_bytes_it_keeps() -> None:
    answers = StoredAnswers(max_bytes=8 * 1024)
    entries = [
        CacheEntry(key=f"k{i}", value=stored_value(output="x" * 400), created_at=i).to_json()
        for i in range(40)
    ]
    for data in entries:
        assert answers.decode(data).key == CacheEntry.from_json(data).key
        assert answers.size <= 8 * 1024
    assert 0 < len(answers) < 40
    assert answers.decode(entries[-1]) is answers.decode(entries[-1])  # kept: the same answer
    big = CacheEntry(key="big", value=stored_value(output="x" * 2000)).to_json()
    assert answers.decode(big) is not answers.decode(big)  # over an eighth: never kept
    none = StoredAnswers(max_bytes=0)
    assert none.decode(entries[0]).hit("id").cached and len(none) == 0
    with pytest.raises(ValueError):
        answers.decode(b"not json")
    with pytest.raises(ConfigurationError, match="hit_memo_bytes"):
        CacheMiddleware(MemoryCache(), hit_memo_bytes=-1)


def test_the_memo_drops_the_least_recently_read_answer_first() -> None:
    entries = [
        CacheEntry(key=f"k{i}", value=stored_value(output="x" * 300), created_at=i).to_json()
        for i in range(9)
    ]
    size = len(entries[0])
    assert {len(e) for e in entries} == {size}
    answers = StoredAnswers(max_bytes=8 * size)  # room for eight (each is an eighth)
    first = [answers.decode(e) for e in entries[:8]]
    assert answers.decode(entries[0]) is first[0]  # read again: now the most recent
    answers.decode(entries[8])  # over budget: the least recently read one goes
    assert len(answers) == 8 and answers.size == 8 * size
    assert answers.decode(entries[0]) is first[0]
    assert answers.decode(entries[1]) is not first[1]  # k1 was dropped, decoded anew


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    extra=st.dictionaries(st.text(min_size=1), _json, max_size=4),
    output=st.text(),
    arguments=st.text(),
)
def test_a_memoized_hit_equals_one_built_from_the_decoded_entry(
    extra: dict[str, Any], output: str, arguments: str
) -> None:
    params = {"model": "gpt-5-nano", **{f"x-{k}": v for k, v in extra.items()}}
    value = stored_value(
        params=params,
        output=output,
        tool_calls=[{"id": "c", "name": "f", "arguments": arguments}],
    )
    data = CacheEntry(key="k", value=value).to_json()
    answer = StoredAnswers(max_bytes=1 << 20).decode(data)
    assert isinstance(answer, StoredAnswer) and answer.problem is None
    expected = exact_hit(CacheEntry.from_json(data).value, "id")
    assert answer.hit("id") == expected
    assert repr(answer.hit("id").params) == repr(expected.params)  # 1 vs 1.0 vs True too
