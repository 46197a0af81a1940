"""Embeddings: OpenAI's base64 vectors decoded, and the answer as an :class:`LLMResult`."""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import ResponseDecodeError
from ..result import LLMResult
from ..usage import parse_usage
from .results import result_of

if TYPE_CHECKING:
    from ..pipeline import Call

__all__ = ["decode_embedding"]

_LITTLE_ENDIAN = sys.byteorder == "little"


def decode_embedding(value: Any) -> list[float]:
    """A base64 float32 (little-endian) vector, or a float list, as ``list[float]``."""
    if isinstance(value, str):
        floats = array("f")
        floats.frombytes(base64.b64decode(value))
        if not _LITTLE_ENDIAN:  # pragma: no cover - big-endian hosts
            floats.byteswap()
        return floats.tolist()
    if isinstance(value, list):
        return [float(x) for x in value]
    raise ResponseDecodeError(f"embedding has an unexpected type {type(value).__name__}")


def embeddings_result(call: Call, body: Mapping[str, Any], headers: Mapping[str, str]) -> LLMResult:
    """The result of an embeddings call from its JSON body (sent as ``encoding_format=base64``
    unless the caller chose otherwise)."""
    data = sorted(body.get("data") or (), key=lambda d: d.get("index", 0))
    vectors = [decode_embedding(d.get("embedding")) for d in data]
    single = isinstance(call.params.get("input"), str)
    if single and len(vectors) != 1:
        raise ResponseDecodeError(f"expected one embedding, got {len(vectors)}")
    return result_of(
        call,
        output=vectors[0] if single else vectors,
        usage=parse_usage(body.get("usage"), call.profile),
        finish_reason="stop",
        headers=headers,
    )
