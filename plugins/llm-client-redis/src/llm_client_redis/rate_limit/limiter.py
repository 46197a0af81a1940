"""The :class:`RedisLimiter` itself: a :class:`~llm_client.rate_limit.RateLimiter` whose
budget is a schedule kept in Redis (see :mod:`llm_client_redis.rate_limit` for how it works).
This module holds its configuration, the budget in force and its shape as script arguments,
``limit()``, the shared levels, its statistics and closing; the reservation side comes from
the :class:`._admission.Admission` mixin, header following from
:class:`._following.HeaderFollowing`, and its line to Redis is a :class:`._link.RedisLink`."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager

import redis.asyncio as aioredis

from llm_client.clock import DEFAULT_CLOCK, Clock
from llm_client.config import connection_string
from llm_client.config import redis_url as check_redis_url
from llm_client.exceptions import ConfigurationError, RequestTooLargeError
from llm_client.rate_limit import (
    Lease,
    Limiter,
    bucket_capacity,
    check_amount,
    check_burst_seconds,
    check_ceiling,
    check_rate,
)

from .._connect import check_max_connections
from ._admission import Admission, RedisLimit
from ._following import HeaderFollowing
from ._layout import DEFAULT_KEY, keys_for, member_id, reply_float
from ._link import RedisLink

__all__ = ["RedisLimiter"]

logger = logging.getLogger("llm_client_redis")


class RedisLimiter(Admission, HeaderFollowing):
    """A :class:`~llm_client.rate_limit.RateLimiter` whose budget is shared through Redis.

    :param tokens_per_minute: the token budget shared by every process using ``key``.
    :param requests_per_minute: the request budget shared likewise.
    :param redis_url: the server (default: ``REDIS_URL``, else redis://127.0.0.1:6379/0).
    :param key: names the shared budget; processes with the same key share one budget.
    :param burst_seconds: seconds of budget that may go out at once (default 1 s).
    :param clock: the local clock to sleep on (and for the fallback limiter).
    :param fallback_share: the share of the budget this process uses while Redis is down
        (default: one over the number of processes seen using the key in the last minute).
    :param reconnect_interval: seconds between background probes of Redis while it is down.
    :param connect_timeout: seconds to wait for a connection.
    :param command_timeout: seconds one round trip to Redis may take, connecting included;
        past it Redis counts as down and this process uses its local share.
    :param server_clock: tests only: take "now" from this clock instead of Redis ``TIME``.
    :param redis_max_connections: size of the connection pool (default 100); a command waits
        for a free connection rather than failing.
    :param max_tokens_per_minute: the most the server's ``x-ratelimit-limit-tokens`` may
        raise the token budget to (``None``: ``tokens_per_minute``, a ceiling headers only
        lower; ``math.inf``: follow the server both ways, as the client does with a model
        profile's starting limits). Likewise ``max_requests_per_minute``.

    The server's limits, once seen by any process, are kept in the shared hash: every
    process sharing the key adopts them (a fresh process reads them before its first call).
    """

    def __init__(
        self,
        *,
        tokens_per_minute: float,
        requests_per_minute: float,
        redis_url: str | None = None,
        key: str = DEFAULT_KEY,
        burst_seconds: float | None = None,
        clock: Clock | None = None,
        fallback_share: float | None = None,
        reconnect_interval: float = 1.0,
        connect_timeout: float = 0.5,
        command_timeout: float = 0.5,
        server_clock: Clock | None = None,
        redis_max_connections: int | None = None,
        max_tokens_per_minute: float | None = None,
        max_requests_per_minute: float | None = None,
    ) -> None:
        start_tpm = check_rate("tokens_per_minute", tokens_per_minute)
        start_rpm = check_rate("requests_per_minute", requests_per_minute)
        self._configured_tpm = check_ceiling(
            "max_tokens_per_minute", max_tokens_per_minute, start_tpm
        )
        self._configured_rpm = check_ceiling(
            "max_requests_per_minute", max_requests_per_minute, start_rpm
        )
        self._tpm = min(start_tpm, self._configured_tpm)
        self._rpm = min(start_rpm, self._configured_rpm)
        # The largest call that can ever run: the ceiling until the server names its limit.
        self._largest_t, self._largest_r = self._configured_tpm, self._configured_rpm
        self._server_limits: tuple[float | None, float | None] = (None, None)
        self._limits_loaded = False
        self._burst_seconds = check_burst_seconds(burst_seconds)
        if fallback_share is not None:
            share = check_rate("fallback_share", fallback_share)
            if share > 1:
                raise ConfigurationError(f"fallback_share must be at most 1, got {share!r}")
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"key must be a non-empty string, got {key!r}")
        self.url = connection_string(
            redis_url,
            "REDIS_URL",
            check_redis_url,
            name="redis_url",
            backend="redis",
            what="rate limiter",
        )
        self.key = key
        self._keys = keys_for(key)
        self._member = member_id()
        self._clock: Clock = clock if clock is not None else DEFAULT_CLOCK
        self._server_clock = server_clock
        self._link = RedisLink(
            self.url,
            self._keys,
            probe_args=lambda: [self._now_arg(), *self._shape()],
            logger=logger,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            max_connections=check_max_connections(redis_max_connections),
            reconnect_interval=reconnect_interval,
            fallback_share=fallback_share,
            burst_seconds=self._burst_seconds,
            clock=self._clock,
            health_clock=clock,
        )
        self.health = self._link.health
        self._background = self._link.background  # round trips still running
        self._lock = asyncio.Lock()
        self._closed = False
        self._members = 0
        self._level_tokens = self._cap_t()
        self._level_requests = self._cap_r()
        self._waiting = 0
        self._wakes: list[float] = []  # local wake-up times of this process's sleeping callers
        self._in_flight = 0
        self._queued_calls = 0
        self._total_wait = 0.0
        self._throttle_events = 0
        self._admitted_tokens = 0.0
        self._admitted_requests = 0.0
        self._refunded_tokens = 0.0
        self._refunded_requests = 0.0
        self._charged_tokens = 0.0
        self._fallback_calls = 0
        self._lost_slots = 0
        self._to_cancel: list[int] = []  # seqs of cancelled reservations not yet sent

    def __repr__(self) -> str:
        return (
            f"RedisLimiter(key={self.key!r}, tokens_per_minute={self._tpm:g}, "
            f"requests_per_minute={self._rpm:g}, redis_up={self.health.up})"
        )

    # -- budget shape ------------------------------------------------------------------------

    @property
    def tokens_per_minute(self) -> float:
        return self._tpm

    @property
    def requests_per_minute(self) -> float:
        return self._rpm

    def _cap_t(self) -> float:
        return bucket_capacity(self._tpm, self._burst_seconds)

    def _cap_r(self) -> float:
        return bucket_capacity(self._rpm, self._burst_seconds)

    def _shape(self) -> list[str]:
        """Capacities and per-microsecond rates, as script arguments."""
        return [
            repr(self._cap_t()),
            repr(self._tpm / 60e6),
            repr(self._cap_r()),
            repr(self._rpm / 60e6),
        ]

    def _now_arg(self) -> str:
        return "" if self._server_clock is None else repr(self._server_clock.now() * 1e6)

    # -- plumbing ----------------------------------------------------------------------------

    def _redis(self) -> aioredis.Redis:
        return self._link.redis()

    def _local(self) -> Limiter:
        """The fallback limiter, with this process's share of the budget."""
        return self._link.local(self._tpm, self._rpm, self._members)

    # -- acquiring ---------------------------------------------------------------------------

    def limit(self, tokens: int, requests: int = 1) -> AbstractAsyncContextManager[Lease]:
        """Wait until the shared budget admits the call; reconcile its usage on exit."""
        return RedisLimit(self, check_amount("tokens", tokens), check_amount("requests", requests))

    def _check(self, lease: Lease) -> None:
        if self._closed:
            raise RuntimeError("this rate limiter is closed")
        if lease.tokens > self._largest_t:
            raise RequestTooLargeError(
                f"the call needs {lease.tokens:g} tokens but the limit is {self._largest_t:g} "
                "tokens "
                "per minute, so it can never run; shorten the input or max_tokens, or raise "
                "tokens_per_minute"
            )
        if lease.requests > self._largest_r:
            raise RequestTooLargeError(
                f"the call needs {lease.requests:g} requests but the limit is {self._largest_r:g} "
                "requests per minute, so it can never run"
            )

    async def flush(self) -> None:
        """Wait until every background write (header syncs, cancellations) has landed."""
        await self._link.flush()

    async def levels(self) -> tuple[float, float]:
        """The shared levels now (tokens, requests), read from Redis."""
        reply = await self._link.run("peek", [self._now_arg(), *self._shape()])
        self._level_tokens, self._level_requests = reply_float(reply[0]), reply_float(reply[1])
        return self._level_tokens, self._level_requests

    # -- observing -----------------------------------------------------------------------------

    def stats(self) -> dict[str, float | int]:
        """This process's view: last known shared levels, its waiters, waits and totals."""
        return {
            "level_tokens": self._level_tokens,
            "level_requests": self._level_requests,
            "capacity_tokens": self._cap_t(),
            "capacity_requests": self._cap_r(),
            "tokens_per_minute": self._tpm,
            "requests_per_minute": self._rpm,
            "waiters": self._waiting,
            "in_flight": self._in_flight,
            "queued_calls": self._queued_calls,
            "total_wait_seconds": self._total_wait,
            "throttle_events": self._throttle_events,
            "admitted_tokens": self._admitted_tokens,
            "admitted_requests": self._admitted_requests,
            "refunded_tokens": self._refunded_tokens,
            "refunded_requests": self._refunded_requests,
            "charged_tokens": self._charged_tokens,
            "processes": self._members,
            "redis_up": int(self.health.up),
            "redis_failures": self.health.failures,
            "fallback_calls": self._fallback_calls,
            "lost_slots": self._lost_slots,
        }

    async def aclose(self) -> None:
        """Finish background writes and close the connection."""
        self._closed = True
        await self._link.aclose()
