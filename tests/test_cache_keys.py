"""Cache key derivation, prompt/scope split, and keeping credentials out of entries."""

from __future__ import annotations

import enum
import json
import random
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_client.cache import (
    EXCLUDED_PARAMS,
    REDACTED,
    cache_identifier,
    cache_key,
    cache_scope,
    canonical_json,
    is_secret_name,
    namespaced_key,
    prompt_text,
    redact_text,
    request_hash,
    stored_params,
)
from llm_client.known_secrets import find_secret, redact_registered, remember_secret
from llm_client.models import GPT5Mini, GPT5Nano, TextEmbedding3Small
from llm_client.pipeline import CacheOptions, Call

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Tell me a joke."},
]


def chat(**params: Any) -> Call:
    body: dict[str, Any] = {"model": "gpt-5-nano", "messages": MESSAGES}
    body.update(params)
    return Call(profile=GPT5Nano, operation="chat", params=body)


def key(call: Call) -> str:
    return cache_key(call)


# --- basics --------------------------------------------------------------------------------------


def test_key_is_a_sha256_hex_digest() -> None:
    k = key(chat())
    assert len(k) == 64 and all(c in "0123456789abcdef" for c in k)


def test_equal_calls_have_equal_keys() -> None:
    assert key(chat(temperature=0.2)) == key(chat(temperature=0.2))


def test_streaming_does_not_change_the_key() -> None:
    plain = chat()
    assert key(plain) == key(plain.replace(stream=True))
    assert key(plain) == key(chat(stream=True, stream_options={"include_usage": True}))


def test_cache_options_and_runtime_fields_do_not_change_the_derived_key() -> None:
    plain = chat()
    changed = plain.replace(
        cache=CacheOptions(cache_response=False, rewrite_cache=True, cache_errors=True),
        timeout=5.0,
        deadline=123.0,
        attempts=7,
        backoff=2.0,
        context={"input_tokens": 12},
    )
    assert key(plain) == key(changed)


def test_model_and_operation_are_part_of_the_key() -> None:
    assert key(chat()) != key(chat(model="gpt-5-mini"))
    assert key(chat()) != key(Call(profile=GPT5Nano, operation="responses", params=chat().params))


def test_model_falls_back_to_the_profile() -> None:
    no_model = {"messages": MESSAGES}
    nano = Call(profile=GPT5Nano, operation="chat", params=no_model)
    mini = Call(profile=GPT5Mini, operation="chat", params=no_model)
    assert key(nano) == key(chat())
    assert key(nano) != key(mini)


CHANGES: list[tuple[str, Any, Any]] = [
    ("messages", MESSAGES, [*MESSAGES, {"role": "user", "content": "another"}]),
    ("messages", MESSAGES, [MESSAGES[1]]),
    ("temperature", 0.2, 0.3),
    ("top_p", 0.9, 1),
    ("max_tokens", 10, 11),
    ("max_completion_tokens", 10, 11),
    ("max_output_tokens", 10, 11),
    ("reasoning", {"effort": "low"}, {"effort": "high"}),
    ("reasoning_effort", "low", "minimal"),
    ("response_format", {"type": "json_object"}, {"type": "text"}),
    ("text", {"format": {"type": "text"}}, {"format": {"type": "json_object"}}),
    ("seed", 1, 2),
    ("tool_choice", "auto", "required"),
    ("tools", [{"type": "function", "function": {"name": "a"}}], []),
    ("instructions", "be brief", "be verbose"),
    ("dimensions", 256, 512),
    ("encoding_format", "float", "base64"),
    ("n", 1, 2),
    ("stop", ["\n"], ["."]),
    ("presence_penalty", 0, 0.5),
    ("frequency_penalty", 0, 0.5),
    ("logit_bias", {"50256": -100}, {"50256": 100}),
    ("logprobs", False, True),
    ("top_logprobs", 1, 2),
    ("parallel_tool_calls", True, False),
    ("previous_response_id", "resp_1", "resp_2"),
    ("include", ["reasoning.encrypted_content"], []),
    ("truncation", "auto", "disabled"),
    ("verbosity", "low", "high"),
    ("store", True, False),
    ("extra_body", {"x": 1}, {"x": 2}),
    ("some_future_parameter", 1, 2),
]


