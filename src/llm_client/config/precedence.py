"""The one precedence rule (argument > environment > default) and the one reading of yes/no
flags."""

from __future__ import annotations

import os
from typing import Any

from ..exceptions import ConfigurationError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def parse_bool(value: Any, name: str) -> bool:
    """``True``/``False`` from a flag given as text (``"1"``, ``"true"``, ``"yes"``, ``"on"``
    and their opposites, any case); anything else raises naming ``name``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(
        f"{name}={value!r} is not a yes/no value: use one of 1, true, yes, on, 0, false, no, off"
    )


def env_flag(variable: str) -> bool:
    """Whether the environment variable ``variable`` is set to a true value (unset: false)."""
    return parse_bool(os.environ.get(variable, ""), variable)


def resolve(argument: Any, variable: str | None = None, default: Any = None) -> Any:
    """The one precedence rule: ``argument`` if given (not ``None`` and not ``""``), else the
    non-empty value of the environment variable ``variable``, else ``default``."""
    if argument is not None and argument != "":
        return argument
    if variable is not None:
        from_env = os.environ.get(variable, "").strip()
        if from_env:
            return from_env
    return default
