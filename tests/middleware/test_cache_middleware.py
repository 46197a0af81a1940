"""CacheMiddleware with a stub ``next`` (tower-test style), plus end-to-end runs."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_client.cache import CacheEntry, MemoryCache, cache_key
from llm_client.clock import ManualClock
from llm_client.exceptions import BadRequestError, ConfigurationError, RateLimitError, ServerError
from llm_client.known_secrets import remember_secret
from llm_client.middleware.cache import CacheMiddleware
from llm_client.models import GPT5Nano, TextEmbedding3Small
from llm_client.pipeline import CacheOptions, Call, Pipeline, Reply
from llm_client.result import LLMResult
from llm_client.streaming import LLMEvent
from llm_client.usage import Usage

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Tell me a joke about cats."},
]
USAGE = Usage(
    input_tokens=10, output_tokens=5, total_tokens=15, input_cost=0.001, output_cost=0.002
)


def make_call(
    messages: list[dict[str, Any]] | None = None,
    *,
    stream: bool = False,
    operation: str = "chat",
    **options: Any,
) -> Call:
    params = {"model": "gpt-5-nano", "messages": messages or MESSAGES}
    return Call(
        profile=GPT5Nano,
        operation=operation,  # type: ignore[arg-type]
        params=params,
        stream=stream,
        cache=CacheOptions(**options),
    )


def answer_for(call: Call) -> str:
    return "answer to " + str(call.params["messages"][-1]["content"])


class Stub:
    """A terminal that records calls and answers each with an LLMResult (or events)."""

    def __init__(
        self,
        *,
        delay: float = 0.0,
        fail: BaseException | None = None,
        fail_times: int = 0,
        tool_calls: tuple[dict[str, Any], ...] = (),
        result_status: int = 200,
    ) -> None:
        self.calls: list[Call] = []
        self.delay = delay
        self.fail = fail
        self.fail_times = fail_times
        self.tool_calls = tool_calls
        self.result_status = result_status
        self.closed_streams = 0

    def result(self, call: Call) -> LLMResult:
        ok = self.result_status < 400
        return LLMResult(
            params=call.params,
            output=answer_for(call) if ok else None,
            usage=USAGE,
            status=self.result_status,
            error="OK" if ok else "BadRequestError: nope",
            operation=call.operation,
            model="gpt-5-nano",
            tool_calls=self.tool_calls,
            finish_reason="stop",
            response_id="resp-1",
            attempts=2,
            headers={"x-ratelimit-remaining-requests": "10"},
        )

    async def __call__(self, call: Call) -> Reply:
        self.calls.append(call)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None and (self.fail_times == 0 or len(self.calls) <= self.fail_times):
            raise self.fail
        if call.stream:
            return self.events(call)
        return self.result(call)

    async def events(self, call: Call) -> AsyncIterator[LLMEvent]:
        result = self.result(call)
        try:
            yield LLMEvent("meta", {"model": "gpt-5-nano", "operation": "chat", "cached": False})
            text = str(result.output)
            for i in range(0, len(text), 5):
                yield LLMEvent("text_delta", {"text": text[i : i + 5]})
            for i, tc in enumerate(result.tool_calls):
                yield LLMEvent("tool_call_delta", {"index": i, **tc})
            yield LLMEvent("usage", result.usage.to_dict())
            yield LLMEvent("done", result.to_dict(), result)
        finally:
            self.closed_streams += 1


async def run(mw: CacheMiddleware, call: Call, next: Callable[[Call], Awaitable[Reply]]) -> Any:
    """One call; then wait for its background store, so the test can look at the backend."""
    try:
        reply = await mw(call, next)
    except BaseException:
        await mw.flush()
        raise
    if isinstance(reply, LLMResult):
        await mw.flush()
        return reply
    return _flushed(mw, reply)


async def _flushed(mw: CacheMiddleware, events: AsyncIterator[LLMEvent]) -> AsyncIterator[LLMEvent]:
    try:
        async for event in events:
            yield event
    finally:
        await events.aclose()  # type: ignore[attr-defined]
        await mw.flush()


async def drain(reply: Reply) -> list[LLMEvent]:
    assert not isinstance(reply, LLMResult)
    return [event async for event in reply]


# --- hits and misses -----------------------------------------------------------------------------


async def test_miss_then_hit() -> None:
    backend, stub = MemoryCache(), Stub()
    mw = CacheMiddleware(backend)
    first = await run(mw, make_call(), stub)
    second = await run(mw, make_call(), stub)
    assert len(stub.calls) == 1
    ident = cache_key(make_call())
    assert first.cached is False and first.identifier == ident and first.attempts == 2
    assert second.cached is True and second.identifier == ident
    assert second.output == first.output
    assert second.attempts == 0
    assert second.usage.total_cost == 0
    assert second.usage.saved_cost == pytest.approx(USAGE.total_cost)
    assert second.usage.input_tokens == USAGE.input_tokens
    assert second.headers == {}
    assert mw.stats()["hits"] == 1 and mw.stats()["misses"] == 1 and mw.stats()["stores"] == 1


async def test_stored_entry_is_the_plain_result() -> None:
    backend = MemoryCache()
    await run(CacheMiddleware(backend), make_call(), Stub())
    entry = await backend.get(cache_key(make_call()))
    assert entry is not None
    assert entry.value["cached"] is False
    assert entry.value["output"] == answer_for(make_call())
    assert entry.model == "gpt-5-nano" and entry.operation == "chat" and entry.scope
    assert entry.prompt is None  # only kept for semantic caching
    assert "headers" not in entry.value


async def test_different_requests_do_not_share_entries() -> None:
    stub = Stub()
    mw = CacheMiddleware(MemoryCache())
    other = [{"role": "user", "content": "something else"}]
    a = await run(mw, make_call(), stub)
    b = await run(mw, make_call(other), stub)
    assert a.output != b.output and len(stub.calls) == 2


async def test_no_identifier_and_no_hashing_bypasses_the_cache() -> None:
    backend, stub = MemoryCache(), Stub()
    mw = CacheMiddleware(backend)
    for _ in range(2):
        result = await run(mw, make_call(hash_as_identifier=False), stub)
        assert result.cached is False and result.identifier is None
    assert len(stub.calls) == 2
    assert (await backend.stats())["entries"] == 0
    assert mw.stats()["bypassed"] == 2


async def test_explicit_identifier_and_collection() -> None:
    backend, stub = MemoryCache(), Stub()
    mw = CacheMiddleware(backend, collection="team")
    result = await run(mw, make_call(identifier="greeting"), stub)
    assert result.identifier == "greeting"
    assert await backend.get("team/greeting") is not None
    hit = await run(
        mw, make_call([{"role": "user", "content": "other"}], identifier="greeting"), stub
    )
    assert hit.cached and hit.output == result.output and hit.identifier == "greeting"


async def test_backend_built_for_the_collection_is_not_prefixed_twice() -> None:
    backend = MemoryCache(collection="team")
    await run(CacheMiddleware(backend, collection="team"), make_call(identifier="x"), Stub())
    assert [e.key async for e in backend.export()] == ["x"]


async def test_cache_response_false_reads_but_does_not_store() -> None:
    backend, stub = MemoryCache(), Stub()
    mw = CacheMiddleware(backend)
    miss = await run(mw, make_call(cache_response=False), stub)
    assert not miss.cached and (await backend.stats())["entries"] == 0
    await run(mw, make_call(), stub)  # stores
    hit = await run(mw, make_call(cache_response=False), stub)
    assert hit.cached and len(stub.calls) == 2


async def test_rewrite_skips_the_read_and_overwrites() -> None:
    backend, stub = MemoryCache(), Stub()
    mw = CacheMiddleware(backend)
    await backend.put(CacheEntry(key=cache_key(make_call()), value=_stored("old")))
    fresh = await run(mw, make_call(rewrite_cache=True), stub)
    assert not fresh.cached and fresh.output == answer_for(make_call())
    hit = await run(mw, make_call(), stub)
    assert hit.cached and hit.output == answer_for(make_call())


async def test_rewrite_keeps_the_old_entry_readable_until_the_new_one_lands() -> None:
    backend = MemoryCache()
    mw = CacheMiddleware(backend)
    await backend.put(CacheEntry(key=cache_key(make_call()), value=_stored("old")))
    rewrite = asyncio.create_task(run(mw, make_call(rewrite_cache=True), Stub(delay=0.05)))
    await asyncio.sleep(0.01)
    during = await run(mw, make_call(), Stub())
    assert during.cached and during.output == "old"
    await rewrite
    after = await run(mw, make_call(), Stub())
    assert after.output == answer_for(make_call())


async def test_regen_deletes_first_then_stores() -> None:
    backend = MemoryCache()
    mw = CacheMiddleware(backend)
    key = cache_key(make_call())
    await backend.put(CacheEntry(key=key, value=_stored("old")))
    stub = Stub(delay=0.05)
    regen = asyncio.create_task(run(mw, make_call(regen_cache=True), stub))
    await asyncio.sleep(0.01)
    assert await backend.get(key) is None
    waiter = await run(mw, make_call(), stub)  # arrives during the regen: shares its answer
    result = await regen
    assert not result.cached and len(stub.calls) == 1
    assert waiter.cached and waiter.output == answer_for(make_call())
    entry = await backend.get(key)
    assert entry is not None and entry.value["output"] == answer_for(make_call())


async def test_regen_and_rewrite_store_even_without_cache_response() -> None:
    for flag in ("rewrite_cache", "regen_cache"):
        backend = MemoryCache()
        await run(CacheMiddleware(backend), make_call(cache_response=False, **{flag: True}), Stub())
        assert (await backend.stats())["entries"] == 1, flag


async def test_ttl_is_passed_to_the_backend() -> None:
    now = [0.0]
    backend = MemoryCache(clock=lambda: now[0])
    mw = CacheMiddleware(backend, ttl=10)
    await run(mw, make_call(), Stub())
    now[0] = 11
    assert (await run(mw, make_call(), Stub())).cached is False


def _stored(output: str, status: int = 200) -> dict[str, Any]:
    return LLMResult(
        params={}, output=output, usage=USAGE, status=status, error="OK" if status < 400 else "x"
    ).to_dict()


async def test_unreadable_entry_is_a_miss() -> None:
    backend = MemoryCache()
    await backend.put(CacheEntry(key=cache_key(make_call()), value={"usage": "not a dict"}))
    result = await run(CacheMiddleware(backend), make_call(), Stub())
    assert not result.cached


# --- errors --------------------------------------------------------------------------------------


async def test_failures_are_not_stored_by_default() -> None:
    backend = MemoryCache()
    mw = CacheMiddleware(backend)
    with pytest.raises(BadRequestError):
        await run(mw, make_call(), Stub(fail=BadRequestError("bad")))
    failed = await run(mw, make_call(), Stub(result_status=400))
    assert not failed.ok
    assert (await backend.stats())["entries"] == 0


async def test_cache_errors_stores_deterministic_failures_and_serves_them_on_request() -> None:
    backend = MemoryCache()
    mw = CacheMiddleware(backend)
    with pytest.raises(BadRequestError):
        await run(mw, make_call(cache_errors=True), Stub(fail=BadRequestError("bad request")))
    entry = await backend.get(cache_key(make_call()))
    assert entry is not None and entry.value["status"] == 400
    hit = await run(mw, make_call(cache_errors=True), Stub())
    assert hit.cached and hit.status == 400 and "bad request" in hit.error
    stub = Stub()
    fresh = await run(mw, make_call(), stub)  # a call that did not ask for errors
    assert fresh.ok and not fresh.cached and len(stub.calls) == 1


@pytest.mark.parametrize(
    "error", [RateLimitError("slow down"), ServerError("boom"), BadRequestError("t", status=408)]
)
async def test_transient_failures_are_never_stored(error: Exception) -> None:
    backend = MemoryCache()
    with pytest.raises(type(error)):
        await run(CacheMiddleware(backend), make_call(cache_errors=True), Stub(fail=error))
    assert (await backend.stats())["entries"] == 0


async def test_failed_result_with_cache_errors_is_stored() -> None:
    backend = MemoryCache()
    mw = CacheMiddleware(backend)
    await run(mw, make_call(cache_errors=True), Stub(result_status=422))
    assert (await backend.stats())["entries"] == 1
    assert not (await run(mw, make_call(), Stub())).cached


# --- single-flight -------------------------------------------------------------------------------


async def test_concurrent_identical_calls_go_out_once() -> None:
    stub = Stub(delay=0.05)
    mw = CacheMiddleware(MemoryCache())
    results = await asyncio.gather(*(run(mw, make_call(), stub) for _ in range(50)))
    assert len(stub.calls) == 1
    assert {r.output for r in results} == {answer_for(make_call())}
    assert sum(not r.cached for r in results) == 1
    assert all(r.attempts == 0 and r.usage.total_cost == 0 for r in results if r.cached)
    assert mw.stats()["coalesced"] == 49


async def test_concurrent_hits_read_the_backend_once() -> None:
    backend = MemoryCache()
    mw = CacheMiddleware(backend)
    await run(mw, make_call(), Stub())
    reads = (await backend.stats())["hits"] + (await backend.stats())["misses"]

    async def slow_get(key: str) -> CacheEntry | None:
        await asyncio.sleep(0.02)
        return await MemoryCache.get(backend, key)

    backend.get = slow_get  # type: ignore[method-assign]
    results = await asyncio.gather(*(run(mw, make_call(), Stub()) for _ in range(20)))
    assert all(r.cached for r in results)
    assert (await backend.stats())["hits"] + (await backend.stats())["misses"] == reads + 1


async def test_different_keys_are_not_coalesced() -> None:
    stub = Stub(delay=0.02)
    mw = CacheMiddleware(MemoryCache())
    calls = [make_call([{"role": "user", "content": f"q{i}"}]) for i in range(5)]
    await asyncio.gather(*(run(mw, c, stub) for c in calls))
    assert len(stub.calls) == 5


async def test_when_the_leader_fails_the_waiters_go_on_alone() -> None:
    stub = Stub(delay=0.03, fail=ServerError("boom"), fail_times=1)
    mw = CacheMiddleware(MemoryCache())
    results = await asyncio.gather(
        *(run(mw, make_call(), stub) for _ in range(5)), return_exceptions=True
    )
    assert isinstance(results[0], ServerError)
    assert all(isinstance(r, LLMResult) and r.ok for r in results[1:])
    assert len(stub.calls) == 5


async def test_cancelled_leader_releases_the_waiters() -> None:
    stub = Stub(delay=0.05)
    mw = CacheMiddleware(MemoryCache())
    leader = asyncio.create_task(run(mw, make_call(), stub))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(run(mw, make_call(), stub))
    await asyncio.sleep(0.01)
    leader.cancel()
    result = await follower
    assert result.ok and len(stub.calls) == 2
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_cancelled_waiter_does_not_cancel_the_leader() -> None:
    stub = Stub(delay=0.05)
    mw = CacheMiddleware(MemoryCache())
    leader = asyncio.create_task(run(mw, make_call(), stub))
    await asyncio.sleep(0.01)
    follower = asyncio.create_task(run(mw, make_call(), stub))
    await asyncio.sleep(0.01)
    follower.cancel()
    assert (await leader).ok
    assert len(stub.calls) == 1


async def test_waiter_that_stores_when_the_leader_did_not() -> None:
    backend = MemoryCache()
    stub = Stub(delay=0.03)
    mw = CacheMiddleware(backend)
    leader = asyncio.create_task(run(mw, make_call(cache_response=False), stub))
    await asyncio.sleep(0.01)
    follower = await run(mw, make_call(), stub)
    await leader
    assert follower.cached and len(stub.calls) == 1
    assert (await backend.stats())["entries"] == 1


async def test_a_stored_failure_is_not_shared_with_waiters_that_did_not_ask() -> None:
    backend = MemoryCache()
    mw = CacheMiddleware(backend)
    await backend.put(CacheEntry(key=cache_key(make_call()), value=_stored("x", status=400)))
    original_get = backend.get

    async def slow_get(key: str) -> CacheEntry | None:
        await asyncio.sleep(0.02)
        return await original_get(key)

    backend.get = slow_get  # type: ignore[method-assign]
    stub = Stub()
    leader = asyncio.create_task(run(mw, make_call(cache_errors=True), stub))
    await asyncio.sleep(0.005)
    follower = await run(mw, make_call(), stub)
    assert (await leader).status == 400
    assert follower.ok and not follower.cached and len(stub.calls) == 1


# --- degradation ---------------------------------------------------------------------------------


class FlakyBackend(MemoryCache):
    def __init__(self) -> None:
        super().__init__()
        self.broken = True
        self.hang = False

    calls = 0

    async def _check(self) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(10)
        if self.broken:
            raise ConnectionError("redis://:hunter2hunter2@cache:6379 refused the connection")

    async def get(self, key: str) -> CacheEntry | None:
        await self._check()
        return await super().get(key)

    async def put(self, entry: CacheEntry, *, ttl: float | None = None) -> None:
        await self._check()
        await super().put(entry, ttl=ttl)

    async def delete(self, key: str) -> bool:
        await self._check()
        return await super().delete(key)


async def test_backend_failures_never_fail_a_call_and_warn_once_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = FlakyBackend()
    stub = Stub()
    mw = CacheMiddleware(backend)
    with caplog.at_level(logging.DEBUG, logger="llm_client.middleware.cache"):
        for flags in ({}, {}, {"regen_cache": True}, {}):
            result = await run(mw, make_call(**flags), stub)
            assert result.ok and not result.cached
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "hunter2" not in caplog.text
        backend.broken = False
        await run(mw, make_call(), stub)  # works again: stored
        assert any("reachable again" in r.message for r in caplog.records)
        assert (await run(mw, make_call(), stub)).cached
        backend.broken = True
        await run(mw, make_call(), stub)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2  # a new outage warns again
    assert mw.stats()["backend_errors"] >= 9


async def test_a_hanging_backend_times_out_into_a_miss(caplog: pytest.LogCaptureFixture) -> None:
    backend = FlakyBackend()
    backend.hang = True
    mw = CacheMiddleware(backend, backend_timeout=0.05)
    with caplog.at_level(logging.WARNING, logger="llm_client.middleware.cache"):
        result = await asyncio.wait_for(run(mw, make_call(), Stub()), 2)
    assert result.ok
    assert "no answer within 0.05s" in caplog.text


class SlowWrites(MemoryCache):
    """A backend whose writes wait until the test lets them through."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.writing = 0

    async def put(self, entry: CacheEntry, *, ttl: float | None = None) -> None:
        self.writing += 1
        await self.release.wait()
        await super().put(entry, ttl=ttl)


