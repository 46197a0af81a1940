"""Splitting an input file into the part files submitted to OpenAI's Batch API.

A batch has one endpoint and its input file one model, so the lines to run are grouped by
(endpoint, model), and each group is cut into parts of at most :data:`MAX_REQUESTS` requests
and :data:`MAX_BYTES` bytes, and for embeddings :data:`MAX_EMBEDDING_INPUTS` inputs
(openai-python ``batch_create_params``: "The file can contain up to 50,000 requests, and can
be up to 200 MB in size"; "/v1/embeddings batches are also restricted to a maximum of 50,000
embedding inputs across all requests"). Bad lines go to the errors file, and lines to skip
(already answered, or in a pending batch) are counted and left out.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..models import ModelProfile
from .input import BadLine, iter_requests
from .output import _BadLines
from .summary import BatchSummary

MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
MAX_EMBEDDING_INPUTS = 50_000


def parts_dir(output: str | os.PathLike[str]) -> Path:
    """Where the part files of ``output`` are written: ``<output>.batch-parts/``."""
    out = Path(output)
    return out.with_name(out.name + ".batch-parts")


@dataclass
class Part:
    """One part file being written: its group, and what it holds so far."""

    path: Path
    endpoint: str
    model: str
    file: TextIO
    requests: int = 0
    bytes: int = 0
    inputs: int = 0


def _embedding_inputs(body: Mapping[str, Any]) -> int:
    value = body.get("input")
    if isinstance(value, list) and value and not isinstance(value[0], int):
        return len(value)
    return 1


def split(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    skip: set[str],
    default_model: ModelProfile | str | None,
    bad_file: _BadLines,
    summary: BatchSummary,
    max_requests: int,
    max_bytes: int,
    max_embedding_inputs: int,
) -> list[Part]:
    """Write the lines to run into part files, one group per (endpoint, model), within limits."""
    folder = parts_dir(output)
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    open_parts: dict[tuple[str, str], Part] = {}
    parts: list[Part] = []
    for item in iter_requests(path, default_model=default_model):
        summary.lines += 1
        if isinstance(item, BadLine):
            bad_file.write(item)
            summary.bad += 1
            continue
        if item.custom_id in skip:
            summary.skipped += 1
            continue
        params = item.call.params
        model = str(params["model"])
        line = json.dumps(
            {"custom_id": item.custom_id, "method": "POST", "url": item.url, "body": dict(params)},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        size = len(line.encode()) + 1
        inputs = _embedding_inputs(params) if item.url == "/v1/embeddings" else 0
        key = (item.url, model)
        part = open_parts.get(key)
        if part is not None and (
            part.requests + 1 > max_requests
            or part.bytes + size > max_bytes
            or part.inputs + inputs > max_embedding_inputs
        ):
            part.file.close()
            part = None
        if part is None:
            name = folder / f"part-{stamp}-{len(parts) + 1:04d}.jsonl"
            part = Part(name, item.url, model, open(name, "w", encoding="utf-8"))  # noqa: SIM115
            open_parts[key] = part
            parts.append(part)
        part.file.write(line + "\n")
        part.requests += 1
        part.bytes += size
        part.inputs += inputs
    for part in open_parts.values():
        part.file.close()
    return parts
