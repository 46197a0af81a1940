"""Outage tracking for one remote service: log once when it goes, once when it comes back.

Shared by every backend that talks to a server (our PostgreSQL, Redis and Qdrant plugins, and
third-party ones): a failing service is logged once per outage, skipped cheaply while it is
down, and picked up again when it returns.

A backend asks :meth:`ServiceHealth.should_try` before using the service. While the service is
down, it is tried again at most every ``reconnect_interval`` seconds, so a dead server costs
each call nothing but a clock read; the first success after an outage logs the recovery.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from .cache.secrets import redact_text
from .clock import Clock, MonotonicClock
from .config import parse_bool
from .exceptions import ConfigurationError

__all__ = [
    "BackendGuard",
    "ServiceDown",
    "ServiceHealth",
    "coerce_options",
    "redact",
    "seconds_option",
]

_T = TypeVar("_T")
_F = TypeVar("_F")


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
    def logger(self) -> logging.Logger:
        """Where this tracker's lines go."""
        return self._logger

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

    async def call(
        self,
        op: Callable[[], Awaitable[_T]],
        *,
        outages: tuple[type[BaseException], ...],
        answered: tuple[type[BaseException], ...] = (),
        passthrough: tuple[type[BaseException], ...] = (),
    ) -> _T:
        """``await op()`` on the service, with its health tracked: the one way a server
        backend talks to its server.

        * While the service is down and waiting out its reconnect interval
          (:meth:`should_try` is false), :class:`ServiceDown` is raised at once and ``op``
          is not called.
        * ``op`` returns: :meth:`succeeded` (the recovery is logged), and its result is
          returned.
        * ``op`` raises one of ``passthrough``: re-raised as it is, health untouched (for
          example a busy local connection pool: this process is busy, the server is not
          down). Checked first.
        * ``op`` raises one of ``outages`` (connection refused, timeouts ...): :meth:`failed`
          (logged once per outage), then :class:`ServiceDown` is raised from it.
        * ``op`` raises one of ``answered`` (the server answered, it refused this one
          request): :meth:`succeeded`, then re-raised.
        * anything else is re-raised with the health untouched.

        A retry inside one call (a dead pooled connection, a dropped table) belongs in
        ``op``. The caller turns :class:`ServiceDown` into a fallback or into its own error.
        """
        if not self.should_try():
            raise ServiceDown(self)
        try:
            result = await op()
        except Exception as exc:
            if passthrough and isinstance(exc, passthrough):
                raise
            if isinstance(exc, outages):
                self.failed(exc)
                raise ServiceDown(self) from exc
            if answered and isinstance(exc, answered):
                self.succeeded()
            raise
        self.succeeded()
        return result


class ServiceDown(Exception):
    """Raised inside a backend when a service failed, or is waiting out its reconnect interval.

    The backend turns it into a fallback to its other service, or into
    ``CacheUnavailableError`` when nothing is left to answer.
    """

    def __init__(self, health: ServiceHealth) -> None:
        super().__init__(f"{health.service} at {health.target} is unavailable")
        self.health = health


class _BackendError(Exception):
    """A timeout raised by the backend itself (not our cut), passed on as a plain failure."""


class _Expired(TimeoutError):
    """An await cut by :class:`_Cutoffs` (not a timeout raised by the op itself)."""