async def test_storing_never_delays_the_answer_and_close_flushes() -> None:
    backend, stub = SlowWrites(), Stub()
    mw = CacheMiddleware(backend)
    # no flush here: the answer must come back while its write is still held up
    first = await asyncio.wait_for(mw(make_call(), stub), 10)
    assert isinstance(first, LLMResult) and first.ok and not first.cached
    streamed = make_call([{"role": "user", "content": "a stream"}], stream=True)
    events = await asyncio.wait_for(drain(await mw(streamed, stub)), 10)
    assert events[-1].type == "done"
    await asyncio.sleep(0)
    assert backend.writing == 2 and mw.stats()["pending_stores"] == 2
    # a call right behind the first one is answered from the pending write: no second request
    second = await mw(make_call(), stub)
    assert isinstance(second, LLMResult) and second.cached and second.output == first.output
    assert len(stub.calls) == 2
    backend.release.set()
    await mw.flush()
    assert mw.stats()["pending_stores"] == 0 and mw.stats()["stores"] == 2
    assert (await backend.stats())["entries"] == 2


async def test_flush_gives_up_on_a_backend_that_never_answers() -> None:
    backend = SlowWrites()
    mw = CacheMiddleware(backend, backend_timeout=None)
    await mw(make_call(), Stub())
    await asyncio.sleep(0)
    await asyncio.wait_for(mw.flush(timeout=0.05), 10)
    assert mw.stats()["pending_stores"] == 0 and mw.stats()["stores"] == 0


