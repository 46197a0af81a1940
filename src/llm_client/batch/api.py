"""``llm-client batch --via batch-api``: the same JSONL file through OpenAI's Batch API.

The file is checked line by line exactly as for a local run (:mod:`llm_client.batch`: bad lines
go to the errors file, lines already in the output are skipped), then:

1. **Split.** Good lines are grouped by endpoint and model (a batch has one endpoint, and one
   model per input file) and cut into parts of at most 50,000 requests and 200 MB, and for
   embeddings at most 50,000 inputs (openai-python ``batch_create_params``: "The file can
   contain up to 50,000 requests, and can be up to 200 MB in size"; "/v1/embeddings batches
   are also restricted to a maximum of 50,000 embedding inputs across all requests"). Parts
   are written to ``<output>.batch-parts/``.
2. **Submit.** Each part is uploaded (``files.create(purpose="batch")``) and a batch created
   (``batches.create(completion_window="24h")``); its id goes into the state file
   ``<output>.batch.json`` at once, so ``llm-client batch status|cancel|collect -o OUTPUT``
   works on it later, from another process.
3. **Poll** each batch with back-off (doubling from ``poll`` seconds up to a minute), reporting
   each change of its status or request counts.
4. **Collect.** When a batch ends (``completed``, ``failed``, ``expired``, ``cancelled``) its
   output and error files are downloaded and joined into the output by ``custom_id``: lines
   keep OpenAI's ``BatchRequestOutput`` shape and gain ``usage`` and ``cost`` priced at the
   Batch API's 50% rate. A request that has no line in either file (its batch failed
   validation, or was cancelled before it ran) gets an error line (``batch_failed``,
   ``batch_cancelled``) so it can be run again with ``--retry-failed``.

Rerunning the same command resumes: a state file with batches not yet collected is polled and
collected instead of submitting again, and a ``custom_id`` already in the output or in a
pending batch is never submitted twice. The one gap: a process killed between
``batches.create`` returning and the state file being written leaves that batch unknown to
the state file (it is listed by ``GET /v1/batches`` with ``metadata.llm_client_output``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..exceptions import APIConnectionError, ConfigurationError, RateLimitError, ServerError
from ..models import ModelProfile
from ..usage import Usage, parse_usage
from .input import BadLine, iter_requests
from .output import _Appender, _BadLines, _drop_failed, errors_path_for, is_failure, read_output
from .summary import BatchSummary

if TYPE_CHECKING:
    from ..client import OpenAIClient
    from ..transport import Transport

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

log = logging.getLogger("llm_client.batch")

MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
MAX_EMBEDDING_INPUTS = 50_000
#: Batch statuses after which nothing changes.
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_MAX_POLL = 60.0

Say = Callable[[str], None]


def state_path_for(output: str | os.PathLike[str]) -> Path:
    """The state file beside ``output``: ``results.jsonl`` -> ``results.jsonl.batch.json``."""
    out = Path(output)
    return out.with_name(out.name + ".batch.json")


def _parts_dir(output: str | os.PathLike[str]) -> Path:
    out = Path(output)
    return out.with_name(out.name + ".batch-parts")


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


def _load_state(output: str | os.PathLike[str]) -> list[SubmittedBatch]:
    path = state_path_for(output)
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [SubmittedBatch(**b) for b in data.get("batches", [])]


def _save_state(output: str | os.PathLike[str], batches: list[SubmittedBatch]) -> None:
    path = state_path_for(output)
    tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(4)}")
    tmp.write_text(json.dumps({"version": 1, "batches": [asdict(b) for b in batches]}, indent=1))
    os.replace(tmp, path)


def _custom_ids(part: str) -> list[str]:
    with open(part, "rb") as f:
        return [json.loads(raw)["custom_id"] for raw in f if raw.strip()]


# --- splitting -----------------------------------------------------------------------------------


@dataclass
class _Part:
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


def _split(
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
) -> list[_Part]:
    """Write the lines to run into part files, one group per (endpoint, model), within limits."""
    folder = _parts_dir(output)
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    open_parts: dict[tuple[str, str], _Part] = {}
    parts: list[_Part] = []
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
            part = _Part(name, item.url, model, open(name, "w", encoding="utf-8"))  # noqa: SIM115
            open_parts[key] = part
            parts.append(part)
        part.file.write(line + "\n")
        part.requests += 1
        part.bytes += size
        part.inputs += inputs
    for part in open_parts.values():
        part.file.close()
    return parts


# --- collecting ----------------------------------------------------------------------------------


def _priced(line: dict[str, Any], profile: ModelProfile | None) -> dict[str, Any]:
    response = line.get("response") or {}
    body = response.get("body") if isinstance(response, Mapping) else None
    usage = Usage()
    if not is_failure(line) and isinstance(body, Mapping) and profile is not None:
        usage = parse_usage(body.get("usage"), profile, batch=True)
    return {**line, "usage": usage.to_dict(), "cost": usage.total_cost, "cached": False}


async def _collect_one(
    transport: Transport,
    batch: SubmittedBatch,
    data: Mapping[str, Any],
    appender: _Appender,
    written: set[str],
    summary: BatchSummary,
) -> None:
    try:
        profile: ModelProfile | None = ModelProfile.get(batch.model)
    except ConfigurationError:
        profile = None
    answered: set[str] = set()
    for key in ("output_file_id", "error_file_id"):
        file_id = data.get(key)
        if not file_id:
            continue
        content = await transport.file_content(str(file_id))
        for raw in content.splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            cid = line.get("custom_id")
            if not isinstance(cid, str):
                continue
            answered.add(cid)
            if cid in written:
                continue
            priced = _priced(line, profile)
            appender.write(priced)
            written.add(cid)
            _count(summary, priced)
    status = str(data.get("status"))
    errors = (data.get("errors") or {}).get("data") or []
    reason = "; ".join(str(e.get("message")) for e in errors if isinstance(e, Mapping))
    for cid in _custom_ids(batch.part):
        if cid in answered or cid in written:
            continue
        code = {"failed": "batch_failed", "cancelled": "batch_cancelled"}.get(status)
        message = f"batch {batch.id} ended {status} before this request ran"
        if reason:
            message += f": {reason}"
        line = {
            "id": f"batch_req_{secrets.token_hex(12)}",
            "custom_id": cid,
            "response": None,
            "error": {"code": code or "batch_not_processed", "message": message},
            "usage": Usage().to_dict(),
            "cost": 0.0,
            "cached": False,
        }
        appender.write(line)
        written.add(cid)
        _count(summary, line)


def _count(summary: BatchSummary, line: Mapping[str, Any]) -> None:
    if is_failure(line):
        summary.failed += 1
        return
    summary.succeeded += 1
    usage = line.get("usage") or {}
    summary.input_tokens += int(usage.get("input_tokens", 0))
    summary.output_tokens += int(usage.get("output_tokens", 0))
    summary.cost_usd += float(line.get("cost", 0.0))


def _describe(batch: SubmittedBatch, data: Mapping[str, Any]) -> str:
    counts = data.get("request_counts") or {}
    return (
        f"{batch.id} ({batch.endpoint}, {batch.model}): {data.get('status')},"
        f" {counts.get('completed', 0)} completed / {counts.get('failed', 0)} failed"
        f" of {counts.get('total', batch.requests)}"
    )


async def _poll_and_collect(
    transport: Transport,
    output: str | os.PathLike[str],
    batches: list[SubmittedBatch],
    appender: _Appender,
    summary: BatchSummary,
    *,
    poll: float,
    say: Say,
    wait: bool = True,
) -> None:
    written, failed = read_output(output, repair=False)
    written |= failed
    delay = poll
    shown: dict[str, str] = {}
    while True:
        pending = [b for b in batches if not b.collected]
        if not pending:
            return
        for batch in pending:
            try:
                data = await transport.retrieve_batch(batch.id)
            except (APIConnectionError, ServerError, RateLimitError) as exc:
                log.warning("polling %s failed (%s); trying again", batch.id, exc)
                continue
            line = _describe(batch, data)
            if line != shown.get(batch.id):  # a change of status or of request counts
                say(line)
                shown[batch.id] = line
            batch.status = str(data.get("status"))
            if batch.status in TERMINAL:
                await _collect_one(transport, batch, data, appender, written, summary)
                batch.collected = True
                appender.sync()
                _save_state(output, batches)
        if not wait or all(b.collected for b in batches):
            _save_state(output, batches)
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, _MAX_POLL)


# --- the round trip ------------------------------------------------------------------------------


async def run_via_batch_api(
    client: OpenAIClient,
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    errors: str | os.PathLike[str] | None = None,
    model: ModelProfile | str | None = None,
    retry_failed: bool = False,
    wait: bool = True,
    poll: float = 5.0,
    say: Say | None = None,
    max_requests: int = MAX_REQUESTS,
    max_bytes: int = MAX_BYTES,
    max_embedding_inputs: int = MAX_EMBEDDING_INPUTS,
) -> BatchSummary:
    """Submit ``path`` to OpenAI's Batch API, wait (unless ``wait=False``) and collect the
    results into ``output``; see the module docstring. ``client`` supplies the transport and
    the default model of short-form lines."""
    started = time.monotonic()
    say = say or (lambda text: log.info("%s", text))
    for name, value in (
        ("max_requests", max_requests),
        ("max_bytes", max_bytes),
        ("max_embedding_inputs", max_embedding_inputs),
    ):
        if not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
    if not os.path.isfile(path):  # noqa: ASYNC240 - one stat before the run
        raise ConfigurationError(f"input file {os.fspath(path)!r} does not exist")
    transport = client._transport
    errors_path = Path(errors) if errors is not None else errors_path_for(output)
    summary = BatchSummary(output=os.fspath(output), errors=str(errors_path))
    appender = _Appender(output, "interval")
    try:
        done, failed = read_output(output)
        if retry_failed and failed:
            _drop_failed(output, failed)
            appender.reopen()
            failed = set()
        batches = _load_state(output)
        pending = [b for b in batches if not b.collected]
        if pending:
            say(f"resuming {len(pending)} submitted batch(es) from {state_path_for(output)}")
        skip = done | failed
        for b in pending:
            skip.update(_custom_ids(b.part))
        bad_file = _BadLines(errors_path)
        try:
            parts = _split(
                path,
                output,
                skip=skip,
                default_model=model if model is not None else client.profile,
                bad_file=bad_file,
                summary=summary,
                max_requests=max_requests,
                max_bytes=max_bytes,
                max_embedding_inputs=max_embedding_inputs,
            )
        finally:
            bad_file.close()
        for part in parts:
            data = part.path.read_bytes()
            file = await transport.upload_file(part.path.name, data)
            created = await transport.create_batch(
                str(file["id"]), part.endpoint, {"llm_client_output": Path(output).name[:512]}
            )
            batch = SubmittedBatch(
                id=str(created["id"]),
                input_file_id=str(file["id"]),
                endpoint=part.endpoint,
                model=part.model,
                part=str(part.path),
                requests=part.requests,
                status=str(created.get("status", "validating")),
            )
            batches.append(batch)
            _save_state(output, batches)
            say(f"submitted {batch.id}: {part.requests} requests to {part.endpoint} ({part.model})")
        await _poll_and_collect(
            transport, output, batches, appender, summary, poll=poll, say=say, wait=wait
        )
    finally:
        appender.close()
    summary.wall_time = time.monotonic() - started
    return summary


async def collect(
    client: OpenAIClient,
    output: str | os.PathLike[str],
    *,
    wait: bool = True,
    poll: float = 5.0,
    say: Say | None = None,
) -> BatchSummary:
    """Poll the batches of ``output`` 's state file and collect those that have ended."""
    started = time.monotonic()
    say = say or (lambda text: log.info("%s", text))
    batches = _load_state(output)
    if not batches:
        raise ConfigurationError(f"no batch state beside {os.fspath(output)!r}: nothing to collect")
    summary = BatchSummary(output=os.fspath(output))
    appender = _Appender(output, "interval")
    try:
        await _poll_and_collect(
            client._transport, output, batches, appender, summary, poll=poll, say=say, wait=wait
        )
    finally:
        appender.close()
    summary.wall_time = time.monotonic() - started
    return summary


async def status(client: OpenAIClient, output: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The current batch objects of ``output`` 's state file (with ``collected`` added)."""
    out = []
    for batch in _load_state(output):
        data = await client._transport.retrieve_batch(batch.id)
        out.append({**data, "collected": batch.collected})
    return out


async def cancel(client: OpenAIClient, output: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Cancel every batch of ``output`` 's state file that has not ended; collect them later
    (their partial results) with :func:`collect`."""
    out = []
    for batch in _load_state(output):
        if batch.collected or batch.status in TERMINAL:
            continue
        data = await client._transport.retrieve_batch(batch.id)
        if data.get("status") in TERMINAL:
            continue
        out.append(await client._transport.cancel_batch(batch.id))
    return out
