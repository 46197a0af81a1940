"""How a :class:`~llm_client.rate_limit.Limiter` learns from the server's responses: it
follows ``x-ratelimit-limit-*`` both ways (up to its ceilings), re-syncs its levels to
``remaining-*``, pauses the exhausted dimension on a 429 and pads token estimates after
tokens-429s. A mixin of :class:`~llm_client.rate_limit.Limiter`, kept apart from the queue and
the buckets so that each module says one thing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .buckets import TokenBucket
from .checks import MAX_HEADER_PAUSE_SECONDS, MAX_TOKEN_PAD, TOKEN_PAD_STEP, bucket_capacity
from .headers import RateLimitHeaders

if TYPE_CHECKING:
    from ..clock import Clock
    from .limiter import _LocalLease

__all__ = ["HeaderFollowing"]


class HeaderFollowing:
    """The header-following half of :class:`~llm_client.rate_limit.Limiter` (its state is
    set up by ``Limiter.__init__``)."""

    # Declared for the type checker; Limiter.__init__ sets every one of them.
    _tpm: float
    _rpm: float
    _ceiling_tpm: float
    _ceiling_rpm: float
    _largest_t: float
    _largest_r: float
    _burst_seconds: float
    _clock: Clock
    _tokens: TokenBucket
    _requests: TokenBucket
    _usage: TokenBucket | None
    _usage_tpm: float
    _pad: float
    _pad_after: float
    _live: int
    _now: Callable[[], float]
    _throttle_events: int
    _header_syncs: int
    _limit_changes: int
    _paused_until: float

    if TYPE_CHECKING:  # the queue's (WaitQueue); no stub at run time that could shadow it

        def _dispatch(self) -> None: ...

    def update_from_headers(self, headers: Mapping[str, str], *, status: int | None = None) -> None:
        """Learn from a response's ``x-ratelimit-*`` headers (and a 429's retry-after).

        * ``limit-*`` becomes the budget in force, up or down (never above the ceiling).
          A lower budget lowers a positive level with it, so the bucket is not full sooner
          than it would have been (see :meth:`TokenBucket.reconfigure`). A limit on a 429
          counts like any other: the next response's limit replaces it.
          ``limit-tokens_usage_based`` starts (or reshapes) the usage-based bucket.
        * ``remaining-*`` lower than the local level lowers the level (a re-sync).
        * ``status=429`` pauses only the exhausted dimension for ``retry-after-ms`` /
          ``retry-after`` (else that dimension's ``reset-*``, else 1 s), never longer than
          :data:`MAX_HEADER_PAUSE_SECONDS`: its level drops to ``-rate * pause``. Repeated
          429s do not add up: the pause is a floor on the debt, not an increment. A 429 on
          the per-minute token limit also pads later token estimates by
          :data:`TOKEN_PAD_STEP` (once per pause, at most :data:`MAX_TOKEN_PAD`): the server
          counted more than the estimate. When the lease that drew the 429 ends, the pad is
          raised to the ratio the 429 reveals, if larger (see :meth:`_learn_charge`).
        """
        info = RateLimitHeaders.parse(headers)
        changed = self._adopt_limits(info)
        if info.remaining_tokens is not None:
            self._tokens.lower_to(info.remaining_tokens)
        if info.remaining_requests is not None:
            self._requests.lower_to(info.remaining_requests)
        if info.remaining_usage_tokens is not None and self._usage is not None:
            self._usage.lower_to(info.remaining_usage_tokens)
        if (
            info.limit_tokens is not None
            or info.limit_requests is not None
            or info.remaining_tokens is not None
            or info.remaining_requests is not None
        ):
            self._header_syncs += 1
        if status == 429:
            self._throttled(info)
        if changed and self._live:
            self._dispatch()

    def _throttled(self, info: RateLimitHeaders) -> None:
        self._throttle_events += 1
        tokens_out, requests_out = info.exhausted()
        usage_out = False
        ru, rt = info.remaining_usage_tokens, info.remaining_tokens
        if self._usage is not None and ru is not None and ru <= 0 and not requests_out:
            # The usage-based budget ran out, not (necessarily) the per-minute one.
            usage_out = True
            tokens_out = rt is not None and rt <= 0
        now = self._now()
        if tokens_out and now >= self._pad_after:
            self._pad = min(MAX_TOKEN_PAD, self._pad * TOKEN_PAD_STEP)
        for out, bucket, is_tokens in (
            (tokens_out, self._tokens, True),
            (requests_out, self._requests, False),
            (usage_out, self._usage, True),
        ):
            if out and bucket is not None:
                pause = info.pause_seconds(tokens=is_tokens)
                bucket.lower_to(-bucket.rate * pause)
                self._paused_until = max(self._paused_until, now + pause)
                if is_tokens:
                    self._pad_after = max(self._pad_after, now + pause)

    def _learn_charge(self, lease: _LocalLease, headers: Mapping[str, str] | None) -> None:
        """Learn from a tokens-429 what the server charged for this very call.

        The server refuses when the request's charge exceeds what remains, and says when it
        would fit: so its charge is about ``remaining + wait * rate``. When that is more
        than our estimate, later estimates are padded by the ratio (plus 1%), up to
        :data:`MAX_TOKEN_PAD`, so the drift stops at once instead of one step per 429.
        """
        if not headers or not lease._asked:
            return
        info = RateLimitHeaders.parse(headers)
        tokens_out, requests_out = info.exhausted()
        rt, wait = info.remaining_tokens, info.retry_after
        if not tokens_out or requests_out or rt is None or wait is None:
            return
        if wait >= MAX_HEADER_PAUSE_SECONDS:
            return  # no measure in a capped or absurd wait
        limit = info.limit_tokens or self._tpm
        charge = rt + wait * limit / 60.0
        ratio = charge / lease._asked * 1.01
        if ratio > self._pad:
            self._pad = min(MAX_TOKEN_PAD, ratio)

    def _adopt_limits(self, info: RateLimitHeaders) -> bool:
        """Follow the server's ``limit-*`` values, both ways, up to the ceilings."""
        changed = False
        limit = info.limit_tokens
        if limit is not None and limit > 0:
            tpm = limit if limit < self._ceiling_tpm else self._ceiling_tpm
            self._largest_t = tpm
            if tpm != self._tpm:
                self._tpm = tpm
                self._tokens.reconfigure(bucket_capacity(tpm, self._burst_seconds), tpm / 60.0)
                self._limit_changes += 1
                changed = True
        limit = info.limit_requests
        if limit is not None and limit > 0:
            rpm = limit if limit < self._ceiling_rpm else self._ceiling_rpm
            self._largest_r = rpm
            if rpm != self._rpm:
                self._rpm = rpm
                self._requests.reconfigure(bucket_capacity(rpm, self._burst_seconds), rpm / 60.0)
                self._limit_changes += 1
                changed = True
        limit = info.limit_usage_tokens
        if limit is not None and limit > 0:
            usage = limit if limit < self._ceiling_tpm else self._ceiling_tpm
            if self._usage is None or usage != self._usage_tpm:
                self._set_usage_limit(usage)
                self._limit_changes += 1
                changed = True
        return changed

    def _set_usage_limit(self, per_minute: float) -> None:
        capacity = bucket_capacity(per_minute, self._burst_seconds)
        if self._usage is None:
            self._usage = TokenBucket(capacity, per_minute / 60.0, clock=self._clock)
        else:
            self._usage.reconfigure(capacity, per_minute / 60.0)
        self._usage_tpm = per_minute
