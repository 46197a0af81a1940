"""Compression of stored entries. Each row records its codec, so any row stays readable."""

from __future__ import annotations

import zlib
from typing import Any

from llm_client.exceptions import ConfigurationError

__all__ = ["CODECS", "Codec", "decode", "encode", "resolve_codec"]

#: Codec names as written in the ``codec`` column.
CODECS = ("none", "zlib", "zstd")
Codec = str

_zstd_compressor: Any = None
_zstd_decompressor: Any = None


def _zstd() -> tuple[Any, Any]:
    global _zstd_compressor, _zstd_decompressor
    if _zstd_compressor is None:
        try:
            import zstandard
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "compression='zstd' needs the 'zstandard' package:"
                " pip install 'llm-client-postgres[zstd]'"
            ) from exc
        _zstd_compressor = zstandard.ZstdCompressor(level=3)
        _zstd_decompressor = zstandard.ZstdDecompressor()
    return _zstd_compressor, _zstd_decompressor


def resolve_codec(compression: str | None) -> Codec:
    """Validate the ``compression`` option; ``None``/``"none"`` mean no compression."""
    name = "none" if compression is None else str(compression).strip().lower()
    if name in ("", "off", "false"):
        name = "none"
    if name not in CODECS:
        raise ConfigurationError(
            f"compression={compression!r} is not supported; use None, 'zlib' or 'zstd'"
        )
    if name == "zstd":
        _zstd()  # fail at construction, not on the first write
    return name


def encode(data: bytes, codec: Codec, min_bytes: int) -> tuple[bytes, Codec]:
    """Compress ``data`` with ``codec`` unless it is shorter than ``min_bytes``."""
    if codec == "none" or len(data) < min_bytes:
        return data, "none"
    if codec == "zlib":
        return zlib.compress(data, 6), "zlib"
    compressor, _ = _zstd()
    return bytes(compressor.compress(data)), "zstd"


def decode(data: bytes, codec: str) -> bytes:
    """Undo :func:`encode` for a row written with ``codec``."""
    if codec == "none":
        return data
    if codec == "zlib":
        return zlib.decompress(data)
    if codec == "zstd":
        _, decompressor = _zstd()
        return bytes(decompressor.decompress(data))
    raise ValueError(f"row written with unknown codec {codec!r}")
