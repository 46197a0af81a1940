"""Request building (llm_client.request) end to end: every malformed input of issue 8's list
raises our error, naming the parameter, before anything reaches the (fake) server; valid
OpenAI inputs of every documented shape still go through unchanged."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from llm_client import (
    ConfigurationError,
    ContextLengthExceededError,
    GPT5Nano,
    InvalidRequestError,
    OpenAIClient,
    TextEmbedding3Small,
)
from llm_client.testing import FakeOpenAI

USER = {"role": "user", "content": "What is the weather in Paris?"}
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}


def ask(content):
    return [{"role": "user", "content": content}]


@pytest.fixture
async def server():
    async with FakeOpenAI() as s:
        yield s


def make_client(server, model=GPT5Nano, **kw) -> OpenAIClient:
    kw.setdefault("rate_limit_backend", None)
    return OpenAIClient(model, base_url=server.base_url, api_key="sk-test", **kw)


# --- every malformed input of issue 8, defect 9 -------------------------------------------------

# (id, keyword arguments of the call, text the error must contain: the parameter's name)
BAD_CALLS = [
    ("content-of-numbers", {"messages": ask([1, 2])}, "messages[0].content[0]"),
    ("content-of-lists", {"messages": ask([[], []])}, "messages[0].content[0]"),
    ("part-without-text", {"messages": ask([{"type": "text"}])}, "messages[0].content[0].text"),
    ("name-not-a-string", {"messages": [{**USER, "name": 5}]}, "messages[0].name"),
    (
        "tool-message-without-id",
        {
            "messages": [
                USER,
                {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                {"role": "tool", "content": "Sunny"},
            ]
        },
        "messages[2] (tool) needs 'tool_call_id'",
    ),
    ("max-tokens-negative", {"messages": [USER], "max_tokens": -5}, "max_tokens"),
    (
        "max-tokens-negative-responses",
        {"messages": [USER], "max_tokens": -5, "api": "responses"},
        "max_tokens",
    ),
    ("temperature-text", {"messages": [USER], "temperature": "hot"}, "temperature"),
    ("temperature-object", {"messages": [USER], "temperature": object()}, "temperature"),
    ("temperature-nan", {"messages": [USER], "temperature": math.nan}, "temperature"),
    ("tool-without-function", {"messages": [USER], "tools": [{"type": "function"}]}, "tools[0]"),
    (
        "tool-without-function-responses",
        {"messages": [USER], "tools": [{"type": "function"}], "api": "responses"},
        "tools[0].name",
    ),
    ("tools-a-string", {"messages": [USER], "tools": "abc"}, "tools"),
    ("tools-of-numbers", {"messages": [USER], "tools": [1, 2]}, "tools[0]"),
    (
        "parameters-a-string",
        {
            "messages": [USER],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}],
        },
        "tools[0].function.parameters",
    ),
    ("identifier-a-number", {"messages": [USER], "identifier": 5}, "identifier"),
    ("messages-a-string-responses", {"messages": "hello", "api": "responses"}, "messages"),
    (
        "tool-role-responses",
        {"input": [{"role": "tool", "content": "x"}], "api": "responses"},
        "input[0]",
    ),
    ("timeout-nan", {"messages": [USER], "timeout": math.nan}, "timeout"),
    ("timeout-inf", {"messages": [USER], "timeout": math.inf}, "timeout"),
    ("backoff-nan", {"messages": [USER], "backoff": math.nan}, "backoff"),
    ("backoff-inf", {"messages": [USER], "backoff": math.inf}, "backoff"),
    # Finite, but too large for a float: used to raise OverflowError in the middle of the call.
    ("timeout-beyond-a-float", {"messages": [USER], "timeout": 10**400}, "timeout"),
    ("backoff-beyond-a-float", {"messages": [USER], "backoff": 10**400}, "backoff"),
]


@pytest.mark.parametrize(
    ("kwargs", "named"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
async def test_malformed_call_raises_and_sends_nothing(server, kwargs, named):
    client = make_client(server)
    try:
        with pytest.raises(InvalidRequestError) as info:
            await client.get_response(**kwargs)
        assert named in str(info.value)
        assert info.value.status == 400
        with pytest.raises(InvalidRequestError, match=re.escape(named)):
            client.stream(**kwargs)  # checked when called, before iteration
    finally:
        await client.close()
    assert server.count() == 0


async def test_large_but_valid_call_options_are_accepted_and_sent(server):
    """attempts has no upper bound and timeout/backoff only need to be finite (docs/api.md):
    huge values are valid and the call goes out. The property test once counted
    attempts=2**70 + 1 as malformed, and hypothesis displayed that draw as ``(n, ...)``."""
    client = make_client(server)
    try:
        for options in ({"attempts": 2**70 + 1}, {"timeout": 1e301}, {"backoff": 1e308}):
            result = await client.get_response(messages=[USER], **options)
            assert result["status"] == 200, options
    finally:
        await client.close()
    assert server.count() == 3


async def test_input_over_the_model_limit_raises_and_sends_nothing(server):
    tiny = dataclasses.replace(GPT5Nano, key="gpt-5-nano-request-tiny", max_input=20)
    client = make_client(server, tiny)
    try:
        for call in (
            client.get_response(messages=ask("word " * 50)),
            client.invoke(input="word " * 50, api="responses"),
        ):
            with pytest.raises(ContextLengthExceededError, match="at most 20 input tokens"):
                await call
    finally:
        await client.close()
    assert server.count() == 0


BAD_OPTIONS = [
    ("timeout-nan", {"timeout": math.nan}, "timeout"),
    ("timeout-inf", {"timeout": math.inf}, "timeout"),
    ("backoff-nan", {"backoff": math.nan}, "backoff"),
    ("backoff-inf", {"backoff": math.inf}, "backoff"),
    ("timeout-beyond-a-float", {"timeout": 10**400}, "timeout"),
    ("backoff-beyond-a-float", {"backoff": 10**400}, "backoff"),
    ("cache-backend-a-number", {"cache_backend": 123}, "cache_backend"),
    ("cache-ttl-inf", {"cache_ttl": math.inf}, "cache_ttl"),
    ("threshold-text", {"semantic_cache_threshold": "high"}, "semantic_cache_threshold"),
    ("rate-limit-backend-list", {"rate_limit_backend": []}, "rate_limit_backend"),
    ("pipeline-a-list", {"pipeline": []}, "pipeline"),
    ("plugin-manager-text", {"plugin_manager": "pm"}, "plugin_manager"),
    ("clock-a-number", {"clock": 1.5}, "clock"),
]


@pytest.mark.parametrize(
    ("kwargs", "named"), [c[1:] for c in BAD_OPTIONS], ids=[c[0] for c in BAD_OPTIONS]
)
def test_malformed_client_option_raises_configuration_error(kwargs, named):
    with pytest.raises(ConfigurationError) as info:
        OpenAIClient(GPT5Nano, api_key="sk-test", **kwargs)
    assert named in str(info.value)


async def test_a_parameter_of_the_other_api_is_refused_with_a_hint(server):
    client = make_client(server)
    try:
        with pytest.raises(InvalidRequestError, match="instructions is a Responses API"):
            await client.get_response(messages=[USER], instructions="Be brief.")
        with pytest.raises(InvalidRequestError, match="text=\\{'format'"):
            await client.get_response(
                messages=[USER], api="responses", response_format={"type": "json_object"}
            )
        with pytest.raises(InvalidRequestError, match="function_call_output"):
            await client.get_response(
                input=[USER, {"role": "tool", "tool_call_id": "c", "content": "x"}],
                api="responses",
            )
        with pytest.raises(InvalidRequestError, match="model is chosen"):
            await client.get_response(messages=[USER], model="gpt-4o")
    finally:
        await client.close()
    assert server.count() == 0


async def test_embedding_input_is_checked(server):
    client = make_client(server, TextEmbedding3Small)
    try:
        for bad in ("", [], [""], [1, "a"], [[]], ["x"] * 2049, [True], [-1]):
            with pytest.raises(InvalidRequestError, match=r"^input must"):
                await client.get_response(input=bad)
        with pytest.raises(InvalidRequestError, match="dimensions"):
            await client.get_response(input="text", dimensions=0)
    finally:
        await client.close()
    assert server.count() == 0


# --- valid OpenAI inputs are not refused --------------------------------------------------------

PNG = "data:image/png;base64,iVBORw0KGgo="

GOOD_CHAT = [
    (
        "multimodal-user-parts",
        {
            "messages": [
                {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                {
                    "role": "user",
                    "name": "alice",
                    "content": [
                        {"type": "text", "text": "Describe these."},
                        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                        {"type": "file", "file": {"file_id": "file-123"}},
                    ],
                },
            ]
        },
    ),
    (
        "tool-round-trip",
        {
            "messages": [
                {"role": "system", "content": "You call tools."},
                USER,
                {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
                {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
                {"role": "function", "name": "get_weather", "content": None},
                USER,
            ],
            "tools": [TOOL, {"type": "custom", "custom": {"name": "sql"}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        },
    ),
    (
        "generation-parameters",
        {
            "messages": [USER],
            "temperature": 0,
            "top_p": 1,
            "n": 1,
            "frequency_penalty": -2,
            "presence_penalty": 2.0,
            "max_tokens": 1,
            "seed": 7.0,
            "stop": ["\n\n", "END"],
            "logit_bias": {"50256": -100, "1234": 100},
            "logprobs": True,
            "top_logprobs": 20,
            "metadata": {"team": "a"},
            "reasoning_effort": "minimal",
            "verbosity": "low",
            "user": "u-1",
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "weather", "schema": {"type": "object"}, "strict": True},
            },
            "tool_choice": "auto",
            "some_future_parameter": {"nested": [1, 2.5, None, True]},
        },
    ),
    (
        "deprecated-functions",
        {
            "messages": [USER],
            "functions": [TOOL["function"]],
            "function_call": {"name": "get_weather"},
        },
    ),
]

GOOD_RESPONSES = [
    (
        "input-items",
        {
            "input": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is in this image?"},
                        {"type": "input_image", "image_url": PNG, "detail": "auto"},
                        {"type": "input_file", "file_id": "file-123"},
                    ],
                },
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "get_weather",
                    "arguments": '{"city": "Paris"}',
                },
                {"type": "function_call_output", "call_id": "call_1", "output": "Sunny"},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "It is sunny."}],
                },
                {"type": "item_reference", "id": "msg_1"},
                {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            ],
            "instructions": "Answer in French.",
            "tools": [
                TOOL,
                {"type": "function", "name": "flat", "parameters": None, "strict": None},
                {"type": "web_search"},
            ],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "max_output_tokens": 16,
            "text": {"format": {"type": "json_schema", "name": "w", "schema": {}}},
            "reasoning": {"effort": "low"},
            "include": ["reasoning.encrypted_content"],
            "store": False,
        },
    ),
]


@pytest.mark.parametrize(
    ("api", "kwargs"),
    [("chat", c[1]) for c in GOOD_CHAT] + [("responses", c[1]) for c in GOOD_RESPONSES],
    ids=[c[0] for c in GOOD_CHAT] + [c[0] for c in GOOD_RESPONSES],
)
async def test_valid_openai_inputs_are_sent_unchanged(server, api, kwargs):
    client = make_client(server)
    try:
        result = await client.get_response(api=api, **kwargs)
    finally:
        await client.close()
    assert result["status"] == 200, result["error"]
    sent = server.last_request().json
    if api == "chat":
        assert sent["messages"] == kwargs["messages"]
    else:
        assert sent["input"] == kwargs["input"]
        assert sent["tools"][0] == {"type": "function", **TOOL["function"]}  # the flat form
        assert sent["tools"][1:] == kwargs["tools"][1:]
    for name, value in kwargs.items():
        if name not in ("messages", "input", "tools", "max_tokens"):
            assert sent[name] == value, name


# --- per-call options: one definition, and near misses refused (issue 9 §2) ---------------------


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("identifer", "identifier"),
        ("cache_respnse", "cache_response"),
        ("timout", "timeout"),
        ("regen_cahce", "regen_cache"),
        ("atempts", "attempts"),
        ("mesages", "messages"),
    ],
)
async def test_a_misspelt_call_option_is_refused_not_sent(server, typo, meant):
    client = make_client(server)
    try:
        for call in (
            lambda: client.get_response(messages=[USER], **{typo: 5}),
            lambda: client.invoke(messages=[USER], **{typo: 5}),
        ):
            with pytest.raises(InvalidRequestError) as info:
                await call()
            assert typo in str(info.value) and f"did you mean `{meant}`?" in str(info.value)
        with pytest.raises(InvalidRequestError, match=f"did you mean `{meant}`"):
            client.stream(messages=[USER], **{typo: 5})
        responses = make_client(server, api="responses")
        with pytest.raises(InvalidRequestError, match=f"did you mean `{meant}`"):
            await responses.get_response(input="hi", **{typo: 5})
        await responses.close()
    finally:
        await client.close()
    assert server.count("chat") == 0 and server.count("responses") == 0


def test_no_api_parameter_is_mistaken_for_a_call_option():
    from llm_client.request.params import _CHECKS, _near_miss

    for checks in _CHECKS.values():
        for name in checks:
            _near_miss(name)  # raises if a real parameter looked like one of ours


async def test_call_options_object_and_flat_keywords_are_one_definition(server):
    from llm_client import CallOptions

    client = make_client(server, cache_backend="memory")
    try:
        options = CallOptions(identifier="fixed-key", attempts=1)
        first = await client.get_response(messages=[USER], options=options)
        again = await client.get_response(messages=ask("another prompt"), options=options)
        assert first["identifier"] == again["identifier"] == "fixed-key" and again["cached"]
        # a flat keyword overrides the object's field
        fresh = await client.get_response(
            messages=[USER], options=options, identifier="other-key", temperature=0.5
        )
        assert fresh["identifier"] == "other-key" and not fresh["cached"]
        assert fresh["params"]["temperature"] == 0.5 and "identifier" not in fresh["params"]
        events = [e async for e in client.stream(messages=[USER], options=options)]
        assert events[-1].type == "done"
    finally:
        await client.close()
    with pytest.raises(InvalidRequestError, match="stream_idle_timeout applies to streams"):
        await client.get_response(messages=[USER], stream_idle_timeout=2)
    with pytest.raises(InvalidRequestError, match="stream_idle_timeout"):
        CallOptions(stream_idle_timeout=-1)
    with pytest.raises(InvalidRequestError, match="attempts"):
        CallOptions(attempts=0)
    with pytest.raises(InvalidRequestError, match="cache_response"):
        CallOptions(cache_response=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="options must be"):
        await client.get_response(messages=[USER], options={"timeout": 3})  # type: ignore[arg-type]
