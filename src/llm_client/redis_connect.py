"""One way to open a Redis client, for every backend that talks to Redis.

Used by the ``redis`` cache and rate limiter (``llm-client-redis``), the Redis mirror of
``pg_redis`` (``llm-client-postgres``), and open to third-party backends. The client it opens:

* fails fast when Redis is gone (one immediate retry re-opens a connection that died while
  idle, e.g. after a Redis restart; a server that is really gone fails at once, so callers
  can fall back without waiting);
* *waits* for a free pooled connection, bounded by ``pool_timeout``, instead of failing: with
  redis-py's default pool the 101st concurrent command raised ``MaxConnectionsError`` (a
  ``ConnectionError``), which looked exactly like Redis being down. A wait that runs out
  raises :class:`PoolExhaustedError`, which callers tell apart from an outage (pass it as
  ``passthrough`` to :meth:`llm_client.health.ServiceHealth.call`).

llm-client itself does not depend on ``redis``: this module imports it only when a function
is called or :class:`PoolExhaustedError` / :class:`WaitingConnectionPool` is first looked up,
so importing it costs nothing.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigurationError

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import BlockingConnectionPool
    from redis.exceptions import ConnectionError as RedisConnectionError

    class PoolExhaustedError(RedisConnectionError):
        """Every connection of the pool stayed busy for ``pool_timeout`` seconds."""

    class WaitingConnectionPool(BlockingConnectionPool):
        """redis-py's blocking pool, raising :class:`PoolExhaustedError` when the wait runs
        out."""


__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "PoolExhaustedError",
    "WaitingConnectionPool",
    "check_max_connections",
    "connect_redis",
    "get_bytes",
    "redis_outages",
]

#: Connections per client unless ``redis_max_connections`` says otherwise (redis-py's own
#: default pool also stopped at 100).
DEFAULT_MAX_CONNECTIONS = 100


@functools.cache
def _classes() -> dict[str, Any]:
    """Build the redis-py subclasses (imports redis; once)."""
    from redis.asyncio.connection import BlockingConnectionPool
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    # the pool's own connection check, which the quick path runs too (not in every redis-py)
    _QUICK = hasattr(BlockingConnectionPool, "ensure_connection")

    class PoolExhaustedError(RedisConnectionError):
        """Every connection of the pool stayed busy for ``pool_timeout`` seconds.

        This is busy, not Redis down: it is never to be reported as an outage.
        """

    class WaitingConnectionPool(BlockingConnectionPool):
        """redis-py's blocking pool, with a distinct error when the wait runs out.

        While nobody waits, a command that finds a free connection takes it at once and gives
        it back at once, checked as redis-py checks it (``ensure_connection``): the blocking
        pool's condition, timer and predicate, and redis-py's per-checkout bookkeeping, are
        paid only when there is something to wait for (about 15 µs of a 120 µs GET).
        redis-py's optional connection metrics do not count these fast checkouts.
        """

        _waiting = 0

        def _quiet(self) -> bool:
            return _QUICK and not self._waiting and not getattr(self, "_in_maintenance", False)

        async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
            if self._available_connections and self._quiet():
                connection = self._available_connections.pop()
                self._in_use_connections.add(connection)
                try:
                    # ensure_connection's checks, its common case first: connected, nothing
                    # unread (its connect() runs redis-py's retry machinery even then)
                    try:
                        ready = connection.is_connected and not await connection.can_read()
                    except (RedisConnectionError, RedisTimeoutError, OSError):
                        ready = False
                    if not ready:
                        await self.ensure_connection(connection)
                except BaseException:
                    await self.release(connection)
                    raise
                return connection
            self._waiting += 1
            try:
                return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
            except RedisConnectionError as exc:
                # The pool wraps the timeout of its wait, and only that, in a ConnectionError.
                if isinstance(exc.__cause__, asyncio.TimeoutError):
                    raise PoolExhaustedError(
                        f"all {self.max_connections} Redis connections stayed busy for"
                        f" {self.timeout:g}s (raise redis_max_connections?)"
                    ) from exc
                raise
            finally:
                self._waiting -= 1

        async def release(self, connection: Any) -> None:
            # No await between the check and the hand-back: a waiter that arrives later
            # finds the connection free; one that waits already is woken by redis-py's path.
            should_reconnect = getattr(connection, "should_reconnect", None)  # newer redis-py only
            if self._quiet() and not (should_reconnect is not None and should_reconnect()):
                self._in_use_connections.remove(connection)
                self._available_connections.append(connection)
                return
            await super().release(connection)

    class TimedWrites:
        """Bounds a command's write with ``asyncio.timeout`` where redis-py uses
        ``asyncio.wait_for``.

        With a ``socket_timeout`` set, redis-py sends every command through
        ``asyncio.wait_for``, which before Python 3.12 runs the write in a new task: two more
        turns of the event loop per command, about a fifth of a cache hit. The write itself
        only waits when the socket's buffer is full, so only then is a timer armed. The
        bound and the error handling are redis-py's (``AbstractConnection.
        send_packed_command``): a cut or failed write closes the connection, since part of
        the command may have gone out.
        """

        async def send_packed_command(
            self, command: bytes | str | Iterable[bytes], check_health: bool = True
        ) -> None:
            conn: Any = self
            timeout = conn.socket_timeout
            if not timeout:
                await super().send_packed_command(command, check_health)  # type: ignore[misc]
                return
            if not conn.is_connected:
                connect = getattr(conn, "connect_check_health", None)  # newer redis-py only
                await (conn.connect() if connect is None else connect(check_health=False))
            if check_health:
                await conn.check_health()
            if isinstance(command, str):
                command = command.encode()
            if isinstance(command, bytes):
                command = [command]
            if sys.version_info < (3, 11):  # pragma: no cover - only mixed in on 3.11
                raise RuntimeError("TimedWrites needs asyncio.timeout (Python 3.11)")
            try:
                writer = conn._writer
                writer.writelines(command)
                transport = writer.transport
                limits = getattr(transport, "get_write_buffer_limits", None)
                if limits is not None and transport.get_write_buffer_size() <= limits()[1]:
                    await writer.drain()  # not paused: returns at once, no timer needed
                else:
                    async with asyncio.timeout(timeout):
                        await writer.drain()
            except asyncio.TimeoutError:
                # Drop what was not sent rather than keep it queued for a server that does
                # not read (redis-py's close would wait for the buffer to drain).
                conn._writer.transport.abort()
                await conn.disconnect(nowait=True)
                raise RedisTimeoutError("Timeout writing to socket") from None
            except OSError as exc:
                await conn.disconnect(nowait=True)
                err_no, message = ("UNKNOWN", exc.args[0]) if len(exc.args) == 1 else exc.args[:2]
                raise RedisConnectionError(
                    f"Error {err_no} while writing to socket. {message}."
                ) from exc
            except BaseException:
                await conn.disconnect(nowait=True)
                raise

    for cls in (PoolExhaustedError, WaitingConnectionPool):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
    return {
        "PoolExhaustedError": PoolExhaustedError,
        "WaitingConnectionPool": WaitingConnectionPool,
        "TimedWrites": TimedWrites,
        # what get_bytes retries once on a fresh connection
        "reconnect_on": (RedisConnectionError, RedisTimeoutError),
    }


@functools.cache
def _timed_writes(connection_class: Any) -> Any:
    """``connection_class`` (plain, TLS or Unix socket) with :class:`TimedWrites` mixed in."""
    if sys.version_info >= (3, 12) or sys.version_info < (3, 11):
        return connection_class  # 3.12's wait_for starts no task; 3.10 has no asyncio.timeout
    mixin = _classes()["TimedWrites"]
    return type(connection_class.__name__, (mixin, connection_class), {"__module__": __name__})


if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name in ("PoolExhaustedError", "WaitingConnectionPool"):
            return _classes()[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _pack_get(name: bytes) -> bytes:
    """``GET name`` as a RESP command: what redis-py's ``pack_command("GET", name)`` sends,
    in a quarter of its time (``name`` encoded by the connection's encoder)."""
    return b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(name), name)


