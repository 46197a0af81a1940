"""Rate-limit quotas for the fake server, counted the way OpenAI counts them.

``FakeOpenAI(quota=Quota(requests_per_minute=500, tokens_per_minute=120_000))`` makes the
server enforce per-minute limits and report them truthfully:

* **Requests per minute** and **tokens per minute** are token buckets that hold a whole
  minute of budget and refill continuously at limit / 60 per second. That is what OpenAI's
  headers describe: ``x-ratelimit-reset-tokens`` is the time until the bucket is full again
  (a 16-token request under 150,000 TPM shows ``6ms``).
* **A request is charged when it arrives**, before it is answered: one request, and the
  tokens OpenAI's rate limiter counts: the input estimated from its characters (one token
  per 4 characters, rounded up) plus the output cap it asks for (``max_tokens``,
  ``max_completion_tokens`` or ``max_output_tokens``; :data:`DEFAULT_OUTPUT_CAP` when it names
  none; embeddings have no output). Nothing is given back when the answer is shorter
  (OpenAI's rate-limit guide: "your rate limit is calculated as the maximum of max_tokens
  and the estimated number of tokens based on the character count of your request"; this
  server counts the sum, which is never less).
* **An optional usage-based token budget** (``usage_tokens_per_minute``, OpenAI's
  ``x-ratelimit-*-tokens_usage_based`` headers) reserves the same estimate at arrival and is
  then reconciled to the answer's real usage.
* **When a bucket cannot cover a request**, the request is refused with a 429 (nothing is
  charged), OpenAI's error body (``code: rate_limit_exceeded``, ``type: requests`` or
  ``tokens``) and ``retry-after`` / ``retry-after-ms`` saying when it would fit.
* **Every response** carries ``x-ratelimit-limit-*``, ``-remaining-*`` and ``-reset-*`` for
  requests and tokens (and the usage-based tokens when enabled), in OpenAI's formats
  (integers; Go-style durations such as ``6m0s``, ``1s``, ``20ms``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_OUTPUT_CAP", "Quota", "QuotaRefusal", "request_charge"]

DEFAULT_OUTPUT_CAP = 1024
"""Output tokens charged for a request that names no output cap."""

_CHARS_PER_TOKEN = 4
_OUTPUT_CAPS = ("max_output_tokens", "max_completion_tokens", "max_tokens")


def _text_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _CHARS_PER_TOKEN  # a token id
    if isinstance(value, Mapping):
        total = _text_chars(value.get("content")) if "content" in value else 0
        text = value.get("text")
        return total + (len(text) if isinstance(text, str) else 0)
    if isinstance(value, list):
        return sum(_text_chars(item) for item in value)
    return 0


def request_charge(
    endpoint: str, body: Mapping[str, Any], *, chars_per_token: float = _CHARS_PER_TOKEN
) -> int:
    """The tokens a request counts against tokens-per-minute when it arrives."""
    if endpoint == "chat":
        chars = _text_chars(body.get("messages"))
    elif endpoint == "responses":
        chars = _text_chars(body.get("input")) + _text_chars(body.get("instructions"))
    else:
        chars = _text_chars(body.get("input"))
    tokens = math.ceil(chars / chars_per_token)
    if endpoint == "embeddings":
        return tokens
    for name in _OUTPUT_CAPS:
        cap = body.get(name)
        if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
            return tokens + cap
    return tokens + DEFAULT_OUTPUT_CAP


def _duration(seconds: float) -> str:
    """Go's duration format, as OpenAI's reset headers use it (``1s``, ``6m0s``, ``12ms``)."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    minutes, secs = divmod(seconds, 60)
    text = f"{round(secs, 3):g}s"
    return f"{int(minutes)}m{text}" if minutes else text


class _Bucket:
    """A whole minute of budget, refilled continuously at ``limit / 60`` per second."""

    __slots__ = ("level", "limit", "rate", "updated")

    def __init__(self, limit: float, now: float) -> None:
        self.limit = float(limit)
        self.rate = self.limit / 60.0
        self.level = self.limit
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.limit, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait(self, amount: float) -> float:
        """Seconds until ``amount`` fits (``inf`` if it never can)."""
        if amount > self.limit:
            return math.inf
        return max(0.0, (amount - self.level) / self.rate)

    def headers(self, name: str) -> dict[str, str]:
        return {
            f"x-ratelimit-limit-{name}": str(int(self.limit)),
            f"x-ratelimit-remaining-{name}": str(max(0, math.floor(self.level))),
            f"x-ratelimit-reset-{name}": _duration((self.limit - self.level) / self.rate),
        }


@dataclass(frozen=True)
class QuotaRefusal:
    """Why a request was refused: the exhausted dimension and when it would fit."""

    dimension: str  # "requests", "tokens" or "tokens_usage_based"
    limit: float
    used: float
    requested: float
    retry_after: float

    def message(self, model: str) -> str:
        unit = {
            "requests": "requests per min (RPM)",
            "tokens": "tokens per min (TPM)",
            "tokens_usage_based": "tokens per min (TPM, usage-based)",
        }[self.dimension]
        wait = "a moment" if math.isinf(self.retry_after) else f"{self.retry_after:.3g}s"
        return (
            f"Rate limit reached for {model} in organization org-fake on {unit}: "
            f"Limit {self.limit:g}, Used {self.used:g}, Requested {self.requested:g}. "
            f"Please try again in {wait}."
        )

    @property
    def error_type(self) -> str:
        return "requests" if self.dimension == "requests" else "tokens"

    def retry_headers(self) -> dict[str, str]:
        wait = min(self.retry_after, 60.0)
        return {
            "retry-after": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
        }


