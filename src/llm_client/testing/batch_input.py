"""How the fake server checks a batch's input file, as OpenAI does before a batch runs.

:func:`check_input` reads the JSONL lines and finds what makes OpenAI fail a batch in
``validating``: a line that is not JSON or lacks ``custom_id``, ``url`` or ``body``, a
``custom_id`` repeated, a ``url`` that is not the batch's endpoint, more than one model, and
OpenAI's limits for one input file (openai-python ``batch_create_params``):
:data:`MAX_REQUESTS` requests, :data:`MAX_BYTES` bytes, :data:`MAX_EMBEDDING_INPUTS`
embedding inputs. Each problem is one entry of the batch's ``errors.data`` (openai-python
``BatchError``), naming the line where there is one.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_BYTES", "MAX_EMBEDDING_INPUTS", "MAX_REQUESTS", "check_input"]

#: OpenAI's limits for one batch's input file (openai-python ``batch_create_params``).
MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
MAX_EMBEDDING_INPUTS = 50_000


def _line_error(
    code: str, message: str, line: int | None = None, param: str | None = None
) -> dict[str, Any]:
    """One entry of a failed batch's ``errors.data`` (openai-python ``BatchError``)."""
    return {"code": code, "message": message, "param": param, "line": line}


def check_input(
    data: bytes, endpoint: str
) -> tuple[list[dict[str, Any]], str | None, list[dict[str, Any]]]:
    """``(lines, model, errors)`` of an input file for a batch on ``endpoint``: the request
    lines, the one model they use (``None`` for none), and what fails the batch (empty: it
    runs)."""
    errors: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()
    inputs = 0
    if len(data) > MAX_BYTES:
        errors.append(_line_error("file_too_large", "The input file exceeds 200 MB."))
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            cid, url, body = line["custom_id"], line["url"], line["body"]
        except (ValueError, KeyError, TypeError):
            message = "This line is not valid JSON or lacks custom_id, url or body."
            errors.append(_line_error("invalid_json_line", message, number))
            continue
        if cid in seen:
            message = f"The custom_id '{cid}' is not unique."
            errors.append(_line_error("duplicate_custom_id", message, number, "custom_id"))
        if url != endpoint:
            message = f"The url '{url}' does not match the batch's endpoint '{endpoint}'."
            errors.append(_line_error("mismatched_endpoint", message, number, "url"))
        seen.add(cid)
        if isinstance(body, dict):
            models.add(str(body.get("model")))
            if endpoint == "/v1/embeddings":
                value = body.get("input")
                inputs += len(value) if isinstance(value, list) else 1
        lines.append(line)
    if len(lines) > MAX_REQUESTS:
        message = f"The batch has more than {MAX_REQUESTS} requests."
        errors.append(_line_error("too_many_requests", message))
    if inputs > MAX_EMBEDDING_INPUTS:
        message = f"The batch has more than {MAX_EMBEDDING_INPUTS} embedding inputs."
        errors.append(_line_error("too_many_embedding_inputs", message))
    if len(models) > 1:
        message = "All requests in a batch must use the same model."
        errors.append(_line_error("mixed_models", message, None, "model"))
    if not lines and not errors:
        errors.append(_line_error("empty_file", "The input file has no requests."))
    return lines, next(iter(models)) if models else None, errors
