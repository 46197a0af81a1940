"""The shape every entry read from a backend must have before it becomes an answer."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any


class InvalidEntryError(ValueError):
    """A stored value is not a result this library wrote (see :func:`result_from_entry`)."""


_TEXT_OPERATIONS = frozenset({"chat", "responses"})
_OK_STATUS = range(200, 300)
_FAILED_STATUS = range(400, 600)
_NUMBER = (int, float)
_OPTIONAL_TEXT = ("identifier", "finish_reason", "response_id")


def _usage_fields() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from ..usage import Usage

    numeric: list[str] = []
    other: list[str] = []
    for f in dataclasses.fields(Usage):
        default = f.default
        if isinstance(default, _NUMBER) and not isinstance(default, bool):
            numeric.append(f.name)
        else:
            other.append(f.name)
    return tuple(numeric), tuple(other)


_USAGE_NUMERIC, _USAGE_OTHER = _usage_fields()


def _bad(what: str) -> InvalidEntryError:
    return InvalidEntryError(what)


def _check_number(value: Any, what: str) -> None:
    kind = type(value)
    if kind is bool or not (kind is int or kind is float or isinstance(value, _NUMBER)):
        raise _bad(f"{what} is {type(value).__name__}, not a number")
    if not (0 <= value < math.inf):  # also false for NaN
        raise _bad(f"{what} is {value!r}, not a finite number >= 0")


_vector_adapter: Any = None


def _check_vector(value: Any, what: str) -> None:
    """A non-empty list of finite numbers (not booleans).

    The per-number loop runs in pydantic-core: about twice as fast as a Python loop on a
    1,536-float vector (20 us against 40 us); the rest of the check is faster by hand.
    """
    global _vector_adapter
    if type(value) is not list or not value:
        raise _bad(f"{what} is not a non-empty list of numbers")
    if _vector_adapter is None:
        from typing import Annotated

        import pydantic

        _vector_adapter = pydantic.TypeAdapter(
            list[Annotated[float, pydantic.Strict(), pydantic.AllowInfNan(False)]]
        )
    try:
        _vector_adapter.validate_python(value)
    except ValueError as exc:  # pydantic.ValidationError
        raise _bad(f"{what} is not a list of finite numbers") from exc


def _check_output(value: Mapping[str, Any], operation: str, ok: bool) -> None:
    output = value["output"]
    if operation == "embeddings":
        if output is None and not ok:
            return
        if type(output) is list and output and type(output[0]) is list:
            for i, vector in enumerate(output):
                _check_vector(vector, f"output[{i}]")
        else:
            _check_vector(output, "output")
        return
    if type(output) is str or isinstance(output, str):
        return
    if output is None and (not ok or value.get("tool_calls")):
        return  # a failure, or an answer that is only tool calls (content null)
    raise _bad(f"output of a {operation} result is {type(output).__name__}, not text")


def _check_tool_calls(tool_calls: Any) -> None:
    if type(tool_calls) is not list:
        raise _bad(f"tool_calls is {type(tool_calls).__name__}, not a list")
    for i, call in enumerate(tool_calls):
        if type(call) is not dict:
            raise _bad(f"tool_calls[{i}] is {type(call).__name__}, not an object")
        for name in ("id", "name"):
            item = call.get(name)
            if item is not None and type(item) is not str:
                raise _bad(f"tool_calls[{i}].{name} is {type(item).__name__}, not text")
        arguments = call.get("arguments", "")
        if arguments is not None and type(arguments) is not str:
            raise _bad(f"tool_calls[{i}].arguments is {type(arguments).__name__}, not text")


def check_result_value(value: Any, operation: str) -> None:
    """Raise :class:`InvalidEntryError` unless ``value`` has the shape of a stored
    :meth:`LLMResult.to_dict() <llm_client.result.LLMResult.to_dict>` of ``operation``.

    Checked: the value is an object with ``params``, ``output``, ``usage`` and ``status``; the
    status is an integer in 200-299 (an answer) or 400-599 (a stored failure); the operation
    matches; the output is text for chat and Responses (``None`` only for a failure or an
    answer made of tool calls) and a non-empty list of finite numbers (or a list of such
    lists) for embeddings; ``tool_calls`` is a list of objects with text ``id``, ``name``
    and ``arguments``; every token count and cost in ``usage`` is a finite number >= 0; and
    the remaining fields have their types. Unknown extra fields are ignored.
    """
    if type(value) is not dict and not isinstance(value, Mapping):
        raise _bad(f"the stored value is {type(value).__name__}, not an object")
    for name in ("params", "output", "usage", "status"):
        if name not in value:
            raise _bad(f"the stored value has no {name!r}")
    status = value["status"]
    if type(status) is not int or not (status in _OK_STATUS or status in _FAILED_STATUS):
        raise _bad(f"status {status!r} is not an HTTP status of an answer or a failure")
    stored_operation = value.get("operation", "chat")
    if stored_operation != operation:
        raise _bad(f"the entry is a {stored_operation!r} result, not {operation!r}")
    if not isinstance(value["params"], Mapping):
        raise _bad("params is not an object")
    usage = value["usage"]
    if not isinstance(usage, Mapping):
        raise _bad(f"usage is {type(usage).__name__}, not an object")
    for name in _USAGE_NUMERIC:
        number = usage.get(name, 0)
        kind = type(number)
        # the common case inline (a finite int or float >= 0); anything else, and every
        # failure, is judged and worded by _check_number
        if not ((kind is int or kind is float) and 0 <= number < math.inf):
            _check_number(number, f"usage.{name}")
    tool_calls = value.get("tool_calls")
    if tool_calls is not None:
        _check_tool_calls(tool_calls)
    _check_output(value, operation, status in _OK_STATUS)
    error = value.get("error", "OK")
    if type(error) is not str:
        raise _bad(f"error is {type(error).__name__}, not text")
    for name in _OPTIONAL_TEXT:
        item = value.get(name)
        if item is not None and type(item) is not str:
            raise _bad(f"{name} is {type(item).__name__}, not text")
    model = value.get("model", "")
    if type(model) is not str:
        raise _bad(f"model is {type(model).__name__}, not text")
    attempts = value.get("attempts", 1)
    if type(attempts) is not int or attempts < 0:
        raise _bad(f"attempts is {attempts!r}, not a count")
    similarity = value.get("cache_similarity")
    if similarity is not None:
        _check_number(similarity, "cache_similarity")
