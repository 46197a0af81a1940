"""A compatibility alias of :mod:`llm_client.batch.api` (the Batch API round trip).

``llm_client.batch_api`` is the module's former name, kept so that code importing it goes on
working (docs/batch.md and docs/api.md mention it as such). It only re-exports; new code
imports :mod:`llm_client.batch.api`.
"""

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
