"""The built-in backends' factories, registered through the same hook a plugin implements."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..exceptions import ConfigurationError
from ..hookspecs import hookimpl
from .fs import FileSystemCache
from .memory import MemoryCache
from .sqlite import _SQLITE_FILE, SQLiteCache


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def memory_backend(
    *,
    ttl: float | None = None,
    cache_ttl: float | None = None,
    max_entries: int | None = None,
    cache_max_entries: int | None = None,
    cache_collection: str | None = None,
    **_: Any,
) -> MemoryCache:
    """Factory of ``"memory"``: options ``ttl``, ``max_entries`` (default 10 000)."""
    return MemoryCache(
        max_entries=_first(max_entries, cache_max_entries, 10_000),
        ttl=_first(ttl, cache_ttl),
        collection=cache_collection,
    )


def fs_backend(
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_collection: str | None = None,
    ttl: float | None = None,
    cache_ttl: float | None = None,
    fsync: bool = False,
    **_: Any,
) -> FileSystemCache:
    """Factory of ``"fs"``: requires ``cache_dir``; options ``cache_collection``, ``ttl``,
    ``fsync``."""
    if cache_dir is None or str(cache_dir) == "":
        raise ConfigurationError(
            "the 'fs' cache backend needs cache_dir=...: the folder where it writes one JSON"
            " file per cached answer"
        )
    return FileSystemCache(
        cache_dir, collection=cache_collection, ttl=_first(ttl, cache_ttl), fsync=bool(fsync)
    )


def sqlite_backend(
    *,
    cache_path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_collection: str | None = None,
    ttl: float | None = None,
    cache_ttl: float | None = None,
    busy_timeout: float = 30.0,
    **_: Any,
) -> SQLiteCache:
    """Factory of ``"sqlite"``: ``cache_path`` (the database file) or ``cache_dir`` (then the
    file is ``cache_dir/llm_cache.sqlite3``); options ``cache_collection``, ``ttl``,
    ``busy_timeout``."""
    if cache_path is not None and str(cache_path) != "":
        path: str | os.PathLike[str] = cache_path
    elif cache_dir is not None and str(cache_dir) != "":
        path = Path(cache_dir) / _SQLITE_FILE
    else:
        raise ConfigurationError(
            "the 'sqlite' cache backend needs cache_dir=... (the file is then"
            f" <cache_dir>/{_SQLITE_FILE}) or cache_path=... (the database file itself)"
        )
    return SQLiteCache(
        path, collection=cache_collection, ttl=_first(ttl, cache_ttl), busy_timeout=busy_timeout
    )


@hookimpl
def register_cache_backends(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """The built-in backends, registered like any plugin's."""
    register("memory", memory_backend)
    register("fs", fs_backend)
    register("sqlite", sqlite_backend)
