"""The local run: every input line one ordinary call through the client's chain."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..exceptions import ConfigurationError, InvalidRequestError, LLMClientError
from ..models import ModelProfile
from ..result import LLMResult
from .input import BadLine, Request, _count_lines, iter_requests
from .lines import failure_line, success_line
from .output import FsyncPolicy, _Appender, _BadLines, _drop_failed, errors_path_for, read_output
from .summary import BatchSummary, _Progress

if TYPE_CHECKING:
    from ..client import OpenAIClient

__all__ = ["run_file"]


async def run_file(
    client: OpenAIClient,
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    errors: str | os.PathLike[str] | None = None,
    model: ModelProfile | str | None = None,
    concurrency: int | None = None,
    retry_failed: bool = False,
    fsync: FsyncPolicy = "interval",
    progress: bool | None = None,
    via: Literal["local", "batch-api"] = "local",
    poll: float = 5.0,
    wait: bool = True,
    **batch_api_options: int,
) -> BatchSummary:
    """Run every line of ``path`` through ``client``'s pipeline; append results to ``output``.

    Already-answered ``custom_id`` s are skipped; ``retry_failed`` first removes the failure
    lines from ``output`` and runs those requests again. At most ``concurrency`` calls
    (default: the client's ``max_concurrency``) are in flight, and the input is streamed, so
    memory does not grow with the file. ``progress`` (default: stderr is a terminal) shows a
    bar. Bad lines go to ``errors`` (default ``<output>.errors.jsonl``).

    ``via="batch-api"`` sends the file through OpenAI's Batch API instead (half price, within
    24 hours; see :mod:`llm_client.batch.api`): ``poll`` is the first poll interval in
    seconds, ``wait=False`` returns once the batches are submitted, each change of a batch's
    status is printed to stderr unless ``progress=False``, and ``max_requests``,
    ``max_bytes``, ``max_embedding_inputs`` lower the split limits.
    """
    if via == "batch-api":
        from .api import run_via_batch_api

        return await run_via_batch_api(
            client,
            path,
            output,
            errors=errors,
            model=model,
            retry_failed=retry_failed,
            wait=wait,
            poll=poll,
            say=(lambda text: print(text, file=sys.stderr)) if progress is not False else None,
            **batch_api_options,
        )
    if via != "local":
        raise ConfigurationError(f"via must be 'local' or 'batch-api', got {via!r}")
    if batch_api_options:
        raise ConfigurationError(
            f"{', '.join(sorted(batch_api_options))} only apply with via='batch-api'"
        )
    started = time.monotonic()
    workers = concurrency if concurrency is not None else client.max_concurrency
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigurationError(f"concurrency must be an integer >= 1, got {workers!r}")
    if not os.path.isfile(path):  # noqa: ASYNC240 - one stat before the run
        raise ConfigurationError(f"input file {os.fspath(path)!r} does not exist")
    default_model = model if model is not None else client.profile
    errors_path = Path(errors) if errors is not None else errors_path_for(output)
    summary = BatchSummary(output=os.fspath(output), errors=str(errors_path))
    appender = _Appender(output, fsync)  # locks first: no other run is writing this output
    try:
        done, failed = read_output(output)
        if retry_failed and failed:
            _drop_failed(output, failed)
            appender.reopen()
            failed = set()
        finished = done | failed
        show = sys.stderr.isatty() if progress is None else progress
        bar = _Progress(show, _count_lines(path) if show else 0)
        queue: asyncio.Queue[Request | None] = asyncio.Queue(maxsize=2 * workers)
        handler = client._handler  # the client's compiled chain: each line is one ordinary call

        fatal: list[Exception] = []  # a worker that cannot write results stops the run

        async def work() -> None:
            try:
                await run_lines()
            except Exception as exc:
                fatal.append(exc)
                while await queue.get() is not None:  # keep the reader from blocking
                    pass
                raise

        async def run_lines() -> None:
            while (request := await queue.get()) is not None:
                try:
                    reply = await handler(request.call)
                    if not isinstance(reply, LLMResult):  # pragma: no cover - custom pipelines
                        raise LLMClientError("the pipeline answered a batch line with a stream")
                    appender.write(success_line(request.custom_id, reply))
                    summary.succeeded += 1
                    summary.cached += reply.cached
                    if not reply.cached:
                        summary.input_tokens += reply.usage.input_tokens
                        summary.output_tokens += reply.usage.output_tokens
                    summary.cost_usd += reply.usage.total_cost
                except (InvalidRequestError, ConfigurationError) as exc:  # found in the chain
                    bad_file.write(
                        BadLine(request.line, request.custom_id, "invalid_body", exc.message)
                    )
                    summary.bad += 1
                except Exception as exc:  # every failure becomes a line; the run goes on
                    line = failure_line(request.custom_id, exc)
                    appender.write(line)
                    summary.failed += 1
                    summary.cost_usd += line["cost"]
                bar.update(1, summary)

        bad_file = _BadLines(errors_path)
        try:
            tasks = [asyncio.create_task(work()) for _ in range(workers)]
            try:
                for item in iter_requests(path, default_model=default_model):
                    if fatal:
                        break
                    summary.lines += 1
                    if isinstance(item, BadLine):
                        bad_file.write(item)
                        summary.bad += 1
                        bar.update(1, summary)
                    elif item.custom_id in finished:
                        summary.skipped += 1
                        bar.update(1, summary)
                    else:
                        await queue.put(item)
                for _ in tasks:
                    await queue.put(None)
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            bad_file.close()
            bar.close()
    finally:
        appender.close()
    summary.wall_time = time.monotonic() - started
    return summary
