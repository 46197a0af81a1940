"""The Responses API's ``input``: a string, or a list of messages and items."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import (
    _fail,
    _got,
    _list,
    _object,
    _show,
)
from .messages import (
    _MessageCheck,
    _Names,
)
from .parts import (
    _OUTPUT_PARTS,
    _RESPONSES_PARTS,
    _content,
    _part,
)


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
