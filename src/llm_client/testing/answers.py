"""How the fake model answers one request: text, tool calls, schema examples, stop and limits.

:func:`_plan` turns a normalized conversation and the request's options into an
:class:`_Answer`, which the Chat Completions and Responses handlers then render in their own
wire format (``chat.py``, ``responses.py``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import tools_script
from .content import (
    _answer_for,
    _cut_tokens,
    _last_user_text,
    _Msg,
    _pieces,
    _prompt_tokens,
    _short_hash,
    count_tokens,
)


def _example(schema: Any, name: str, root: Any, depth: int = 0) -> Any:
    """A deterministic value that satisfies a (simple) JSON schema."""
    if not isinstance(schema, dict) or depth > 8:
        return f"fake_{name}" if name else "fake"
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return _example(target, name, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            preferred = [
                o for o in options if not (isinstance(o, dict) and o.get("type") == "null")
            ]
            return _example((preferred or options)[0], name, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and "properties" in schema:
        kind = "object"
    if kind == "object":
        properties = schema.get("properties") or {}
        required = schema.get("required") or ()
        return {
            key: _example(properties.get(key), key, root, depth + 1)
            for key in required
            if isinstance(key, str)
        }
    if kind == "array":
        if schema.get("maxItems") == 0:
            return []
        return [_example(schema.get("items"), name, root, depth + 1)]
    if kind == "integer":
        minimum = schema.get("minimum")
        return int(minimum) if isinstance(minimum, (int, float)) else 1
    if kind == "number":
        minimum = schema.get("minimum")
        return float(minimum) if isinstance(minimum, (int, float)) else 1.0
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2024-01-01T00:00:00Z"
    if fmt == "date":
        return "2024-01-01"
    return f"fake_{name}" if name else "fake"


@dataclass(frozen=True, slots=True)
class _ToolCall:
    call_id: str
    name: str
    arguments: str


@dataclass(slots=True)
class _Answer:
    text: str | None
    tool_calls: list[_ToolCall]
    finish_reason: str  # chat vocabulary: stop | length | tool_calls
    prompt_tokens: int
    visible_tokens: int
    #: set when the model refuses: the refusal text (then ``text`` is None)
    refusal: str | None = None


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _tool_specs(tools: Any, *, flat: bool) -> list[tuple[str, Any]]:
    """(name, parameters) of the function tools; chat nests them under ``function``."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _BadRequest("'tools' must be an array", "tools")
    specs = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        spec = tool if flat else tool.get("function")
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            specs.append((spec["name"], spec.get("parameters") or {}))
    return specs


def _chosen_tools(
    specs: Sequence[tuple[str, Any]],
    tool_choice: Any,
    parallel: bool,
    msgs: Sequence[_Msg],
    *,
    flat: bool,
) -> list[tuple[str, Any]]:
    if not specs or tool_choice == "none":
        return []
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        function = tool_choice if flat else tool_choice.get("function")
        wanted = function.get("name") if isinstance(function, dict) else None
        # Accept either nesting: the SDK's types differ between the two APIs.
        wanted = wanted or tool_choice.get("name")
        return [spec for spec in specs if spec[0] == wanted][:1]
    required = tool_choice == "required"
    if not required and msgs and msgs[-1].role == "tool":
        return []  # a tool result just came back: answer in text
    lowered = _last_user_text(msgs).lower()
    mentioned = [spec for spec in specs if spec[0].lower() in lowered]
    if not mentioned and required:
        mentioned = [specs[0]]
    return mentioned if parallel else mentioned[:1]


def _apply_stop(text: str, stop: Any) -> tuple[str, bool]:
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    cut = min((text.find(s) for s in stops if isinstance(s, str) and s and s in text), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _plan(
    msgs: list[_Msg],
    *,
    specs: list[tuple[str, Any]],
    tool_choice: Any,
    parallel: bool,
    flat: bool,
    schema: Any,
    json_object: bool,
    stop: Any,
    max_tokens: Any,
    scripted: tools_script.Turn | None = None,
) -> _Answer:
    prompt = _prompt_tokens(msgs)
    if scripted is not None:  # a tool script decides (see tools_script.py)
        schemas = dict(specs)
        chosen = [(name, schemas.get(name, {"type": "object"})) for name, _ in scripted.calls]
        wire: list[str | None] = [arguments for _, arguments in scripted.calls]
    else:
        chosen = _chosen_tools(specs, tool_choice, parallel, msgs, flat=flat)
        wire = [None] * len(chosen)
    if chosen:
        calls = []
        for index, (name, parameters) in enumerate(chosen):
            arguments = wire[index]
            if arguments is None:
                arguments = json.dumps(_example(parameters, "", parameters))
            call_id = "call_" + _short_hash(name, arguments, len(msgs), index)
            calls.append(_ToolCall(call_id, name, arguments))
        visible = sum(count_tokens(c.name) + count_tokens(c.arguments) for c in calls)
        return _Answer(None, calls, "tool_calls", prompt, visible)
    if scripted is not None and scripted.final is not None:
        text = scripted.final
    elif schema is not None:
        text = json.dumps(_example(schema, "", schema))
    elif json_object:
        text = json.dumps({"answer": _answer_for(msgs)})
    else:
        text = _answer_for(msgs)
    text, _ = _apply_stop(text, stop)
    finish = "stop"
    limited = isinstance(max_tokens, int) and not isinstance(max_tokens, bool)
    if limited and count_tokens(text) > max_tokens:
        text = _cut_tokens(text, max_tokens)
        finish = "length"
    return _Answer(text, [], finish, prompt, count_tokens(text))


def _truncate_answer(answer: _Answer, pieces: int) -> _Answer:
    """The answer cut after ``pieces`` stream deltas, as if the output limit was hit."""
    if answer.text is None:
        return dataclasses.replace(answer, finish_reason="length")
    text = "".join(_pieces(answer.text)[:pieces])
    return dataclasses.replace(
        answer, text=text, finish_reason="length", visible_tokens=count_tokens(text)
    )