class Quota:
    """Per-minute quotas for :class:`~llm_client.testing.FakeOpenAI` (see the module docs).

    :param requests_per_minute: the RPM limit (``None``: no request limit).
    :param tokens_per_minute: the TPM limit, charged at arrival, never refunded.
    :param usage_tokens_per_minute: a usage-based token limit (reconciled to real usage).
    :param clock: seconds, monotonic (tests may pass their own).
    :param chars_per_token: how the input is estimated (OpenAI: 4). Another value emulates a
        server whose estimate differs from the client's, e.g. to watch the client learn it.
    :param keep_history: keep every admission, refusal and usage with its time in
        :attr:`history` (``(time, "admit" | "refuse" | "used", tokens)``), for benchmarks.

    Thread-safe: the server may run in its own thread while a test reads :meth:`stats`.
    """

    def __init__(
        self,
        *,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        usage_tokens_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        keep_history: bool = False,
        chars_per_token: float = _CHARS_PER_TOKEN,
    ) -> None:
        for name, value in (
            ("requests_per_minute", requests_per_minute),
            ("tokens_per_minute", tokens_per_minute),
            ("usage_tokens_per_minute", usage_tokens_per_minute),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
            ):
                raise ValueError(f"{name} must be a positive number or None, got {value!r}")
        if isinstance(chars_per_token, bool) or not chars_per_token > 0:
            raise ValueError(f"chars_per_token must be a positive number, got {chars_per_token!r}")
        self._chars_per_token = float(chars_per_token)
        self._clock = clock
        now = clock()
        self._requests = _Bucket(requests_per_minute, now) if requests_per_minute else None
        self._tokens = _Bucket(tokens_per_minute, now) if tokens_per_minute else None
        self._usage = _Bucket(usage_tokens_per_minute, now) if usage_tokens_per_minute else None
        self._lock = threading.Lock()
        self.admitted = 0
        self.refused = 0
        self.refused_by: dict[str, int] = {}
        self.charged_tokens = 0
        self.used_tokens = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.history: list[tuple[float, str, int]] | None = [] if keep_history else None

    def _buckets(self) -> list[tuple[str, _Bucket]]:
        pairs = [("requests", self._requests), ("tokens", self._tokens)]
        pairs.append(("tokens_usage_based", self._usage))
        return [(name, bucket) for name, bucket in pairs if bucket is not None]

    def admit(self, endpoint: str, body: Mapping[str, Any]) -> tuple[int, QuotaRefusal | None]:
        """Charge a request arriving now; return (its token charge, a refusal or None).

        A refused request is charged nothing.
        """
        charge = request_charge(endpoint, body, chars_per_token=self._chars_per_token)
        with self._lock:
            now = self._clock()
            buckets = self._buckets()
            for _, bucket in buckets:
                bucket.refill(now)
            for name, bucket in buckets:
                need = 1 if name == "requests" else charge
                if bucket.level < need:
                    self.refused += 1
                    self.refused_by[name] = self.refused_by.get(name, 0) + 1
                    if self.history is not None:
                        self.history.append((now, "refuse", charge))
                    return charge, QuotaRefusal(
                        name, bucket.limit, bucket.limit - bucket.level, need, bucket.wait(need)
                    )
            for name, bucket in buckets:
                bucket.level -= 1 if name == "requests" else charge
            self.admitted += 1
            self.charged_tokens += charge
            if self.history is not None:
                self.history.append((now, "admit", charge))
            if self.first_at is None:
                self.first_at = now
            self.last_at = now
        return charge, None

    def settle(self, charge: int, used: int) -> None:
        """Reconcile an admitted request's usage-based reservation to its real usage."""
        with self._lock:
            self.used_tokens += used
            now = self._clock()
            if self.history is not None:
                self.history.append((now, "used", used))
            if self._usage is not None:
                self._usage.refill(now)
                self._usage.level = min(self._usage.limit, self._usage.level + charge - used)

    def headers(self) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers as of now."""
        with self._lock:
            now = self._clock()
            out: dict[str, str] = {}
            for name, bucket in self._buckets():
                bucket.refill(now)
                out.update(bucket.headers(name))
            return out

    def stats(self) -> dict[str, Any]:
        """Admitted and refused requests, tokens charged (at arrival) and really used."""
        with self._lock:
            return {
                "admitted": self.admitted,
                "refused": self.refused,
                "refused_by": dict(self.refused_by),
                "charged_tokens": self.charged_tokens,
                "used_tokens": self.used_tokens,
                "first_at": self.first_at,
                "last_at": self.last_at,
            }

    def reset_stats(self) -> None:
        """Zero the counters (not the buckets)."""
        with self._lock:
            self.admitted = self.refused = self.charged_tokens = self.used_tokens = 0
            self.refused_by = {}
            self.first_at = self.last_at = None
