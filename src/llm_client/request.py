"""Building a :class:`~llm_client.pipeline.Call` from the public arguments of one call.

Everything a caller hands to ``get_response``, ``invoke`` or ``stream`` is checked here, before
the call enters the chain: malformed input raises
:class:`~llm_client.exceptions.InvalidRequestError` at once, naming the parameter and what it
accepts, and nothing is sent. The differences between the APIs live here too: ``max_tokens``
becomes ``max_completion_tokens`` (Chat) or ``max_output_tokens`` (Responses), Chat-style tool
definitions take the Responses API's flat form, and a parameter of the other API is refused.

The rules are OpenAI's, from two sources that agree:

* the OpenAPI description of the API (github.com/openai/openai-openapi, ``openapi.yaml``:
  ``CreateChatCompletionRequest``, ``ChatCompletionRequestMessage`` and its content parts,
  ``ChatCompletionTool``, ``CreateResponse``, ``InputItem``, ``FunctionTool``,
  ``CreateEmbeddingRequest``), which also states the numeric ranges quoted below;
* openai-python's request types (``openai/types/chat/completion_create_params.py``, the
  ``chat_completion_*_param.py`` message, part and tool types,
  ``openai/types/responses/response_create_params.py`` and ``response_input_item_param.py``).

Values that are free-form by design (a JSON schema, metadata, built-in Responses tools and
items, parameters this module does not know) pass through unchanged, so new API features keep
working, but they must still be JSON: string keys, finite numbers. The checks are plain code
rather than pydantic models of the SDK's TypedDicts: those declare lists as ``Iterable``, which
pydantic validates lazily (after the call is built), and their union errors do not name the
field at fault.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, NoReturn, TypeAlias

from .exceptions import InvalidRequestError
from .models import ModelProfile
from .pipeline import CacheOptions, Call, Operation

__all__ = [
    "APIS",
    "CALL_OPTIONS",
    "FORBIDDEN_PARAMS",
    "Api",
    "CallOptions",
    "build_call",
    "check_call_options",
]

Api: TypeAlias = Literal["chat", "responses"]
APIS: tuple[Api, ...] = ("chat", "responses")

#: Keys that are transport options or secrets: never accepted as generation parameters.
FORBIDDEN_PARAMS = frozenset(
    {
        "api_key",
        "organization",
        "base_url",
        "extra_headers",
        "extra_query",
        "extra_body",
        "http_client",
        "max_retries",
    }
)

_Check: TypeAlias = Callable[[str, Any], None]
_MAX_DEPTH = 64  # deeper JSON is refused rather than risking the interpreter's recursion limit


def _fail(message: str) -> NoReturn:
    raise InvalidRequestError(message)


def _show(value: Any) -> str:
    """A short description of a rejected value for an error message."""
    try:
        text = repr(value)
    except Exception:  # a value whose repr fails still gets a clear message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else f"{text[:57]}..."


def _got(obj: Mapping[str, Any], key: str) -> str:
    return f"got {_show(obj[key])}" if key in obj else "it is missing"


# --- scalars ------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_in(low: float, high: float) -> _Check:
    def check(name: str, value: Any) -> None:
        # NaN fails both comparisons and infinity the upper one, so both are refused here.
        if value is not None and not (_is_number(value) and low <= value <= high):
            _fail(f"{name} must be a number from {low:g} to {high:g}, got {_show(value)}")

    return check


def _is_integer(value: Any) -> bool:
    """An int, or a float with no fraction: JSON Schema's ``integer`` counts 7.0 as one."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _integer(low: int, high: int | None = None) -> _Check:
    def check(name: str, value: Any) -> None:
        if value is None:
            return
        if _is_integer(value) and value >= low and (high is None or value <= high):
            return
        allowed = f"from {low} to {high}" if high is not None else f">= {low}"
        _fail(f"{name} must be an integer {allowed}, got {_show(value)}")

    return check


