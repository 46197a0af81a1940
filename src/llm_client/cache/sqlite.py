"""The ``"sqlite"`` backend: one SQLite database file shared by threads and processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..exceptions import ConfigurationError
from ._common import _check_ttl, _Counters, _expiry, log
from .base import CacheEntry

_T = TypeVar("_T")
_D = TypeVar("_D")

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_cache (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    model TEXT NOT NULL DEFAULT '',
    operation TEXT NOT NULL DEFAULT '',
    scope TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (collection, key)
);
CREATE INDEX IF NOT EXISTS llm_cache_expires_at ON llm_cache (expires_at)
    WHERE expires_at IS NOT NULL;
"""
_SQLITE_FILE = "llm_cache.sqlite3"
_PURGE_EVERY = 512
_EXPORT_PAGE = 256


class SQLiteCache:
    """Entries in one SQLite database file: the embedded default for a persistent cache.

    WAL mode lets readers run while one writer writes, ``busy_timeout`` makes writers from
    other threads or processes wait for the lock instead of failing, and every operation is a
    single autocommit statement, so several processes can share one file. Calls run on a
    small thread pool, each thread with its own connection; :meth:`aclose` closes them all.
    Expiry is an ``expires_at`` column: expired rows are never returned and are purged
    periodically and by :meth:`purge_expired`. A file that is not a usable database (garbage,
    or corrupt) is renamed to ``<path>.unusable-<UTC time>-<pid>-<n>`` (kept, for a look
    later), a WARNING says so, and a fresh cache starts in its place.

    :param path: the database file (``":memory:"`` for a private in-memory database).
    :param collection: rows are namespaced by this value (``""`` without one).
    :param ttl: default expiry in seconds for entries put without one.
    :param busy_timeout: seconds to wait for another writer's lock.
    :param max_workers: threads (and connections) used by this instance.
    :param clock: wall-clock seconds, injectable for tests.
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        collection: str | None = None,
        ttl: float | None = None,
        busy_timeout: float = 30.0,
        max_workers: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self.collection = collection or None
        self.ttl = _check_ttl(ttl)
        if (
            isinstance(busy_timeout, bool)
            or not isinstance(busy_timeout, (int, float))
            or (busy_timeout < 0)
        ):
            raise ConfigurationError(f"busy_timeout must be seconds >= 0, got {busy_timeout!r}")
        self.busy_timeout = float(busy_timeout)
        self._in_memory = self.path == ":memory:" or self.path.startswith("file::memory:")
        self._max_workers = 1 if self._in_memory else max(1, int(max_workers))
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._puts = 0
        self._generation = 0  # bumped each time an unusable file is moved aside
        self._counters = _Counters()

    def __repr__(self) -> str:
        return f"SQLiteCache({self.path!r}, collection={self.collection!r})"

    @property
    def _ns(self) -> str:
        return self.collection or ""

    # threads and connections

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            if getattr(self._local, "generation", 0) == self._generation:
                return conn
            self._local.conn = None  # the file it reads was moved aside: open the new one
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            conn.close()
        if not self._in_memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._initialize(conn)
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._conns.append(conn)
        self._local.conn = conn
        self._local.generation = self._generation
        return conn

    def _move_aside(self, generation: int, exc: sqlite3.DatabaseError) -> None:
        """The file is not a usable database (garbage, or corrupt): keep it under a new name
        and start a fresh cache in its place. Once per bad file, whichever thread sees it."""
        with self._lock:
            if generation != self._generation:
                return  # another thread already did it
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            aside = f"{self.path}.unusable-{stamp}-{os.getpid()}-{generation}"
            moved = False
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(self.path + suffix, aside + suffix)
                    moved = moved or suffix == ""
            self._generation += 1
        log.warning(
            "sqlite cache file %s is not a usable database (%s); %s and started a fresh cache",
            self.path,
            exc,
            f"kept it as {aside}" if moved else "it is gone",
        )

    def _initialize(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        deadline = time.monotonic() + self.busy_timeout
        while True:  # switching to WAL takes a lock; another process may be holding it
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchone()
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.executescript(_SQLITE_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _pool(self) -> ThreadPoolExecutor:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="llm-cache-sqlite"
            )
        return self._executor

    def _with_conn(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        generation = self._generation
        try:
            return fn(self._connect())
        except sqlite3.DatabaseError as exc:
            # Exactly DatabaseError: "file is not a database", "database disk image is
            # malformed". Its subclasses (locked, constraint, misuse) are not about the file.
            if type(exc) is not sqlite3.DatabaseError or self._in_memory:
                raise
            self._move_aside(generation, exc)
        return fn(self._connect())

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), self._with_conn, fn)

    # statements

    def _purge_sync(self, conn: sqlite3.Connection) -> int:
        cur = conn.execute(
            "DELETE FROM llm_cache WHERE expires_at IS NOT NULL AND expires_at <= ?",
            (self._clock(),),
        )
        return cur.rowcount

    async def get(self, key: str) -> CacheEntry | None:
        return await self.get_decoded(key, CacheEntry.from_json)

    async def get_decoded(self, key: str, decode: Callable[[bytes], _D]) -> _D | None:
        """``decode`` of the stored bytes of ``key`` (see
        :class:`~llm_client.cache.DecodingCacheBackend`), called on the event loop's thread
        once the row is read; a row it refuses is logged as corrupt and read as a miss."""
        ns = self._ns

        def op(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT value, expires_at FROM llm_cache WHERE collection = ? AND key = ?",
                (ns, key),
            ).fetchone()
            if row is None:
                return None
            value, expires_at = row
            if expires_at is not None and expires_at <= self._clock():
                conn.execute(
                    "DELETE FROM llm_cache WHERE collection = ? AND key = ? AND expires_at = ?",
                    (ns, key, expires_at),
                )
                return None
            return bytes(value)

        data = await self._run(op)
        found = None
        if data is not None:
            try:
                found = decode(data)
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("sqlite cache row %r is corrupt (%s); treating it as a miss", key, exc)
        return self._counters.count(found)

    async def put(self, entry: CacheEntry, *, ttl: float | None = None) -> None:
        ns = self._ns
        data = entry.to_json()
        expires_at = _expiry(self._clock(), ttl, self.ttl)
        self._puts += 1
        purge = self._puts % _PURGE_EVERY == 0

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO llm_cache"
                " (collection, key, value, created_at, expires_at, model, operation, scope)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ns,
                    entry.key,
                    data,
                    entry.created_at,
                    expires_at,
                    entry.model,
                    entry.operation,
                    entry.scope,
                ),
            )
            if purge:
                self._purge_sync(conn)

        await self._run(op)

    async def delete(self, key: str) -> bool:
        ns = self._ns

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM llm_cache WHERE collection = ? AND key = ?", (ns, key))
            return cur.rowcount > 0

        return await self._run(op)

    async def clear(self) -> int:
        ns = self._ns

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM llm_cache WHERE collection = ?", (ns,)).rowcount

        return await self._run(op)

    async def stats(self) -> dict[str, Any]:
        ns = self._ns

        def op(conn: sqlite3.Connection) -> tuple[int, int]:
            row = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM llm_cache"
                " WHERE collection = ? AND (expires_at IS NULL OR expires_at > ?)",
                (ns, self._clock()),
            ).fetchone()
            return int(row[0]), int(row[1])

        entries, size = await self._run(op)
        file_bytes = 0
        if not self._in_memory:
            for suffix in ("", "-wal"):
                with contextlib.suppress(OSError):
                    file_bytes += os.stat(self.path + suffix).st_size
        return {
            "backend": self.name,
            "entries": entries,
            "size_bytes": size,
            "file_bytes": file_bytes,
            "path": self.path,
            "collection": self.collection,
            **self._counters.as_dict(),
        }

    async def export(self) -> AsyncIterator[CacheEntry]:
        ns = self._ns
        after = ""
        first = True
        while True:

            def op(conn: sqlite3.Connection, after: str = after, first: bool = first) -> list[Any]:
                return conn.execute(
                    "SELECT key, value FROM llm_cache WHERE collection = ? AND (key > ? OR ?)"
                    " AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?",
                    (ns, after, first, self._clock(), _EXPORT_PAGE),
                ).fetchall()

            rows = await self._run(op)
            for key, value in rows:
                try:
                    yield CacheEntry.from_json(bytes(value))
                except (ValueError, TypeError, KeyError) as exc:
                    log.warning("skipping corrupt sqlite cache row %r: %s", key, exc)
            if len(rows) < _EXPORT_PAGE:
                return
            after, first = rows[-1][0], False

    async def purge_expired(self) -> int:
        """Delete expired rows (of every collection) now; returns how many."""
        return await self._run(self._purge_sync)

    async def warm(self) -> None:
        """Create the file, switch it to WAL and create the table now."""
        await self._run(lambda conn: None)

    async def aclose(self) -> None:
        """Wait for running statements, then close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, True)
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
