"""The ``"fs"`` backend: one JSON file per entry, written atomically."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from ..exceptions import ConfigurationError
from ._common import _check_ttl, _Counters, _expiry, log
from .base import CacheEntry, loads

_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9\-][A-Za-z0-9._\-]{0,127}")
_MAX_SEGMENTS = 8
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 3600.0


def _safe_segments(name: str) -> list[str] | None:
    """``name`` split on ``/`` if every part is a plain, portable file name, else ``None``."""
    parts = name.split("/")
    if not 1 <= len(parts) <= _MAX_SEGMENTS:
        return None
    for i, part in enumerate(parts):
        if not _SAFE_SEGMENT.fullmatch(part):
            return None
        if i < len(parts) - 1 and part.endswith(".json"):  # a folder must not shadow a file
            return None
    return parts


class FileSystemCache:
    """One JSON file per entry under ``cache_dir`` (``cache_dir/<collection>/`` with one).

    A key made of plain name parts (letters, digits, ``.``, ``_``, ``-``; ``/`` separates
    folders) is stored as ``<key>.json``, as in the seed; any other key (path separators,
    ``..``, non-ASCII, very long) is stored as ``_<sha256 of key>.json``, so no key can reach
    outside the folder. Each file also holds its key, and a file whose key differs is a miss.

    Writes go to a temporary file in the same folder and are renamed over the target with
    ``os.replace``, so a reader sees the old or the new entry, never half of one, even with
    several processes writing or one crashing mid-write. A corrupt or unreadable file is
    logged and treated as a miss; the next ``put`` replaces it. File I/O runs in threads.

    :param cache_dir: the root folder (created on first write or by :meth:`warm`).
    :param collection: a sub-folder (plain name parts as above).
    :param ttl: default expiry in seconds; expiry is stored in the file and checked on read.
    :param fsync: flush each file (and its folder) to disk before the rename: survive power
        loss, at the cost of speed. Without it a crash of the machine can leave an empty file,
        which reads as a miss.
    :param clock: wall-clock seconds, injectable for tests.
    """

    name = "fs"

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        *,
        collection: str | None = None,
        ttl: float | None = None,
        fsync: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.collection = collection or None
        if self.collection is not None and _safe_segments(self.collection) is None:
            raise ConfigurationError(
                f"cache collection {self.collection!r} is not a plain folder name for the 'fs'"
                " cache: use letters, digits, '.', '_' and '-'"
            )
        self.root = self.cache_dir / self.collection if self.collection else self.cache_dir
        self.ttl = _check_ttl(ttl)
        self.fsync = fsync
        self._clock = clock
        self._counters = _Counters()

    def __repr__(self) -> str:
        return f"FileSystemCache({str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        """The file that holds ``key``."""
        parts = _safe_segments(key)
        if parts is None:
            return (
                self.root
                / f"_{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}.json"
            )
        return self.root.joinpath(*parts[:-1], parts[-1] + ".json")

    # sync parts, run in threads

    @staticmethod
    def _parse(data: bytes) -> tuple[CacheEntry, float | None]:
        """(entry, expires_at) of one file's bytes; ValueError/TypeError if it is not one."""
        raw = loads(data)
        entry = CacheEntry.from_dict(raw)
        expires_at = raw.get("expires_at")
        if expires_at is not None and (
            isinstance(expires_at, bool) or not isinstance(expires_at, (int, float))
        ):
            raise ValueError("bad expires_at")
        return entry, expires_at

    def _read(self, path: Path, key: str) -> CacheEntry | None:
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (PermissionError, IsADirectoryError) as exc:
            log.warning("cache file %s is unreadable (%s); treating it as a miss", path, exc)
            return None
        try:
            entry, expires_at = self._parse(data)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning(
                "cache file %s is corrupt (%s); treating it as a miss, the next write replaces it",
                path,
                exc,
            )
            return None
        if entry.key != key:
            log.debug("cache file %s holds key %r, not %r: a miss", path, entry.key, key)
            return None
        if expires_at is not None and expires_at <= self._clock():
            return None
        return entry

    def _write(self, path: Path, data: bytes) -> None:
        folder = path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync and hasattr(os, "O_DIRECTORY"):
            dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _unlink(self, path: Path) -> bool:
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def _walk(self) -> Iterator[Path]:
        """Every entry file under the root (temporary and hidden files excluded), sorted."""
        if not self.root.is_dir():
            return
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.endswith(".json") and not name.startswith("."):
                    yield Path(folder, name)

    def _remove_stale_tmp(self, min_age: float) -> int:
        removed = 0
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - min_age
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith(_TMP_PREFIX) and name.endswith(".tmp"):
                    path = Path(folder, name)
                    with contextlib.suppress(OSError):
                        if path.stat().st_mtime < cutoff:
                            path.unlink()
                            removed += 1
        return removed

    def _clear(self) -> int:
        removed = sum(1 for path in list(self._walk()) if self._unlink(path))
        self._remove_stale_tmp(_STALE_TMP_SECONDS)
        return removed

    def _stats(self) -> dict[str, Any]:
        entries = size = 0
        for path in self._walk():
            with contextlib.suppress(OSError):
                size += path.stat().st_size
                entries += 1
        return {"entries": entries, "size_bytes": size}

    def _read_file(self, path: Path) -> CacheEntry | None:
        try:
            entry, expires_at = self._parse(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("skipping cache file %s: %s", path, exc)
            return None
        if expires_at is not None and expires_at <= self._clock():
            return None
        return entry

    def _read_files(self, paths: list[Path]) -> list[CacheEntry | None]:
        return [self._read_file(p) for p in paths]

    def _purge(self) -> int:
        removed = 0
        now = self._clock()
        for path in list(self._walk()):
            try:
                _, expires_at = self._parse(path.read_bytes())
            except (OSError, ValueError, TypeError, KeyError):
                continue
            if expires_at is not None and expires_at <= now and self._unlink(path):
                removed += 1
        return removed

    # the protocol

    async def get(self, key: str) -> CacheEntry | None:
        entry = await asyncio.to_thread(self._read, self.path_for(key), key)
        return self._counters.count(entry)

    async def put(self, entry: CacheEntry, *, ttl: float | None = None) -> None:
        record = entry.to_dict()
        record["expires_at"] = _expiry(self._clock(), ttl, self.ttl)
        data = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        await asyncio.to_thread(self._write, self.path_for(entry.key), data)

    async def delete(self, key: str) -> bool:
        return await asyncio.to_thread(self._unlink, self.path_for(key))

    async def clear(self) -> int:
        """Remove every entry under the root (collection sub-folders included)."""
        return await asyncio.to_thread(self._clear)

    async def stats(self) -> dict[str, Any]:
        found = await asyncio.to_thread(self._stats)
        return {
            "backend": self.name,
            **found,
            "path": str(self.root),
            **self._counters.as_dict(),
        }

    async def export(self) -> AsyncIterator[CacheEntry]:
        paths = await asyncio.to_thread(lambda: list(self._walk()))
        for start in range(0, len(paths), 64):
            batch = paths[start : start + 64]
            entries = await asyncio.to_thread(self._read_files, batch)
            for entry in entries:
                if entry is not None:
                    yield entry

    async def purge_expired(self) -> int:
        """Delete expired entry files now (reads every file); returns how many."""
        return await asyncio.to_thread(self._purge)

    async def warm(self) -> None:
        """Create the folder and remove temporary files left behind by crashed writers."""

        def work() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._remove_stale_tmp(_STALE_TMP_SECONDS)

        await asyncio.to_thread(work)

    async def aclose(self) -> None:
        return None