@pytest.mark.parametrize(("name", "a", "b"), CHANGES, ids=[c[0] for c in CHANGES])
def test_every_answer_changing_parameter_changes_the_key(name: str, a: Any, b: Any) -> None:
    assert key(chat(**{name: a})) != key(chat(**{name: b}))
    if name != "messages":  # and setting it at all does too
        assert key(chat(**{name: a})) != key(chat())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("api_key", "sk-secret-0123456789abcdefghij"),
        ("organization", "org-1"),
        ("project", "proj-1"),
        ("base_url", "http://elsewhere"),
        ("extra_headers", {"Authorization": "Bearer abc"}),
        ("extra_query", {"api-version": "1"}),
        ("timeout", 3.0),
        ("max_retries", 5),
        ("stream", True),
        ("stream_options", {"include_usage": True}),
        ("user", "user-123"),
        ("safety_identifier", "u-hash"),
        ("metadata", {"team": "a"}),
        ("prompt_cache_key", "pck"),
        ("service_tier", "flex"),
        ("Authorization", "Bearer xyz"),
        ("my_api_key", "k"),
    ],
)
def test_secrets_transport_and_bookkeeping_do_not_change_the_key(name: str, value: Any) -> None:
    assert key(chat(**{name: value})) == key(chat())


def test_excluded_params_are_documented_names() -> None:
    assert {"stream", "api_key", "extra_headers", "timeout", "user", "metadata"} <= EXCLUDED_PARAMS
    assert "store" not in EXCLUDED_PARAMS and "extra_body" not in EXCLUDED_PARAMS


def test_none_means_not_set_and_integral_floats_equal_ints() -> None:
    assert key(chat(temperature=None)) == key(chat())
    assert key(chat(temperature=1)) == key(chat(temperature=1.0))
    assert key(chat(temperature=True)) != key(chat(temperature=1))


def test_sdk_not_given_sentinels_are_ignored() -> None:
    openai = pytest.importorskip("openai")
    assert key(chat(temperature=openai.NOT_GIVEN)) == key(chat())


def test_identifier_overrides_and_collection_namespaces() -> None:
    call = chat().replace(cache=CacheOptions(identifier="my-id"))
    assert cache_identifier(call) == "my-id"
    assert cache_key(call) == "my-id"
    assert cache_key(call, collection="team") == "team/my-id"
    derived = chat()
    assert cache_key(derived, collection="team") == "team/" + request_hash(derived)
    assert namespaced_key("x") == "x"


def test_no_identifier_and_no_hashing_means_no_key() -> None:
    call = chat().replace(cache=CacheOptions(hash_as_identifier=False))
    assert cache_identifier(call) is None
    with pytest.raises(ValueError, match="no cache key"):
        cache_key(call)
    named = chat().replace(cache=CacheOptions(hash_as_identifier=False, identifier="x"))
    assert cache_key(named) == "x"


def test_embeddings_keys() -> None:
    def emb(**params: Any) -> Call:
        body = {"model": "text-embedding-3-small", "input": "hello", **params}
        return Call(profile=TextEmbedding3Small, operation="embeddings", params=body)

    assert key(emb()) == key(emb())
    assert key(emb()) != key(emb(input="hello!"))
    assert key(emb()) != key(emb(dimensions=256))
    assert key(emb(input=["a", "b"])) != key(emb(input=["b", "a"]))


# --- canonical JSON ------------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"


@dataclass
class Point:
    x: int
    y: float


