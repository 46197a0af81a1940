"""A rate limiter whose budget lives in Redis, shared by every process and host that uses it.

The budget is the same two-dimensional token bucket as :class:`llm_client.rate_limit.Limiter`
(tokens and requests, a burst of ``burst_seconds``, large requests admitted on a full bucket
and waited out as debt), kept in one Redis hash as a *GCRA* schedule: for each dimension the
time ``tat`` at which the bucket would be full again. Every change is one Lua script, run
atomically by the server on the server's clock (``redis.call('TIME')``):

* **reserve** takes tokens and requests together: the call gets the earliest time at which
  both dimensions allow it *and* no earlier than the previous reservation (so admission is
  first come, first served across all processes, large requests included), and the schedule
  moves on. The caller sleeps until that time: no polling, one round trip per call.
* **settle** reconciles a finished call: a refund lands now, ahead of the reservations still
  waiting, and lifts the level no higher than a full bucket at this instant; a charge adds
  debt at the end of the schedule. Reserved slots never move, so a refund never lets a call
  already scheduled go earlier; what it frees reaches later calls only as far as the waiting
  reservations leave room (a bucket that fills up before a waiting slot absorbs it).
* **cancel** gives a waiting reservation back, whichever it is: the schedule keeps its
  pending reservations (and the charges and pauses made after them) as a list, and replays
  it without the cancelled ones. No other slot moves (calls sleeping in other processes
  cannot be told to go earlier), so the next call is admitted as if the cancelled calls had
  never been made, except that it still queues behind the reservations that remain.
  Cancellations of one process are sent together, before its next reservation.
* **sync** applies what a response's headers say: ``remaining`` lowers a level, a 429 pauses
  the exhausted dimension for ``retry-after``. Only ever lowers.

When Redis cannot be reached, or does not answer within ``command_timeout`` (a frozen or
overloaded server), the limiter logs once and falls back to a local
:class:`~llm_client.rate_limit.Limiter` with a share of the budget (``1 / processes`` last seen
using it, or ``fallback_share``). While it is down no call waits for Redis: every
``reconnect_interval`` seconds a background probe tries it, and the limiter logs once and
uses Redis again when the probe gets an answer.

The package's modules:

* :mod:`._layout`: the keys of a shared budget in Redis, and what each one holds;
* :mod:`._scripts`: the Lua scripts (reserve, settle, cancel, sync, peek), as data;
* :mod:`._link`: the client, its health-checked round trips, the background probe and the
  local share while Redis is down;
* :mod:`._admission`: ``limit()``'s context manager, and reserving, giving back and
  settling calls on the shared schedule (a mixin);
* :mod:`._following`: what the limiter learns from response headers (a mixin);
* :mod:`.limiter`: :class:`RedisLimiter`: its configuration, levels and statistics.
"""

from __future__ import annotations

from ._layout import DEFAULT_KEY
from .limiter import RedisLimiter
from .limiter import logger as logger  # the plugin's logger, as the module always had it

__all__ = ["DEFAULT_KEY", "RedisLimiter"]
