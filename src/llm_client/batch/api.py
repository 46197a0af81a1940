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

This module is the round trip and the subcommands' functions; its parts live in private
siblings: ``_api_parts`` (step 1, the limits), ``_api_state`` (the state file,
:class:`SubmittedBatch`) and ``_api_collect`` (steps 3 and 4). Every public name is here.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from ..models import ModelProfile
from ._api_collect import Say as Say
from ._api_collect import poll_and_collect
from ._api_parts import MAX_BYTES, MAX_EMBEDDING_INPUTS, MAX_REQUESTS, split
from ._api_state import TERMINAL, custom_ids, load_state, save_state, state_path_for
from ._api_state import SubmittedBatch as SubmittedBatch
from .output import _Appender, _BadLines, _drop_failed, errors_path_for, read_output
from .summary import BatchSummary

if TYPE_CHECKING:
    from ..client import OpenAIClient

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
        batches = load_state(output)
        pending = [b for b in batches if not b.collected]
        if pending:
            say(f"resuming {len(pending)} submitted batch(es) from {state_path_for(output)}")
        skip = done | failed
        for b in pending:
            skip.update(custom_ids(b.part))
        bad_file = _BadLines(errors_path)
        try:
            parts = split(
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
            save_state(output, batches)
            say(f"submitted {batch.id}: {part.requests} requests to {part.endpoint} ({part.model})")
        await poll_and_collect(
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
    batches = load_state(output)
    if not batches:
        raise ConfigurationError(f"no batch state beside {os.fspath(output)!r}: nothing to collect")
    summary = BatchSummary(output=os.fspath(output))
    appender = _Appender(output, "interval")
    try:
        await poll_and_collect(
            client._transport, output, batches, appender, summary, poll=poll, say=say, wait=wait
        )
    finally:
        appender.close()
    summary.wall_time = time.monotonic() - started
    return summary


async def status(client: OpenAIClient, output: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The current batch objects of ``output`` 's state file (with ``collected`` added)."""
    out = []
    for batch in load_state(output):
        data = await client._transport.retrieve_batch(batch.id)
        out.append({**data, "collected": batch.collected})
    return out


async def cancel(client: OpenAIClient, output: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Cancel every batch of ``output`` 's state file that has not ended; collect them later
    (their partial results) with :func:`collect`."""
    out = []
    for batch in load_state(output):
        if batch.collected or batch.status in TERMINAL:
            continue
        data = await client._transport.retrieve_batch(batch.id)
        if data.get("status") in TERMINAL:
            continue
        out.append(await client._transport.cancel_batch(batch.id))
    return out
