"""The Batch API round trip, now :mod:`llm_client.batch.api`; this name stays importable."""

from .batch.api import (
    MAX_BYTES,
    MAX_EMBEDDING_INPUTS,
    MAX_REQUESTS,
    TERMINAL,
    cancel,
    collect,
    run_via_batch_api,
    state_path_for,
    status,
)

__all__ = [
    "MAX_BYTES",
    "MAX_EMBEDDING_INPUTS",
    "MAX_REQUESTS",
    "TERMINAL",
    "cancel",
    "collect",
    "run_via_batch_api",
    "state_path_for",
    "status",
]
