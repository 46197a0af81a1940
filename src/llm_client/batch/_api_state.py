"""The state file of a Batch API run: ``<output>.batch.json``, the batches submitted for it.

Each batch's id is written here as soon as ``batches.create`` returns, so that a rerun, or
``llm-client batch status|cancel|collect -o OUTPUT`` from another process, finds the batches
of an output and the part file (and so the ``custom_id`` values) each one carries. The file is
replaced whole (written beside it, then renamed), never left half written.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

#: Batch statuses after which nothing changes.
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


def state_path_for(output: str | os.PathLike[str]) -> Path:
    """The state file beside ``output``: ``results.jsonl`` -> ``results.jsonl.batch.json``."""
    out = Path(output)
    return out.with_name(out.name + ".batch.json")


@dataclass
class SubmittedBatch:
    """One batch as the state file keeps it."""

    id: str
    input_file_id: str
    endpoint: str
    model: str
    part: str
    requests: int
    status: str = "validating"
    collected: bool = False


def load_state(output: str | os.PathLike[str]) -> list[SubmittedBatch]:
    """The batches of ``output`` 's state file (none when there is no file)."""
    path = state_path_for(output)
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [SubmittedBatch(**b) for b in data.get("batches", [])]


def save_state(output: str | os.PathLike[str], batches: list[SubmittedBatch]) -> None:
    """Replace ``output`` 's state file with ``batches``."""
    path = state_path_for(output)
    tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(4)}")
    tmp.write_text(json.dumps({"version": 1, "batches": [asdict(b) for b in batches]}, indent=1))
    os.replace(tmp, path)


def custom_ids(part: str) -> list[str]:
    """The ``custom_id`` of every line of a part file, in order."""
    with open(part, "rb") as f:
        return [json.loads(raw)["custom_id"] for raw in f if raw.strip()]