def test_canonical_json_spellings() -> None:
    assert canonical_json({"b": 1, "a": [1.0, (2, 3)]}) == '{"a":[1,[2,3]],"b":1}'
    assert canonical_json({"e": Color.RED}) == canonical_json({"e": "red"})
    assert canonical_json(Point(1, 2.5)) == canonical_json({"x": 1, "y": 2.5})
    assert canonical_json({1, 3, 2}) == "[1,2,3]"
    assert canonical_json(b"\x00\x01") == '{"$bytes":"AAE="}'
    assert canonical_json(float("nan")) == canonical_json(float("nan"))
    assert canonical_json("ü") == '"\\u00fc"'


def test_a_pydantic_response_format_keys_by_its_schema() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Answer(pydantic.BaseModel):
        text: str

    class Other(pydantic.BaseModel):
        text: int

    assert key(chat(response_format=Answer)) == key(chat(response_format=Answer))
    assert key(chat(response_format=Answer)) != key(chat(response_format=Other))
    assert key(chat(x=Answer(text="a"))) == key(chat(x={"text": "a"}))


def test_values_without_a_deterministic_form_raise() -> None:
    with pytest.raises(TypeError, match="cannot derive a cache key"):
        key(chat(temperature=object()))
    with pytest.raises(TypeError):
        canonical_json(int)


# --- properties ----------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
param_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(
    lambda n: n not in EXCLUDED_PARAMS and not is_secret_name(n) and n != "model"
)


def shuffled(value: Any, rnd: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: shuffled(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rnd) for v in value]
    return value


@settings(max_examples=40, deadline=None)
@given(params=st.dictionaries(param_names, json_values, max_size=5), seed=st.integers())
def test_key_ignores_dict_order_and_json_whitespace(params: dict[str, Any], seed: int) -> None:
    base = chat(**params)
    reordered = chat(**shuffled(params, random.Random(seed)))
    pretty = json.loads(json.dumps(params, indent=3, separators=(" ,", " :  ")))
    assert key(base) == key(reordered) == key(chat(**pretty))


@settings(max_examples=40, deadline=None)
@given(name=param_names, a=json_values, b=json_values)
def test_any_change_of_a_parameter_changes_the_key(name: str, a: Any, b: Any) -> None:
    if a is None or b is None or canonical_json(a) == canonical_json(b):
        return  # None means "not set"; equal canonical forms are the same request
    assert key(chat(**{name: a})) != key(chat(**{name: b}))


secret_tokens = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    min_size=20,
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(token=secret_tokens, where=st.sampled_from(["api_key", "Authorization", "x-api-key"]))
def test_secrets_never_reach_a_key_or_the_stored_params(token: str, where: str) -> None:
    token += "7"  # real keys and tokens carry digits; prose without any is left alone
    secret = "sk-" + token
    call = chat(**{where: secret}, extra_headers={"Authorization": f"Bearer {token}"})
    assert key(call) == key(chat())
    assert token not in key(call)
    kept = stored_params(call.params)
    assert token not in json.dumps(kept)
    assert kept == {"model": "gpt-5-nano", "messages": MESSAGES}


# --- known secrets -------------------------------------------------------------------------------


def test_find_secret_names_environment_and_registered_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "very-secret-value-123")
    monkeypatch.setenv("POSTGRES_PASSWORD", "postgres")  # too short to be taken for a secret
    value = {"messages": [{"role": "user", "content": "tune postgres, not very-secret-value-123"}]}
    assert find_secret(value) == "the value of $MY_SERVICE_TOKEN"
    assert find_secret({"output": "how do I tune postgres?"}) is None
    remember_secret("sk-registered-0123456789")
    assert find_secret(["x", ("y", {"sk-registered-0123456789": 1})]) == "a client's API key"
    assert redact_registered("bad key sk-registered-0123456789!") == f"bad key {REDACTED}!"
    deep: Any = "leaf"
    for _ in range(300):
        deep = [deep]
    assert find_secret(deep) == "a value nested too deeply to check"


# --- log redaction -------------------------------------------------------------------------------


