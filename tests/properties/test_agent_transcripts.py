"""Whatever the model does with its tools, the runner's transcript answers every call.

Random scripts (turns, parallel calls, arguments that are valid, malformed or wrong, unknown
tools, tools that raise, stop the run or are cancelled) are played by the fake server on both
APIs, streamed or not; the transcript is then sent back with a new user message, and the fake
server, which rejects an unanswered tool call as OpenAI does, must accept it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm_client import AgentRunner, GPT5Point4Nano, OpenAIClient, StopRun
from llm_client.testing import FakeOpenAI, tool_script


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    s = FakeOpenAI(log_requests=False).start_in_thread()
    try:
        yield s
    finally:
        s.stop_thread()


async def ok(n: int) -> int:
    return n * 2


def fails(n: int) -> int:
    raise ValueError(f"bad {n}")


async def stops(n: int) -> int:
    raise StopRun(output=n)


async def cancels(n: int) -> int:
    task = asyncio.current_task()
    assert task is not None
    task.cancel()
    await asyncio.sleep(1)
    return n


ARGUMENTS = st.one_of(
    st.builds(lambda n: {"n": n}, st.integers(-5, 5)),  # valid
    st.just('{"n": '),  # malformed JSON
    st.just({"n": "two"}),  # fails the schema
    st.just({}),  # misses n
    st.just("[1, 2]"),  # not an object
)
CALL = st.tuples(st.sampled_from(["ok", "fails", "stops", "cancels", "missing"]), ARGUMENTS)
SCRIPT = st.lists(st.lists(CALL, min_size=1, max_size=4), min_size=1, max_size=4)


async def play(
    server: FakeOpenAI, api: str, stream: bool, turns: list[list[Any]], max_turns: int
) -> tuple[int, str]:
    async with OpenAIClient(
        GPT5Point4Nano,
        api=api,
        base_url=server.base_url,
        api_key="sk-test",  # type: ignore[arg-type]
    ) as client:
        runner = AgentRunner(client, [ok, fails, stops, cancels], max_turns=max_turns)
        messages = [{"role": "user", "content": f"Go. {tool_script(*turns)}"}]
        if stream:
            events = [e async for e in runner.stream(messages=messages)]
            result = events[-1].run  # type: ignore[attr-defined]
        else:
            result = await runner.run(messages=messages)
        calls = [
            m for m in result.transcript if m.get("tool_calls") or m.get("type") == "function_call"
        ]
        answered = len(result.tool_calls)
        asked = sum(len(m.get("tool_calls") or [None]) for m in calls)
        assert answered == asked
        more = await runner.run(input=[*result.transcript, {"role": "user", "content": "again"}])
        return answered, str(more.output)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    api=st.sampled_from(["chat", "responses"]),
    stream=st.booleans(),
    turns=SCRIPT,
    max_turns=st.integers(0, 4),
)
def test_every_tool_call_is_answered_and_the_transcript_is_accepted(
    server: FakeOpenAI, api: str, stream: bool, turns: list[list[Any]], max_turns: int
) -> None:
    answered, follow_up = asyncio.run(play(server, api, stream, turns, max_turns))
    assert follow_up == "Fake answer to: again"
    assert answered <= sum(len(t) for t in turns)
