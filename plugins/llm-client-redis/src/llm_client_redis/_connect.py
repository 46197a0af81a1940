"""Redis connection set-up of this plugin: the core's :mod:`llm_client.redis_connect`.

The helper lives in the core so that every backend that talks to Redis (this plugin's cache
and limiter, the ``pg_redis`` mirror of llm-client-postgres, third-party backends) opens its
client the same way; the names are re-exported here for this plugin's modules.
"""

from __future__ import annotations

from llm_client.redis_connect import (
    DEFAULT_MAX_CONNECTIONS,
    PoolExhaustedError,
    WaitingConnectionPool,
    check_max_connections,
)
from llm_client.redis_connect import connect_redis as connect

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "PoolExhaustedError",
    "WaitingConnectionPool",
    "check_max_connections",
    "connect",
]
