"""Generation parameters: the checks of each API's parameters, the hints for a parameter of
the other API, and near misses of the client's own option names."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ..pipeline import Operation
from .base import (
    _boolean,
    _Check,
    _fail,
    _got,
    _integer,
    _json,
    _list,
    _number_in,
    _object,
    _show,
    _string,
    _strings,
)
from .embeddings import _is_token
from .options import (
    _OWN_NAMES,
)
from .tools import (
    _function_definition,
    _tool_choice,
    chat_tools,
)


def _stop(name: str, value: Any) -> None:
    if value is None or isinstance(value, str):
        return
    if not (
        isinstance(value, (list, tuple))
        and 1 <= len(value) <= 4
        and all(isinstance(v, str) for v in value)
    ):
        _fail(f"{name} must be a string or a list of 1 to 4 strings, got {_show(value)}")


def _logit_bias(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        _fail(f"{name} must be a dict of token id -> bias from -100 to 100, got {_show(value)}")
    for token, bias in value.items():
        if not (isinstance(token, str) and token.isdigit()) and not _is_token(token):
            _fail(f"{name} keys must be token ids, got {_show(token)}")
        if not (isinstance(bias, int) and not isinstance(bias, bool) and -100 <= bias <= 100):
            _fail(f"{name}[{token!r}] must be an integer from -100 to 100, got {_show(bias)}")


def _metadata(name: str, value: Any) -> None:
    """Metadata: at most 16 pairs; keys of at most 64 characters, values of at most 512."""
    if value is None:
        return
    if not isinstance(value, Mapping) or len(value) > 16:
        _fail(f"{name} must be a dict of at most 16 string pairs, got {_show(value)}")
    for key, item in value.items():
        if not (isinstance(key, str) and len(key) <= 64):
            _fail(f"{name} keys must be strings of at most 64 characters, got {_show(key)}")
        if not (isinstance(item, str) and len(item) <= 512):
            _fail(f"{name}[{key!r}] must be a string of at most 512 characters, got {_show(item)}")


_FORMATS = ("text", "json_object", "json_schema")


def _format(name: str, value: Any, *, nested: bool) -> None:
    """ResponseFormatText / JsonObject / JsonSchema (Chat nests the schema under
    ``json_schema``; Responses' ``text.format`` has ``name`` and ``schema`` beside ``type``)."""
    _object(name, value, shape="{'type': 'json_schema', ...}")
    kind = value.get("type")
    if kind not in _FORMATS:
        _fail(f"{name}.type must be one of {', '.join(_FORMATS)}; {_got(value, 'type')}")
    if kind == "json_schema":
        spec = value.get("json_schema") if nested else value
        where = f"{name}.json_schema" if nested else name
        _object(where, spec, shape="{'name': ..., 'schema': {...}}", required=("name",))
        schema = spec.get("schema")
        if (schema is not None or not nested) and not isinstance(schema, Mapping):
            _fail(f"{where}.schema must be a JSON-schema object (a dict), got {_show(schema)}")


def _response_format(name: str, value: Any) -> None:
    if value is not None:
        _format(name, value, nested=True)


def _text(name: str, value: Any) -> None:
    if value is None:
        return
    _object(name, value, shape="{'format': {'type': 'text'}}", optional=("verbosity",))
    if "format" in value:
        _format(f"{name}.format", value["format"], nested=False)


def _json_object(name: str, value: Any) -> None:
    if value is not None:
        _object(name, value, shape="{...}")


def _conversation(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        _object(name, value, shape="{'id': 'conv_...'}", required=("id",))


def _functions(name: str, value: Any) -> None:
    """The deprecated ``functions``: a list of function definitions (1 to 128)."""
    for i, spec in enumerate(_list(name, value, what="function definitions")):
        _function_definition(f"{name}[{i}]", spec)


def _function_call(name: str, value: Any) -> None:
    """The deprecated ``function_call``: ``"none"``, ``"auto"`` or ``{"name": ...}``."""
    if not (isinstance(value, str) and value in ("none", "auto")):
        _object(name, value, shape="{'name': ...}", required=("name",))


_COMMON: dict[str, _Check] = {
    # CreateChatCompletionRequest / CreateResponse (openapi.yaml): temperature 0..2,
    # top_p 0..1, top_logprobs 0..20.
    "temperature": _number_in(0, 2),
    "top_p": _number_in(0, 1),
    "top_logprobs": _integer(0, 20),
    "parallel_tool_calls": _boolean,
    "store": _boolean,
    "metadata": _metadata,
    "user": _string,
    "safety_identifier": _string,
    "prompt_cache_key": _string,
    "prompt_cache_retention": _string,
    "service_tier": _string,
    "stream_options": _json_object,
    "prompt_cache_options": _json_object,
    "moderation": _json_object,
}
_CHAT_ONLY: dict[str, _Check] = {
    # n: 1..128; penalties: -2..2 (CreateChatCompletionRequest). max_completion_tokens and
    # max_tokens are integers; the API refuses values below 1 ("integer below minimum value").
    "n": _integer(1, 128),
    "frequency_penalty": _number_in(-2, 2),
    "presence_penalty": _number_in(-2, 2),
    "max_completion_tokens": _integer(1),
    "max_tokens": _integer(1),
    "logprobs": _boolean,
    "logit_bias": _logit_bias,
    "seed": _integer(-(2**63), 2**63 - 1),
    "stop": _stop,
    "response_format": _response_format,
    "reasoning_effort": _string,
    "verbosity": _string,
    "modalities": _strings,
    "audio": _json_object,
    "prediction": _json_object,
    "web_search_options": _json_object,
    "tools": chat_tools,
    "tool_choice": _tool_choice("chat"),
    "functions": _functions,
    "function_call": _function_call,
}
_RESPONSES_ONLY: dict[str, _Check] = {
    # max_output_tokens: integer, minimum 16 (CreateResponse).
    "max_output_tokens": _integer(16),
    "max_tool_calls": _integer(0),
    "instructions": _string,
    "previous_response_id": _string,
    "truncation": _string,
    "background": _boolean,
    "include": _strings,
    "text": _text,
    "reasoning": _json_object,
    "prompt": _json_object,
    "conversation": _conversation,
    "context_management": lambda name, value: _json(name, value),
    "tool_choice": _tool_choice("responses"),
    "tools": lambda name, value: None,  # converted and checked by responses_tools already
}
_EMBEDDINGS: dict[str, _Check] = {
    # CreateEmbeddingRequest: dimensions >= 1; encoding_format float | base64.
    "dimensions": _integer(1),
    "encoding_format": lambda name, value: (
        None if value in ("float", "base64") else _fail(f"{name} must be 'float' or 'base64'")
    ),
    "user": _string,
}

_MAX_TOKENS = _CHAT_ONLY["max_tokens"]
_MAX_OUTPUT_TOKENS = _RESPONSES_ONLY["max_output_tokens"]
_CHECKS: dict[Operation, dict[str, _Check]] = {
    "chat": {**_COMMON, **_CHAT_ONLY},
    "responses": {**_COMMON, **_RESPONSES_ONLY},
    "embeddings": _EMBEDDINGS,
}
_HINTS: dict[Operation, dict[str, str]] = {
    "chat": {
        name: "a Responses API parameter; Chat Completions does not take it"
        for name in _RESPONSES_ONLY
        if name not in _CHAT_ONLY
    }
    | {
        "max_output_tokens": "a Responses API parameter: use max_tokens, which the client"
        " sends as max_completion_tokens",
        "reasoning": "a Responses API parameter: Chat Completions takes reasoning_effort",
        "text": "a Responses API parameter: Chat Completions takes response_format and verbosity",
    },
    "responses": {
        name: "a Chat Completions parameter; the Responses API does not take it"
        for name in _CHAT_ONLY
        if name not in _RESPONSES_ONLY
    }
    | {
        "response_format": "a Chat Completions parameter: the Responses API takes"
        " text={'format': {...}}",
        "reasoning_effort": "a Chat Completions parameter: the Responses API takes"
        " reasoning={'effort': ...}",
    },
    "embeddings": {},
}


def _check_params(operation: Operation, params: Mapping[str, Any]) -> None:
    checks = _CHECKS[operation]
    hints = _HINTS[operation]
    for name, value in params.items():
        check = checks.get(name)
        if check is not None:
            check(name, value)
        elif name in hints:
            _fail(f"{name} is {hints[name]}")
        else:
            _near_miss(name)
            _json(name, value)


def _near_miss(name: str) -> None:
    """Refuse a parameter that is a misspelling of one of the client's own per-call options
    (``timout=``): otherwise it would be sent to OpenAI as a request parameter."""
    close = difflib.get_close_matches(name, _OWN_NAMES, n=1, cutoff=0.8)
    if close:
        _fail(
            f"{name} is not a parameter of the API nor an option of the client"
            f" (did you mean `{close[0]}`?)"
        )
