"""Polling submitted batches and collecting the ended ones into the output file.

Each batch not yet collected is polled with back-off (doubling from ``poll`` seconds up to a
minute), and each change of its status or request counts is reported. When a batch ends
(:data:`~._api_state.TERMINAL`) its output and error files are downloaded and joined into the
output by ``custom_id``: lines keep OpenAI's ``BatchRequestOutput`` shape and gain ``usage``
and ``cost`` priced at the Batch API's 50% rate. A request with no line in either file (its
batch failed validation, or was cancelled before it ran) gets an error line (``batch_failed``,
``batch_cancelled``) so that ``--retry-failed`` runs it again. The state file is saved after
each batch collected.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import APIConnectionError, ConfigurationError, RateLimitError, ServerError
from ..models import ModelProfile
from ..usage import Usage, parse_usage
from ._api_state import TERMINAL, SubmittedBatch, custom_ids, save_state
from .output import _Appender, is_failure, read_output
from .summary import BatchSummary

if TYPE_CHECKING:
    from ..transport import Transport

log = logging.getLogger("llm_client.batch")

_MAX_POLL = 60.0

#: Where progress lines go (``print``, or the log by default).
Say = Callable[[str], None]


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
    for cid in custom_ids(batch.part):
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


async def poll_and_collect(
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
    """Poll ``batches`` and collect each one that has ended into ``output``; with ``wait``,
    until every one is collected, else after one round."""
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
                save_state(output, batches)
        if not wait or all(b.collected for b in batches):
            save_state(output, batches)
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, _MAX_POLL)
