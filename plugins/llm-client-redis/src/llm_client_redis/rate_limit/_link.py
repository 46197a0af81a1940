"""The limiter's line to Redis, and the local share it uses while Redis is down: one client
with the scripts of :mod:`._scripts` registered on it, every round trip bounded by
``command_timeout`` and tracked by a :class:`~llm_client.health.ServiceHealth`. While Redis
is down no call waits for it: :meth:`RedisLink.run` raises :class:`Unavailable` at once, a
background probe tries Redis every ``reconnect_interval`` seconds, and the limiter admits its
calls on :meth:`RedisLink.local`, a local :class:`~llm_client.rate_limit.Limiter` with this
process's share of the budget. The link also keeps the limiter's background round trips, so
that they can be waited for."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from llm_client.clock import Clock
from llm_client.health import ServiceHealth
from llm_client.rate_limit import Limiter

from .._connect import connect
from ._scripts import SCRIPTS

__all__ = ["RedisLink", "Unavailable"]

_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


class Unavailable(Exception):
    """Redis failed or is waiting out its reconnect interval: use the local fallback."""


class RedisLink:
    """One limiter's client, scripts, outage state, background tasks and local fallback.

    :param url: the server.
    :param keys: the budget's keys (:func:`._layout.keys_for`), passed to every script.
    :param probe_args: the arguments of the ``peek`` script the background probe runs.
    :param fallback_share: the share of the budget the local fallback gets (``None``: one
        over the number of processes last seen using the budget).
    :param burst_seconds: the local fallback's burst.
    :param clock: the local fallback's clock.
    :param health_clock: the clock of the outage tracking (``None``: a monotonic clock).
    """

    __slots__ = (
        "_burst_seconds",
        "_client",
        "_clock",
        "_command_timeout",
        "_connect_timeout",
        "_fallback_share",
        "_keys",
        "_max_connections",
        "_probe_args",
        "_scripts",
        "background",
        "fallback",
        "health",
        "url",
    )

    def __init__(
        self,
        url: str,
        keys: list[str],
        *,
        probe_args: Callable[[], list[str]],
        logger: logging.Logger,
        connect_timeout: float,
        command_timeout: float,
        max_connections: int | None,
        reconnect_interval: float,
        fallback_share: float | None,
        burst_seconds: float,
        clock: Clock,
        health_clock: Clock | None,
    ) -> None:
        self.url = url
        self._keys = keys
        self._probe_args = probe_args
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._max_connections = max_connections
        self._fallback_share = fallback_share
        self._burst_seconds = burst_seconds
        self._clock = clock
        self.health = ServiceHealth(
            "Redis", url, logger=logger, reconnect_interval=reconnect_interval, clock=health_clock
        )
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        #: Round trips and probes still running (reservations, settlements, syncs ...).
        self.background: set[asyncio.Task[Any]] = set()
        #: The local limiter of the current (or last) outage; ``None`` until one needs it.
        self.fallback: Limiter | None = None

    def redis(self) -> aioredis.Redis:
        """The client, connected (and the scripts registered) on first use."""
        if self._client is None:
            self._client = connect(
                self.url,
                connect_timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                max_connections=self._max_connections,
            )
            for name, source in SCRIPTS.items():
                self._scripts[name] = self._client.register_script(source)
        return self._client

    async def run(self, name: str, args: list[Any]) -> Any:
        """Run one script atomically on the server; raise :class:`Unavailable` if Redis is down.

        While Redis is down nobody waits for it: when an attempt is due, a background probe
        makes it, and this call is told to use the fallback at once.

        (Not :meth:`ServiceHealth.call`, which makes the attempt in the caller: here the
        caller goes to its local share at once and the probe makes the attempt that
        :meth:`ServiceHealth.should_try` allowed, without asking it a second time.)
        """
        if not self.health.up:
            if self.health.should_try():
                self.spawn(self._probe())
            raise Unavailable
        return await self._call(name, args)

    async def _call(self, name: str, args: list[Any]) -> Any:
        """One round trip, bounded by ``command_timeout`` whatever the socket does."""
        client = self.redis()
        try:
            result = await asyncio.wait_for(
                self._scripts[name](keys=self._keys, args=args, client=client),
                self._command_timeout,
            )
        except _FAILURES as exc:
            self.health.failed(exc)
            raise Unavailable from exc
        if not self.health.up:
            self.fallback = None  # the next outage starts with a fresh local share
        self.health.succeeded()
        return result

    async def _probe(self) -> None:
        """Try Redis once in the background while it is down (a read, changes nothing)."""
        with contextlib.suppress(Unavailable):
            await self._call("peek", self._probe_args())

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run ``coro`` as a task kept in :attr:`background` until it is done."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed background write is already logged

    def local(self, tokens_per_minute: float, requests_per_minute: float, members: int) -> Limiter:
        """The fallback limiter, with this process's share of the budget.

        Made on first use in an outage, from the budget in force then and the number of
        processes last seen using it (``members``); kept until Redis answers again.
        """
        if self.fallback is None:
            share = self._fallback_share or 1.0 / max(1, members)
            self.fallback = Limiter(
                tokens_per_minute * share,
                requests_per_minute * share,
                burst_seconds=self._burst_seconds,
                clock=self._clock,
            )
        return self.fallback

    async def flush(self) -> None:
        """Wait until every background task has finished."""
        while self.background:
            await asyncio.gather(*list(self.background), return_exceptions=True)

    async def aclose(self) -> None:
        """Finish background tasks, then close the fallback and the connection."""
        await self.flush()
        if self.fallback is not None:
            await self.fallback.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