async def test_pending_writes_are_bounded() -> None:
    backend, stub = SlowWrites(), Stub()
    mw = CacheMiddleware(backend, max_pending_stores=3)
    for i in range(5):
        await mw(make_call([{"role": "user", "content": f"q{i}"}]), stub)
    assert mw.stats()["pending_stores"] == 3 and mw.stats()["stores_dropped"] == 2
    backend.release.set()
    await mw.flush()
    assert (await backend.stats())["entries"] == 3


async def test_a_cut_opens_an_outage_that_skips_the_backend_until_a_probe_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    backend = FlakyBackend()
    backend.broken = False
    backend.hang = True
    mw = CacheMiddleware(backend, reconnect_interval=5.0, clock=clock)
    deadline = clock.now() + 0.2  # on the step's clock; the read may take half of it
    with caplog.at_level(logging.INFO, logger="llm_client.middleware.cache"):
        call = make_call().replace(deadline=deadline)
        result = await asyncio.wait_for(run(mw, call, Stub()), 10)
        assert result.ok and not result.cached
        assert mw.stats()["backend_errors"] == 1  # the read was cut
        assert mw.stats()["backend_skips"] == 1  # and the write did not wait for the backend
        hung = backend.calls
        for _ in range(3):  # the outage is open: nobody waits for the backend now
            assert (await run(mw, make_call(), Stub())).ok
        assert backend.calls == hung and mw.stats()["backend_skips"] >= 6
        backend.hang = False
        clock.advance(5.0)  # one probe goes through, answers, and ends the outage
        await run(mw, make_call(), Stub())
        assert backend.calls > hung
        assert (await run(mw, make_call(), Stub())).cached
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "get: no answer within" in warnings[0]
    assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_unkeyable_parameters_bypass_the_cache(caplog: pytest.LogCaptureFixture) -> None:
    call = make_call().replace(params={"model": "gpt-5-nano", "messages": MESSAGES, "x": object()})
    stub = Stub()
    with caplog.at_level(logging.WARNING, logger="llm_client.middleware.cache"):
        result = await run(CacheMiddleware(MemoryCache()), call, stub)
    assert result.identifier is None and len(stub.calls) == 1
    assert "not caching" in caplog.text