async def get_bytes(client: aioredis.Redis, name: str) -> Any:
    """``await client.get(name)``, made the way a cache's hit path wants it.

    The same pool, connection checks, timeouts and reply (bytes, or ``None`` when absent) as
    ``client.get``, and as with :func:`connect_redis`'s clients a connection that fails is
    re-opened and the GET tried once more. What it leaves out is redis-py's per-command
    plumbing around that (the retry wrapper, response callbacks and metrics hooks), about
    10-15 µs of a 120 µs GET on a cache hit.
    """
    pool = client.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        command = _pack_get(conn.encoder.encode(name))
        try:
            await conn.send_packed_command(command, check_health=False)
            return await conn.read_response()
        except _classes()["reconnect_on"]:
            await conn.disconnect()
        await conn.send_packed_command(command, check_health=False)
        return await conn.read_response()
    finally:
        await pool.release(conn)


def redis_outages() -> tuple[type[BaseException], ...]:
    """The exceptions that mean Redis did not answer (``RedisError``, ``OSError``,
    timeouts): the ``outages`` of :meth:`llm_client.health.ServiceHealth.call`. Note that
    :class:`PoolExhaustedError` is one of them; pass it as ``passthrough``."""
    from redis.exceptions import RedisError

    return (RedisError, OSError, asyncio.TimeoutError)


def check_max_connections(value: Any, name: str = "redis_max_connections") -> int | None:
    """``value`` as a pool size (an integer >= 1), ``None`` for the default.

    :raises ConfigurationError: naming ``name``.
    """
    if value is None:
        return None
    try:
        number = int(value) if not isinstance(value, bool) else -1
    except (TypeError, ValueError):
        number = -1
    if number < 1 or (isinstance(value, float) and not value.is_integer()):
        raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
    return number


def connect_redis(
    url: str,
    *,
    connect_timeout: float | None,
    command_timeout: float | None,
    max_connections: int | None = None,
    pool_timeout: float | None = None,
) -> aioredis.Redis:
    """A ``redis.asyncio.Redis`` client for ``url`` that fails fast when Redis is gone and
    waits when it is only busy. No connection is opened until the first command.

    :param connect_timeout: seconds to open a connection (``None``: no limit).
    :param command_timeout: seconds a command may take (``None``: no limit).
    :param max_connections: pool size (default :data:`DEFAULT_MAX_CONNECTIONS`).
    :param pool_timeout: seconds a command waits for a free connection before
        :class:`PoolExhaustedError` (default: ``command_timeout``, else 5 s).
    """
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    size = check_max_connections(max_connections) or DEFAULT_MAX_CONNECTIONS
    if pool_timeout is None:
        pool_timeout = command_timeout if command_timeout is not None else 5.0
    pool_class: type[WaitingConnectionPool] = _classes()["WaitingConnectionPool"]
    pool = pool_class.from_url(
        url,
        max_connections=size,
        timeout=pool_timeout,
        socket_connect_timeout=connect_timeout,
        socket_timeout=command_timeout,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=0,
    )
    connection_class: Any = pool.connection_class
    pool.connection_class = _timed_writes(connection_class)
    return aioredis.Redis.from_pool(pool)
