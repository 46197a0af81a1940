"""The fake server's ``GET /v1/models`` and ``GET /v1/models/{model}``.

OpenAI's model object is ``{"id", "object": "model", "created", "owned_by"}`` plus an optional
``shutdown_date`` (``"YYYY-MM-DD"``, or ``null`` when no shutdown is announced); OpenAI's
deprecations page tells users to watch that field to monitor shutdowns programmatically
(https://developers.openai.com/api/docs/deprecations). Retrieving an unknown id is a 404 with
code ``model_not_found``.

``FakeOpenAI.models`` is a plain dict (model id -> shutdown date or ``None``) that tests may
change while the server runs; it starts as a copy of :data:`DEFAULT_MODELS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_MODELS", "default_models", "model_object", "models_list", "not_found"]

_CREATED = 1700000000

#: What the fake lists, with the shutdown dates OpenAI's deprecations page gave on 2026-11-29.
DEFAULT_MODELS: Mapping[str, str | None] = {
    "gpt-4o": "2027-01-14",
    "gpt-4o-2024-08-06": "2027-01-14",
    "gpt-4o-mini": "2027-01-14",
    "gpt-4o-mini-2024-07-18": "2027-01-14",
    "gpt-4.1": "2027-01-14",
    "gpt-4.1-mini": "2027-01-14",
    "gpt-5": "2026-12-11",
    "gpt-5-2025-08-07": "2026-12-11",
    "gpt-5-mini": "2026-12-11",
    "gpt-5-mini-2025-08-07": "2026-12-11",
    "gpt-5-nano": "2026-12-11",
    "gpt-5-nano-2025-08-07": "2026-12-11",
    "gpt-5.1": None,
    "gpt-5.2": None,
    "gpt-5.4": None,
    "gpt-5.4-2026-03-05": None,
    "gpt-5.4-mini": None,
    "gpt-5.4-mini-2026-03-17": None,
    "gpt-5.4-nano": None,
    "gpt-5.4-nano-2026-03-17": None,
    "gpt-5.5": None,
    "gpt-5.6-sol": None,
    "gpt-5.6-terra": None,
    "gpt-5.6-luna": None,
    "text-embedding-3-small": None,
    "text-embedding-3-large": None,
}


def default_models() -> dict[str, str | None]:
    """A fresh, mutable copy of :data:`DEFAULT_MODELS`."""
    return dict(DEFAULT_MODELS)


def model_object(model: str, shutdown_date: str | None) -> dict[str, Any]:
    """One model in OpenAI's shape."""
    return {
        "id": model,
        "object": "model",
        "created": _CREATED,
        "owned_by": "openai" if not model.startswith("ft:") else "user",
        "shutdown_date": shutdown_date,
    }


def models_list(models: Mapping[str, str | None]) -> dict[str, Any]:
    """The body of ``GET /v1/models``."""
    return {"object": "list", "data": [model_object(m, d) for m, d in models.items()]}


def not_found(model: str) -> tuple[str, str, str]:
    """(message, param, code) of the 404 for an unknown model id."""
    return f"The model '{model}' does not exist", "model", "model_not_found"
