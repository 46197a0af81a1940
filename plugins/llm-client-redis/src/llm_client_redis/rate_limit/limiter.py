"""The :class:`RedisLimiter` itself: a :class:`~llm_client.rate_limit.RateLimiter` whose
budget is a schedule kept in Redis (see :mod:`llm_client_redis.rate_limit` for how it works),
with its configuration, the ``limit()`` context manager, the reservation, cancellation and
settlement of calls on the shared schedule, the header following, and its statistics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from llm_client.clock import DEFAULT_CLOCK, Clock
from llm_client.config import connection_string
from llm_client.config import redis_url as check_redis_url
from llm_client.exceptions import ConfigurationError, RequestTooLargeError
from llm_client.health import ServiceHealth
from llm_client.rate_limit import (
    Lease,
    Limiter,
    RateLimitHeaders,
    bucket_capacity,
    check_amount,
    check_burst_seconds,
    check_ceiling,
    check_rate,
)

from .._connect import check_max_connections, connect

__all__ = ["DEFAULT_KEY", "RedisLimiter"]

logger = logging.getLogger("llm_client_redis")

DEFAULT_KEY = "llm_client:ratelimit"
_FAILURES = (RedisError, OSError, asyncio.TimeoutError)
_MEMBER_WINDOW_US = 60_000_000

# Times are microseconds; rates are per microsecond. ARGV[1] is a clock override for tests
# ("" means the server's clock). A missing hash is a full bucket.
#
# KEYS[3] lists the schedule's pending entries in the order they were made, each
# "kind seq m_t m_r d_t d_r": replaying one is ``tat = max(tat, m) + d`` per dimension. Kind
# 'r' is a reservation (m = its slot, d = its amount over the rate), 'c' a charge at the end
# of the schedule, 'f' a floor from a header (a pause). The hash keeps the base ``bt``/``br``
# (the schedule with everything before the list applied), the latest folded slot ``bl``, and
# the end of the schedule ``tt``/``tr``/``last``: always the base replayed through the list.
# Entries leave the head of the list once nothing can undo them (a reservation whose slot has
# come; any other entry ahead of the first pending reservation).
#
# Replaying is max-plus: from a base b the list ends at max(b + S, R), where S is the sum of
# its d and R = max over entries j of (m_j + d_j + the d after j). With P_j the running sum of
# d up to and including j (``pt`` at the end of the list, ``qt`` at its base), R = P_end +
# max_j (m_j + d_j - P_j). Those keys never change, so a sorted set per dimension (KEYS[4],
# KEYS[5]) keeps them and a refund, which lowers the base, finds the new end in O(log n).
_PRELUDE = """
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local s = redis.call('HMGET', KEYS[1], 'tt', 'tr', 'last', 'seq', 'bt', 'br', 'bl', 'pt', 'pr',
  'qt', 'qr')
if not s[1] then redis.call('DEL', KEYS[3], KEYS[4], KEYS[5]) end
local tt = tonumber(s[1]) or now
local tr = tonumber(s[2]) or now
local last = tonumber(s[3]) or now
local seq = tonumber(s[4]) or 0
local bt = tonumber(s[5]) or tt
local br = tonumber(s[6]) or tr
local bl = tonumber(s[7]) or last
local pt, pr = tonumber(s[8]) or 0, tonumber(s[9]) or 0
local qt, qr = tonumber(s[10]) or 0, tonumber(s[11]) or 0
local n = redis.call('LLEN', KEYS[3])
local function num(x) return string.format('%.17g', x) end
local function parse(e)
  local k, q, mt, mr, dt, dr = string.match(e, '^(%a) (%S+) (%S+) (%S+) (%S+) (%S+)$')
  return k, q, tonumber(mt), tonumber(mr), tonumber(dt), tonumber(dr)
end
local function add(e, k, q, mt, mr, dt, dr)
  tt = math.max(tt, mt) + dt
  tr = math.max(tr, mr) + dr
  pt, pr = pt + dt, pr + dr
  redis.call('ZADD', KEYS[4], num(mt + dt - pt), q)
  redis.call('ZADD', KEYS[5], num(mr + dr - pr), q)
  if k == 'r' then last = mt end
  redis.call('RPUSH', KEYS[3], e)
  n = n + 1