def test_redact_text_leaves_ordinary_text_alone() -> None:
    text = "ask for max_tokens=5 and a task-list; the sky is blue"
    assert redact_text(text, known=[]) == text
    assert redact_text("Authorization: Bearer abc.def-ghi_jkl", known=[]) == (
        f"Authorization: Bearer {REDACTED}"
    )


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("api_key", True),
        ("API-KEY", True),
        ("Authorization", True),
        ("client_secret", True),
        ("openai_api_key", True),
        ("max_tokens", False),
        ("prompt_cache_key", False),
        ("key", False),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


# --- prompt and scope ----------------------------------------------------------------------------


def test_prompt_is_the_last_user_turn() -> None:
    assert prompt_text(chat()) == "Tell me a joke."
    parts = [{"type": "text", "text": "Describe"}, {"type": "image_url", "image_url": {"url": "u"}}]
    call = chat(messages=[{"role": "user", "content": parts}])
    assert prompt_text(call) == "Describe"
    responses = Call(profile=GPT5Nano, operation="responses", params={"input": "hi there"})
    assert prompt_text(responses) == "hi there"
    assert prompt_text(chat(messages=[{"role": "system", "content": "x"}])) == ""


def test_scope_ignores_the_prompt_but_nothing_else() -> None:
    def ask(text: str, **params: Any) -> Call:
        return chat(messages=[MESSAGES[0], {"role": "user", "content": text}], **params)

    assert cache_scope(ask("a")) == cache_scope(ask("b"))
    assert key(ask("a")) != key(ask("b"))
    assert cache_scope(ask("a")) != cache_scope(ask("a", temperature=0.5))
    assert cache_scope(ask("a")) != cache_scope(ask("a", model="gpt-5-mini"))
    assert cache_scope(ask("a")) != cache_scope(ask("a"), collection="other")
    other_system = chat(messages=[{"role": "system", "content": "Be long."}, MESSAGES[1]])
    assert cache_scope(other_system) != cache_scope(chat())

    def with_image(url: str) -> Call:
        content = [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": url}},
        ]
        return chat(messages=[{"role": "user", "content": content}])

    assert cache_scope(with_image("a.png")) != cache_scope(with_image("b.png"))


# --- canonical_json spells everything as it always did ------------------------------------------


def _reference_canon(value: Any, depth: int = 0) -> Any:
    """The key material as _canon made it before its inlined fast paths (plain data only;
    anything else is left to the library's _canon, whose other branches did not change)."""
    from llm_client.cache.keys import _canon, _omitted

    if depth > 256:
        raise TypeError("request parameters are nested too deeply to derive a cache key")
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return value
    if kind is dict:
        return {
            (k if type(k) is str else str(k)): _reference_canon(v, depth + 1)
            for k, v in value.items()
            if not _omitted(v)
        }
    if kind is list or kind is tuple:
        return [_reference_canon(v, depth + 1) for v in value]
    return _canon(value, depth)


def _reference_json(value: Any) -> str:
    return json.dumps(
        _reference_canon(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, 1.0, 2.5, 1e16, 1e300, 0.05, 3.0e-7])
    | st.text(max_size=12)
)
_keys = st.text(max_size=6) | st.integers(-5, 5) | st.booleans() | st.none() | st.just(1.0)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_keys, inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_canonical_json_is_what_it_always_was(value: Any) -> None:
    try:
        expected = _reference_json(value)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@pytest.mark.parametrize("levels", [254, 255, 256, 257, 300])
def test_canonical_json_refuses_exactly_what_is_nested_too_deeply(levels: int) -> None:
    for leaf in ("text", 1, None, 2.0):
        deep: Any = {"leaf": leaf}
        for _ in range(levels):
            deep = [deep]
        try:
            expected = _reference_json(deep)
        except TypeError:
            with pytest.raises(TypeError, match="nested too deeply"):
                canonical_json(deep)
        else:
            assert canonical_json(deep) == expected
