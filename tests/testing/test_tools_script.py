"""Scripted tool conversations and OpenAI's tool-transcript checks, through the real SDK."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from llm_client.testing import FakeOpenAI, ToolScript, tool_script
from llm_client.testing.tools_script import model_turn, transcript_error

SSL_CONTEXT = ssl.create_default_context()


def _tool(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} tool",
            "parameters": {
                "type": "object",
                "properties": {"x": {"type": "integer"}},
                "required": ["x"],
            },
        },
    }


CHAT_TOOLS = [_tool("alpha"), _tool("beta")]
FLAT_TOOLS = [{"type": "function", **t["function"]} for t in CHAT_TOOLS]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def sdk(fake: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(
        base_url=fake.base_url,
        api_key="sk-test",
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(verify=SSL_CONTEXT),
    ) as client:
        yield client


SCRIPT = tool_script(
    [("alpha", {"x": 1}), ("beta", '{"x": 2')],  # turn 0: two parallel calls, one malformed
    ["alpha"],  # turn 1: arguments from the schema
    final="All done.",
)


async def test_chat_script_runs_turn_by_turn(sdk: AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": f"Go. {SCRIPT}"}]
    first = await sdk.chat.completions.create(model="m", messages=messages, tools=CHAT_TOOLS)
    calls = first.choices[0].message.tool_calls
    assert calls is not None
    assert first.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("alpha", '{"x": 1}'),
        ("beta", '{"x": 2'),
    ]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": "ok"} for c in calls]
    second = await sdk.chat.completions.create(model="m", messages=messages, tools=CHAT_TOOLS)
    (call,) = second.choices[0].message.tool_calls or []
    assert call.function.name == "alpha"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"x": 1}  # type: ignore[union-attr]
    messages.append(second.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "ok"})
    third = await sdk.chat.completions.create(model="m", messages=messages, tools=CHAT_TOOLS)
    assert third.choices[0].message.content == "All done."
    assert third.choices[0].message.tool_calls is None
    # deterministic: the same request gets the same calls, ids included
    again = await sdk.chat.completions.create(model="m", messages=messages[:1], tools=CHAT_TOOLS)
    assert again.choices[0].message.tool_calls == calls


async def test_chat_script_streamed(sdk: AsyncOpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": f"Go. {SCRIPT}"}]
    stream = await sdk.chat.completions.create(
        model="m", messages=messages, tools=CHAT_TOOLS, stream=True
    )
    pieces: dict[int, list[str]] = {}
    names: dict[int, str] = {}
    async for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            if tc.function and tc.function.name:
                names[tc.index] = tc.function.name
            if tc.function and tc.function.arguments:
                pieces.setdefault(tc.index, []).append(tc.function.arguments)
    assert names == {0: "alpha", 1: "beta"}
    assert "".join(pieces[1]) == '{"x": 2'


async def test_responses_script_and_stream(sdk: AsyncOpenAI) -> None:
    items: list[Any] = [{"role": "user", "content": f"Go. {SCRIPT}"}]
    first = await sdk.responses.create(model="m", input=items, tools=FLAT_TOOLS)  # type: ignore[arg-type]
    calls = [o for o in first.output if o.type == "function_call"]
    assert [(c.name, c.arguments) for c in calls] == [("alpha", '{"x": 1}'), ("beta", '{"x": 2')]
    items += [c.model_dump(exclude_none=True) for c in calls]
    items += [{"type": "function_call_output", "call_id": c.call_id, "output": "ok"} for c in calls]
    stream = await sdk.responses.create(model="m", input=items, tools=FLAT_TOOLS, stream=True)  # type: ignore[arg-type]
    final = None
    async for event in stream:
        if event.type == "response.completed":
            final = event.response
    assert final is not None
    (call,) = [o for o in final.output if o.type == "function_call"]
    assert call.name == "alpha"
    items += [call.model_dump(exclude_none=True)]
    items += [{"type": "function_call_output", "call_id": call.call_id, "output": "ok"}]
    last = await sdk.responses.create(model="m", input=items, tools=FLAT_TOOLS)  # type: ignore[arg-type]
    assert last.output_text == "All done."


async def test_server_script_and_tools_disabled(fake: FakeOpenAI, sdk: AsyncOpenAI) -> None:
    fake.tool_script = ToolScript.of(["alpha", "beta"], ["beta"])
    messages: list[Any] = [{"role": "user", "content": "no directive here"}]
    first = await sdk.chat.completions.create(model="m", messages=messages, tools=CHAT_TOOLS)
    assert [c.function.name for c in first.choices[0].message.tool_calls or []] == [  # type: ignore[union-attr]
        "alpha",
        "beta",
    ]
    single = await sdk.chat.completions.create(
        model="m", messages=messages, tools=CHAT_TOOLS, parallel_tool_calls=False
    )
    assert len(single.choices[0].message.tool_calls or []) == 1
    none = await sdk.chat.completions.create(
        model="m", messages=messages, tools=CHAT_TOOLS, tool_choice="none"
    )
    assert none.choices[0].message.tool_calls is None
    assert none.choices[0].message.content == "Fake answer to: no directive here"


async def test_chat_dangling_tool_call_is_rejected(sdk: AsyncOpenAI) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "alpha", "arguments": "{}"},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "beta", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "ok"},
        {"role": "user", "content": "and now?"},
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.chat.completions.create(model="m", messages=messages, tools=CHAT_TOOLS)
    assert caught.value.status_code == 400
    body: Any = caught.value.body
    assert body["message"] == (
        "An assistant message with 'tool_calls' must be followed by tool messages responding to"
        " each 'tool_call_id'. The following tool_call_ids did not have response messages: call_b"
    )
    assert body["type"] == "invalid_request_error"
    assert body["param"] == "messages.[3].role"
    stray = [
        {"role": "user", "content": "hi"},
        {"role": "tool", "tool_call_id": "x", "content": "1"},
    ]
    with pytest.raises(openai.BadRequestError, match="must be a response to a preceeding message"):
        await sdk.chat.completions.create(model="m", messages=stray)  # type: ignore[arg-type]


async def test_responses_dangling_function_call_is_rejected(sdk: AsyncOpenAI) -> None:
    items: list[Any] = [
        {"role": "user", "content": "hi"},
        {"type": "function_call", "call_id": "call_a", "name": "alpha", "arguments": "{}"},
        {"type": "function_call", "call_id": "call_b", "name": "beta", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_a", "output": "ok"},
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        await sdk.responses.create(model="m", input=items, tools=FLAT_TOOLS)  # type: ignore[arg-type]
    body: Any = caught.value.body
    assert body["message"] == "No tool output found for function call call_b."
    assert body["param"] == "input"
    orphan = [{"role": "user", "content": "hi"}, items[3]]
    with pytest.raises(openai.BadRequestError, match="No tool call found for function call output"):
        await sdk.responses.create(model="m", input=orphan)  # type: ignore[arg-type]


def test_model_turn_counts_tool_turns_since_the_last_user_message() -> None:
    call = {"type": "function_call", "call_id": "c", "name": "a", "arguments": "{}"}
    out = {"type": "function_call_output", "call_id": "c", "output": "1"}
    user = {"role": "user", "content": "x"}
    assert model_turn("x") == 0
    assert model_turn([user, call, call, out, out]) == 1
    assert model_turn([user, call, out, call, out]) == 2
    assert model_turn([user, call, out, user]) == 0
    assert transcript_error([user, call, out], "responses") is None


def test_bad_scripts_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one tool call"):
        ToolScript.of([])
    with pytest.raises(ValueError, match="a scripted tool call is"):
        ToolScript.of([42])  # type: ignore[list-item]
