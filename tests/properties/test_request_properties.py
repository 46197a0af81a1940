"""Property tests of request building, end to end through the client and the fake server.

* Random JSON-like values (and a few values JSON cannot hold) for ``messages``/``input``,
  ``tools`` and the numeric options: the call either raises one of our errors (an
  ``LLMClientError``) with nothing sent, or it is a valid request that reaches the server and
  comes back as a result. Nothing else is ever raised.
* Values that are malformed by construction (one broken field in an otherwise valid request):
  always ``InvalidRequestError``, naming the parameter, and nothing is sent.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from llm_client import GPT5Nano, InvalidRequestError, LLMClientError, OpenAIClient
from llm_client.testing import FakeOpenAI

EXAMPLES = int(os.environ.get("REQUEST_PROPERTY_EXAMPLES", "200"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Words of the request vocabulary, so that random values often come close to valid ones and
# reach the deeper checks (a role that exists, a part type that exists, ...).
WORDS = [
    "user", "assistant", "system", "developer", "tool", "function", "message", "text",
    "image_url", "input_audio", "file", "refusal", "input_text", "input_image", "output_text",
    "function_call", "function_call_output", "reasoning", "custom", "auto", "none", "required",
]  # fmt: skip
KEYS = [
    "role", "content", "type", "text", "name", "tool_call_id", "tool_calls", "function",
    "parameters", "id", "arguments", "image_url", "url", "call_id", "output", "summary",
    "refusal", "description", "strict", "custom", "input",
]  # fmt: skip
NUMERIC_OPTIONS = [
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "frequency_penalty",
    "presence_penalty", "top_logprobs", "seed", "timeout", "backoff", "attempts",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities included
    | st.text(max_size=12)
    | st.sampled_from(WORDS)
)
json_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=16,
)
# What JSON has no form for, anywhere in a value.
odd = st.sampled_from([object(), b"bytes", frozenset({1}), 1j, float("nan"), -math.inf])
values = st.one_of(json_like, odd, st.lists(json_like | odd, max_size=3))
numbers = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(),
    st.sampled_from([0, 0.5, 1, 2, 16, 128, -0.0, 1e-300]),
)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    s = FakeOpenAI().start_in_thread()
    yield s
    s.stop_thread()


async def _call(server: FakeOpenAI, api: str, **kwargs: Any) -> Any:
    client = OpenAIClient(
        GPT5Nano, api_key="sk-test", base_url=server.base_url, rate_limit_backend=None
    )
    try:
        return await client.get_response(api=api, **kwargs)
    finally:
        await client.close()


def outcome(server: FakeOpenAI, api: str, **kwargs: Any) -> tuple[Any, int]:
    """Run one call; return (its result or our error, how many requests the server saw)."""
    before = server.count()
    try:
        result: Any = asyncio.run(_call(server, api, **kwargs))
    except LLMClientError as exc:  # anything else fails the test
        result = exc
    return result, server.count() - before


@SETTINGS
@given(
    api=st.sampled_from(["chat", "responses"]),
    conversation=values | st.just([{"role": "user", "content": "hello"}]),
    tools=st.none() | values,
    options=st.dictionaries(st.sampled_from(NUMERIC_OPTIONS), numbers | values, max_size=3),
)
def test_random_values_raise_only_our_errors_and_send_nothing_bad(
    server, api, conversation, tools, options
):
    kwargs = dict(options)
    kwargs["messages" if api == "chat" else "input"] = conversation
    if tools is not None:
        kwargs["tools"] = tools
    result, sent = outcome(server, api, **kwargs)
    event("refused" if isinstance(result, LLMClientError) else "sent")
    if isinstance(result, LLMClientError):
        assert sent == 0, f"{type(result).__name__} raised after a request was sent"
        assert result.status in (400, 413)
    else:
        assert isinstance(result, dict) and "status" in result  # a valid call was answered


# --- malformed by construction ------------------------------------------------------------------

USER = {"role": "user", "content": "hello"}
not_text = values.filter(lambda v: not isinstance(v, str))
not_list = values.filter(lambda v: not isinstance(v, (list, tuple)))
not_dict = values.filter(lambda v: not isinstance(v, dict))
not_role = values.filter(
    lambda v: (
        v not in ("system", "developer", "user", "assistant", "tool", "function")
        if isinstance(v, str)
        else True
    )
)


@st.composite
def bad_messages(draw: st.DrawFn, api: str) -> Any:
    """A messages list (or not a list) with exactly one thing wrong for ``api``."""
    kinds = ["outer", "item", "role", "content", "part", "text", "tool"]
    if api == "chat":
        kinds.append("name")  # Responses messages have no "name" field of their own
    kind = draw(st.sampled_from(kinds))
    if kind == "outer":
        return draw(not_list.filter(lambda v: v is not None) | st.just([]))
    if kind == "item":
        return [USER, draw(not_dict)]
    if kind == "role":
        return [{"role": draw(not_role), "content": "hi"}]
    if kind == "content":  # a user message's content must be a string or a list of parts
        content = draw(not_text.filter(lambda v: not isinstance(v, (list, tuple))) | st.just([]))
        return [{"role": "user", "content": content}]
    if kind == "part":
        return [{"role": "user", "content": ["hi" if draw(st.booleans()) else 1, draw(not_dict)]}]
    if kind == "text":
        return [{"role": "user", "content": [{"type": "text", "text": draw(not_text)}]}]
    if kind == "name":
        return [{**USER, "name": draw(not_text.filter(lambda v: v is not None))}]
    tool_call_id = draw(st.none() | not_text)
    message = {"role": "tool", "content": "result"}
    if tool_call_id is not None:
        message["tool_call_id"] = tool_call_id
    return [USER, message]


@st.composite
def bad_tools(draw: st.DrawFn) -> Any:
    """A tools list (or not a list) with exactly one thing wrong."""
    kind = draw(st.sampled_from(["outer", "item", "function", "name", "parameters"]))
    if kind == "outer":
        return draw(not_list.filter(lambda v: v is not None))
    if kind == "item":
        return [draw(not_dict)]
    if kind == "function":
        return [{"type": "function", "function": draw(not_dict)}]
    if kind == "name":
        return [{"type": "function", "function": {"name": draw(not_text)}}]
    parameters = draw(not_dict.filter(lambda v: v is not None))
    return [{"type": "function", "function": {"name": "f", "parameters": parameters}}]


def _outside(low: float, high: float) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.floats().filter(lambda v: not low <= v <= high),
        st.integers().filter(lambda v: not low <= v <= high),
        st.sampled_from([math.nan, math.inf, True, "1", None]).filter(lambda v: v is not None),
        odd,
    )


BAD_NUMBERS = {
    "temperature": _outside(0, 2),
    "top_p": _outside(0, 1),
    "frequency_penalty": _outside(-2, 2),
    "n": _outside(1, 128) | st.just(1.5),
    "max_tokens": _outside(1, math.inf) | st.just(2.5),
    "top_logprobs": _outside(0, 20),
    # The client's own options (docs/api.md): attempts is any integer >= 1 (no upper bound);
    # timeout and backoff are finite seconds, so only an int too large for a float is too big.
    "timeout": _outside(0, math.inf) | st.sampled_from([0, -0.0, 10**400]),
    "backoff": _outside(0, math.inf) | st.just(10**400),
    "attempts": _outside(1, math.inf) | st.just(2.0),
}


@SETTINGS
@given(api=st.sampled_from(["chat", "responses"]), data=st.data())
def test_malformed_values_are_refused_by_name_and_never_sent(server, api, data):
    numbers = sorted(BAD_NUMBERS)
    if api == "responses":  # Chat-only parameters are refused by name in any case
        numbers = [n for n in numbers if n not in ("frequency_penalty", "n")]
    name, value = data.draw(
        st.one_of(
            bad_messages(api).map(lambda v: ("messages", v)),
            bad_tools().map(lambda v: ("tools", v)),
            # st.tuples, not .map(lambda v: (n, v)): hypothesis shows a mapped lambda's draw
            # by its source, so every parameter's failure read "(n, ...)".
            st.sampled_from(numbers).flatmap(lambda n: st.tuples(st.just(n), BAD_NUMBERS[n])),
        )
    )
    kwargs: dict[str, Any] = {"messages": [USER], name: value}
    result, sent = outcome(server, api, **kwargs)
    assert isinstance(result, InvalidRequestError), result
    assert name in str(result)
    assert sent == 0
