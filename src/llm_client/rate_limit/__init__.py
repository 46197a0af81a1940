"""Token-aware rate limiting: pace calls so they never exceed a tokens and a requests budget.

A :class:`Limiter` holds two :class:`TokenBucket` s, one for tokens and one for requests. A
call enters ``async with limiter.limit(tokens, requests) as lease``: it waits in one FIFO
queue until *both* buckets allow it, and then takes from both at once (or from neither).
When the block ends, the lease is reconciled with the real usage given to
:meth:`Lease.record`: as OpenAI does, the token bucket keeps the estimate (and charges usage
beyond it); an optional usage-based bucket is reconciled to the real usage both ways.

Rules (docs/rate-limiting.md explains them at more length):

* **Burst.** A bucket holds ``burst_seconds`` worth of its per-minute rate (default
  :data:`DEFAULT_BURST_SECONDS`, 1 s; at least one request), not a whole minute: calls are
  paced smoothly, as OpenAI also enforces its limits over periods shorter than a minute.
* **Large requests.** A request larger than the burst (but within the per-minute limit) is
  admitted as soon as the bucket is full, and the level goes negative: the debt is waited out
  by the requests behind it. A request larger than the per-minute limit can never run and
  raises :class:`~llm_client.exceptions.RequestTooLargeError` at once. In every window of
  ``w`` seconds the tokens admitted (net of refunds) never exceed
  ``max(burst, largest single request) + rate * w``.
* **Fairness.** Waiters are admitted strictly first in, first out, whatever their size; a
  newcomer never overtakes a waiter. Per dimension, a waiter waits at most for what is
  queued ahead of it plus its own need (at most one burst), less the level it found, divided
  by the rate; its wait is bounded by the sum of that over tokens and requests (unless usage
  charged afterwards or a 429 adds debt).
* **Reconciliation.** :meth:`Lease.record` sets the real total tokens (prompt + output): the
  token bucket charges what exceeds the estimate (never refunds the rest), a usage-based
  bucket takes the real figure. On exit without ``record`` the estimate stays charged and
  the request stays spent (the call reached the server), unless :meth:`Lease.refund` was
  called or the block raised one of :data:`NOT_SENT_ERRORS` (raised before anything is
  sent): then the tokens and the request are given back. A refund never lifts a bucket
  over its capacity.
* **Cancellation.** A call cancelled while it waits leaves no trace in the budget. A call
  cancelled while it runs is reconciled like any other exit: to what it recorded, else to
  its estimate (the server may already have processed it).
* **OpenAI's accounting.** The token bucket counts what the server charges when a request
  arrives: its estimate (input by characters plus the output cap), never refunded when the
  answer is shorter. :meth:`Lease.record` only charges usage *beyond* the estimate there. A
  usage-based budget (``usage_tokens_per_minute``, or OpenAI's
  ``x-ratelimit-*-tokens_usage_based`` headers) is a third bucket, reconciled to real usage.
* **Headers.** :meth:`Limiter.update_from_headers` follows ``x-ratelimit-limit-*`` both ways
  (the starting limits are only a guess until the server has spoken), never above an explicit
  ceiling (``max_tokens_per_minute`` / ``max_requests_per_minute``; by default the starting
  limits). ``remaining-*`` only lowers levels; a 429 pauses for ``retry-after-ms`` /
  ``retry-after`` (else ``reset-*``), at most :data:`MAX_HEADER_PAUSE_SECONDS`.
"""

from .buckets import Lease, RateLimiter, TokenBucket
from .checks import (
    DEFAULT_BURST_SECONDS,
    DEFAULT_PAUSE_SECONDS,
    MAX_HEADER_PAUSE_SECONDS,
    MAX_TOKEN_PAD,
    NOT_SENT_ERRORS,
    TOKEN_PAD_STEP,
    bucket_capacity,
    check_amount,
    check_burst_seconds,
    check_ceiling,
    check_rate,
)
from .headers import RateLimitHeaders, parse_reset_duration, parse_retry_after
from .limiter import Limiter

__all__ = [
    "DEFAULT_BURST_SECONDS",
    "DEFAULT_PAUSE_SECONDS",
    "MAX_HEADER_PAUSE_SECONDS",
    "MAX_TOKEN_PAD",
    "NOT_SENT_ERRORS",
    "TOKEN_PAD_STEP",
    "Lease",
    "Limiter",
    "RateLimitHeaders",
    "RateLimiter",
    "TokenBucket",
    "bucket_capacity",
    "check_amount",
    "check_burst_seconds",
    "check_ceiling",
    "check_rate",
    "parse_reset_duration",
    "parse_retry_after",
]
