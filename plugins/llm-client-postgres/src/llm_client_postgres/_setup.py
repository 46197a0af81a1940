"""How a :class:`~llm_client_postgres.cache.PostgresCache` is put together.

The defaults of its options, the building of its two parts from the constructor's arguments
(the PostgreSQL store and the optional Redis mirror, each with its own health tracker), and
the turning of a client's cache options into those arguments (``from_options``). Nothing here
does I/O: connections open on first use.
"""

from __future__ import annotations

import logging
from typing import Any

from llm_client.clock import Clock
from llm_client.config import connection_string, postgres_dsn
from llm_client.config import redis_url as check_redis_url
from llm_client.exceptions import ConfigurationError
from llm_client.health import ServiceHealth, coerce_options, seconds_option

from . import PG_REDIS_OPTIONS  # the package's __init__ defines it, importing nothing of ours
from ._redis_mirror import DEFAULT_MAX_CONNECTIONS, RedisMirror
from ._store import PostgresStore

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_REDIS_COMMAND_TIMEOUT",
    "DEFAULT_REDIS_PREFIX",
    "DEFAULT_REDIS_TTL",
    "build_mirror",
    "build_store",
    "constructor_arguments",
    "logger",
]

logger = logging.getLogger("llm_client_postgres")

DEFAULT_COLLECTION = "llm_cache"
DEFAULT_REDIS_TTL = 3600.0
DEFAULT_REDIS_PREFIX = "llm_client:"
#: The longest a command of the Redis mirror takes by default (see ``redis_command_timeout``).
DEFAULT_REDIS_COMMAND_TIMEOUT = 1.0

#: The client options ``from_options`` passes on: what the factories accept (one list, in
#: the package's ``__init__``), but the connection strings and the client's ``cache_ttl``,
#: which are handled apart.
_OPTIONS = tuple(
    name for name in PG_REDIS_OPTIONS if name not in ("pg_dsn", "redis_url", "cache_ttl")
)
#: Options for which an explicit ``None`` means "off" rather than "use the default".
_NONE_MEANS_OFF = ("ttl", "redis_ttl_seconds", "compression")
#: Options that may come as strings (from the environment or a config file).
_TYPES: dict[str, type] = {
    "redis_ttl_seconds": float,
    "ttl": float,
    "compression_min_bytes": int,
    "pg_pool_min_size": int,
    "pg_pool_max_size": int,
    "connect_timeout": float,
    "command_timeout": float,
    "reconnect_interval": float,
    "purge_interval": float,
    "redis_command_timeout": float,
    "redis_max_connections": int,
    "redis_pool_timeout": float,
}


def constructor_arguments(options: dict[str, Any], *, mirror: bool) -> dict[str, Any]:
    """``PostgresCache``'s keyword arguments for a client's cache ``options``.

    Options this backend does not use are ignored, and so is an explicit ``None`` (except
    where it means "off"). ``cache_ttl`` (the client's name) is accepted for ``ttl``.
    ``options`` is updated in place.
    """
    if options.get("ttl") is None and options.get("cache_ttl") is not None:
        options["ttl"] = options["cache_ttl"]
    kwargs = {
        k: options[k]
        for k in _OPTIONS
        if k in options and (options[k] is not None or k in _NONE_MEANS_OFF)
    }
    kwargs = coerce_options(kwargs, _TYPES)
    return {
        "pg_dsn": options.get("pg_dsn"),
        "redis_url": options.get("redis_url") if mirror else None,
        "mirror": mirror,
        **kwargs,
    }


def build_store(
    pg_dsn: str | None,
    table: str,
    *,
    backend: str,
    clock: Clock,
    reconnect_interval: float,
    pool_min_size: int,
    pool_max_size: int,
    connect_timeout: float,
    command_timeout: float,
    application_name: str,
    synchronous_commit: str,
) -> PostgresStore:
    """The PostgreSQL store of ``table``: the pool bounds and ``pg_dsn`` (or ``$PG_DSN``) are
    checked first. ``backend`` names the backend in configuration errors."""
    if pool_max_size < 1 or pool_min_size < 0 or pool_min_size > pool_max_size:
        raise ConfigurationError(
            f"invalid pool bounds pg_pool_min_size={pool_min_size},"
            f" pg_pool_max_size={pool_max_size}"
        )
    dsn = connection_string(
        pg_dsn, "PG_DSN", postgres_dsn, name="pg_dsn", backend=backend, what="cache backend"
    )
    return PostgresStore(
        dsn,
        table,
        health=ServiceHealth(
            "PostgreSQL",
            dsn,
            logger=logger,
            reconnect_interval=reconnect_interval,
            clock=clock,
        ),
        pool_min_size=pool_min_size,
        pool_max_size=pool_max_size,
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
        application_name=application_name,
        synchronous_commit=synchronous_commit,
    )


def build_mirror(
    redis_url: str | None,
    namespace: str,
    *,
    backend: str,
    clock: Clock,
    reconnect_interval: float,
    connect_timeout: float,
    command_timeout: float,
    max_connections: int | None,
    pool_timeout: float | None,
) -> RedisMirror:
    """The Redis mirror of the keys under ``namespace``: ``redis_url`` (or ``$REDIS_URL``),
    the pool size and the pool timeout are checked first."""
    url = connection_string(
        redis_url,
        "REDIS_URL",
        check_redis_url,
        name="redis_url",
        backend=backend,
        what="cache backend",
    )
    return RedisMirror(
        url,
        namespace=namespace,
        health=ServiceHealth(
            "Redis",
            url,
            logger=logger,
            reconnect_interval=reconnect_interval,
            clock=clock,
        ),
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
        max_connections=_pool_size(max_connections),
        pool_timeout=seconds_option(pool_timeout, "redis_pool_timeout"),
    )


def _pool_size(value: Any) -> int:
    if value is None:
        return DEFAULT_MAX_CONNECTIONS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"redis_max_connections must be an integer >= 1, got {value!r}")
    return value
