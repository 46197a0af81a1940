"""The ``llm-client batch`` command (see :mod:`llm_client.batch` and ``docs/batch.md``)::

    llm-client batch requests.jsonl -o results.jsonl [--model M] [--cache sqlite:PATH]
                     [--tpm N] [--rpm N] [--concurrency N] [--retry-failed] [--dry-run]

``cli.py`` calls :func:`add_batch_parser` and, for ``batch``, :func:`run_batch_command`.
The exit status is 0 when every line has a successful output, 1 when some line failed or was
bad, 2 for a usage error (a missing file, a locked output, a bad option).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ..exceptions import LLMClientError

__all__ = ["ACTIONS", "add_batch_parser", "run_batch_command"]

#: Actions on an earlier ``--via batch-api`` submission, given instead of an input file.
ACTIONS = ("status", "cancel", "collect")


def add_batch_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``batch`` to a CLI's sub-command parsers."""
    p = subparsers.add_parser(
        "batch",
        help="run a JSONL file of requests (OpenAI Batch API format), resumable",
        description="Run every line of a JSONL file through the client's pipeline (limiter,"
        " retries, cache, cost) and append OpenAI Batch-format results to the output. Rerun"
        " the same command to resume. With --via batch-api the file goes through OpenAI's"
        " Batch API (half price); then `batch status|cancel|collect -o OUTPUT` work on what"
        " was submitted.",
    )
    p.add_argument("input", help="the JSONL requests file, or status|cancel|collect")
    p.add_argument("-o", "--output", required=True, help="the results JSONL (appended to)")
    p.add_argument("--errors", default=None, help="bad-line report (default <output>.errors.jsonl)")
    p.add_argument(
        "--model",
        default=None,
        help="model of lines that name none (default: the first model in the file)",
    )
    p.add_argument(
        "--cache", default=None, help="cache: sqlite:PATH, or a backend name (memory, fs, ...)"
    )
    p.add_argument(
        "--tpm",
        type=float,
        default=None,
        help="limiter budget, tokens per minute (default: the profile's)",
    )
    p.add_argument(
        "--rpm",
        type=float,
        default=None,
        help="limiter budget, requests per minute (default: the profile's)",
    )
    p.add_argument("--concurrency", type=int, default=64, help="calls in flight (default 64)")
    p.add_argument("--attempts", type=int, default=3, help="attempts per line (default 3)")
    p.add_argument(
        "--retry-failed", action="store_true", help="run again the lines whose output is an error"
    )
    p.add_argument("--dry-run", action="store_true", help="estimate tokens and cost; send nothing")
    p.add_argument(
        "--assume-output-tokens",
        type=int,
        default=None,
        help="dry run: output tokens per line without max tokens (default 256)",
    )
    p.add_argument(
        "--fsync",
        choices=("always", "interval", "never"),
        default="interval",
        help="when output lines are synced to disk (default: at most once a second)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on when stderr is a terminal)",
    )
    p.add_argument(
        "--via",
        choices=("local", "batch-api"),
        default="local",
        help="local: call the API now (default); batch-api: OpenAI's Batch API at half price",
    )
    p.add_argument(
        "--poll",
        type=float,
        default=5.0,
        help="batch-api: first poll interval in seconds; doubles up to 60 (default 5)",
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="batch-api: submit and return; `batch collect -o OUTPUT` joins the results later",
    )


def _cache_options(spec: str | None) -> dict[str, Any]:
    if spec is None:
        return {}
    name, sep, where = spec.partition(":")
    if name == "sqlite" and sep:
        from ..cache import SQLiteCache

        return {"cache_backend": SQLiteCache(where)}
    return {"cache_backend": name, **({"cache_dir": where} if sep else {})}


def _first_model(path: str) -> str | None:
    """The model of the first line that names one (the limiter's budgets follow it)."""
    try:
        with open(path, "rb") as f:
            for raw in f:
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                body = obj.get("body") if isinstance(obj, dict) else None
                model = (body if isinstance(body, dict) else obj).get("model") if obj else None
                if isinstance(model, str):
                    return model
    except OSError:
        return None
    return None


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def _run(args: argparse.Namespace) -> int:
    from ..client import OpenAIClient
    from ..models import GPT5Point4Nano
    from .estimate import DEFAULT_ASSUMED_OUTPUT_TOKENS, estimate_file
    from .output import read_output
    from .runner import run_file

    if args.input in ACTIONS:
        return await _action(args)
    batch_api = args.via == "batch-api"
    model = args.model or _first_model(args.input) or GPT5Point4Nano.key
    if args.dry_run:
        assumed = args.assume_output_tokens
        estimate = estimate_file(
            args.input,
            model=model,
            assumed_output_tokens=DEFAULT_ASSUMED_OUTPUT_TOKENS if assumed is None else assumed,
            batch_api=batch_api,
            skip=set().union(*read_output(args.output, repair=False)),
        )
        print(json.dumps(estimate.as_dict()))
        _say(estimate.describe())
        return 0
    options: dict[str, Any] = {
        **_cache_options(args.cache),
        "tokens_per_minute": args.tpm,
        "requests_per_minute": args.rpm,
        "attempts": args.attempts,
    }
    async with OpenAIClient(model, **options) as client:
        summary = await run_file(
            client,
            args.input,
            args.output,
            errors=args.errors,
            model=args.model,
            concurrency=args.concurrency,
            retry_failed=args.retry_failed,
            fsync=args.fsync,
            progress=args.progress,
            via=args.via,
            poll=args.poll,
            wait=not args.no_wait,
        )
    _say(summary.describe())
    if summary.bad:
        _say(f"bad lines are listed in {summary.errors}")
    return 0 if summary.ok else 1


async def _action(args: argparse.Namespace) -> int:
    from ..client import OpenAIClient
    from ..models import GPT5Point4Nano
    from . import api as batch_api

    async with OpenAIClient(args.model or GPT5Point4Nano.key) as client:
        if args.input == "status":
            for data in await batch_api.status(client, args.output):
                counts = data.get("request_counts") or {}
                print(
                    f"{data['id']}  {data['status']:<11} {counts.get('completed', 0)} completed"
                    f" / {counts.get('failed', 0)} failed of {counts.get('total', 0)}"
                    f"  {'collected' if data['collected'] else 'not collected'}"
                )
            return 0
        if args.input == "cancel":
            cancelled = await batch_api.cancel(client, args.output)
            _say(f"cancelling {len(cancelled)} batch(es); `batch collect` joins partial results")
            return 0
        summary = await batch_api.collect(
            client, args.output, wait=not args.no_wait, poll=args.poll, say=_say
        )
    _say(summary.describe())
    return 0 if summary.ok else 1


def run_batch_command(args: argparse.Namespace) -> int:
    """Run ``llm-client batch`` for parsed ``args``; return the exit status."""
    try:
        return asyncio.run(_run(args))
    except LLMClientError as exc:
        _say(f"llm-client batch: {exc.message}")
        return 2
    except KeyboardInterrupt:
        _say("interrupted: run the same command again to resume")
        return 130
