"""How a cache entry is stored as a Qdrant point: its id, its payload and its expiry.

The point id is ``uuid5(key)`` in a namespace of its own, so an exact lookup is a single
``retrieve`` by id. The payload holds the entry's JSON plus ``key``, ``scope``, ``model``,
``operation``, ``created_at`` and ``expires_at`` (epoch seconds or ``null``); the same payload
goes to the exact-lookup collection and to a vector collection. Nothing here talks to Qdrant.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from qdrant_client import models

from llm_client.cache import CacheEntry

D = TypeVar("D")

__all__ = ["UNREADABLE", "entry_payload", "expired", "live_filter", "point_id", "read_entry"]

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/llm-client/cache/qdrant")

#: What :func:`read_entry` raises for a payload whose entry cannot be decoded.
UNREADABLE: tuple[type[Exception], ...] = (ValueError, KeyError, TypeError)


def point_id(key: str) -> str:
    """The stable Qdrant point id of cache key ``key`` (a UUID5 string)."""
    return str(uuid.uuid5(_NAMESPACE, key))


def entry_payload(entry: CacheEntry, expires_at: float | None) -> dict[str, Any]:
    """The payload stored with ``entry``'s point(s); ``expires_at`` in epoch seconds."""
    return {
        "key": entry.key,
        "entry": entry.to_json().decode("utf-8"),
        "scope": entry.scope,
        "model": entry.model,
        "operation": entry.operation,
        "created_at": entry.created_at,
        "expires_at": expires_at,
    }


def expired(payload: dict[str, Any], now: float) -> bool:
    """True if the point with ``payload`` has expired at epoch second ``now``."""
    expires_at = payload.get("expires_at")
    return expires_at is not None and float(expires_at) <= now


def read_entry(payload: dict[str, Any] | None, read: Callable[[bytes], D]) -> D | None:
    """``read`` of the entry JSON stored in ``payload`` (``CacheEntry.from_json``: the
    entry); ``None`` if it holds none.

    Raises one of :data:`UNREADABLE` if the stored entry cannot be decoded.
    """
    if not payload or "entry" not in payload:
        return None
    data = payload["entry"]
    return read(data.encode("utf-8") if isinstance(data, str) else data)


def live_filter(now: float, scope: str | None = None) -> models.Filter:
    """Points not expired at epoch second ``now`` (and, if given, of exactly ``scope``)."""
    must: list[Any] = []
    if scope is not None:
        must.append(models.FieldCondition(key="scope", match=models.MatchValue(value=scope)))
    return models.Filter(
        must=must,
        should=[
            models.IsNullCondition(is_null=models.PayloadField(key="expires_at")),
            models.FieldCondition(key="expires_at", range=models.Range(gt=now)),
        ],
    )