def test_bad_configuration() -> None:
    with pytest.raises(ConfigurationError, match="semantic_threshold"):
        CacheMiddleware(MemoryCache(), semantic_threshold=1.5)
    with pytest.raises(ConfigurationError, match="ttl"):
        CacheMiddleware(MemoryCache(), ttl=0)


# --- secrets -------------------------------------------------------------------------------------


async def test_credentials_never_enter_an_entry_and_answers_are_kept_as_they_are() -> None:
    backend = MemoryCache()
    call = make_call().replace(
        params={
            "model": "gpt-5-nano",
            "messages": [{"role": "user", "content": "Authorization: Bearer abc123def456ghi789"}],
            "extra_headers": {"Authorization": "Bearer sk-proj-" + "A1b2C3d4" * 4},
            "api_key": "sk-proj-" + "A1b2C3d4" * 4,
        }
    )
    stub = Stub()
    mw = CacheMiddleware(backend)
    miss = await run(mw, call, stub)
    [entry] = [e async for e in backend.export()]
    assert set(entry.value["params"]) == {"model", "messages"}  # by construction
    assert entry.value["output"] == miss.output == answer_for(call)  # not rewritten
    hit = await run(mw, call, stub)
    assert hit.cached and hit.output == miss.output


async def test_an_answer_holding_a_registered_key_is_not_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "sk-proj-" + "Z9y8X7w6" * 4
    remember_secret(secret)
    backend = MemoryCache()
    mw = CacheMiddleware(backend)
    stub = Stub()
    with caplog.at_level(logging.DEBUG, logger="llm_client.middleware.cache"):
        for text in (f"my key is {secret}", f"again {secret}"):
            result = await run(mw, make_call([{"role": "user", "content": text}]), stub)
            assert result.output == "answer to " + text  # returned unchanged
    assert [e async for e in backend.export()] == []
    assert mw.stats()["refused"] == 2 and mw.stats()["stores"] == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "API key" in warnings[0].getMessage()
    assert secret not in caplog.text


