"""llm-client plugin: the ``qdrant`` cache backend (exact and semantic lookups).

This module is imported when llm-client discovers plugins, so it stays cheap: qdrant-client
is imported only when the backend is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llm_client.config import accepts
from llm_client.hookspecs import hookimpl

if TYPE_CHECKING:
    from .cache import QdrantCache

__all__ = ["CACHE_OPTIONS", "create_cache", "register_cache_backends"]

#: The options of the ``qdrant`` backend (see :class:`~llm_client_qdrant.cache.QdrantCache`).
CACHE_OPTIONS = (
    "qdrant_url",
    "qdrant_api_key",
    "qdrant_path",
    "qdrant_location",
    "cache_collection",
    "ttl",
    "cache_ttl",
    "qdrant_timeout",
    "prefer_grpc",
    "reconnect_interval",
    "clock",
    "wall_clock",
)


@accepts(*CACHE_OPTIONS)
def create_cache(**options: Any) -> QdrantCache:
    """Build the ``qdrant`` cache backend from a client's cache options."""
    from .cache import QdrantCache

    return QdrantCache.from_options(**options)


@hookimpl
def register_cache_backends(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("qdrant", create_cache)
