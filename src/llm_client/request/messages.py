"""Chat Completions messages: each role's fields, tool calls and content."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from .base import (
    _fail,
    _got,
    _list,
    _object,
    _show,
)
from .parts import (
    _ASSISTANT_PARTS,
    _TEXT_PART,
    _USER_PARTS,
    _content,
)


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