# --- streaming -----------------------------------------------------------------------------------


async def test_stream_miss_passes_events_through_and_stores_the_result() -> None:
    backend, stub = MemoryCache(), Stub()
    mw = CacheMiddleware(backend)
    events = await drain(await run(mw, make_call(stream=True), stub))
    assert events[0].type == "meta" and events[-1].type == "done"
    assert events[0].data["cached"] is False and events[0].data["identifier"]
    text = "".join(e.data["text"] for e in events if e.type == "text_delta")
    assert text == answer_for(make_call())
    done = events[-1].result
    assert done is not None and done.identifier == cache_key(make_call())
    assert stub.closed_streams == 1
    hit = await run(mw, make_call(), stub)  # a plain call reads what the stream stored
    assert hit.cached and hit.output == text and len(stub.calls) == 1


async def test_stream_hit_replays_the_live_event_sequence() -> None:
    tools = ({"id": "call_1", "name": "lookup", "arguments": '{"q": "cats"}'},)
    stub = Stub(tool_calls=tools)
    mw = CacheMiddleware(MemoryCache())
    live = await drain(await run(mw, make_call(stream=True), stub))
    replay = await drain(await run(mw, make_call(stream=True), stub))
    assert len(stub.calls) == 1
    assert replay[0].type == "meta" and replay[0].data["cached"] is True
    kinds = [e.type for e in replay]
    assert kinds[-3:] == ["tool_call_delta", "usage", "done"]
    assert set(kinds[1:-3]) == {"text_delta"}
    assert "".join(e.data["text"] for e in replay if e.type == "text_delta") == "".join(
        e.data["text"] for e in live if e.type == "text_delta"
    )
    tool_event = next(e for e in replay if e.type == "tool_call_delta")
    assert tool_event.data["name"] == "lookup" and tool_event.data["index"] == 0
    usage = next(e for e in replay if e.type == "usage")
    assert usage.data["total_cost"] == 0 and usage.data["saved_cost"] > 0
    final = replay[-1].result
    assert final is not None and final.cached and final.tool_calls == tools
    assert final.identifier == cache_key(make_call())


