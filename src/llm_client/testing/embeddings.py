"""The Embeddings API (``POST /v1/embeddings``) of the fake server, and :func:`embed_text`."""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
import struct
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from .answers import _BadRequest
from .content import _dumps, count_tokens
from .exchange import Exchange

__all__ = ["EmbeddingsAPI", "embed_text"]

_WORD_RE = re.compile(r"\w+")
_MODEL_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_DEFAULT_DIMENSIONS = 1536
_MAX_DIMENSIONS = 16384


@functools.lru_cache(maxsize=65536)
def _word_slot(word: str, dimensions: int) -> tuple[int, float]:
    digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return digest % dimensions, (1.0 if digest >> 63 else -1.0)


def _embed_words(words: Iterable[str], dimensions: int) -> list[float]:
    sparse: dict[int, float] = {}
    for word in words:
        index, sign = _word_slot(word, dimensions)
        sparse[index] = sparse.get(index, 0.0) + sign
    vector = [0.0] * dimensions
    norm = math.sqrt(sum(v * v for v in sparse.values()))
    if norm > 0:
        for index, value in sparse.items():
            vector[index] = value / norm
    # Round to float32 so the float and base64 encodings carry identical numbers.
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *vector)))


def embed_text(text: str, dimensions: int = _DEFAULT_DIMENSIONS) -> list[float]:
    """The embedding the server returns for ``text``: a hashed, L2-normalized bag of words.

    Each lower-cased word (``\\w+``) is hashed with blake2b to an index and a sign; the counts
    are summed and normalized, then rounded to float32. Texts sharing most words have a high
    cosine similarity, texts sharing none have a similarity near 0.
    """
    return _embed_words(_WORD_RE.findall(text.lower()), dimensions)


class EmbeddingsAPI(Exchange):
    """The embeddings handler of :class:`~llm_client.testing.server.FakeOpenAI`."""

    def _embedding_inputs(self, body: dict[str, Any]) -> list[list[str]]:
        """Each input as its list of words (token ids become ``tok<id>`` words)."""
        value = body.get("input")
        items: list[Any]
        if isinstance(value, str):
            items = [value]
        elif isinstance(value, list) and value:
            items = [value] if all(isinstance(v, int) for v in value) else list(value)
        else:
            raise _BadRequest("'input' must be a non-empty string or array", "input")
        words: list[list[str]] = []
        for item in items:
            if isinstance(item, str):
                if not item:
                    raise _BadRequest("'input' cannot contain an empty string", "input")
                words.append(_WORD_RE.findall(item.lower()))
            elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
                words.append([f"tok{t}" for t in item])
            else:
                raise _BadRequest("'input' items must be strings or arrays of token ids", "input")
        return words

    async def _handle_embeddings(self, request: web.Request) -> web.StreamResponse:
        body, outcome = await self._prelude(request, "embeddings", has_body=True)
        if isinstance(outcome, web.StreamResponse):
            return outcome
        fault = outcome
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self._bad_request(_BadRequest("you must provide a model parameter", "model"))
        try:
            inputs = self._embedding_inputs(body)
        except _BadRequest as exc:
            return self._bad_request(exc)
        dimensions = body.get("dimensions")
        if dimensions is None:
            dimensions = _MODEL_DIMENSIONS.get(model, _DEFAULT_DIMENSIONS)
        if (
            not isinstance(dimensions, int)
            or isinstance(dimensions, bool)
            or not 1 <= dimensions <= _MAX_DIMENSIONS
        ):
            return self._bad_request(
                _BadRequest(
                    f"'dimensions' must be an integer in 1..{_MAX_DIMENSIONS}", "dimensions"
                )
            )
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            return self._bad_request(
                _BadRequest("'encoding_format' must be 'float' or 'base64'", "encoding_format")
            )
        raw_input = body["input"]
        data = []
        tokens = 0
        for index, words in enumerate(inputs):
            vector = _embed_words(words, dimensions)
            if isinstance(raw_input, str) or (
                isinstance(raw_input, list) and isinstance(raw_input[index], str)
            ):
                tokens += count_tokens(
                    raw_input if isinstance(raw_input, str) else raw_input[index]
                )
            else:
                tokens += len(words)
            embedding: list[float] | str = vector
            if encoding == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        self._quota_settle(request, tokens)
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return await self._send_unary(request, _dumps(payload), fault)
