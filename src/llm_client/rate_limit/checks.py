"""The rate limiter's constants and the checks on its settings and per-call amounts."""

from __future__ import annotations

import math

from ..exceptions import ConfigurationError, InvalidRequestError

DEFAULT_BURST_SECONDS = 1.0
"""Default burst: one second of the per-minute rate (at least one request)."""

DEFAULT_PAUSE_SECONDS = 1.0
"""How long a 429 pauses the exhausted dimension when the response says nothing about it."""

MAX_HEADER_PAUSE_SECONDS = 60.0
"""The longest pause a limiter (local or Redis) takes from a response's headers
(``retry-after-ms``, ``retry-after``, ``x-ratelimit-reset-*``). OpenAI's limits are per
minute, so no honest 429 asks for more; a larger value (a proxy's mistake, a hostile server)
would otherwise freeze the client, and through Redis every process sharing the budget. The
retry step decides separately whether to retry a call at all."""

MAX_TOKEN_PAD = 1.5
"""The most a limiter multiplies token estimates by after tokens-429s (see
:meth:`Limiter.update_from_headers`)."""

TOKEN_PAD_STEP = 1.05
"""Each tokens-429 multiplies the pad on token estimates by this (up to MAX_TOKEN_PAD)."""

NOT_SENT_ERRORS: tuple[type[BaseException], ...] = (InvalidRequestError, ConfigurationError)
"""Exceptions that prove a call never reached the server (bad input, raised before sending):
leaving a lease with one of these gives back its tokens and its request."""


# --- validation -----------------------------------------------------------------------------


def check_rate(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise ConfigurationError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ConfigurationError(f"{name} must be a positive, finite number, got {value!r}")
    return number


def check_amount(name: str, value: object) -> float:
    """Return a per-call amount (tokens, requests) as a float; it must be a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(f"{name} must be a number >= 0, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise InvalidRequestError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def check_burst_seconds(value: object) -> float:
    """Return ``burst_seconds`` (``None``: the default) if it is in (0, 60], else raise."""
    if value is None:
        return DEFAULT_BURST_SECONDS
    seconds = check_rate("burst_seconds", value)
    if seconds > 60:
        raise ConfigurationError(
            f"burst_seconds must be at most 60 (a whole minute of budget), got {value!r}"
        )
    return seconds


def bucket_capacity(per_minute: float, burst_seconds: float) -> float:
    """The capacity of a bucket: ``burst_seconds`` of its rate, but never less than 1."""
    return max(1.0, per_minute / 60.0 * burst_seconds)


def check_ceiling(name: str, value: object, default: float) -> float:
    """An explicit ceiling: ``None`` means ``default``; ``math.inf`` means none at all."""
    if value is None:
        return default
    if value == math.inf and not isinstance(value, bool):
        return math.inf
    return check_rate(name, value)
