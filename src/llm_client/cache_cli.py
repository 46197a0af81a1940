"""The ``llm-client cache`` commands: ``stats``, ``clear`` and ``export``.

``cli.py`` calls :func:`add_cache_parser` on its sub-command parsers and, for ``cache``,
``asyncio.run(run_cache_command(args))``. The backend is looked up by name through the plugin
registry, so plugin backends work too; their connection settings come from ``--option`` or
from their own environment variables (``PG_DSN``, ``REDIS_URL``, ``QDRANT_URL`` ...)::

    llm-client cache stats  --backend fs --cache-dir cache/
    llm-client cache export --backend sqlite --cache-dir cache/ > entries.jsonl
    llm-client cache clear  --backend pg_redis --collection llm_cache -o pg_dsn=postgresql://...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import IO, Any

import pluggy

from .cache import CacheBackend, redact_text
from .config import resolve
from .exceptions import ConfigurationError
from .plugins import cache_backend

__all__ = ["BACKEND_ENV", "add_cache_parser", "parse_options", "run_cache_command"]

#: Environment variable naming the default backend of the commands (else ``"fs"``).
BACKEND_ENV = "LLM_CLIENT_CACHE_BACKEND"

_COMMANDS = {
    "stats": "print entry count, size and hit/miss counters as JSON",
    "clear": "delete every entry of the backend (of the collection, with --collection)",
    "export": "write every entry to stdout as JSON lines (one CacheEntry per line)",
}


def add_cache_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``cache {stats,clear,export}`` to a CLI's sub-command parsers.

    The parsed namespace has ``cache_command`` (``"stats"``, ``"clear"`` or ``"export"``),
    ``backend``, ``cache_dir``, ``collection`` and ``option`` (a list of ``KEY=VALUE``).
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--backend",
        default=None,
        help=f"cache backend name: fs, sqlite, memory or a plugin's (default: ${BACKEND_ENV}"
        " or fs)",
    )
    common.add_argument("--cache-dir", default=None, help="cache folder (fs, sqlite)")
    common.add_argument(
        "--collection", default=None, help="collection / namespace within the backend"
    )
    common.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another backend option, repeatable (e.g. -o cache_path=x.db -o pg_dsn=...);"
        " values are read as JSON when they parse, else as text",
    )
    parser = subparsers.add_parser(
        "cache",
        help="inspect or manage the response cache",
        description="Inspect or manage the response cache of any installed backend.",
    )
    commands = parser.add_subparsers(dest="cache_command", metavar="{stats,clear,export}")
    commands.required = True
    for name, help_text in _COMMANDS.items():
        commands.add_parser(name, parents=[common], help=help_text, description=help_text)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["ttl=60", "pg_dsn=postgresql://..."]`` -> ``{"ttl": 60, "pg_dsn": "postgresql://..."}``.

    :raises ConfigurationError: a pair without ``=`` or with an empty key.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ConfigurationError(f"--option expects KEY=VALUE, got {pair!r}")
        try:
            options[name] = json.loads(raw)
        except ValueError:
            options[name] = raw
    return options


def _backend_options(args: argparse.Namespace) -> dict[str, Any]:
    options = parse_options(list(getattr(args, "option", None) or []))
    if getattr(args, "cache_dir", None):
        options.setdefault("cache_dir", args.cache_dir)
    if getattr(args, "collection", None):
        options.setdefault("cache_collection", args.collection)
    return options


async def _run(command: str, backend: CacheBackend, out: IO[str]) -> None:
    if command == "stats":
        stats = await backend.stats()
        out.write(json.dumps(stats, indent=2, sort_keys=True, default=str) + "\n")
    elif command == "clear":
        removed = await backend.clear()
        out.write(json.dumps({"removed": removed}) + "\n")
    else:
        async for entry in backend.export():
            out.write(entry.to_json().decode("utf-8") + "\n")
    out.flush()


async def run_cache_command(
    args: argparse.Namespace,
    *,
    plugin_manager: pluggy.PluginManager | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run one ``cache`` command; returns the exit status.

    0 on success, 2 for a configuration problem (unknown backend, missing ``--cache-dir``,
    bad ``--option``), 1 when the backend fails. Messages go to ``stderr``.
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    command = getattr(args, "cache_command", None)
    if command not in _COMMANDS:
        err.write(f"llm-client cache: choose one of {', '.join(_COMMANDS)}\n")
        return 2
    name = resolve(getattr(args, "backend", None), BACKEND_ENV, "fs")
    try:
        backend: CacheBackend = cache_backend(
            name, plugin_manager=plugin_manager, **_backend_options(args)
        )
    except ConfigurationError as exc:
        err.write(f"llm-client cache: {exc}\n")
        return 2
    try:
        await _run(command, backend, out)
    except BrokenPipeError:  # e.g. `export | head`: the reader has gone; not an error
        if out is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return 0
    except Exception as exc:
        err.write(
            f"llm-client cache {command}: the {name!r} backend failed:"
            f" {type(exc).__name__}: {redact_text(str(exc))}\n"
        )
        return 1
    finally:
        try:
            await backend.aclose()
        except Exception as exc:  # closing trouble must not hide the command's outcome
            err.write(f"llm-client cache: closing the backend failed: {redact_text(str(exc))}\n")
    return 0
