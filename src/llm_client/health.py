"""Outage tracking for one remote service: log once when it goes, once when it comes back.

Shared by every backend that talks to a server (our PostgreSQL, Redis and Qdrant plugins, and
third-party ones): a failing service is logged once per outage, skipped cheaply while it is
down, and picked up again when it returns.

A backend asks :meth:`ServiceHealth.should_try` before using the service. While the service is
down, it is tried again at most every ``reconnect_interval`` seconds, so a dead server costs
each call nothing but a clock read; the first success after an outage logs the recovery.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .clock import Clock, MonotonicClock
from .config import parse_bool
from .exceptions import ConfigurationError

__all__ = ["ServiceDown", "ServiceHealth", "coerce_options", "redact", "seconds_option"]


def seconds_option(value: Any, name: str) -> float | None:
    """A positive number of seconds from an option (``None`` stays ``None``)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name}={value!r} is not a number of seconds") from None
    if number <= 0:
        raise ConfigurationError(f"{name}={value!r} must be positive")
    return number


def coerce_options(options: dict[str, Any], types: dict[str, type]) -> dict[str, Any]:
    """Options given as text (``llm-client cache -o name=value``) turned into numbers/flags."""
    out = dict(options)
    for name, kind in types.items():
        value = out.get(name)
        if value is None or type(value) is kind:
            continue
        try:
            if kind is bool:
                out[name] = parse_bool(value, name)
            else:
                out[name] = kind(value)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{name}={value!r} is not a valid {kind.__name__}") from None
    return out


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for log messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class ServiceHealth:
    """Whether a service is believed up, and the once-per-outage log lines.

    :param service: what to call it in logs (``"Redis"``, ``"PostgreSQL"``).
    :param target: where it lives (credentials are redacted before logging); ``""`` when the
        service name says it all.
    :param logger: where the lines go.
    :param reconnect_interval: seconds between attempts while the service is down.
    :param clock: monotonic time source; tests inject a manual one.
    """

    __slots__ = (
        "_clock",
        "_down_since",
        "_last_attempt",
        "_logger",
        "failures",
        "reconnect_interval",
        "service",
        "target",
    )

    def __init__(
        self,
        service: str,
        target: str,
        *,
        logger: logging.Logger,
        reconnect_interval: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self.service = service
        self.target = redact(target)
        self.reconnect_interval = max(0.0, reconnect_interval)
        self.failures = 0
        self._logger = logger
        self._clock: Clock = clock or MonotonicClock()
        self._down_since: float | None = None
        self._last_attempt = 0.0

    @property
    def up(self) -> bool:
        return self._down_since is None

    def should_try(self) -> bool:
        """True when the service is up, or down long enough to be worth another attempt."""
        if self._down_since is None:
            return True
        now = self._clock.now()
        if now - self._last_attempt >= self.reconnect_interval:
            self._last_attempt = now
            return True
        return False

    @property
    def _where(self) -> str:
        return f"{self.service} at {self.target}" if self.target else self.service

    def failed(self, exc: BaseException, *, reason: str | None = None) -> None:
        """Record a failure; the first one of an outage is logged as a warning.

        :param reason: what to log instead of ``"<type>: <message>"`` of ``exc`` (for a
            message that needs redacting, or a failure that is not an exception's text).
        """
        self.failures += 1
        now = self._clock.now()
        self._last_attempt = now
        if self._down_since is None:
            self._down_since = now
            self._logger.warning(
                "%s is unavailable (%s); continuing without it and retrying every %.1fs",
                self._where,
                reason if reason is not None else f"{type(exc).__name__}: {exc}",
                self.reconnect_interval,
            )

    def succeeded(self) -> None:
        """Record a success; the first one after an outage is logged at INFO."""
        if self._down_since is not None:
            downtime = self._clock.now() - self._down_since
            self._down_since = None
            self._logger.info("%s is reachable again after %.1fs", self._where, downtime)


class ServiceDown(Exception):
    """Raised inside a backend when a service failed, or is waiting out its reconnect interval.

    The backend turns it into a fallback to its other service, or into
    ``CacheUnavailableError`` when nothing is left to answer.
    """

    def __init__(self, health: ServiceHealth) -> None:
        super().__init__(f"{health.service} at {health.target} is unavailable")
        self.health = health