async def test_a_plain_hit_can_be_streamed() -> None:
    mw = CacheMiddleware(MemoryCache())
    stub = Stub()
    await run(mw, make_call(), stub)
    events = await drain(await run(mw, make_call(stream=True), stub))
    assert events[0].data["cached"] is True and events[-1].result is not None
    assert events[-1].result.output == answer_for(make_call())
    assert len(stub.calls) == 1


async def test_stream_is_stored_before_done_reaches_the_consumer() -> None:
    backend = MemoryCache()
    mw = CacheMiddleware(backend)
    reply = await run(mw, make_call(stream=True), Stub())
    assert not isinstance(reply, LLMResult)
    async for event in reply:
        if event.type == "done":
            break  # stop reading at once
    await reply.aclose()  # type: ignore[attr-defined]
    assert (await backend.stats())["entries"] == 1


async def test_an_abandoned_stream_is_not_stored_and_is_closed() -> None:
    backend, stub = MemoryCache(), Stub()
    reply = await run(CacheMiddleware(backend), make_call(stream=True), stub)
    assert not isinstance(reply, LLMResult)
    async for event in reply:
        if event.type == "text_delta":
            break
    await reply.aclose()  # type: ignore[attr-defined]
    assert (await backend.stats())["entries"] == 0
    assert stub.closed_streams == 1


