"""llm_client.redis_connect: the one way backends open a Redis client (real Redis)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

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


@pytest.mark.redis
async def test_get_bytes_answers_what_get_answers() -> None:
    from llm_client.redis_connect import connect_redis, get_bytes

    url = require_redis()
    client = connect_redis(url, connect_timeout=1.0, command_timeout=1.0)
    key = f"test:redis_connect:get_bytes:{free_port()}"
    try:
        await client.set(key, "värde".encode() + bytes(range(256)))
        assert await get_bytes(client, key) == await client.get(key)
        assert await get_bytes(client, key + ":absent") is None
    finally:
        await client.delete(key)
        await client.aclose()


@pytest.mark.redis
async def test_get_bytes_reopens_a_connection_that_died_while_idle(redis_server: Any) -> None:
    from llm_client.redis_connect import connect_redis, get_bytes

    client = connect_redis(redis_server.url, connect_timeout=1.0, command_timeout=1.0)
    try:
        await client.set("k", b"v")
        assert await get_bytes(client, "k") == b"v"
        redis_server.stop()  # the pooled connection dies while idle
        redis_server.start()  # a new, empty server on the same port
        await client.set("k", b"again")  # through redis-py: reconnects by its one retry
        redis_server.stop()
        redis_server.start()
        assert await get_bytes(client, "k") is None  # ours reconnects the same way
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_a_freed_connection_goes_to_the_calls_already_waiting() -> None:
    """Waiters queued behind a busy pool are woken when the connection comes back, also when
    the connection is handed back by the quick path (no PoolExhaustedError after 5 s)."""
    from llm_client.redis_connect import connect_redis, get_bytes

    url = require_redis()
    client = connect_redis(
        url, connect_timeout=1.0, command_timeout=None, max_connections=1, pool_timeout=5.0
    )
    key = f"test:redis_connect:waiters:{free_port()}"
    try:
        await client.set(key, b"x")
        holder = asyncio.ensure_future(client.blpop([key + ":list"], timeout=0.3))
        await asyncio.sleep(0.05)
        waiters = [asyncio.ensure_future(get_bytes(client, key)) for _ in range(5)]
        waiters += [asyncio.ensure_future(client.get(key)) for _ in range(5)]
        assert await holder is None
        assert await asyncio.gather(*waiters) == [b"x"] * 10
        pool: Any = client.connection_pool
        assert pool._waiting == 0 and len(pool._available_connections) == 1
    finally:
        await client.delete(key)
        await client.aclose()


@pytest.mark.redis
async def test_a_write_that_cannot_finish_is_cut_and_its_connection_closed(
    redis_server: Any,
) -> None:
    """``command_timeout`` bounds the write too (redis-py's wait_for, done without a task):
    a frozen server stops reading, the socket buffers fill, and the write is cut."""
    import signal

    from redis.exceptions import TimeoutError as RedisTimeoutError

    from llm_client.redis_connect import connect_redis

    client = connect_redis(redis_server.url, connect_timeout=1.0, command_timeout=0.5)
    try:
        await client.ping()
        pool: Any = client.connection_pool
        conn = await pool.get_connection()
        if sys.version_info[:2] == (3, 11):
            assert "TimedWrites" in [c.__name__ for c in type(conn).__mro__]
        redis_server.proc.send_signal(signal.SIGSTOP)
        try:
            # on the connection itself: through the client, redis-py's one retry would follow
            with pytest.raises(RedisTimeoutError, match="Timeout writing to socket"):
                await conn.send_packed_command(conn.pack_command("SET", "big", b"x" * (64 << 20)))
            assert not conn.is_connected
        finally:
            redis_server.proc.send_signal(signal.SIGCONT)
            await pool.release(conn)
        assert await client.ping()  # on a new connection
    finally:
        await client.aclose()


@pytest.mark.parametrize("name", ["k", "llm:cache:" + "a" * 64, "välue/ключ", "", "x" * 10_000])
def test_pack_get_sends_what_redis_py_sends(name: str) -> None:
    from redis.asyncio.connection import Connection

    from llm_client.redis_connect import _pack_get

    conn = Connection()
    assert _pack_get(conn.encoder.encode(name)) == b"".join(conn.pack_command("GET", name))