class _Cut:
    """One await watched by :class:`_Cutoffs`."""

    __slots__ = ("deadline", "expired", "task")

    def __init__(self, task: asyncio.Task[Any], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.expired = False


class _Cutoffs:
    """Cuts awaits that run past their deadline, with one loop timer for all of them.

    What ``asyncio.timeout`` does, without scheduling and cancelling a timer per await: that
    was about 10 µs of a 65 µs cache hit. Each await only joins a set; the one timer is armed
    for the earliest deadline; when it fires it cancels every await past its deadline and
    re-arms for the next one (or stops when none is left). The task's own cancellation is
    told apart from the cut by the task's cancel count, as ``asyncio.timeout`` does.
    """

    __slots__ = ("_armed_at", "_loop", "_running", "_timer")

    def __init__(self) -> None:
        self._running: set[_Cut] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, op: Callable[[], Awaitable[_T]], limit: float) -> _T:
        """``await op()``; :class:`_Expired` if it is cut after ``limit`` seconds."""
        if sys.version_info < (3, 11):  # pragma: no cover - no cancel counts to tell a cut by
            try:
                return await asyncio.wait_for(op(), limit)
            except asyncio.TimeoutError as exc:
                raise _Expired from exc
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        cut = _Cut(task, loop.time() + limit)
        cancelling = task.cancelling()
        self._running.add(cut)
        if loop is not self._loop or cut.deadline < self._armed_at:
            self._arm(loop, cut.deadline)
        try:
            result = await op()
        except BaseException as exc:
            if not cut.expired:
                raise
            caller_too = task.uncancel() > cancelling
            if isinstance(exc, asyncio.CancelledError) and caller_too:
                raise  # the task itself was cancelled as well
            if isinstance(exc, (Exception, asyncio.CancelledError)):
                raise _Expired from exc  # cut, whatever the op made of the cancel
            raise
        finally:
            self._running.discard(cut)
        if cut.expired:
            task.uncancel()  # answered as it was cut: the answer stands
        return result

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop, self._armed_at = loop, when
        self._timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        assert self._loop is not None
        self._timer, self._armed_at = None, math.inf
        now, next_deadline = self._loop.time(), math.inf
        for cut in self._running:
            if cut.expired:
                continue
            if cut.deadline <= now:
                cut.expired = True
                cut.task.cancel()
            else:
                next_deadline = min(next_deadline, cut.deadline)
        if next_deadline < math.inf:
            self._arm(self._loop, next_deadline)


class BackendGuard:
    """Calls on a backend that may fail or hang, made so that they never fail or hold up the
    caller: each one is bounded in time, and any failure becomes a fallback value.

    This is how the cache step calls its backend (any :class:`~llm_client.cache.CacheBackend`,
    a plugin's included), and a plugin can use it the same way around a service it does not
    trust to answer in time:

    * a call that does not answer within its ``limit`` is cut, and opens an outage: while it
      lasts, calls are skipped without waiting, except one probe per
      :attr:`ServiceHealth.reconnect_interval` seconds;
    * any other exception is a failure too; it is recorded in :attr:`health` (a WARNING once
      per outage, its message redacted of secrets) but does not stop the next call from
      trying (the backend tracks its own service);
    * a call that answers ends the outage (one INFO line).

    :param health: the outage state and its log lines.
    """

    __slots__ = ("_cut", "_cutoffs", "errors", "health", "skips")

    def __init__(self, health: ServiceHealth) -> None:
        self.health = health
        self._cutoffs = _Cutoffs()
        #: Calls that failed or were cut, and calls skipped (no time left, or an outage).
        self.errors = 0
        self.skips = 0
        self._cut = False  # the outage began with a call that did not answer in time

    async def call(
        self, what: str, op: Callable[[], Awaitable[_T]], *, limit: float | None, failed: _F
    ) -> _T | _F:
        """``await op()`` within ``limit`` seconds (``None``: no limit); ``failed`` when it
        raises, is cut, or is skipped (``limit <= 0``, or during an outage that began with a
        cut call, between probes). ``what`` names the operation in the log line.

        :class:`asyncio.CancelledError` (the caller's own cancellation) is passed on.
        """
        if (limit is not None and limit <= 0) or (self._cut and not self.health.should_try()):
            self.skips += 1
            return failed
        try:
            if limit is None:
                result = await op()
            else:
                try:
                    result = await self._cutoffs.run(op, limit)
                except TimeoutError as exc:
                    if isinstance(exc, _Expired):
                        raise
                    raise _BackendError from exc  # the backend's own timeout
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errors += 1
            if isinstance(exc, TimeoutError):
                self._cut = True
                reason = f"{what}: no answer within {limit:g}s"
            else:
                cause = exc.__cause__ if isinstance(exc, _BackendError) else exc
                reason = f"{what}: {type(cause).__name__}: {redact_text(str(cause))}"
            self.health.failed(exc, reason=reason)
            self.health.logger.debug("%s operation failed (%s)", self.health.service, reason)
            return failed
        self._cut = False
        self.health.succeeded()
        return result