async def test_stream_waits_for_an_in_flight_plain_call() -> None:
    stub = Stub(delay=0.05)
    mw = CacheMiddleware(MemoryCache())
    plain = asyncio.create_task(run(mw, make_call(), stub))
    await asyncio.sleep(0.01)
    events = await drain(await run(mw, make_call(stream=True), stub))
    await plain
    assert len(stub.calls) == 1 and events[0].data["cached"] is True


async def test_failed_stream_result_is_not_stored() -> None:
    backend = MemoryCache()

    async def failing(call: Call) -> Reply:
        async def events() -> AsyncIterator[LLMEvent]:
            yield LLMEvent("meta", {})
            result = LLMResult(params=call.params, status=502, error="StreamInterruptedError: x")
            yield LLMEvent("error", {"status": 502, "error": result.error}, result)

        return events()

    events = await drain(await run(CacheMiddleware(backend), make_call(stream=True), failing))
    assert events[-1].type == "error"
    assert (await backend.stats())["entries"] == 0


# --- semantic ------------------------------------------------------------------------------------


def bag_of_words(dim: int = 64) -> Callable[[str], Awaitable[list[float]]]:
    async def embed(text: str) -> list[float]:
        vector = [0.0] * dim
        for word in re.findall(r"\w+", text.lower()):
            vector[sum(map(ord, word)) % dim] += 1.0
        return vector

    return embed


def ask(text: str, system: str = "You are terse.", **params: Any) -> Call:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    call = make_call(messages)
    return call.replace(params={**call.params, **params})


async def test_semantic_hit_within_the_same_scope() -> None:
    backend, stub = MemoryCache(), Stub()
    mw = CacheMiddleware(backend, semantic_threshold=0.9, embed=bag_of_words())
    first = await run(mw, ask("tell me a joke about cats"), stub)
    similar = await run(mw, ask("about cats, tell me a joke"), stub)
    assert len(stub.calls) == 1
    assert similar.cached and similar.output == first.output
    assert similar.cache_similarity is not None and similar.cache_similarity >= 0.9
    assert similar.identifier == first.identifier
    assert mw.stats()["semantic_hits"] == 1
    entry = await backend.get(first.identifier)
    assert entry is not None and entry.prompt == "tell me a joke about cats"


async def test_semantic_misses_across_scopes_and_dissimilar_prompts() -> None:
    stub = Stub()
    mw = CacheMiddleware(MemoryCache(), semantic_threshold=0.9, embed=bag_of_words())
    await run(mw, ask("tell me a joke about cats"), stub)
    assert not (await run(mw, ask("tell me a joke about cats", system="Be long."), stub)).cached
    assert not (await run(mw, ask("tell me a joke about cats", temperature=0.1), stub)).cached
    assert not (await run(mw, ask("explain quantum chromodynamics"), stub)).cached
    assert len(stub.calls) == 4


