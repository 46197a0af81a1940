"""llm-client plugin: the ``pg_redis`` and ``postgres`` cache backends.

This module is imported when llm-client discovers plugins, so it stays cheap: asyncpg and
redis are imported only when one of the backends is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llm_client.config import accepts
from llm_client.hookspecs import hookimpl

if TYPE_CHECKING:
    from .cache import PostgresCache

__all__ = [
    "PG_REDIS_OPTIONS",
    "POSTGRES_OPTIONS",
    "create_pg_redis",
    "create_postgres",
    "register_cache_backends",
]

#: The options of the ``postgres`` backend (see :class:`~llm_client_postgres.cache.PostgresCache`).
POSTGRES_OPTIONS = (
    "pg_dsn",
    "cache_collection",
    "ttl",
    "cache_ttl",
    "compression",
    "compression_min_bytes",
    "pg_pool_min_size",
    "pg_pool_max_size",
    "connect_timeout",
    "command_timeout",
    "reconnect_interval",
    "purge_interval",
    "pg_application_name",
    "pg_synchronous_commit",
    "clock",
)
#: ``pg_redis`` takes those of ``postgres`` and the Redis mirror's.
PG_REDIS_OPTIONS = (
    *POSTGRES_OPTIONS,
    "redis_url",
    "redis_ttl_seconds",
    "redis_prefix",
    "redis_command_timeout",
    "redis_max_connections",
    "redis_pool_timeout",
)


@accepts(*PG_REDIS_OPTIONS)
def create_pg_redis(**options: Any) -> PostgresCache:
    """Build the ``pg_redis`` backend: PostgreSQL durable copy plus a Redis hot mirror."""
    from .cache import PostgresCache

    return PostgresCache.from_options(mirror=True, **options)


@accepts(*POSTGRES_OPTIONS)
def create_postgres(**options: Any) -> PostgresCache:
    """Build the ``postgres`` backend: PostgreSQL alone, no Redis."""
    from .cache import PostgresCache

    return PostgresCache.from_options(mirror=False, **options)


@hookimpl
def register_cache_backends(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("pg_redis", create_pg_redis)
    register("postgres", create_postgres)