end
local function push(k, mt, mr, dt, dr)
  if n == 0 and (k ~= 'r' or mt <= now) then  -- nothing could undo it: straight to the base
    tt = math.max(tt, mt) + dt
    tr = math.max(tr, mr) + dr
    if k == 'r' then last = mt end
    bt, br, bl = tt, tr, last
    return
  end
  local e = k .. ' ' .. seq .. ' ' .. num(mt) .. ' ' .. num(mr) .. ' ' .. num(dt) .. ' ' .. num(dr)
  add(e, parse(e))
end
local function fold()
  if n == 0 then return end
  while n > 0 do
    local e = redis.call('LINDEX', KEYS[3], 0)
    local k, q, mt, mr, dt, dr = parse(e)
    if k == 'r' and mt > now then break end
    bt = math.max(bt, mt) + dt
    br = math.max(br, mr) + dr
    qt, qr = qt + dt, qr + dr
    if k == 'r' then bl = mt end
    redis.call('LPOP', KEYS[3])
    redis.call('ZREM', KEYS[4], q)
    redis.call('ZREM', KEYS[5], q)
    n = n - 1
  end
  if n == 0 then
    bt, br, bl, pt, pr, qt, qr = tt, tr, last, 0, 0, 0, 0
    redis.call('DEL', KEYS[4], KEYS[5])
  end