def _boolean(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        _fail(f"{name} must be true or false, got {_show(value)}")


def _string(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        _fail(f"{name} must be a string, got {_show(value)}")


def _strings(name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        _fail(f"{name} must be a list of strings, got {_show(value)}")


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is plain JSON data (exact built-in types): the fast path of
    :func:`_json`, which builds no field paths. ``False`` sends the value to the slow path."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if depth > _MAX_DEPTH:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:  # noqa: SIM110 (a loop is quicker than all() over a generator)
            if not _plain(item, depth + 1):
                return False
        return True
    return False


def _json(where: str, value: Any, depth: int = 0) -> None:
    """Refuse what has no JSON form: non-string keys, NaN and infinities, other objects."""
    if _plain(value, depth):
        return
    if value is None or isinstance(value, (str, int)):  # bool is an int
        return
    if isinstance(value, float):
        if math.isfinite(value):
            return
        _fail(f"{where} must be a finite number, got {value!r}")
    if depth > _MAX_DEPTH:
        _fail(f"{where} is nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                _fail(f"{where} has the key {_show(key)}: keys must be strings")
            _json(f"{where}.{key}", item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _json(f"{where}[{i}]", item, depth + 1)
    else:
        _fail(
            f"{where} must be JSON data (a string, number, boolean, null, list or dict),"
            f" got {type(value).__name__}"
        )


def _object(
    where: str,
    value: Any,
    *,
    shape: str,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    nullable: tuple[str, ...] = (),
    skip: frozenset[str] | tuple[str, ...] = (),
) -> Mapping[str, Any]:
    """Check a dict whose ``required``/``optional`` fields are strings (``nullable`` ones may
    also be ``None``); its other fields only need to be JSON, except those in ``skip``, which
    the caller checks itself."""
    if type(value) is not dict and not isinstance(value, Mapping):
        _fail(f"{where} must be a dict like {shape}, got {_show(value)}")
    for key in required:
        if not isinstance(value.get(key), str):
            _fail(f"{where}.{key} is required and must be a string; {_got(value, key)}")
    for key in optional:
        if key in value and not isinstance(value[key], str):
            _fail(f"{where}.{key} must be a string, got {_show(value[key])}")
    for key in nullable:
        item = value.get(key)
        if item is not None and not isinstance(item, str):
            _fail(f"{where}.{key} must be a string or None, got {_show(item)}")
    for key, item in value.items():
        # The string fields were checked above, so they pass the fast test.
        if key in skip or (type(key) is str and _plain(item)):
            continue
        if not isinstance(key, str):
            _fail(f"{where} has the key {_show(key)}: keys must be strings")
        _json(f"{where}.{key}", item)
    return value


def _list(where: str, value: Any, *, what: str, allow_empty: bool = False) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        _fail(f"{where} must be a list of {what}, got {_show(value)}")
    if not value and not allow_empty:
        _fail(f"{where} must not be an empty list")
    return value


# --- content parts ------------------------------------------------------------------------------


def _part_fields(*required: str, optional: tuple[str, ...] = ()) -> Callable[[str, Any], None]:
    def check(where: str, part: Any) -> None:
        _object(where, part, shape="{'type': ...}", required=required, optional=optional)

    return check


def _nested(field: str, shape: str, *required: str, optional: tuple[str, ...] = ()) -> _Check:
    """A part whose payload is a dict under ``field`` (``image_url``, ``input_audio``, ...)."""

    def check(where: str, part: Any) -> None:
        _object(where, part, shape=shape, skip=(field,))
        if field not in part:
            _fail(f"{where} needs '{field}': a dict like {shape}")
        _object(f"{where}.{field}", part[field], shape=shape, required=required, optional=optional)

    return check


def _input_image(where: str, part: Any) -> None:
    _object(
        where,
        part,
        shape="{'type': 'input_image', 'image_url': '...'}",
        optional=("detail",),
        nullable=("image_url", "file_id"),
    )
    if part.get("image_url") is None and part.get("file_id") is None:
        _fail(f"{where} needs 'image_url' (a URL or data URL) or 'file_id'")


#: Content parts by type, after ChatCompletionRequestMessageContentPart* (Chat) and
#: InputContent / OutputMessageContent (Responses) in OpenAI's OpenAPI description.
_PART_CHECKS: dict[str, _Check] = {
    # Chat Completions
    "text": _part_fields("text"),
    "image_url": _nested("image_url", "{'url': 'https://...'}", "url", optional=("detail",)),
    "input_audio": _nested(
        "input_audio", "{'data': '<base64>', 'format': 'wav'}", "data", "format"
    ),
    "file": _nested("file", "{'file_id': '...'}", optional=("file_id", "file_data", "filename")),
    "refusal": _part_fields("refusal"),
    # Responses
    "input_text": _part_fields("text"),
    "output_text": _part_fields("text"),
    "input_image": _input_image,
    "input_file": _part_fields(optional=("file_id", "file_data", "file_url", "filename")),
}

_TEXT_PART = frozenset({"text"})
_USER_PARTS = frozenset({"text", "image_url", "input_audio", "file"})
_ASSISTANT_PARTS = frozenset({"text", "refusal"})
_RESPONSES_PARTS = frozenset(
    {"input_text", "input_image", "input_file", "input_audio", "output_text", "refusal"}
)
_OUTPUT_PARTS = frozenset({"input_text", "input_image", "input_file"})


def _part(where: str, part: Any, allowed: frozenset[str]) -> None:
    if not isinstance(part, Mapping):
        _fail(
            f"{where} must be a content part like {{'type': 'text', 'text': '...'}},"
            f" got {_show(part)}"
        )
    kind = part.get("type")
    if not isinstance(kind, str) or kind not in allowed:
        _fail(f"{where}.type must be one of {', '.join(sorted(allowed))}; {_got(part, 'type')}")
    _PART_CHECKS[kind](where, part)


def _content(
    where: str,
    message: Mapping[str, Any],
    allowed: frozenset[str],
    *,
    required: bool = True,
    nullable: bool = False,
) -> None:
    if "content" not in message:
        if required:
            _fail(f"{where} needs 'content': a string or a list of content parts")
        return
    content = message["content"]
    if isinstance(content, str) or (content is None and nullable):
        return
    if not isinstance(content, (list, tuple)):
        _fail(
            f"{where}.content must be a string or a list of content parts"
            f" ({', '.join(sorted(allowed))}), got {_show(content)}"
        )
    if not content:  # minItems: 1 for every message's list of parts
        _fail(f"{where}.content must not be an empty list: use a string or at least one part")
    for j, part in enumerate(content):
        _part(f"{where}.content[{j}]", part, allowed)


# --- Chat Completions messages ------------------------------------------------------------------


def _tool_call(where: str, call: Any) -> None:
    _object(
        where, call, shape="{'id': ..., 'type': 'function', 'function': {...}}", required=("id",)
    )
    kind = call.get("type")
    if kind == "function":
        _object(
            f"{where}.function",
            call.get("function"),
            shape="{'name': ..., 'arguments': '{...}'}",
            required=("name", "arguments"),
        )
    elif kind == "custom":
        _object(
            f"{where}.custom",
            call.get("custom"),
            shape="{'name': ..., 'input': ...}",
            required=("name", "input"),
        )
    else:
        _fail(f"{where}.type must be 'function' or 'custom'; {_got(call, 'type')}")


def _system(where: str, m: Mapping[str, Any]) -> None:
    _content(where, m, _TEXT_PART)


def _user(where: str, m: Mapping[str, Any]) -> None:
    _content(where, m, _USER_PARTS)


def _assistant(where: str, m: Mapping[str, Any]) -> None:
    _content(where, m, _ASSISTANT_PARTS, required=False, nullable=True)
    tool_calls = m.get("tool_calls")
    if tool_calls is not None:
        for j, call in enumerate(_list(f"{where}.tool_calls", tool_calls, what="tool calls")):
            _tool_call(f"{where}.tool_calls[{j}]", call)
    function_call = m.get("function_call")
    if function_call is not None:
        _object(
            f"{where}.function_call",
            function_call,
            shape="{'name': ..., 'arguments': ...}",
            required=("name", "arguments"),
        )
    audio = m.get("audio")
    if audio is not None:
        _object(f"{where}.audio", audio, shape="{'id': ...}", required=("id",))
    if m.get("content") is None and not (
        tool_calls or function_call or audio or m.get("refusal") is not None
    ):
        _fail(f"{where} (assistant) needs 'content' unless it has 'tool_calls'")


def _tool(where: str, m: Mapping[str, Any]) -> None:
    _content(where, m, _TEXT_PART)
    if not isinstance(m.get("tool_call_id"), str):
        _fail(
            f"{where} (tool) needs 'tool_call_id': the id of the assistant's tool call it"
            f" answers (a string); {_got(m, 'tool_call_id')}"
        )


def _function(where: str, m: Mapping[str, Any]) -> None:
    content = m.get("content", ...)
    if content is not None and not isinstance(content, str):
        _fail(f"{where} (function) needs 'content': a string or None; {_got(m, 'content')}")


_MessageCheck: TypeAlias = Callable[[str, Mapping[str, Any]], None]
_Names: TypeAlias = tuple[str, ...]

#: role -> (check, string fields, nullable string fields, required string fields).
_CHAT_ROLES: dict[str, tuple[_MessageCheck, _Names, _Names, _Names]] = {
    "system": (_system, ("name",), (), ()),
    "developer": (_system, ("name",), (), ()),
    "user": (_user, ("name",), (), ()),
    "assistant": (_assistant, ("name",), ("refusal",), ()),
    "tool": (_tool, (), (), ()),
    "function": (_function, (), (), ("name",)),
}
_PLAIN_ROLES = ("user", "system", "assistant", "developer")  # a tuple: roles may be unhashable
_MESSAGE_FIELDS = frozenset({"content", "tool_calls", "function_call", "audio"})


def chat_messages(value: Any, name: str = "messages") -> list[Any]:
    """Check Chat Completions messages; return them as a new list (the dicts are shared)."""
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes, bytearray)):
        _fail(
            f"{name} must be a list of dicts like {{'role': 'user', 'content': '...'}},"
            f" got {_show(value)}"
        )
    if not value:
        _fail(f"{name} must not be empty")
    out: list[Any] = []
    for i, m in enumerate(value):
        if (  # the common {"role": ..., "content": "..."} needs nothing more
            type(m) is dict
            and len(m) == 2
            and type(m.get("content")) is str
            and m.get("role") in _PLAIN_ROLES
        ):
            out.append(m)
            continue
        where = f"{name}[{i}]"
        if not isinstance(m, Mapping):
            _fail(f"{where} must be a dict with 'role' and 'content', got {_show(m)}")
        role = m.get("role")
        spec = _CHAT_ROLES.get(role) if isinstance(role, str) else None
        if spec is None:
            _fail(f"{where}.role must be one of {', '.join(_CHAT_ROLES)}; {_got(m, 'role')}")
        check, optional, nullable, required = spec
        _object(
            where,
            m,
            shape="{'role': 'user', 'content': '...'}",
            required=required,
            optional=optional,
            nullable=nullable,
            skip=_MESSAGE_FIELDS,
        )
        check(where, m)
        out.append(m if type(m) is dict else dict(m))
    return out


# --- Responses input ----------------------------------------------------------------------------


def _output(where: str, item: Mapping[str, Any]) -> None:
    output = item.get("output")
    if isinstance(output, str):
        return
    if not isinstance(output, (list, tuple)):
        _fail(f"{where}.output must be a string or a list of content parts; {_got(item, 'output')}")
    for j, part in enumerate(output):
        _part(f"{where}.output[{j}]", part, _OUTPUT_PARTS)


def _reasoning(where: str, item: Mapping[str, Any]) -> None:
    summary = _list(f"{where}.summary", item.get("summary"), what="summary parts", allow_empty=True)
    for j, part in enumerate(summary):
        _object(
            f"{where}.summary[{j}]",
            part,
            shape="{'type': 'summary_text', 'text': ...}",
            required=("text",),
        )


#: Input items by type (ResponseInputItemParam): required string fields, nullable string
#: fields, and any further check. Other item types (built-in tool calls and their outputs)
#: pass through as JSON.
_ITEMS: dict[str, tuple[_Names, _Names, _MessageCheck | None]] = {
    "function_call": (("call_id", "name", "arguments"), ("id", "status"), None),
    "function_call_output": (("call_id",), ("id", "status"), _output),
    "custom_tool_call": (("call_id", "name", "input"), ("id",), None),
    "custom_tool_call_output": (("call_id",), ("id",), _output),
    "reasoning": ((), ("id", "encrypted_content", "status"), _reasoning),
    "item_reference": (("id",), (), None),
}
_ITEM_FIELDS = ("output", "summary")  # checked by _output and _reasoning
_INPUT_ROLES = ("user", "assistant", "system", "developer")


def responses_input(value: Any, name: str = "input") -> str | list[Any]:
    """Check a Responses ``input``: a string, or a list of messages and items."""
    if isinstance(value, str):
        return value
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        _fail(
            f"{name} must be a string or a list of input items"
            f" (messages like {{'role': 'user', 'content': '...'}}), got {_show(value)}"
        )
    if not value:
        _fail(f"{name} must not be an empty list")
    out: list[Any] = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(item, Mapping):
            _fail(f"{where} must be a dict (a message or an input item), got {_show(item)}")
        kind = item.get("type")
        if kind is None or kind == "message":
            role = item.get("role")
            if role == "tool":
                _fail(
                    f"{where} has role 'tool', which the Responses API does not take: send the"
                    " result as {'type': 'function_call_output', 'call_id': ..., 'output': ...}"
                )
            if role not in _INPUT_ROLES:
                _fail(
                    f"{where}.role must be one of {', '.join(_INPUT_ROLES)}; {_got(item, 'role')}"
                )
            _object(where, item, shape="{'role': 'user', 'content': '...'}", skip=("content",))
            _content(where, item, _RESPONSES_PARTS)
        elif not isinstance(kind, str):
            _fail(f"{where}.type must be a string such as 'message' or 'function_call_output'")
        else:
            required, nullable, extra = _ITEMS.get(kind, ((), (), None))
            _object(
                where,
                item,
                shape=f"{{'type': {kind!r}, ...}}",
                required=required,
                nullable=nullable,
                skip=_ITEM_FIELDS if extra else (),
            )
            if extra is not None:
                extra(where, item)
        out.append(item if type(item) is dict else dict(item))
    return out


def embedding_input(value: Any) -> Any:
    """Check an embeddings ``input``: text, texts, token ids or lists of token ids
    (CreateEmbeddingRequest: at most 2048 inputs, none empty)."""
    if isinstance(value, str):
        if not value:
            _fail("input must not be an empty string")
        return value
    if isinstance(value, (list, tuple)) and 0 < len(value) <= 2048:
        if all(isinstance(v, str) and v for v in value):
            return list(value)
        if all(_is_token(v) for v in value):
            return list(value)
        if all(isinstance(v, (list, tuple)) and v and all(_is_token(t) for t in v) for v in value):
            return [list(v) for v in value]
    _fail(
        "input must be a non-empty string, a list of 1 to 2048 non-empty strings, a list of"
        f" token ids, or a list of lists of token ids; got {_show(value)}"
    )


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# --- tools --------------------------------------------------------------------------------------

_FUNCTION_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _function_definition(where: str, spec: Any) -> None:
    """FunctionObject / FunctionTool: a name of letters, digits, '_' and '-' (at most 64, as the
    SDK's docstring for ``name`` says), an optional description, a JSON-schema object."""
    _object(
        where,
        spec,
        shape="{'name': 'get_weather', 'parameters': {...}}",
        required=("name",),
        optional=("description",),
    )
    name = spec["name"]
    if not 0 < len(name) <= 64 or not _FUNCTION_NAME_CHARS.issuperset(name):
        _fail(f"{where}.name must be 1 to 64 letters, digits, '_' or '-', got {_show(name)}")
    parameters = spec.get("parameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        _fail(f"{where}.parameters must be a JSON-schema object (a dict), got {_show(parameters)}")
    _boolean(f"{where}.strict", spec.get("strict"))


def _tool_list(name: str, value: Any) -> Sequence[Any]:
    if value is None:  # the same as no tools
        return ()
    return _list(name, value, what="tool definitions", allow_empty=True)


def chat_tools(name: str, value: Any) -> None:
    """ChatCompletionTool / CustomToolChatCompletions: ``{'type': 'function', 'function': {...}}``
    or ``{'type': 'custom', 'custom': {...}}``."""
    for i, tool in enumerate(_tool_list(name, value)):
        where = f"{name}[{i}]"
        _object(
            where, tool, shape="{'type': 'function', 'function': {'name': ...}}", skip=("function",)
        )
        kind = tool.get("type")
        if kind == "function":
            if "function" not in tool:
                _fail(
                    f"{where} needs 'function': a dict like {{'name': ..., 'parameters': {{...}}}}"
                )
            _function_definition(f"{where}.function", tool["function"])
        elif kind == "custom":
            _object(
                f"{where}.custom", tool.get("custom"), shape="{'name': ...}", required=("name",)
            )
        else:
            _fail(f"{where}.type must be 'function' or 'custom'; {_got(tool, 'type')}")


def responses_tools(name: str, value: Any) -> list[Any] | None:
    """Responses tools, Chat-style function tools converted to the flat FunctionTool form.

    Built-in tools (``web_search``, ``file_search``, ``mcp``, ...) pass through as JSON.
    """
    if value is None:
        return None
    out: list[Any] = []
    for i, tool in enumerate(_tool_list(name, value)):
        where = f"{name}[{i}]"
        _object(
            where,
            tool,
            shape="{'type': 'function', 'name': ..., 'parameters': {...}}",
            skip=("function",),
        )
        kind = tool.get("type")
        if not isinstance(kind, str):
            _fail(f"{where}.type must be a string such as 'function'; {_got(tool, 'type')}")
        if kind == "function":
            if "function" in tool:  # the Chat form: {"type": "function", "function": {...}}
                _function_definition(f"{where}.function", tool["function"])
                tool = {"type": "function", **tool["function"]}
            else:
                _function_definition(where, tool)
        elif "function" in tool:
            _json(f"{where}.function", tool["function"])
        if kind == "custom":
            _object(where, tool, shape="{'type': 'custom', 'name': ...}", required=("name",))
        out.append(tool)
    return out


def _tool_choice(api: Api) -> _Check:
    def check(name: str, value: Any) -> None:
        if value is None or (isinstance(value, str) and value in ("none", "auto", "required")):
            return
        if isinstance(value, Mapping) and isinstance(value.get("type"), str):
            _object(name, value, shape="{'type': 'function', ...}")
            if value["type"] == "function":
                if api == "chat":
                    _object(
                        f"{name}.function",
                        value.get("function"),
                        shape="{'name': ...}",
                        required=("name",),
                    )
                elif not isinstance(value.get("name"), str):
                    _fail(f"{name}.name is required and must be a string; {_got(value, 'name')}")
            return
        _fail(
            f"{name} must be 'none', 'auto', 'required' or a dict like"
            f" {{'type': 'function', ...}}, got {_show(value)}"
        )

    return check


# --- other parameters ---------------------------------------------------------------------------


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


# --- per-call options ---------------------------------------------------------------------------

_FLOAT_MAX = sys.float_info.max
_FLAGS = ("hash_as_identifier", "cache_response", "cache_errors", "rewrite_cache", "regen_cache")


def check_call_options(
    *,
    identifier: Any = None,
    attempts: Any = None,
    backoff: Any = None,
    timeout: Any = None,
    api: Any = None,
    **flags: Any,
) -> None:
    """Check the client's own per-call options (not sent to OpenAI)."""
    if identifier is not None and not (isinstance(identifier, str) and identifier):
        _fail(f"identifier must be a non-empty string (a cache key), got {_show(identifier)}")
    for name, value in flags.items():
        if type(value) is not bool:
            _fail(f"{name} must be True or False, got {_show(value)}")
    if attempts is not None and (
        not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1
    ):
        _fail(f"attempts must be an integer >= 1, got {_show(attempts)}")
    # Seconds end up as floats (asyncio's clock, the SDK's httpx timeout): an int too large for
    # one (10**400) is refused here, where it would otherwise raise OverflowError mid-call.
    if backoff is not None and not (_is_number(backoff) and 0 <= backoff <= _FLOAT_MAX):
        _fail(f"backoff must be a finite number of seconds >= 0, got {_show(backoff)}")
    if timeout is not None and not (_is_number(timeout) and 0 < timeout <= _FLOAT_MAX):
        _fail(f"timeout must be a finite, positive number of seconds, got {_show(timeout)}")
    if api is not None and api not in APIS:
        _fail(f"api must be 'chat' or 'responses', got {_show(api)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOptions:
    """The client's own per-call options, shared by ``invoke``, ``get_response`` and
    ``stream`` (which also take them as flat keywords). Checked on construction; none of them
    is sent to OpenAI."""

    identifier: str | None = None
    """Explicit cache key; overrides the one derived from the request."""
    hash_as_identifier: bool = True
    """Derive the cache key from the request when no identifier is given; with ``False`` and
    no identifier the call neither reads nor writes the cache."""
    cache_response: bool = True
    """Store the answer in the cache (successes only, unless :attr:`cache_errors`)."""
    cache_errors: bool = False
    """Also store failed results."""
    rewrite_cache: bool = False
    """Skip the read, call the API and overwrite the entry on success."""
    regen_cache: bool = False
    """Delete the entry first, call the API and store the new answer."""
    attempts: int | None = None
    """Attempts for this call (default: the client's :class:`~llm_client.config.RetryConfig`)."""
    backoff: float | None = None
    """Back-off base in seconds for this call (default: the client's)."""
    timeout: float | None = None
    """Deadline of this call in seconds, over every attempt and wait (default: the client's)."""
    api: Api | None = None
    """``"chat"`` or ``"responses"`` for this call (default: the client's ``api``)."""
    stream_idle_timeout: float | None = None
    """For :meth:`~llm_client.OpenAIClient.stream` only: the longest wait in seconds for the
    next piece of this stream (default: the client's)."""

    def __post_init__(self) -> None:
        if not (  # the defaults need no checking: the common case stays cheap
            self.identifier is None
            and self.attempts is None
            and self.backoff is None
            and self.timeout is None
            and self.api is None
            and self.hash_as_identifier is True
            and self.cache_response is True
            and self.cache_errors is False
            and self.rewrite_cache is False
            and self.regen_cache is False
            and self.stream_idle_timeout is None
        ):
            check_call_options(
                identifier=self.identifier,
                attempts=self.attempts,
                backoff=self.backoff,
                timeout=self.timeout,
                api=self.api,
                hash_as_identifier=self.hash_as_identifier,
                cache_response=self.cache_response,
                cache_errors=self.cache_errors,
                rewrite_cache=self.rewrite_cache,
                regen_cache=self.regen_cache,
            )
            idle = self.stream_idle_timeout
            if idle is not None and not (_is_number(idle) and 0 < idle < math.inf):
                _fail(
                    "stream_idle_timeout must be a finite, positive number of seconds,"
                    f" got {_show(idle)}"
                )

    @classmethod
    def take(cls, keywords: dict[str, Any], base: CallOptions | None = None) -> CallOptions:
        """Move the per-call options out of ``keywords`` (what is left are request
        parameters) into a :class:`CallOptions`, on top of ``base``."""
        base = _DEFAULT_OPTIONS if base is None else base
        if not isinstance(base, CallOptions):
            _fail(f"options must be a llm_client.CallOptions, got {type(base).__name__}")
        if not keywords or CALL_OPTIONS.isdisjoint(keywords):
            return base
        given = {name: keywords.pop(name) for name in CALL_OPTIONS if name in keywords}
        values = {f: getattr(base, f) for f in CALL_OPTIONS}
        values.update(given)
        return cls(**values)


#: The names of :class:`CallOptions`' fields.
CALL_OPTIONS = frozenset(f.name for f in fields(CallOptions))
#: Names a per-call keyword is compared with when it is not an API parameter.
_OWN_NAMES = sorted({*CALL_OPTIONS, "messages", "input", "raise_on_error", "options"})


_DEFAULT_OPTIONS = CallOptions()


def build_call(
    profile: ModelProfile,
    default_api: Api,
    messages: Any,
    input: Any,
    params: dict[str, Any],
    *,
    stream: bool,
    options: CallOptions | None = None,
) -> Call:
    """Check one call's arguments and build its :class:`Call`.

    ``params`` are the caller's extra keywords: the per-call options among them (the fields
    of :class:`CallOptions`, applied on top of ``options``) are taken out, and the rest are
    generation parameters. The dict is consumed.

    :raises InvalidRequestError: anything malformed, naming the parameter and what it takes;
        a keyword that is a near miss of one of our own option names (``timout=``) too.
    """
    opts = CallOptions.take(params, options)
    api = opts.api
    if opts.stream_idle_timeout is not None and not stream:
        _fail("stream_idle_timeout applies to streams: use client.stream(...), or timeout=...")
    if params:
        bad = FORBIDDEN_PARAMS.intersection(params)
        if bad:
            _fail(
                f"{', '.join(sorted(bad))} is a client or transport option, not a request"
                " parameter: pass it to OpenAIClient(...)"
            )
        if "stream" in params:
            _fail("use client.stream(...) for streaming, not stream=True")
        if "model" in params:
            _fail("model is chosen when the client is made: OpenAIClient(model, ...)")
    operation: Operation = "embeddings" if profile.is_embeddings else (api or default_api)
    body: dict[str, Any] = {"model": profile.model_name}
    if operation == "embeddings":
        if messages is not None:
            _fail(f"{profile.key} is an embeddings model: pass input=..., not messages")
        body["input"] = embedding_input(input)
    elif operation == "chat":
        if messages is None:
            if input is None:
                _fail("pass messages=[...] (or input='...')")
            name = "input"
            messages = [{"role": "user", "content": input}] if isinstance(input, str) else input
        else:
            name = "messages"
        body["messages"] = chat_messages(messages, name)
        if "max_tokens" in params:
            _MAX_TOKENS("max_tokens", params["max_tokens"])
            if "max_completion_tokens" not in params:
                params["max_completion_tokens"] = params.pop("max_tokens")
    else:
        if input is None:
            if messages is None:
                _fail("pass input='...' or messages=[...]")
            if isinstance(messages, str):
                _fail("messages must be a list of messages; pass a plain string as input='...'")
            body["input"] = responses_input(messages, "messages")
        else:
            body["input"] = responses_input(input)
        for old in ("max_tokens", "max_completion_tokens"):
            if old in params and "max_output_tokens" not in params:
                value = params.pop(old)
                _MAX_OUTPUT_TOKENS(f"{old} (sent as max_output_tokens)", value)
                params["max_output_tokens"] = value
        if "tools" in params:
            params["tools"] = responses_tools("tools", params["tools"])
    if params:
        _check_params(operation, params)
        body.update(params)
    return Call(
        profile=profile,
        operation=operation,
        params=body,
        stream=stream,
        cache=CacheOptions(
            identifier=opts.identifier,
            hash_as_identifier=opts.hash_as_identifier,
            cache_response=opts.cache_response,
            cache_errors=opts.cache_errors,
            rewrite_cache=opts.rewrite_cache,
            regen_cache=opts.regen_cache,
        ),
        timeout=opts.timeout,
        stream_idle_timeout=(
            None if opts.stream_idle_timeout is None else float(opts.stream_idle_timeout)
        ),
        attempts=opts.attempts,
        backoff=opts.backoff,
    )
