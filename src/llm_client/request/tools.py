"""Tool definitions and ``tool_choice`` for both APIs, and the Chat-to-Responses form of
function tools."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import (
    Api,
    _boolean,
    _Check,
    _fail,
    _got,
    _json,
    _list,
    _object,
    _show,
)

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
