"""llm_client.redis_connect: the one way backends open a Redis client (real Redis)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from llm_client.exceptions import ConfigurationError
from llm_client.redis_connect import check_max_connections
from llm_client.testing.services import free_port, require_redis


def test_importing_it_does_not_import_redis() -> None:
    code = (
        "import sys, llm_client, llm_client.redis_connect, llm_client.health\n"
        "assert 'redis' not in sys.modules, sorted(m for m in sys.modules if 'redis' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_lazy_classes_are_redis_errors_and_pools() -> None:
    from redis.asyncio.connection import BlockingConnectionPool
    from redis.exceptions import ConnectionError as RedisConnectionError

    from llm_client.redis_connect import PoolExhaustedError, WaitingConnectionPool, redis_outages

    assert issubclass(PoolExhaustedError, RedisConnectionError)
    assert issubclass(WaitingConnectionPool, BlockingConnectionPool)
    assert PoolExhaustedError.__module__ == "llm_client.redis_connect"
    assert any(issubclass(PoolExhaustedError, kind) for kind in redis_outages())
    with pytest.raises(AttributeError):
        from llm_client import redis_connect

        _ = redis_connect.NoSuchThing


@pytest.mark.parametrize("bad", [0, -1, 1.5, "x", True])
def test_bad_pool_sizes_name_the_option(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="redis_max_connections must be an integer"):
        check_max_connections(bad)
    assert check_max_connections(None) is None and check_max_connections("4") == 4


@pytest.mark.redis
async def test_a_busy_pool_waits_then_raises_pool_exhausted() -> None:
    from llm_client.redis_connect import PoolExhaustedError, connect_redis

    url = require_redis()
    client = connect_redis(
        url, connect_timeout=1.0, command_timeout=None, max_connections=1, pool_timeout=0.2
    )
    key = f"test:redis_connect:{free_port()}"
    try:
        blocked = asyncio.ensure_future(client.blpop([key], timeout=2))  # holds the connection
        await asyncio.sleep(0.05)
        with pytest.raises(PoolExhaustedError, match="all 1 Redis connections stayed busy"):
            await client.get(key)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_a_server_that_is_gone_fails_at_once() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from llm_client.redis_connect import PoolExhaustedError, connect_redis

    client = connect_redis(
        f"redis://127.0.0.1:{free_port()}/0", connect_timeout=1.0, command_timeout=1.0
    )
    try:
        with pytest.raises(RedisConnectionError) as info:
            await client.ping()
        assert not isinstance(info.value, PoolExhaustedError)  # down, not busy
    finally:
        await client.aclose()
