"""Agents (issue 11): ``Tool`` and ``AgentRunner`` end to end, through the real SDK against the
fake server, on Chat Completions and the Responses API, unstreamed and streamed."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from llm_client import (
    AgentError,
    AgentEvent,
    AgentResult,
    AgentRunner,
    BudgetExceededError,
    ConfigurationError,
    GPT5Point4Nano,
    LLMEvent,
    MaxTurnsExceededError,
    OpenAIClient,
    RunBudget,
    StopRun,
    Tool,
    UnknownBackendError,
)
from llm_client.hookspecs import hookimpl
from llm_client.middleware.tokens import estimate_output_tokens
from llm_client.plugins import new_plugin_manager
from llm_client.testing import FakeOpenAI, ToolScript, tool_script
from llm_client.tokens import count_tokens
from llm_client.usage import Usage, price

APIS = ["chat", "responses"]
EXAMPLES = Path(__file__).parent / "examples"


def make_client(server: FakeOpenAI, api: str = "chat", **options: Any) -> OpenAIClient:
    return OpenAIClient(
        GPT5Point4Nano, api=api, base_url=server.base_url, api_key="sk-test", **options
    )  # type: ignore[arg-type]


async def collect(stream: AsyncIterator[LLMEvent]) -> tuple[list[LLMEvent], AgentResult]:
    events = [event async for event in stream]
    last = events[-1]
    assert isinstance(last, AgentEvent)
    assert last.type == "done"
    assert last.run is not None
    return events, last.run


async def run(runner: AgentRunner, stream: bool, **kwargs: Any) -> AgentResult:
    if stream:
        _, result = await collect(runner.stream(**kwargs))
        return result
    return await runner.run(**kwargs)


async def echo(text: str) -> str:
    """Echo the text back.

    Args:
        text: what to echo.
    """
    return f"echo {text}"


def sent_outputs(server: FakeOpenAI) -> list[str]:
    """The tool outputs of the last request, in order (either API)."""
    body = server.requests[-1].json
    items = body.get("messages") or body.get("input")
    return [
        i.get("content") if i.get("role") == "tool" else i.get("output")
        for i in items
        if i.get("role") == "tool" or i.get("type") == "function_call_output"
    ]


# --- the seed's example -------------------------------------------------------------------------


def test_seed_example_runs_unchanged(
    fake_openai: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_openai.tool_script = ToolScript.of([("get_time", {"zone": "UTC"})])
    spec = importlib.util.spec_from_file_location("seed_agent", EXAMPLES / "seed_agent.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    asyncio.run(module.main())
    assert capsys.readouterr().out == "Fake answer using tool result: time in UTC\n"
    first, second = fake_openai.requests
    assert first.json["tools"][0]["function"]["name"] == "get_time"
    assert second.json["messages"][-1] == {
        "role": "tool",
        "tool_call_id": second.json["messages"][-2]["tool_calls"][0]["id"],
        "content": "time in UTC",
    }


# --- parallel calls, both APIs, streamed or not -------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize("api", APIS)
async def test_parallel_calls_run_concurrently(server: FakeOpenAI, api: str, stream: bool) -> None:
    started: list[str] = []
    all_started = asyncio.Event()

    async def lookup(key: str) -> str:
        started.append(key)
        if len(started) == 3:
            all_started.set()
        # returns only if the three calls overlap (sequential calls would time out and fail)
        await asyncio.wait_for(all_started.wait(), 10)
        return f"value of {key}"

    script = tool_script(
        [("lookup", {"key": "a"}), ("lookup", {"key": "b"}), ("lookup", {"key": "c"})],
        [("lookup", {"key": "d"})],
    )
    async with make_client(server, api) as client:
        runner = AgentRunner(client, [lookup])
        result = await run(
            runner, stream, messages=[{"role": "user", "content": f"Look up. {script}"}]
        )
    assert result.stop_reason == "answer"
    assert result.output == "Fake answer using tool result: value of d"
    assert [c.result for c in result.tool_calls] == [f"value of {k}" for k in "abcd"]
    assert [c.turn for c in result.tool_calls] == [0, 0, 0, 1]
    assert all(c.ok and c.duration >= 0 and c.attempts == 1 for c in result.tool_calls)
    assert result.turn_count == 3 == server.count()
    assert sent_outputs(server) == [f"value of {k}" for k in "abcd"]
    # usage and cost, per turn and in total
    assert result.usage.total_tokens == sum(t.usage.total_tokens for t in result.turns) > 0
    assert result.cost == pytest.approx(sum(t.cost for t in result.turns))
    assert result.cost > 0


async def test_concurrency_cap_and_sync_tools_in_threads(server: FakeOpenAI) -> None:
    active = 0
    peak = 0
    threads: set[int] = set()

    async def slow(n: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        for _ in range(5):
            await asyncio.sleep(0)
        active -= 1
        return n

    def blocking(n: int) -> int:
        threads.add(threading.get_ident())
        return n * 10

    script = tool_script([("slow", {"n": i}) for i in range(5)], [("blocking", {"n": 1})])
    async with make_client(server) as client:
        runner = AgentRunner(client, [slow, blocking], max_parallel_tools=2)
        result = await runner.run(messages=[{"role": "user", "content": script}])
    assert peak == 2
    assert [c.result for c in result.tool_calls] == [0, 1, 2, 3, 4, 10]
    assert threads and threading.get_ident() not in threads


# --- failures go back to the model --------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize("api", APIS)
async def test_each_failure_goes_back_to_the_model(
    server: FakeOpenAI, api: str, stream: bool
) -> None:
    never = asyncio.Event()

    async def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    def explode(reason: str) -> str:
        raise RuntimeError(f"boom: {reason}")

    async def hang() -> str:
        await never.wait()
        return "never"

    async def cancelled() -> str:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(1)
        return "not reached"

    tools = [
        add,
        explode,
        Tool.from_function(hang, timeout=0.05),
        cancelled,
    ]
    script = tool_script(
        [
            ("add", '{"a": 1, "b": '),  # invalid JSON
            ("add", {"a": "one", "c": 3}),  # schema: wrong type, missing b, unknown c
            ("explode", {"reason": "x"}),  # raises
            ("hang", {}),  # times out
            ("nope", {}),  # unknown tool
            ("cancelled", {}),  # cancelled
            ("add", {"a": 2, "b": 3}),  # fine
        ]
    )
    async with make_client(server, api) as client:
        runner = AgentRunner(client, tools)
        result = await run(runner, stream, messages=[{"role": "user", "content": script}])
    kinds = [c.error_kind for c in result.tool_calls]
    assert kinds == [
        "invalid_arguments",
        "invalid_arguments",
        "raised",
        "timeout",
        "unknown_tool",
        "cancelled",
        None,
    ]
    outputs = sent_outputs(server)  # what the model was sent: one output per call
    assert len(outputs) == 7
    assert outputs[0].startswith("error: the arguments of add are not valid JSON")
    assert outputs[1] == (
        "error: the arguments of add do not match its parameters:\n"
        "- a: Input should be a valid integer, unable to parse string as an integer\n"
        "- b: Field required\n"
        "- c: Extra inputs are not permitted"
    )
    assert outputs[2] == "error: explode raised RuntimeError: boom: x"
    assert outputs[3] == "error: hang did not finish within 0.05 s"
    assert outputs[4] == (
        "error: there is no tool named 'nope'; the tools are: add, explode, hang, cancelled"
    )
    assert outputs[5] == "error: the call to cancelled was cancelled"
    assert outputs[6] == "5"
    assert result.output == "Fake answer using tool result: 5"  # and the loop went on
    assert result.stop_reason == "answer"


async def test_tool_retry_budget(server: FakeOpenAI) -> None:
    attempts: list[int] = []

    def flaky(n: int) -> str:
        attempts.append(n)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "finally"

    script = tool_script([("flaky", {"n": 1})])
    async with make_client(server) as client:
        retried = AgentRunner(client, [Tool.from_function(flaky, retries=2)])
        ok = await retried.run(messages=[{"role": "user", "content": script}])
        assert ok.tool_calls[0].result == "finally"
        assert ok.tool_calls[0].attempts == 3
        attempts.clear()
        once = AgentRunner(client, [Tool.from_function(flaky, retries=1)])
        failed = await once.run(messages=[{"role": "user", "content": script}])
    (call,) = failed.tool_calls
    assert call.error_kind == "raised"
    assert call.output == "error: flaky raised ConnectionError: try again (2 attempts)"


@pytest.mark.parametrize("api", APIS)
async def test_a_tool_stops_the_run(server: FakeOpenAI, api: str) -> None:
    async def finish(answer: str) -> str:
        raise StopRun(output=answer, message="answer found")

    script = tool_script([("finish", {"answer": "42"}), ("echo", {"text": "hi"})])
    async with make_client(server, api) as client:
        runner = AgentRunner(client, [finish, echo])
        result = await runner.run(messages=[{"role": "user", "content": script}])
        assert result.output == "42"
        assert result.stop_reason == "stopped"
        assert server.count() == 1
        assert [c.error_kind for c in result.tool_calls] == ["stopped", None]
        assert result.tool_calls[0].output == "finish ended the run: answer found"
        # the transcript answers both calls: OpenAI (and the fake server) accept it
        again = await runner.run(input=[*result.transcript, {"role": "user", "content": "thanks"}])
    assert again.output == "Fake answer to: thanks"


# --- transcripts --------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize("api", APIS)
async def test_transcript_continues_in_a_new_run(
    server: FakeOpenAI, api: str, stream: bool
) -> None:
    async with make_client(server, api) as client:
        runner = AgentRunner(client, [echo])
        first = await run(
            runner,
            stream,
            messages=[{"role": "user", "content": tool_script([("echo", {"text": "one"})])}],
        )
        follow_up = {"role": "user", "content": tool_script([("echo", {"text": "two"})])}
        second = await run(runner, stream, input=[*first.transcript, follow_up])
    assert second.output == "Fake answer using tool result: echo two"
    assert server.count() == 4
    sent = server.requests[-1].json
    items = sent["messages"] if api == "chat" else sent["input"]
    assert items[: len(first.transcript)] == first.transcript
    assert second.transcript[: len(first.transcript)] == first.transcript
    assert second.transcript[-1] == {"role": "assistant", "content": second.output}


@pytest.mark.parametrize("api", APIS)
async def test_a_dangling_tool_call_is_refused_like_openai(server: FakeOpenAI, api: str) -> None:
    async with make_client(server, api) as client:
        runner = AgentRunner(client, [echo])
        first = await runner.run(
            messages=[{"role": "user", "content": tool_script([("echo", {"text": "x"})])}]
        )
        # drop the tool output: the transcript now has a call without an answer
        broken = [
            m
            for m in first.transcript
            if m.get("role") != "tool" and m.get("type") != "function_call_output"
        ]
        with pytest.raises(AgentError) as caught:
            await runner.run(input=[*broken, {"role": "user", "content": "more"}])
    assert caught.value.status == 400
    call_id = first.tool_calls[0].id
    if api == "chat":
        assert "The following tool_call_ids did not have response messages: " + call_id in str(
            caught.value
        )
    else:
        assert f"No tool output found for function call {call_id}." in str(caught.value)
    assert caught.value.result.stop_reason == "error"


# --- max_turns ----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
@pytest.mark.parametrize("api", APIS)
async def test_max_turns_ends_with_a_final_answer(
    server: FakeOpenAI, api: str, stream: bool
) -> None:
    server.tool_script = ToolScript.of(*[[("echo", {"text": str(i)})] for i in range(10)])
    async with make_client(server, api) as client:
        runner = AgentRunner(client, [echo], max_turns=2)
        result = await run(runner, stream, messages=[{"role": "user", "content": "loop"}])
        assert result.stop_reason == "max_turns"
        assert result.turn_count == 3 == server.count()
        assert result.output == "Fake answer using tool result: echo 1"
        assert server.requests[-1].json["tool_choice"] == "none"
        assert result.turns[-1].tools_disabled
        strict = AgentRunner(client, [echo], max_turns=2, on_max_turns="raise")
        with pytest.raises(MaxTurnsExceededError) as caught:
            await strict.run(messages=[{"role": "user", "content": "loop"}])
    partial = caught.value.result
    assert partial.turn_count == 2 and len(partial.tool_calls) == 2
    assert server.count() == 5


# --- budgets ------------------------------------------------------------------------------------

TWO_TURNS = tool_script(
    [("echo", {"text": "a"}), ("echo", {"text": "b"})], [("echo", {"text": "c"})]
)


@pytest.mark.parametrize("api", APIS)
async def test_request_budget(server: FakeOpenAI, api: str) -> None:
    async with make_client(server, api) as client:
        runner = AgentRunner(client, [echo], budget=RunBudget(max_requests=1))
        with pytest.raises(BudgetExceededError) as caught:
            await runner.run(messages=[{"role": "user", "content": TWO_TURNS}])
    err = caught.value
    assert (err.limit, err.allowed, err.used, err.needed) == ("max_requests", 1, 1, 1)
    assert server.count() == 1  # checked before the second call
    assert err.result.stop_reason == "budget"
    assert err.result.turn_count == 1 and len(err.result.tool_calls) == 2
    assert err.result.usage == err.result.turns[0].usage
    async with make_client(server, api) as client:  # the partial transcript is valid
        more = await AgentRunner(client, [echo]).run(
            input=[*err.result.transcript, {"role": "user", "content": "go on"}]
        )
    assert more.output == "Fake answer to: go on"


async def test_tool_call_budget(server: FakeOpenAI) -> None:
    ran: list[str] = []

    async def note(text: str) -> str:
        ran.append(text)
        return text

    script = tool_script(
        [("note", {"text": "a"})], [("note", {"text": "b"}), ("note", {"text": "c"})]
    )
    events: list[LLMEvent] = []
    async with make_client(server) as client:
        runner = AgentRunner(client, [note], budget=RunBudget(max_tool_calls=2))
        with pytest.raises(BudgetExceededError) as caught:
            await runner.run(messages=[{"role": "user", "content": script}])
        with pytest.raises(BudgetExceededError):
            async for event in runner.stream(messages=[{"role": "user", "content": script}]):
                events.append(event)
    refused = [e.data["error_kind"] for e in events if e.type == "tool_result"]
    assert refused == [None, "budget", "budget"]
    assert [e.type for e in events][-1] == "turn"
    err = caught.value
    assert (err.limit, err.allowed, err.used, err.needed) == ("max_tool_calls", 2, 1, 2)
    assert ran == ["a", "a"]
    assert [c.error_kind for c in err.result.tool_calls] == [None, "budget", "budget"]
    # every call still has an output in the transcript
    outputs = [m["content"] for m in err.result.transcript if m["role"] == "tool"]
    assert outputs[1:] == ["error: not run: the run's tool-call budget (2) is used up"] * 2


def first_call_estimate(
    runner: AgentRunner, messages: list[Any], max_tokens: int
) -> tuple[int, int]:
    profile = runner.client.profile
    n_in = count_tokens(messages, model=profile, tools=[t.spec() for t in runner.tools.values()])
    return n_in, estimate_output_tokens({"max_tokens": max_tokens}, profile.max_output)


async def test_token_budget_uses_the_estimate_before_each_call(server: FakeOpenAI) -> None:
    messages = [{"role": "user", "content": TWO_TURNS}]
    async with make_client(server) as client:
        runner = AgentRunner(client, [echo])
        n_in, n_out = first_call_estimate(runner, messages, 40)
        # room for the first call's estimate only
        budget = RunBudget(max_total_tokens=n_in + n_out)
        with pytest.raises(BudgetExceededError) as caught:
            await runner.run(messages=messages, budget=budget, max_tokens=40)
        assert server.count() == 1
        err = caught.value
        assert err.limit == "max_total_tokens"
        assert err.used == err.result.usage.total_tokens > 0
        assert err.needed > 40
        with pytest.raises(BudgetExceededError):  # one token short: no call at all
            await runner.run(
                messages=messages,
                budget=RunBudget(max_total_tokens=n_in + n_out - 1),
                max_tokens=40,
            )
    assert server.count() == 1


async def test_cost_budget(server: FakeOpenAI) -> None:
    messages = [{"role": "user", "content": TWO_TURNS}]
    async with make_client(server) as client:
        runner = AgentRunner(client, [echo])
        n_in, n_out = first_call_estimate(runner, messages, 40)
        first = price(Usage(input_tokens=n_in, output_tokens=n_out), client.profile).total_cost
        with pytest.raises(BudgetExceededError) as caught:
            await runner.run(messages=messages, budget=RunBudget(max_cost=first), max_tokens=40)
    err = caught.value
    assert err.limit == "max_cost"
    assert server.count() == 1
    assert err.used == pytest.approx(err.result.cost) and err.used > 0
    assert "max_cost budget" in str(err)


# --- tools from plugins -------------------------------------------------------------------------


class TimePlugin:
    @staticmethod
    @hookimpl
    def register_tools(register: Callable[[Any], None]) -> None:
        async def get_time(zone: str) -> str:
            """The time in a zone.

            :param zone: an IANA zone name.
            """
            return f"noon in {zone}"

        register(Tool.from_function(get_time))

        def get_date() -> str:
            return "today"

        register(get_date)  # a plain function: named by __name__


async def test_plugin_tools_by_name(server: FakeOpenAI) -> None:
    pm = new_plugin_manager(autoload=False)
    pm.register(TimePlugin(), name="time-plugin")
    script = tool_script([("get_time", {"zone": "UTC"}), ("get_date", {}), ("echo", {"text": "x"})])
    async with make_client(server, plugin_manager=pm) as client:
        runner = AgentRunner(client, tools=["get_time", "get_date", echo])
        result = await runner.run(messages=[{"role": "user", "content": script}])
        sent = server.requests[0].json["tools"]
        with pytest.raises(UnknownBackendError, match="get_time"):
            AgentRunner(client, tools=["get_weather"])
    assert [c.result for c in result.tool_calls] == ["noon in UTC", "today", "echo x"]
    assert sent[0]["function"]["parameters"]["properties"]["zone"] == {
        "description": "an IANA zone name.",
        "type": "string",
    }


# --- streamed runs ------------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_streamed_run_matches_the_unstreamed_one(server: FakeOpenAI, api: str) -> None:
    script = tool_script(
        [("echo", {"text": "a"}), ("echo", {"text": "b"})], [("echo", {"text": "c"})]
    )
    messages = [{"role": "user", "content": f"Stream it. {script}"}]
    async with make_client(server, api) as client:
        runner = AgentRunner(client, [echo])
        plain = await runner.run(messages=messages)
        events, streamed = await collect(runner.stream(messages=messages))
    assert streamed.usage == plain.usage
    assert streamed.usage.total_tokens > 0 and streamed.cost > 0
    assert [t.usage for t in streamed.turns] == [t.usage for t in plain.turns]
    assert streamed.output == plain.output
    assert streamed.transcript == plain.transcript
    kinds = [e.type for e in events]
    assert kinds.count("meta") == 3 and kinds.count("usage") == 3
    assert kinds.count("tool_call_start") == 3 and kinds.count("tool_result") == 3
    assert kinds.count("turn") == 3 and kinds.count("done") == 1
    assert "text_delta" in kinds and "tool_call_delta" in kinds
    starts = [e.data for e in events if e.type == "tool_call_start"]
    assert [(s["turn"], s["name"], json.loads(s["arguments"])) for s in starts] == [
        (0, "echo", {"text": "a"}),
        (0, "echo", {"text": "b"}),
        (1, "echo", {"text": "c"}),
    ]
    results = [e.data for e in events if e.type == "tool_result"]
    assert sorted(r["output"] for r in results) == ["echo a", "echo b", "echo c"]
    turns = [e.data for e in events if e.type == "turn"]
    assert [t["usage"] for t in turns] == [t.usage.to_dict() for t in plain.turns]
    text = "".join(e.data["text"] for e in events if e.type == "text_delta")
    assert text == plain.output


async def test_every_turn_goes_through_the_pipeline(server: FakeOpenAI) -> None:
    messages = [{"role": "user", "content": TWO_TURNS}]
    async with make_client(server, cache_backend="memory") as client:
        runner = AgentRunner(client, [echo])
        first = await runner.run(messages=messages)
        again = await runner.run(messages=messages)
        stats = client.stats()
    assert server.count() == 3  # the second run's turns were cache hits
    assert [t.result.cached for t in again.turns] == [True, True, True]
    assert again.output == first.output
    assert stats["totals"]


async def test_cancelling_the_run_cancels_its_tools(server: FakeOpenAI) -> None:
    entered = asyncio.Event()
    cancelled: list[bool] = []

    async def wait_forever(text: str) -> str:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return text

    async with make_client(server) as client:
        runner = AgentRunner(client, [wait_forever])
        task = asyncio.ensure_future(
            runner.run(
                messages=[
                    {"role": "user", "content": tool_script([("wait_forever", {"text": "x"})])}
                ]
            )
        )
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert cancelled == [True]


# --- Tool.from_function and bad configuration ---------------------------------------------------


def test_from_function_schema_from_hints_and_docstring() -> None:
    def search(query: str, limit: int = 5, tags: list[str] | None = None) -> list[str]:
        """Search the catalogue.

        Results come back best first.

        Args:
            query: words to look for,
                in any order.
            limit (int): how many results.
            tags: only items with these tags.

        Returns:
            matching titles.
        """
        return []

    tool = Tool.from_function(search)
    assert tool.name == "search"
    assert tool.description == "Search the catalogue.\n\nResults come back best first."
    params = tool.parameters
    assert params["required"] == ["query"]
    assert params["additionalProperties"] is False
    assert params["properties"]["query"] == {
        "description": "words to look for, in any order.",
        "type": "string",
    }
    assert params["properties"]["limit"] == {
        "default": 5,
        "description": "how many results.",
        "type": "integer",
    }
    assert params["properties"]["tags"]["description"] == "only items with these tags."
    assert tool.spec("responses")["name"] == "search"
    values, errors = tool.validate({"query": "x", "limit": "7"})
    assert errors == [] and values == {"query": "x", "limit": 7, "tags": None}
    _, errors = tool.validate({"limit": True, "tags": [1]})
    assert errors == ["query: Field required", "tags.0: Input should be a valid string"]


def test_bad_tools_and_options_are_refused_by_name() -> None:
    async def f(x: int) -> int:
        return x

    with pytest.raises(ConfigurationError, match="Tool name must be 1 to 64"):
        Tool(name="has space", func=f)
    with pytest.raises(ConfigurationError, match="parameters must be a JSON schema"):
        Tool(name="f", parameters={"type": "string"}, func=f)
    with pytest.raises(ConfigurationError, match="func must be a function"):
        Tool(name="f")
    with pytest.raises(ConfigurationError, match="timeout must be a positive"):
        Tool(name="f", func=f, timeout=0)
    with pytest.raises(ConfigurationError, match=r"\*args / \*\*args cannot"):
        Tool.from_function(lambda *args: None, name="g")
    with pytest.raises(ConfigurationError, match="max_cost must be"):
        RunBudget(max_cost=-1)
    with pytest.raises(ConfigurationError, match="max_requests must be"):
        RunBudget(max_requests=1.5)  # type: ignore[arg-type]
    client = OpenAIClient(GPT5Point4Nano, api_key="sk-test", base_url="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="two tools are named 'f'"):
        AgentRunner(client, [f, f])
    with pytest.raises(ConfigurationError, match="max_turns must be"):
        AgentRunner(client, [f], max_turns=-1)
    with pytest.raises(ConfigurationError, match="max_parallel_tools must be"):
        AgentRunner(client, [f], max_parallel_tools=0)
    with pytest.raises(ConfigurationError, match="tools must be Tool objects"):
        AgentRunner(client, [42])  # type: ignore[list-item]


# --- model failures, retries and the API choice -------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_a_failed_model_call_ends_the_run_with_the_partial_result(
    server: FakeOpenAI, stream: bool
) -> None:
    async def echo_then_break(text: str) -> str:
        server.fail_next(400, message="Invalid 'messages': broken on purpose.")
        return text

    script = tool_script([("echo_then_break", {"text": "a"})])
    async with make_client(server) as client:
        runner = AgentRunner(client, [echo_then_break])
        messages = [{"role": "user", "content": script}]
        if stream:
            events = [e async for e in runner.stream(messages=messages)]
            last = events[-1]
            assert isinstance(last, AgentEvent) and last.type == "error"
            assert last.data["status"] == 400
            assert last.run is not None
            partial = last.run
        else:
            with pytest.raises(AgentError) as caught:
                await runner.run(messages=messages)
            assert caught.value.status == 400
            assert "broken on purpose" in str(caught.value)
            partial = caught.value.result
    assert partial.stop_reason == "error"
    assert partial.turn_count == 1 and partial.tool_calls[0].result == "a"
    assert partial.transcript[-1]["role"] == "tool"  # every call answered
    assert server.count() == 2


@pytest.mark.parametrize("api", APIS)
async def test_retries_of_the_pipeline_apply_to_each_turn(server: FakeOpenAI, api: str) -> None:
    async def echo_then_flake(text: str) -> str:
        server.fail_next(503)  # the next model call fails once, then the client retries it
        return text

    script = tool_script([("echo_then_flake", {"text": "a"})])
    async with make_client(server, api, backoff=0.001) as client:
        runner = AgentRunner(client, [echo_then_flake])
        result = await runner.run(messages=[{"role": "user", "content": script}])
    assert result.output == "Fake answer using tool result: a"
    assert [t.result.attempts for t in result.turns] == [1, 2]
    assert server.count() == 3


async def test_the_runner_can_use_the_other_api(server: FakeOpenAI) -> None:
    async with make_client(server, "chat") as client:
        runner = AgentRunner(client, [echo], api="responses")
        result = await runner.run(input=tool_script([("echo", {"text": "r"})]))
    assert [r.endpoint for r in server.requests] == ["responses", "responses"]
    assert result.api == "responses"
    assert result.transcript[1]["type"] == "function_call"
    assert result.output == "Fake answer using tool result: echo r"


async def test_bad_run_arguments_raise_before_anything_is_sent(server: FakeOpenAI) -> None:
    async with make_client(server) as client:
        runner = AgentRunner(client, [echo])
        with pytest.raises(ConfigurationError, match="plain string as input="):
            runner.stream(messages="hello")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match=r"messages=\[\.\.\.\] or input="):
            await runner.run()
        with pytest.raises(ConfigurationError, match="tools cannot be passed to run"):
            await runner.run(input="x", tools=[])
        with pytest.raises(ConfigurationError, match="budget must be a RunBudget"):
            await runner.run(input="x", budget={"max_requests": 1})  # type: ignore[arg-type]
    assert server.count() == 0


@pytest.mark.parametrize("stream", [False, True], ids=["run", "stream"])
async def test_the_default_client(fake_openai: FakeOpenAI, stream: bool) -> None:
    fake_openai.tool_script = ToolScript.of([("echo", {"text": "d"}), ("echo", {"text": "e"})])
    async with OpenAIClient(GPT5Point4Nano, cache_backend=None) as client:  # env from the fixture
        result = await run(
            AgentRunner(client, [echo]), stream, messages=[{"role": "user", "content": "hi"}]
        )
    assert result.output == "Fake answer using tool result: echo e"
    assert [c.result for c in result.tool_calls] == ["echo d", "echo e"]
    assert result.usage.total_tokens == sum(t.usage.total_tokens for t in result.turns) > 0
