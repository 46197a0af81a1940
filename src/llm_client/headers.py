"""Reading the response headers that say when to try again: ``retry-after-ms`` and
``retry-after``, the one parser the transport, the retry step and the rate limiters share.

``retry-after`` is either a number of seconds or an HTTP date (RFC 9110 §10.2.3). An HTTP
date always stands for UTC, written as "GMT" (RFC 9110 §5.6.7; the asctime form carries no
zone at all and RFC 2616 §3.3.1 already said GMT "MUST be assumed" there), so a date without
a time zone, or with ``-0000``, is read as UTC, never as the machine's local time.
``retry-after-ms`` is OpenAI's millisecond variant, which the official SDK also prefers
(``openai._base_client.BaseClient._parse_retry_after_header``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from datetime import timezone
from email.utils import parsedate_to_datetime

__all__ = ["header_number", "lowered", "parse_retry_after"]


def header_number(value: str | None) -> float | None:
    """A header's value as a finite float, or ``None`` when missing or not a number."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def lowered(headers: Mapping[str, str]) -> Mapping[str, str]:
    """The headers with lower-case names (httpx and aiohttp headers already match any case)."""
    if all(k == k.lower() for k in headers):
        return headers
    return {k.lower(): v for k, v in headers.items()}


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds a response asks us to wait, from ``retry-after-ms`` or ``retry-after``.

    ``retry-after-ms`` wins when it is a number >= 0. ``retry-after`` may be seconds or an
    HTTP date, compared with ``now`` (epoch seconds; default ``time.time()``); a date without
    a time zone is GMT (RFC 9110), and a date in the past gives 0. Missing, negative or
    unparseable: ``None``.
    """
    h = lowered(headers)
    ms = header_number(h.get("retry-after-ms"))
    if ms is not None and ms >= 0:
        return ms / 1000.0
    raw = h.get("retry-after")
    if raw is None:
        return None
    seconds = header_number(raw)
    if seconds is not None:
        return seconds if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # no zone, or "-0000": HTTP dates are always GMT
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
