"""Small helpers shared by the built-in backends: expiry arithmetic and hit counters."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from ..exceptions import ConfigurationError

_E = TypeVar("_E")  # what a read gave: an entry, or what get_decoded's decoder made; None: a miss

log = logging.getLogger("llm_client.cache")


def _check_ttl(ttl: Any, what: str = "ttl") -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise ConfigurationError(
            f"{what} must be a positive number of seconds or None, got {ttl!r}"
        )
    return float(ttl)


def _expiry(now: float, ttl: float | None, default: float | None) -> float | None:
    seconds = _check_ttl(ttl) if ttl is not None else default
    return None if seconds is None else now + seconds


class _Counters:
    """Hits and misses of one backend instance (since it was created)."""

    __slots__ = ("hits", "misses")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    def count(self, entry: _E) -> _E:
        """Count ``entry`` (``None``: a miss) and hand it back."""
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def as_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses}
