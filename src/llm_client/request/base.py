"""What every check shares: the failure with a clear message, and the checks of scalars,
lists, objects and JSON values."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NoReturn, TypeAlias

from ..exceptions import InvalidRequestError

Api: TypeAlias = Literal["chat", "responses"]
APIS: tuple[Api, ...] = ("chat", "responses")

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