async def test_embedding_failures_degrade_to_exact_matches(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(text: str) -> list[float]:
        raise ConnectionError("embeddings are down")

    stub = Stub()
    mw = CacheMiddleware(MemoryCache(), semantic_threshold=0.9, embed=broken)
    with caplog.at_level(logging.WARNING, logger="llm_client.middleware.cache"):
        await run(mw, ask("tell me a joke about cats"), stub)
        assert (await run(mw, ask("tell me a joke about cats"), stub)).cached  # exact still works
        assert not (await run(mw, ask("about cats, tell me a joke"), stub)).cached
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


async def test_semantic_is_off_for_embeddings_and_explicit_identifiers() -> None:
    calls: list[str] = []

    async def embed(text: str) -> list[float]:
        calls.append(text)
        return [1.0, 0.0]

    mw = CacheMiddleware(MemoryCache(), semantic_threshold=0.5, embed=embed)
    emb = Call(
        profile=TextEmbedding3Small,
        operation="embeddings",
        params={"model": "text-embedding-3-small", "input": "hello"},
    )

    async def vectors(call: Call) -> Reply:
        return LLMResult(params=call.params, output=[0.1, 0.2], operation="embeddings")

    await run(mw, emb, vectors)
    hit = await run(mw, emb, vectors)
    assert hit.cached and hit.output == [0.1, 0.2]
    await run(mw, make_call(identifier="fixed"), Stub())
    assert calls == []


async def test_semantic_needs_a_semantic_backend() -> None:
    class PlainBackend(MemoryCache):
        put_vector = None  # type: ignore[assignment]
        search = None  # type: ignore[assignment]

    mw = CacheMiddleware(PlainBackend(), semantic_threshold=0.9, embed=bag_of_words())
    stub = Stub()
    await run(mw, ask("tell me a joke about cats"), stub)
    assert not (await run(mw, ask("about cats, tell me a joke"), stub)).cached


# --- in a pipeline and end to end ----------------------------------------------------------------


async def test_in_a_pipeline() -> None:
    stub = Stub()
    handler = Pipeline([("cache", CacheMiddleware(MemoryCache()))]).build(stub)
    first, second = await handler(make_call()), await handler(make_call())
    assert isinstance(second, LLMResult) and second.cached and len(stub.calls) == 1
    assert isinstance(first, LLMResult) and not first.cached


def _client(**kw: Any) -> Any:
    client_module = pytest.importorskip("llm_client.client")
    from llm_client.plugins import new_plugin_manager

    kw.setdefault("rate_limit_backend", None)
    return client_module.OpenAIClient(
        kw.pop("model", "gpt-5-nano"), plugin_manager=new_plugin_manager(autoload=False), **kw
    )


async def test_end_to_end_fifty_identical_calls_make_one_request(fake_openai: Any) -> None:
    client = _client(cache_backend="memory")
    try:
        results = await asyncio.gather(*(client.get_response(messages=MESSAGES) for _ in range(50)))
    finally:
        await client.close()
    assert fake_openai.count("chat") == 1
    assert len({r["output"] for r in results}) == 1
    assert sum(r["cached"] for r in results) == 49
    assert all(r["status"] == 200 for r in results)


async def test_end_to_end_fs_cache_survives_a_new_client(fake_openai: Any, tmp_path: Any) -> None:
    for _ in range(2):
        client = _client(cache_backend="fs", cache_dir=tmp_path)
        try:
            result = await client.get_response(messages=MESSAGES)
            events = [e async for e in client.stream(messages=MESSAGES)]
        finally:
            await client.close()
        assert events[0].data["cached"] is True
        assert "".join(e.data["text"] for e in events if e.type == "text_delta") == result["output"]
    assert fake_openai.count("chat") == 1
    assert (tmp_path / f"{result['identifier']}.json").is_file()


async def test_end_to_end_semantic_cache_with_memory_backend(fake_openai: Any) -> None:
    client = _client(cache_backend="memory", semantic_cache_threshold=0.95)
    try:
        first = await client.get_response(messages=[{"role": "user", "content": "cats like fish"}])
        second = await client.get_response(messages=[{"role": "user", "content": "fish cats like"}])
    finally:
        await client.close()
    assert fake_openai.count("chat") == 1
    assert second["cached"] and second["output"] == first["output"]
    assert second["cache_similarity"] is not None and math.isclose(
        second["cache_similarity"], 1.0, abs_tol=1e-3
    )


# --- the exact-hit fast path builds what the general route builds --------------------------------

_cost = st.one_of(
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=10**9),
)


@settings(max_examples=300, deadline=None)
@given(
    usage=st.dictionaries(
        st.sampled_from(
            [
                "input_tokens",
                "output_tokens",
                "input_cost",
                "cached_input_cost",
                "output_cost",
                "saved_cost",
                "total_tokens",
                "reasoning_tokens",
                # written by to_dict but not a field, and a field of some later version:
                # both are dropped, as LLMResult.from_dict drops them
                "total_cost",
                "future_tokens",
            ]
        ),
        _cost,
    ),
    status=st.sampled_from([200, 201, 400, 404]),
    attempts=st.integers(0, 5),
    cached=st.booleans(),
    similarity=st.none() | st.floats(0, 1),
)
def test_exact_hit_equals_the_general_hit(
    usage: dict[str, Any], status: int, attempts: int, cached: bool, similarity: float | None
) -> None:
    from llm_client.middleware._answers import StoredAnswer

    value = {
        "params": {"model": "gpt-5-nano", "messages": [{"role": "user", "content": "hi"}]},
        "output": "hello",
        "usage": usage,
        "status": status,
        "error": "OK",
        "identifier": "stored-id",
        "model": "gpt-5-nano",
        "attempts": attempts,
        "cached": cached,
        "cache_similarity": similarity,
        "tool_calls": [{"id": "c1", "name": "f", "arguments": "{}"}],
    }
    raw = LLMResult.from_dict(value)
    general = raw.replace(
        cached=True,
        attempts=0,
        usage=raw.usage.as_saved(),
        identifier="the-id",
        cache_similarity=None,
        headers={},
    )
    fast = StoredAnswer(CacheEntry(key="k", value=value)).hit("the-id")
    assert fast == general
    assert fast.usage == general.usage and fast.headers == {}
    assert fast.to_dict() == general.to_dict()
