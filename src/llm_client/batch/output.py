"""The output file: append-only, locked, resumable (what is already there, a partial last line
cut off), and the errors file beside it."""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Literal, TypeAlias

from ..exceptions import ConfigurationError
from .input import BadLine

__all__ = ["FsyncPolicy", "errors_path_for", "is_failure", "read_output"]

log = logging.getLogger("llm_client.batch")

FsyncPolicy: TypeAlias = Literal["always", "interval", "never"]

_FSYNC_INTERVAL = 1.0


def errors_path_for(output: str | os.PathLike[str]) -> Path:
    """The default errors file beside ``output``: ``results.jsonl`` -> ``results.errors.jsonl``."""
    out = Path(output)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.errors.jsonl")


def is_failure(line: Mapping[str, Any]) -> bool:
    """Whether an output line records a failure (an HTTP error status or a non-HTTP error)."""
    if line.get("error"):
        return True
    response = line.get("response")
    if not isinstance(response, Mapping):
        return True
    status = response.get("status_code")
    return not isinstance(status, int) or status >= 400


def read_output(path: str | os.PathLike[str], *, repair: bool = True) -> tuple[set[str], set[str]]:
    """The ``custom_id`` s already in an output file: ``(succeeded, failed)``.

    With ``repair``, a partial last line (no newline, or not JSON) is cut off the file so its
    request runs again; any other unreadable line is an error, as is a line without custom_id.
    """
    done: set[str] = set()
    failed: set[str] = set()
    if not os.path.exists(path):
        return done, failed
    with open(path, "rb+") as f:
        offset = 0
        for number, raw in enumerate(f, start=1):
            end = offset + len(raw)
            try:
                obj = json.loads(raw) if raw.endswith(b"\n") else None
            except ValueError:
                obj = None
            if obj is None:
                if f.read(1):  # not the last line: the file is damaged, not cut short
                    raise ConfigurationError(
                        f"{path}: line {number} is not a JSON output line; fix or move the file"
                    )
                if repair:
                    log.warning("%s: cutting off a partial last line %d", path, number)
                    f.truncate(offset)
                break
            cid = obj.get("custom_id") if isinstance(obj, dict) else None
            if not isinstance(cid, str):
                raise ConfigurationError(f"{path}: line {number} has no custom_id")
            if is_failure(obj):
                failed.add(cid)
                done.discard(cid)
            else:
                done.add(cid)
                failed.discard(cid)
            offset = end
    return done, failed


def _drop_failed(path: str | os.PathLike[str], failed: set[str]) -> None:
    """Rewrite ``path`` without the failure lines of ``failed`` (atomically: temp + rename)."""
    tmp = f"{os.fspath(path)}.tmp-{secrets.token_hex(4)}"
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        for raw in src:
            obj = json.loads(raw)
            if obj.get("custom_id") in failed and is_failure(obj):
                continue
            dst.write(raw)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, path)


class _Appender:
    """An append-only JSONL file: one ``write()`` per line, fsync by policy, locked."""

    def __init__(self, path: str | os.PathLike[str], fsync: FsyncPolicy) -> None:
        if fsync not in ("always", "interval", "never"):
            raise ConfigurationError(
                f"fsync must be 'always', 'interval' or 'never', got {fsync!r}"
            )
        self.path = os.fspath(path)
        self.fsync = fsync
        self._fd = self._open_locked()
        self._last_sync = time.monotonic()
        self._dirty = False

    def _open_locked(self) -> int:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigurationError(f"cannot write the output {self.path}: {exc}") from exc
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not on POSIX
            pass
        except OSError as exc:
            os.close(fd)
            raise ConfigurationError(
                f"{self.path} is being written by another run (it is locked); wait for it or"
                " choose another output"
            ) from exc
        return fd

    def reopen(self) -> None:
        """Open the file again after it was replaced (the old lock is held until then)."""
        fd = self._open_locked()
        os.close(self._fd)
        self._fd = fd

    def write(self, obj: Mapping[str, Any]) -> None:
        data = memoryview(
            (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        )
        while data:
            n = os.write(self._fd, data)
            data = data[n:]
        self._dirty = True
        if self.fsync == "always" or (
            self.fsync == "interval" and time.monotonic() - self._last_sync >= _FSYNC_INTERVAL
        ):
            self.sync()

    def sync(self) -> None:
        if self._dirty and self.fsync != "never":
            os.fsync(self._fd)
        self._dirty = False
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = -1


class _BadLines:
    """The errors file: rewritten on every run (it describes the input, which is re-read)."""

    def __init__(self, path: Path) -> None:
        try:
            self._f: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - see close()
        except OSError as exc:
            raise ConfigurationError(f"cannot write the errors file {path}: {exc}") from exc

    def write(self, bad: BadLine) -> None:
        self._f.write(json.dumps(bad.to_dict(), ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()
