"""The embeddings ``input``: text, texts, token ids or lists of token ids."""

from __future__ import annotations

from typing import Any

from .base import (
    _fail,
    _show,
)


def embedding_input(value: Any) -> Any:
    """Check an embeddings ``input``: text, texts, token ids or lists of token ids
    (CreateEmbeddingRequest: at most 2048 inputs, none empty)."""
    if isinstance(value, str):
        if not value:
            _fail("input must not be an empty string")
        return value
    if isinstance(value, (list, tuple)) and 0 < len(value) <= 2048:
        if all(isinstance(v, str) and v for v in value):
            return list(value)
        if all(_is_token(v) for v in value):
            return list(value)
        if all(isinstance(v, (list, tuple)) and v and all(_is_token(t) for t in v) for v in value):
            return [list(v) for v in value]
    _fail(
        "input must be a non-empty string, a list of 1 to 2048 non-empty strings, a list of"
        f" token ids, or a list of lists of token ids; got {_show(value)}"
    )


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
