"""The PostgreSQL side: one table per collection, the durable copy of every entry."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from llm_client.exceptions import ConfigurationError
from llm_client.health import ServiceHealth

__all__ = ["PostgresStore", "Row", "row_key", "validate_table_name"]

#: Longest key stored as it is. A B-tree index entry must fit in a third of a page (about
#: 2,700 bytes), so a longer explicit identifier is stored under its SHA-256 instead of being
#: refused by the server; the entry itself still carries the full key.
MAX_KEY_BYTES = 512


def row_key(key: str) -> str:
    """The primary-key value of ``key`` in the table."""
    raw = key.encode("utf-8")
    if len(raw) <= MAX_KEY_BYTES:
        return key
    return "sha256:" + hashlib.sha256(raw).hexdigest()


T = TypeVar("T")


async def _keep_session(conn: Any) -> None:
    """What the pool does to a connection it takes back: nothing more than asyncpg's own
    clean-up (listeners dropped, an open transaction rolled back).

    By default asyncpg's pool also runs ``SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`` on every release: a second round trip per operation, about 75 µs
    of a 185 µs read on a local server. This pool is private to the backend, whose statements
    leave nothing for that to undo: no session advisory locks (the table's creation takes a
    transaction-level one), cursors, LISTEN or SET. (asyncpg >= 0.30: ``create_pool(reset=)``.)
    """

_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

#: What counts as "the server is not answering" (as opposed to a statement the server refused,
#: e.g. a key too long for the index, which is raised as it is and does not count as an outage).
_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.exceptions.PostgresSystemError,  # class 58: I/O error
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # a killed session's late error message
)
#: Failures worth one immediate retry: a pooled connection that died while idle.
_RETRY_ONCE: tuple[type[BaseException], ...] = (
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,
)


def validate_table_name(name: str) -> str:
    """Return ``name`` if it is a safe table name, else raise :class:`ConfigurationError`.

    Only lowercase letters, digits and underscores, starting with a letter or underscore,
    at most 63 characters (PostgreSQL's identifier limit). The name is also double-quoted
    in every statement, so even a reserved word is harmless.
    """
    if not isinstance(name, str) or not _TABLE_NAME.fullmatch(name):
        raise ConfigurationError(
            f"cache_collection={name!r} cannot be a PostgreSQL table name: use 1-63 lowercase"
            " letters, digits or underscores, not starting with a digit"
        )
    return name


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class Row:
    """One stored entry as read back: still encoded, with its codec and remaining TTL."""

    data: bytes
    codec: str
    remaining: float | None


class PostgresStore:
    """Owns the asyncpg pool (created lazily), the table (created on first use) and the SQL."""

    def __init__(
        self,
        dsn: str,
        table: str,
        *,
        health: ServiceHealth,
        pool_min_size: int,
        pool_max_size: int,
        connect_timeout: float,
        command_timeout: float,
        application_name: str,
        synchronous_commit: str,
    ) -> None:
        self.dsn = dsn
        self.application_name = application_name
        self.synchronous_commit = synchronous_commit
        self.table = validate_table_name(table)
        self.health = health
        self._pool_min_size = pool_min_size
        self._pool_max_size = pool_max_size
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._table_ready = False
        self._closed = False

        t = _quote(self.table)
        digest = hashlib.sha1(self.table.encode()).hexdigest()[:8]
        index = _quote(f"{self.table[:40]}_exp_{digest}")
        self._lock_key = f"llm_client_postgres:{self.table}"
        self._create_sql = (
            f"CREATE TABLE IF NOT EXISTS {t} ("
            " key text PRIMARY KEY,"
            " data bytea NOT NULL,"
            " codec text NOT NULL DEFAULT 'none',"
            " model text NOT NULL DEFAULT '',"
            " operation text NOT NULL DEFAULT '',"
            " scope text NOT NULL DEFAULT '',"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " expires_at timestamptz"
            ");"
            f" CREATE INDEX IF NOT EXISTS {index} ON {t} (expires_at)"
            " WHERE expires_at IS NOT NULL"
        )
        self._get_sql = (
            "SELECT data, codec, extract(epoch FROM expires_at - now())::float8 AS remaining"
            f" FROM {t} WHERE key = $1"
        )
        self._put_sql = (
            f"INSERT INTO {t} AS c (key, data, codec, model, operation, scope, created_at,"
            " expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::float8),"
            " now() + make_interval(secs => $8::float8))"
            " ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, codec = EXCLUDED.codec,"
            " model = EXCLUDED.model, operation = EXCLUDED.operation, scope = EXCLUDED.scope,"
            " created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at"
        )
        self._delete_sql = f"DELETE FROM {t} WHERE key = $1"
        self._delete_expired_sql = f"DELETE FROM {t} WHERE key = $1 AND expires_at <= now()"
        self._purge_sql = f"DELETE FROM {t} WHERE expires_at <= now()"
        self._clear_sql = f"DELETE FROM {t}"
        self._count_sql = f"SELECT count(*) FROM {t} WHERE expires_at IS NULL OR expires_at > now()"
        self._page_sql = (
            f"SELECT key, data, codec FROM {t}"
            " WHERE key > $1 AND (expires_at IS NULL OR expires_at > now())"
            " ORDER BY key LIMIT $2"
        )

    # -- connection management ------------------------------------------------------------

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._pool_lock:
            if self._pool is None:
                if self._closed:
                    raise RuntimeError("the cache backend is closed")
                # min_size=0 by default: creating the pool opens nothing, so a pool made
                # while the server is down stays usable once it returns.
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=self._pool_min_size,
                    max_size=self._pool_max_size,
                    timeout=self._connect_timeout,
                    command_timeout=self._command_timeout,
                    server_settings={
                        "application_name": self.application_name,
                        "synchronous_commit": self.synchronous_commit,
                    },
                    reset=_keep_session,
                )
            return self._pool

    async def _ensure_table(self, conn: Any) -> None:
        if self._table_ready:
            return
        async with conn.transaction():
            # Serialise concurrent CREATE ... IF NOT EXISTS across processes.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self._lock_key)
            await conn.execute(self._create_sql)
        self._table_ready = True

    async def run(self, op: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``op(connection)``; one retry on a dead pooled connection or a dropped table.

        Raises :class:`ServiceDown` when PostgreSQL does not answer (the failure is logged
        once per outage) or while it is waiting out its reconnect interval.
        """

        async def attempts() -> T:
            for attempt in (1, 2):
                try:
                    pool = await self._get_pool()
                    async with pool.acquire(timeout=self._connect_timeout) as conn:
                        await self._ensure_table(conn)
                        return await op(conn)
                except asyncpg.exceptions.UndefinedTableError:
                    self._table_ready = False  # someone dropped it: recreate and try again
                    if attempt == 1:
                        continue
                    raise
                except _OUTAGES as exc:
                    if attempt == 1 and isinstance(exc, _RETRY_ONCE):
                        # If one pooled session was killed, its siblings probably were too:
                        # have the pool replace them all, then try once more.
                        if self._pool is not None:
                            await self._pool.expire_connections()
                        continue
                    raise
            raise AssertionError("unreachable")  # pragma: no cover

        return await self.health.call(
            attempts,
            outages=_OUTAGES,
            # the server answered: it refused this statement (not an outage, a success)
            answered=(asyncpg.PostgresError,),
            passthrough=(asyncpg.exceptions.UndefinedTableError,),
        )

    async def aclose(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=5.0)
        except (asyncio.TimeoutError, OSError, asyncpg.InterfaceError):
            pool.terminate()

    # -- operations -------------------------------------------------------------------------

    async def warm(self) -> None:
        async def op(conn: Any) -> None:
            await conn.execute(self._purge_sql)

        await self.run(op)

    async def get(self, key: str) -> Row | None:
        """The stored row of ``key``; an expired row is deleted and reported as absent."""

        async def op(conn: Any) -> Row | None:
            rec = await conn.fetchrow(self._get_sql, row_key(key))
            if rec is None:
                return None
            remaining = rec["remaining"]
            if remaining is not None and remaining <= 0:
                await conn.execute(self._delete_expired_sql, row_key(key))
                return None
            return Row(bytes(rec["data"]), rec["codec"], remaining)

        return await self.run(op)

    async def put(
        self,
        key: str,
        data: bytes,
        codec: str,
        *,
        model: str,
        operation: str,
        scope: str,
        created_at: float,
        ttl: float | None,
    ) -> None:
        async def op(conn: Any) -> None:
            await conn.execute(
                self._put_sql, row_key(key), data, codec, model, operation, scope, created_at, ttl
            )

        await self.run(op)

    async def delete(self, key: str) -> bool:
        async def op(conn: Any) -> str:
            return str(await conn.execute(self._delete_sql, row_key(key)))

        return _affected(await self.run(op)) > 0

    async def purge_expired(self) -> int:
        async def op(conn: Any) -> str:
            return str(await conn.execute(self._purge_sql))

        return _affected(await self.run(op))

    async def clear(self) -> int:
        async def op(conn: Any) -> str:
            return str(await conn.execute(self._clear_sql))

        return _affected(await self.run(op))

    async def count(self) -> int:
        async def op(conn: Any) -> int:
            return int(await conn.fetchval(self._count_sql))

        return await self.run(op)

    async def page(self, after: str, limit: int) -> list[tuple[str, bytes, str]]:
        """Up to ``limit`` live rows with keys after ``after``, in key order."""

        async def op(conn: Any) -> list[tuple[str, bytes, str]]:
            rows = await conn.fetch(self._page_sql, after, limit)
            return [(r["key"], bytes(r["data"]), r["codec"]) for r in rows]

        return await self.run(op)

    async def drop_table(self) -> None:
        """Drop the table (tests and tear-down); it is recreated on next use."""
        t = _quote(self.table)

        async def op(conn: Any) -> None:
            await conn.execute(f"DROP TABLE IF EXISTS {t}")

        await self.run(op)
        self._table_ready = False


def _affected(status: str) -> int:
    """Row count from a command tag such as ``"DELETE 3"``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