end
local function ends()  -- the end of the schedule from the base, in O(log n)
  local t, r = bt + (pt - qt), br + (pr - qr)
  local kt = redis.call('ZREVRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  local kr = redis.call('ZREVRANGE', KEYS[5], 0, 0, 'WITHSCORES')
  if kt[2] then t = math.max(t, pt + tonumber(kt[2])) end
  if kr[2] then r = math.max(r, pr + tonumber(kr[2])) end
  tt, tr = t, r
end
local function drop(seqs)  -- replays the list without these reservations: O(n)
  local all, found = redis.call('LRANGE', KEYS[3], 0, -1), 0
  for _, e in ipairs(all) do
    local k, q = parse(e)
    if k == 'r' and seqs[q] then found = found + 1 end
  end
  if found == 0 then return 0 end
  redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
  tt, tr, last, pt, pr, qt, qr, n = bt, br, bl, 0, 0, 0, 0, 0
  for _, e in ipairs(all) do
    local k, q, mt, mr, dt, dr = parse(e)
    if not (k == 'r' and seqs[q]) then add(e, k, q, mt, mr, dt, dr) end
  end
  return found
end
local function save(ct, rt, cr, rr)
  fold()
  redis.call('HSET', KEYS[1], 'tt', num(tt), 'tr', num(tr), 'last', num(last), 'seq', seq)
  if n > 0 then
    redis.call('HSET', KEYS[1], 'bt', num(bt), 'br', num(br), 'bl', num(bl), 'pt', num(pt),
      'pr', num(pr), 'qt', num(qt), 'qr', num(qr))
  elseif s[5] then  -- nothing pending: the base is the end, and the sums start again at 0
    redis.call('HDEL', KEYS[1], 'bt', 'br', 'bl', 'pt', 'pr', 'qt', 'qr')
  end
  local idle = math.max(tt - now + ct / rt, tr - now + cr / rr, 0)
  local ttl = math.ceil(idle / 1000) + 60000
  redis.call('PEXPIRE', KEYS[1], ttl)
  if n > 0 then
    for i = 3, 5 do redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
local function levels(ct, rt, cr, rr)
  return num(ct - rt * math.max(0, tt - now)), num(cr - rr * math.max(0, tr - now))
end
"""

# ARGV: now, tokens, requests, cap_t, rate_t, cap_r, rate_r, member
_RESERVE = (
    _PRELUDE
    + """
local a_t, a_r = tonumber(ARGV[2]), tonumber(ARGV[3])
local ct, rt, cr, rr = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local at = math.max(now, last,
  tt - (ct - math.min(a_t, ct)) / rt,
  tr - (cr - math.min(a_r, cr)) / rr)
seq = seq + 1
push('r', at, at, a_t / rt, a_r / rr)
save(ct, rt, cr, rr)
redis.call('ZADD', KEYS[2], now, ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 60000000)
redis.call('PEXPIRE', KEYS[2], 120000)
local lt, lr = levels(ct, rt, cr, rr)
return {num(at), num(now), seq, redis.call('ZCARD', KEYS[2]), lt, lr}
"""
)

# ARGV: now, credit_t, credit_r (negative: a charge), cap_t, rate_t, cap_r, rate_r.
# A refund lands now, ahead of every reservation still waiting: it lifts the base (never
# above a full bucket at this instant) and the schedule is replayed from there, so what it
# frees reaches the end of the schedule only as far as the waiting reservations leave room
# (a bucket that fills up before a waiting slot absorbs it). Reserved slots never move. A
# charge is debt at the end of the schedule, recorded as an entry so a replay keeps it.
# Returns when it took effect, now, the levels and what was really credited (or charged).
_SETTLE = (
    _PRELUDE
    + """
local ct, rt, cr, rr = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local d_t, d_r = tonumber(ARGV[2]), tonumber(ARGV[3])
fold()
local function refund(base, d, rate)
  if d <= 0 or base <= now then return base, 0 end
  local lifted = math.max(base - d / rate, now)
  return lifted, (base - lifted) * rate
end
local gt, gr = 0, 0
bt, gt = refund(bt, d_t, rt)
br, gr = refund(br, d_r, rr)
local f = now
if gt > 0 or gr > 0 then ends() end
seq = seq + 1
if d_t < 0 or d_r < 0 then
  f = math.max(now, last)
  push('c', d_t < 0 and now or -1, d_r < 0 and now or -1, math.max(0, -d_t) / rt,
    math.max(0, -d_r) / rr)
  if d_t < 0 then gt = d_t end
  if d_r < 0 then gr = d_r end
end
save(ct, rt, cr, rr)
local lt, lr = levels(ct, rt, cr, rr)
return {num(f), num(now), lt, lr, num(gt), num(gr)}
"""
)

# ARGV: now, cap_t, rate_t, cap_r, rate_r, then the seqs of the reservations to give back.
# Each one still waiting leaves the schedule as if it had never been made: the rest is
# replayed without it (no other slot moves). Returns how many were found.
_CANCEL = (
    _PRELUDE
    + """
fold()
local seqs = {}
for i = 6, #ARGV do seqs[ARGV[i]] = true end
local found = drop(seqs)
if found > 0 then seq = seq + 1 end
save(tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
return found
"""
)

# ARGV: now, pause_t, pause_r (us), remaining_t, remaining_r ('' = none), cap_t, rate_t,
# cap_r, rate_r, server limit_t, server limit_r ('' = none: keep what is stored)
_SYNC = (
    _PRELUDE
    + """
local ct, rt, cr, rr = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local ft, fr = tt, tr
if ARGV[10] ~= nil and ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'lt', ARGV[10]) end
if ARGV[11] ~= nil and ARGV[11] ~= '' then redis.call('HSET', KEYS[1], 'lr', ARGV[11]) end
if ARGV[2] ~= '' then tt = math.max(tt, now + ct / rt + tonumber(ARGV[2])) end
if ARGV[3] ~= '' then tr = math.max(tr, now + cr / rr + tonumber(ARGV[3])) end
if ARGV[4] ~= '' then tt = math.max(tt, now + (ct - math.min(tonumber(ARGV[4]), ct)) / rt) end
if ARGV[5] ~= '' then tr = math.max(tr, now + (cr - math.min(tonumber(ARGV[5]), cr)) / rr) end
seq = seq + 1
if tt ~= ft or tr ~= fr then  -- a floor the schedule keeps, whatever is given back later
  push('f', tt ~= ft and tt or -1, tr ~= fr and tr or -1, 0, 0)
end
save(ct, rt, cr, rr)
local lt, lr = levels(ct, rt, cr, rr)
return {lt, lr}
"""
)

# ARGV: now, cap_t, rate_t, cap_r, rate_r
_PEEK = (
    _PRELUDE
    + """
local lt, lr = levels(tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
local sl = redis.call('HMGET', KEYS[1], 'lt', 'lr')
return {lt, lr, num(now), num(last), sl[1] or '', sl[2] or ''}
"""
)


class _Unavailable(Exception):
    """Redis failed or is waiting out its reconnect interval: use the local fallback."""


def _float(raw: Any) -> float:
    return float(raw.decode() if isinstance(raw, bytes) else raw)


class _RedisLimit(AbstractAsyncContextManager[Lease]):
    """``async with limiter.limit(...)`` on Redis, or on the local fallback while it is down."""

    __slots__ = ("_inner", "_lease", "_limiter", "_rates", "_seq")

    def __init__(self, limiter: RedisLimiter, tokens: float, requests: float) -> None:
        self._limiter = limiter
        self._lease = Lease(tokens, requests)
        self._inner: AbstractAsyncContextManager[Lease] | None = None
        self._seq = 0
        self._rates = (limiter._tpm, limiter._rpm)  # the budget the reservation is made in

    async def __aenter__(self) -> Lease:
        limiter = self._limiter
        limiter._check(self._lease)
        self._rates = (limiter._tpm, limiter._rpm)
        try:
            self._seq = await limiter._reserve(self._lease)
        except _Unavailable:
            self._inner = limiter._local().limit(self._lease.tokens, self._lease.requests)  # type: ignore[arg-type]
            limiter._fallback_calls += 1
            return await self._inner.__aenter__()
        return self._lease

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._inner is not None:
            await self._inner.__aexit__(exc_type, exc, tb)
            return
        await self._limiter._settle(self._lease, exc, self._rates)


class RedisLimiter:
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
        # One hash tag, so all its keys live in the same cluster slot.
        self._keys = [f"{{{key}}}:{part}" for part in ("state", "members", "pending", "kt", "kr")]
        self._member = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._clock: Clock = clock if clock is not None else DEFAULT_CLOCK
        self._server_clock = server_clock
        self._fallback_share = fallback_share
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._redis_max_connections = check_max_connections(redis_max_connections)
        self.health = ServiceHealth(
            "Redis", self.url, logger=logger, reconnect_interval=reconnect_interval, clock=clock
        )
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        self._fallback: Limiter | None = None
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
        if self._client is None:
            self._client = connect(
                self.url,
                connect_timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
                max_connections=self._redis_max_connections,
            )
            for name, source in (
                ("reserve", _RESERVE),
                ("settle", _SETTLE),
                ("cancel", _CANCEL),
                ("sync", _SYNC),
                ("peek", _PEEK),
            ):
                self._scripts[name] = self._client.register_script(source)
        return self._client

    async def _run(self, name: str, args: list[Any]) -> Any:
        """Run one script atomically on the server; raise _Unavailable if Redis is down.

        While Redis is down nobody waits for it: when an attempt is due, a background probe
        makes it, and this call is told to use the fallback at once.
        """
        if not self.health.up:
            if self.health.should_try():
                self._spawn(self._probe())
            raise _Unavailable
        return await self._call(name, args)

    async def _call(self, name: str, args: list[Any]) -> Any:
        """One round trip, bounded by ``command_timeout`` whatever the socket does."""
        client = self._redis()
        try:
            result = await asyncio.wait_for(
                self._scripts[name](keys=self._keys, args=args, client=client),
                self._command_timeout,
            )
        except _FAILURES as exc:
            self.health.failed(exc)
            raise _Unavailable from exc
        if not self.health.up:
            self._fallback = None  # the next outage starts with a fresh local share
        self.health.succeeded()
        return result

    async def _probe(self) -> None:
        """Try Redis once in the background while it is down (a read, changes nothing)."""
        with contextlib.suppress(_Unavailable):
            await self._call("peek", [self._now_arg(), *self._shape()])

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed background write is already logged

    def _local(self) -> Limiter:
        """The fallback limiter, with this process's share of the budget."""
        if self._fallback is None:
            share = self._fallback_share or 1.0 / max(1, self._members)
            self._fallback = Limiter(
                self._tpm * share,
                self._rpm * share,
                burst_seconds=self._burst_seconds,
                clock=self._clock,
            )
        return self._fallback

    # -- acquiring ---------------------------------------------------------------------------

    def limit(self, tokens: int, requests: int = 1) -> AbstractAsyncContextManager[Lease]:
        """Wait until the shared budget admits the call; reconcile its usage on exit."""
        return _RedisLimit(self, check_amount("tokens", tokens), check_amount("requests", requests))

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

    async def _reserve(self, lease: Lease) -> int:
        """Reserve the call's slot in the shared schedule and sleep until it comes."""
        if not self._limits_loaded:
            await self._load_limits()
        args = [self._now_arg(), repr(lease.tokens), repr(lease.requests), *self._shape()]
        args.append(self._member)
        async with self._lock:  # this process's callers reserve in arrival order
            task = self._spawn(self._run("reserve", args))
            try:
                reply = await asyncio.shield(task)
            except asyncio.CancelledError:
                task.add_done_callback(self._undo_when_done)
                raise
        at, now, seq = _float(reply[0]), _float(reply[1]), int(reply[2])
        self._members = int(reply[3])
        self._level_tokens, self._level_requests = _float(reply[4]), _float(reply[5])
        lease.admitted_at = at / 1e6
        wait = (at - now) / 1e6
        # Wake no earlier than the callers of this process that reserved before: each wake-up
        # time is rounded on its own, and two slots the server made equal must not swap.
        local_now = self._clock.now()
        wake = max([local_now + max(wait, 0.0), *self._wakes])
        if wake > local_now:
            self._waiting += 1
            self._queued_calls += 1
            self._wakes.append(wake)
            try:
                await self._clock.sleep(wake - local_now)
            except asyncio.CancelledError:
                self._give_back(seq)
                raise
            finally:
                self._waiting -= 1
                self._wakes.remove(wake)
            self._total_wait += wake - local_now
        self._in_flight += 1
        self._admitted_tokens += lease.tokens
        self._admitted_requests += lease.requests
        return seq

    def _undo_when_done(self, task: asyncio.Task[Any]) -> None:
        """A caller was cancelled while its reservation was on the wire: undo it once it lands."""
        if not task.cancelled() and task.exception() is None:
            self._give_back(int(task.result()[2]))

    def _give_back(self, seq: int) -> None:
        """Queue a cancelled reservation; waiters cancelled together go back in one trip."""
        self._to_cancel.append(seq)
        if len(self._to_cancel) == 1:
            self._spawn(self._cancel())

    async def _cancel(self) -> None:
        # The lock puts the cancellations ahead of this process's next reservation, which
        # may then take the slots they free.
        async with self._lock:
            seqs, self._to_cancel = self._to_cancel, []
            if not seqs:
                return
            try:
                undone = await self._run("cancel", [self._now_arg(), *self._shape(), *seqs])
            except _Unavailable:
                return  # the schedule keeps the slots: never over budget, at worst unused
        self._lost_slots += len(seqs) - int(undone)

    async def _settle(
        self, lease: Lease, exc: BaseException | None, rates: tuple[float, float] | None = None
    ) -> None:
        """Reconcile a finished call reserved when the budget was ``rates`` (tpm, rpm)."""
        self._in_flight -= 1
        token_delta, request_delta = lease.settlement(exc)
        if not token_delta and not request_delta:
            return
        if token_delta < 0:
            self._refunded_tokens -= token_delta
        else:
            self._charged_tokens += token_delta
        self._refunded_requests -= request_delta
        credit_t, credit_r = -token_delta, -request_delta
        if rates is not None:
            # A limit lowered since the reservation: a refund gives back the time it took at
            # the old rate, not that many tokens at the new, slower one (which could fill the
            # smaller bucket at once and let a large request through over the window bound).
            if credit_t > 0 and self._tpm < rates[0]:
                credit_t *= self._tpm / rates[0]
            if credit_r > 0 and self._rpm < rates[1]:
                credit_r *= self._rpm / rates[1]
        args = [self._now_arg(), repr(credit_t), repr(credit_r), *self._shape()]
        task = self._spawn(self._run("settle", args))
        try:
            reply = await asyncio.shield(task)
        except _Unavailable:
            return  # Redis is down: the estimate stands (the fallback takes over from here)
        self._level_tokens, self._level_requests = _float(reply[2]), _float(reply[3])
        self._settled(_float(reply[0]) / 1e6, _float(reply[4]), _float(reply[5]))

    def _settled(self, at: float, credit_tokens: float, credit_requests: float) -> None:
        """Hook: a reconciliation took effect at ``at`` (server seconds); for subclasses.

        The credits are what the server really applied: a refund (positive) can be less
        than the lease's, when the bucket was already full at ``at`` or calls waiting for the
        latest slot leave no room for it; a charge (negative) is applied in full.
        """

    # -- learning from the server --------------------------------------------------------------

    def update_from_headers(self, headers: Mapping[str, str], *, status: int | None = None) -> None:
        """Apply a response's rate-limit headers to the shared budget (see the local Limiter).

        ``limit-*`` becomes the budget in force, up or down (never above the ceiling), and is
        stored in Redis for every process sharing the key; ``remaining-*`` and a 429's pause
        (at most :data:`~llm_client.rate_limit.MAX_HEADER_PAUSE_SECONDS`) are written to
        Redis in the background.
        """
        info = RateLimitHeaders.parse(headers)
        limit_t = info.limit_tokens if info.limit_tokens else None
        limit_r = info.limit_requests if info.limit_requests else None
        new_t = limit_t if limit_t is not None and limit_t != self._server_limits[0] else None
        new_r = limit_r if limit_r is not None and limit_r != self._server_limits[1] else None
        if new_t is not None or new_r is not None:
            self._adopt(limit_t, limit_r)
        pause_t = pause_r = ""
        if status == 429:
            self._throttle_events += 1
            tokens_out, requests_out = info.exhausted()
            if tokens_out:
                pause_t = repr(info.pause_seconds(tokens=True) * 1e6)
            if requests_out:
                pause_r = repr(info.pause_seconds(tokens=False) * 1e6)
        if self._fallback is not None:
            self._fallback.update_from_headers(headers, status=status)
        # A remaining count at or above the burst cannot lower the level: no round trip.
        rt, rr = info.remaining_tokens, info.remaining_requests
        rem_t = repr(rt) if rt is not None and rt < self._cap_t() else ""
        rem_r = repr(rr) if rr is not None and rr < self._cap_r() else ""
        if pause_t or pause_r or rem_t or rem_r or new_t is not None or new_r is not None:
            args = [self._now_arg(), pause_t, pause_r, rem_t, rem_r, *self._shape()]
            args += ["" if new_t is None else repr(new_t), "" if new_r is None else repr(new_r)]
            self._spawn(self._sync(args))

    def _adopt(self, limit_t: float | None, limit_r: float | None) -> None:
        """Take the server's limits (either may be None: unchanged) as the budget in force."""
        known_t, known_r = self._server_limits
        if limit_t is not None and limit_t > 0:
            known_t = limit_t
            self._tpm = self._largest_t = min(self._configured_tpm, limit_t)
        if limit_r is not None and limit_r > 0:
            known_r = limit_r
            self._rpm = self._largest_r = min(self._configured_rpm, limit_r)
        self._server_limits = (known_t, known_r)

    async def _load_limits(self) -> None:
        """Adopt the server's limits another process stored (once, before the first call)."""
        try:
            reply = await self._run("peek", [self._now_arg(), *self._shape()])
        except _Unavailable:
            return  # the fallback (or the next call) copes; try again next time
        self._limits_loaded = True
        stored = [_float(v) if v not in (b"", "") else None for v in reply[4:6]]
        if self._server_limits == (None, None):
            self._adopt(stored[0], stored[1])

    async def _sync(self, args: list[str]) -> None:
        try:
            reply = await self._run("sync", args)
        except _Unavailable:
            return
        self._level_tokens, self._level_requests = _float(reply[0]), _float(reply[1])

    async def flush(self) -> None:
        """Wait until every background write (header syncs, cancellations) has landed."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def levels(self) -> tuple[float, float]:
        """The shared levels now (tokens, requests), read from Redis."""
        reply = await self._run("peek", [self._now_arg(), *self._shape()])
        self._level_tokens, self._level_requests = _float(reply[0]), _float(reply[1])
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
        await self.flush()
        if self._fallback is not None:
            await self._fallback.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
