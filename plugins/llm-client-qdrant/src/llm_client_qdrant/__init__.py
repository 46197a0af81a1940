"""llm-client plugin: the ``qdrant`` cache backend (exact and semantic lookups).

This module is imported when llm-client discovers plugins, so it stays cheap: qdrant-client
is imported only when the backend is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llm_client.hookspecs import hookimpl

if TYPE_CHECKING:
    from .cache import QdrantCache

__all__ = ["create_cache", "register_cache_backends"]


def create_cache(**options: Any) -> QdrantCache:
    """Build the ``qdrant`` cache backend from a client's cache options."""
    from .cache import QdrantCache

    return QdrantCache.from_options(**options)


@hookimpl
def register_cache_backends(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("qdrant", create_cache)
