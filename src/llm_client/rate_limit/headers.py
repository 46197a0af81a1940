"""Reading OpenAI's rate-limit headers: ``x-ratelimit-*`` with their Go durations (``"6m0s"``).

``retry-after-ms`` / ``retry-after`` are read by :func:`llm_client.headers.parse_retry_after`,
which the transport and the retry step share (re-exported here)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..headers import header_number, lowered, parse_retry_after
from .checks import DEFAULT_PAUSE_SECONDS, MAX_HEADER_PAUSE_SECONDS

__all__ = ["RateLimitHeaders", "parse_reset_duration", "parse_retry_after"]

# --- headers ----------------------------------------------------------------------------------

_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:h|ms|m|s|us|µs|μs|ns))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|μs|ns)")
_UNIT_SECONDS = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ns": 1e-9,
}


def parse_reset_duration(value: str | None) -> float | None:
    """Seconds in an ``x-ratelimit-reset-*`` value, or ``None`` if it says nothing usable.

    OpenAI writes Go durations: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"1m30.5s"``,
    ``"2h0m0s"``; a bare number is taken as seconds. ``"-1"``, negatives, empty and
    unparseable values give ``None``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    number = header_number(text)
    if number is not None:
        return number if number >= 0 else None
    if _DURATION.fullmatch(text) is None:
        return None
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


@dataclass(frozen=True)
class RateLimitHeaders:
    """The rate-limit facts in one response; ``None`` where a header is missing or ``-1``."""

    limit_tokens: float | None = None
    limit_requests: float | None = None
    remaining_tokens: float | None = None
    remaining_requests: float | None = None
    reset_tokens: float | None = None
    reset_requests: float | None = None
    retry_after: float | None = None
    limit_usage_tokens: float | None = None
    remaining_usage_tokens: float | None = None
    reset_usage_tokens: float | None = None

    @classmethod
    def parse(cls, headers: Mapping[str, str], *, now: float | None = None) -> RateLimitHeaders:
        """Read ``x-ratelimit-{limit,remaining,reset}-{tokens,requests}``, their
        ``-tokens_usage_based`` variants (OpenAI's usage-based token budget) and retry-after."""
        h = lowered(headers)

        def count(name: str) -> float | None:
            number = header_number(h.get(name))
            return number if number is not None and number >= 0 else None

        return cls(
            limit_tokens=count("x-ratelimit-limit-tokens"),
            limit_requests=count("x-ratelimit-limit-requests"),
            remaining_tokens=count("x-ratelimit-remaining-tokens"),
            remaining_requests=count("x-ratelimit-remaining-requests"),
            reset_tokens=parse_reset_duration(h.get("x-ratelimit-reset-tokens")),
            reset_requests=parse_reset_duration(h.get("x-ratelimit-reset-requests")),
            retry_after=parse_retry_after(h, now=now),
            limit_usage_tokens=count("x-ratelimit-limit-tokens_usage_based"),
            remaining_usage_tokens=count("x-ratelimit-remaining-tokens_usage_based"),
            reset_usage_tokens=parse_reset_duration(h.get("x-ratelimit-reset-tokens_usage_based")),
        )

    def exhausted(self) -> tuple[bool, bool]:
        """Which dimensions a 429 with these headers ran out of: (tokens, requests).

        A remaining count of 0 names its dimension. Otherwise, when requests remain the
        call needed more tokens than remained; with nothing known, both.
        """
        rt, rr = self.remaining_tokens, self.remaining_requests
        tokens_out = rt is not None and rt <= 0
        requests_out = rr is not None and rr <= 0
        if tokens_out or requests_out:
            return tokens_out, requests_out
        if rr is not None:
            return True, False
        return True, True

    def pause_seconds(self, *, tokens: bool) -> float:
        """How long a 429 pauses the tokens (or requests) dimension: ``retry-after``, else
        that dimension's ``reset-*``, else :data:`DEFAULT_PAUSE_SECONDS`; never more than
        :data:`MAX_HEADER_PAUSE_SECONDS`."""
        if self.retry_after is not None:
            return min(self.retry_after, MAX_HEADER_PAUSE_SECONDS)
        reset = self.reset_tokens if tokens else self.reset_requests
        if reset is not None:
            return min(reset, MAX_HEADER_PAUSE_SECONDS)
        return DEFAULT_PAUSE_SECONDS
