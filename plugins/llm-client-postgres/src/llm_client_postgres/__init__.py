"""llm-client plugin: the ``pg_redis`` and ``postgres`` cache backends.

This module is imported when llm-client discovers plugins, so it stays cheap: asyncpg and
redis are imported only when one of the backends is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llm_client.hookspecs import hookimpl

if TYPE_CHECKING:
    from .cache import PostgresCache

__all__ = ["create_pg_redis", "create_postgres", "register_cache_backends"]


def create_pg_redis(**options: Any) -> PostgresCache:
    """Build the ``pg_redis`` backend: PostgreSQL durable copy plus a Redis hot mirror."""
    from .cache import PostgresCache

    return PostgresCache.from_options(mirror=True, **options)


def create_postgres(**options: Any) -> PostgresCache:
    """Build the ``postgres`` backend: PostgreSQL alone, no Redis."""
    from .cache import PostgresCache

    return PostgresCache.from_options(mirror=False, **options)


@hookimpl
def register_cache_backends(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("pg_redis", create_pg_redis)
    register("postgres", create_postgres)
