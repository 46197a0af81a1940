"""Run a JSONL file of requests through the client's pipeline: ``llm-client batch``.

Every line is one ordinary call through the chain (cost -> timeout -> cache -> tokens -> retry
-> limit -> transport), so caching, rate limits, retries and cost apply with no special case.

**Input.** One request per line, in OpenAI's Batch API input format, accepted as is::

    {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": {...}}

``url`` is ``/v1/chat/completions``, ``/v1/responses`` or ``/v1/embeddings``. The short form
``{"custom_id": "r1", "messages": [...]}`` (Chat Completions) or ``{"custom_id": "r1",
"input": ...}`` (Responses API, or embeddings for an embeddings model) takes the model from
``model=`` (``--model``); its other keys are body parameters. A body's own ``model`` wins.

**Output.** One line per input line, in OpenAI's Batch output format (``BatchRequestOutput`` of
openai-openapi: ``id``, ``custom_id``, ``response`` with ``status_code``, ``request_id`` and
``body``, and ``error`` for failures that have no HTTP status), plus our normalized ``usage``,
``cost`` (USD) and ``cached``. ``response.body`` is rebuilt from the normalized result in the
endpoint's response shape (first choice; logprobs are not kept), the same for a cache hit and
a fresh answer. Lines are written in completion order.

**Resumable.** The output is append-only and keyed by ``custom_id``: each line is written with
one ``write()`` to a file opened ``O_APPEND`` as soon as its answer arrives, so a process that
is killed loses nothing it has received. A rerun reads the output, skips every ``custom_id``
already there and sends nothing twice; a partial last line (a kill in the middle of a write,
or a power loss) is cut off and its request runs again. ``fsync`` is ``"interval"`` by default
(at most once a second, and at the end): a process crash loses nothing, an operating-system
crash at most the last second of lines, which then run again. ``"always"`` syncs every line,
``"never"`` leaves it to the OS. A lock on the output file stops two runs writing it at once.

**Bad input never aborts.** A line that is not JSON, has no ``custom_id``, names an unknown
URL or model, repeats an earlier ``custom_id``, or whose body the client's request checks
(:mod:`llm_client.request`) refuse, is reported with its line number and reason in the errors
file (``<output>.errors.jsonl`` unless named), rewritten on every run; every good line runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, TypeAlias

from .exceptions import (
    APIConnectionError,
    APIError,
    ConfigurationError,
    InvalidRequestError,
    LLMClientError,
)
from .models import ModelProfile
from .pipeline import Call, Operation
from .request import build_call
from .result import LLMResult
from .usage import Usage, price

if TYPE_CHECKING:
    from .client import OpenAIClient

__all__ = [
    "URLS",
    "BadLine",
    "BatchSummary",
    "DryRunEstimate",
    "FsyncPolicy",
    "Request",
    "errors_path_for",
    "estimate_file",
    "iter_requests",
    "parse_line",
    "read_output",
    "run_file",
]

log = logging.getLogger("llm_client.batch")

FsyncPolicy: TypeAlias = Literal["always", "interval", "never"]

#: The endpoints a line may name, and the operation each one is.
URLS: Mapping[str, Operation] = {
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
}
_URL_OF: Mapping[Operation, str] = {op: url for url, op in URLS.items()}
_LINE_KEYS = frozenset({"custom_id", "method", "url", "body"})
_FSYNC_INTERVAL = 1.0
#: Output assumed per completion line in a dry run when the body names no max token count.
DEFAULT_ASSUMED_OUTPUT_TOKENS = 256


@dataclass(frozen=True, slots=True)
class Request:
    """One good input line, checked and built into a :class:`Call`."""

    line: int
    custom_id: str
    url: str
    call: Call


@dataclass(frozen=True, slots=True)
class BadLine:
    """One input line that cannot run, and why (``code`` is machine-readable)."""

    line: int
    custom_id: str | None
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "custom_id": self.custom_id,
            "error": {"code": self.code, "message": self.message},
        }


@dataclass
class BatchSummary:
    """What a run did. ``succeeded``/``failed``/``cached`` count this run's lines;
    ``skipped`` the lines already in the output; ``bad`` the lines in the errors file."""

    lines: int = 0
    succeeded: int = 0
    failed: int = 0
    cached: int = 0
    skipped: int = 0
    bad: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    wall_time: float = 0.0
    output: str = ""
    errors: str = ""

    @property
    def ok(self) -> bool:
        """True when no line failed and no line was bad."""
        return self.failed == 0 and self.bad == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cached": self.cached,
            "skipped": self.skipped,
            "bad": self.bad,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "wall_time": self.wall_time,
            "output": self.output,
            "errors": self.errors,
        }

    def describe(self) -> str:
        """A short human summary."""
        return (
            f"done {self.succeeded}, failed {self.failed}, cached {self.cached},"
            f" already done {self.skipped}, bad lines {self.bad};"
            f" tokens {self.input_tokens} in / {self.output_tokens} out;"
            f" cost ${self.cost_usd:.6f}; wall time {self.wall_time:.2f}s"
        )


@dataclass
class DryRunEstimate:
    """A dry run's estimate: input tokens counted exactly with tiktoken; output tokens from
    each body's max token count, else ``assumed_output_tokens`` per completion line."""

    lines: int = 0
    bad: int = 0
    skipped: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    assumed_output_tokens: int = DEFAULT_ASSUMED_OUTPUT_TOKENS
    lines_with_assumed_output: int = 0
    batch_api: bool = False
    by_model: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "bad": self.bad,
            "skipped": self.skipped,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "assumed_output_tokens": self.assumed_output_tokens,
            "lines_with_assumed_output": self.lines_with_assumed_output,
            "batch_api": self.batch_api,
            "by_model": dict(self.by_model),
        }

    def describe(self) -> str:
        rate = " at the Batch API's 50% rate" if self.batch_api else ""
        assumed = (
            f"; {self.lines_with_assumed_output} lines name no max token count, assumed"
            f" {self.assumed_output_tokens} output tokens each"
            if self.lines_with_assumed_output
            else ""
        )
        done = f", {self.skipped} already in the output" if self.skipped else ""
        return (
            f"{self.lines} requests to run ({self.bad} bad lines{done}):"
            f" {self.input_tokens} input tokens"
            f" (exact), {self.output_tokens} output tokens (at most){assumed};"
            f" estimated cost ${self.cost_usd:.6f}{rate}"
        )


# --- parsing one line ----------------------------------------------------------------------------


def _bad(line: int, custom_id: Any, code: str, message: str) -> BadLine:
    return BadLine(line, custom_id if isinstance(custom_id, str) else None, code, message)


def parse_line(
    raw: bytes | str, line: int, *, default_model: ModelProfile | str | None = None
) -> Request | BadLine:
    """Check one input line and build its :class:`Call`; never raises for bad input."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return BadLine(line, None, "invalid_json", f"the line is not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return BadLine(line, None, "invalid_line", "the line must be a JSON object")
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return _bad(
            line, None, "missing_custom_id", "custom_id is missing (a non-empty string is needed)"
        )
    if "body" in obj or "url" in obj:
        unknown = sorted(set(obj) - _LINE_KEYS)
        if unknown:
            return _bad(
                line,
                custom_id,
                "invalid_line",
                f"unknown key(s) {', '.join(unknown)}; a Batch API line has custom_id, method,"
                " url and body",
            )
        method = obj.get("method", "POST")
        if method != "POST":
            return _bad(line, custom_id, "invalid_method", f"method must be 'POST', got {method!r}")
        url = obj.get("url")
        if url not in URLS:
            return _bad(
                line,
                custom_id,
                "invalid_url",
                f"url must be one of {', '.join(URLS)}, got {url!r:.80}",
            )
        body = obj.get("body")
        if not isinstance(body, dict):
            return _bad(line, custom_id, "invalid_body", "body must be a JSON object")
        body = dict(body)
    else:  # the short form: {"custom_id", "messages" | "input", ...parameters}
        body = {k: v for k, v in obj.items() if k != "custom_id"}
        url = None
    model = body.pop("model", None)
    if model is None:
        model = default_model
    if model is None:
        return _bad(line, custom_id, "missing_model", "no model: set body.model or pass --model")
    try:
        profile = ModelProfile.get(model)
    except ConfigurationError as exc:
        return _bad(line, custom_id, "unknown_model", exc.message)
    if url is None:
        if "messages" in body:
            url = "/v1/chat/completions"
        elif "input" in body:
            url = "/v1/embeddings" if profile.is_embeddings else "/v1/responses"
        else:
            return _bad(
                line,
                custom_id,
                "invalid_line",
                "a short-form line needs messages (Chat Completions) or input (Responses API"
                " or embeddings); or give url and body",
            )
    operation = URLS[url]
    if (operation == "embeddings") != profile.is_embeddings:
        kind = "an embeddings model" if profile.is_embeddings else "not an embeddings model"
        return _bad(line, custom_id, "model_mismatch", f"{url} cannot use {model!r}: it is {kind}")
    stream = body.pop("stream", False)
    if stream is not False and stream is not None:
        return _bad(
            line, custom_id, "invalid_body", "stream must be false: batch lines are not streamed"
        )
    messages = input_ = None
    if operation == "chat":
        if "input" in body:
            return _bad(
                line,
                custom_id,
                "invalid_body",
                "input is not a Chat Completions parameter: use messages (or url /v1/responses)",
            )
        messages = body.pop("messages", None)
    else:
        if "messages" in body:
            return _bad(line, custom_id, "invalid_body", f"{url} takes input, not messages")
        input_ = body.pop("input", None)
        if input_ is None:
            return _bad(line, custom_id, "invalid_body", f"{url} needs input")
    try:
        call = build_call(
            profile,
            "responses" if operation == "responses" else "chat",
            messages,
            input_,
            body,
            stream=False,
        )
    except (InvalidRequestError, ConfigurationError) as exc:
        return _bad(line, custom_id, "invalid_body", exc.message)
    return Request(line, custom_id, url, call)


def iter_requests(
    path: str | os.PathLike[str], *, default_model: ModelProfile | str | None = None
) -> Iterator[Request | BadLine]:
    """Parse ``path`` line by line (streamed: memory stays flat); blank lines are skipped.

    A ``custom_id`` seen on an earlier line makes the later line a :class:`BadLine`.
    """
    first_line: dict[str, int] = {}
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            item = parse_line(raw, number, default_model=default_model)
            cid = item.custom_id
            if cid is not None:
                seen = first_line.get(cid)
                if seen is not None:
                    yield BadLine(
                        number,
                        cid,
                        "duplicate_custom_id",
                        f"custom_id {cid!r} already appears on line {seen}; not run",
                    )
                    continue
                first_line[cid] = number
            yield item


def _count_lines(path: str | os.PathLike[str]) -> int:
    """The lines a run will go through (blank lines are skipped), for the progress bar."""
    with open(path, "rb") as f:
        return sum(1 for raw in f if not raw.isspace())


# --- the output file ------------------------------------------------------------------------------


def errors_path_for(output: str | os.PathLike[str]) -> Path:
    """The default errors file beside ``output``: ``results.jsonl`` -> ``results.errors.jsonl``."""
    out = Path(output)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.errors.jsonl")


def is_failure(line: Mapping[str, Any]) -> bool:
    """Whether an output line records a failure (an HTTP error status or a non-HTTP error)."""
    if line.get("error"):
        return True
    response = line.get("response")
    if not isinstance(response, Mapping):
        return True
    status = response.get("status_code")
    return not isinstance(status, int) or status >= 400


def read_output(path: str | os.PathLike[str], *, repair: bool = True) -> tuple[set[str], set[str]]:
    """The ``custom_id`` s already in an output file: ``(succeeded, failed)``.

    With ``repair``, a partial last line (no newline, or not JSON) is cut off the file so its
    request runs again; any other unreadable line is an error, as is a line without custom_id.
    """
    done: set[str] = set()
    failed: set[str] = set()
    if not os.path.exists(path):
        return done, failed
    with open(path, "rb+") as f:
        offset = 0
        for number, raw in enumerate(f, start=1):
            end = offset + len(raw)
            try:
                obj = json.loads(raw) if raw.endswith(b"\n") else None
            except ValueError:
                obj = None
            if obj is None:
                if f.read(1):  # not the last line: the file is damaged, not cut short
                    raise ConfigurationError(
                        f"{path}: line {number} is not a JSON output line; fix or move the file"
                    )
                if repair:
                    log.warning("%s: cutting off a partial last line %d", path, number)
                    f.truncate(offset)
                break
            cid = obj.get("custom_id") if isinstance(obj, dict) else None
            if not isinstance(cid, str):
                raise ConfigurationError(f"{path}: line {number} has no custom_id")
            if is_failure(obj):
                failed.add(cid)
                done.discard(cid)
            else:
                done.add(cid)
                failed.discard(cid)
            offset = end
    return done, failed


def _drop_failed(path: str | os.PathLike[str], failed: set[str]) -> None:
    """Rewrite ``path`` without the failure lines of ``failed`` (atomically: temp + rename)."""
    tmp = f"{os.fspath(path)}.tmp-{secrets.token_hex(4)}"
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        for raw in src:
            obj = json.loads(raw)
            if obj.get("custom_id") in failed and is_failure(obj):
                continue
            dst.write(raw)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, path)


class _Appender:
    """An append-only JSONL file: one ``write()`` per line, fsync by policy, locked."""

    def __init__(self, path: str | os.PathLike[str], fsync: FsyncPolicy) -> None:
        if fsync not in ("always", "interval", "never"):
            raise ConfigurationError(
                f"fsync must be 'always', 'interval' or 'never', got {fsync!r}"
            )
        self.path = os.fspath(path)
        self.fsync = fsync
        self._fd = self._open_locked()
        self._last_sync = time.monotonic()
        self._dirty = False

    def _open_locked(self) -> int:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigurationError(f"cannot write the output {self.path}: {exc}") from exc
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not on POSIX
            pass
        except OSError as exc:
            os.close(fd)
            raise ConfigurationError(
                f"{self.path} is being written by another run (it is locked); wait for it or"
                " choose another output"
            ) from exc
        return fd

    def reopen(self) -> None:
        """Open the file again after it was replaced (the old lock is held until then)."""
        fd = self._open_locked()
        os.close(self._fd)
        self._fd = fd

    def write(self, obj: Mapping[str, Any]) -> None:
        data = memoryview(
            (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        )
        while data:
            n = os.write(self._fd, data)
            data = data[n:]
        self._dirty = True
        if self.fsync == "always" or (
            self.fsync == "interval" and time.monotonic() - self._last_sync >= _FSYNC_INTERVAL
        ):
            self.sync()

    def sync(self) -> None:
        if self._dirty and self.fsync != "never":
            os.fsync(self._fd)
        self._dirty = False
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = -1


# --- OpenAI's output shapes -----------------------------------------------------------------------


def _new_line_id() -> str:
    return f"batch_req_{secrets.token_hex(12)}"


def response_body(result: LLMResult) -> dict[str, Any]:
    """The endpoint's response body, rebuilt from a normalized result."""
    u = result.usage
    created = int(time.time())
    if result.operation == "embeddings":
        vectors = result.output
        if vectors and not isinstance(vectors[0], list):
            vectors = [vectors]
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": v}
                for i, v in enumerate(vectors or [])
            ],
            "model": result.model,
            "usage": {"prompt_tokens": u.input_tokens, "total_tokens": u.total_tokens},
        }
    if result.operation == "responses":
        output: list[dict[str, Any]] = []
        if result.output:
            output.append(
                {
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": result.output, "annotations": []}],
                }
            )
        for tc in result.tool_calls:
            output.append(
                {
                    "type": "function_call",
                    "call_id": tc.get("id"),
                    "name": tc.get("name"),
                    "arguments": tc.get("arguments", ""),
                    "status": "completed",
                }
            )
        incomplete = result.finish_reason not in (None, "stop", "tool_calls")
        return {
            "id": result.response_id,
            "object": "response",
            "created_at": created,
            "status": "incomplete" if incomplete else "completed",
            "incomplete_details": (
                {
                    "reason": "max_output_tokens"
                    if result.finish_reason == "length"
                    else result.finish_reason
                }
                if incomplete
                else None
            ),
            "model": result.model,
            "output": output,
            "usage": {
                "input_tokens": u.input_tokens,
                "input_tokens_details": {"cached_tokens": u.cached_input_tokens},
                "output_tokens": u.output_tokens,
                "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
                "total_tokens": u.total_tokens,
            },
        }
    message: dict[str, Any] = {"role": "assistant", "content": result.output, "refusal": None}
    if result.tool_calls:
        message["tool_calls"] = [
            {
                "id": tc.get("id"),
                "type": "function",
                "function": {"name": tc.get("name"), "arguments": tc.get("arguments", "")},
            }
            for tc in result.tool_calls
        ]
    return {
        "id": result.response_id,
        "object": "chat.completion",
        "created": created,
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": u.input_tokens,
            "completion_tokens": u.output_tokens,
            "total_tokens": u.total_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
            "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        },
    }


def _usage_fields(usage: Usage, cached: bool) -> dict[str, Any]:
    return {"usage": usage.to_dict(), "cost": usage.total_cost, "cached": cached}


def success_line(custom_id: str, result: LLMResult) -> dict[str, Any]:
    """One output line for a successful result."""
    return {
        "id": _new_line_id(),
        "custom_id": custom_id,
        "response": {
            "status_code": 200,
            "request_id": result.headers.get("x-request-id"),
            "body": response_body(result),
        },
        "error": None,
        **_usage_fields(result.usage, result.cached),
    }


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def failure_line(custom_id: str, exc: BaseException) -> dict[str, Any]:
    """One output line for a failure: an HTTP error keeps its status and OpenAI's error body;
    a failure without an HTTP answer (connection, timeout, deadline) fills ``error``."""
    usage = exc.usage if isinstance(exc, LLMClientError) and isinstance(exc.usage, Usage) else None
    extra = _usage_fields(usage or Usage(), False)
    message = exc.message if isinstance(exc, LLMClientError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, APIError) and not isinstance(exc, APIConnectionError):
        status = exc.status
        return {
            "id": _new_line_id(),
            "custom_id": custom_id,
            "response": {
                "status_code": status,
                "request_id": (exc.headers or {}).get("x-request-id"),
                "body": {
                    "error": {
                        "message": message,
                        "type": _ERROR_TYPES.get(status, "server_error"),
                        "param": None,
                        "code": None,
                    }
                },
            },
            "error": None,
            **extra,
        }
    code = type(exc).__name__
    return {
        "id": _new_line_id(),
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": message},
        **extra,
    }


# --- the runner -----------------------------------------------------------------------------------


class _Progress:
    """A tqdm bar on a terminal, nothing otherwise."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="req", dynamic_ncols=True, file=sys.stderr)

    def update(self, n: int, summary: BatchSummary) -> None:
        if self._bar is None:
            return
        self._bar.set_postfix(
            ok=summary.succeeded,
            failed=summary.failed,
            tokens=summary.input_tokens + summary.output_tokens,
            cost=f"${summary.cost_usd:.4f}",
            refresh=False,
        )
        self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


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
    24 hours; see :mod:`llm_client.batch_api`): ``poll`` is the first poll interval in
    seconds, ``wait=False`` returns once the batches are submitted, each change of a batch's
    status is printed to stderr unless ``progress=False``, and ``max_requests``,
    ``max_bytes``, ``max_embedding_inputs`` lower the split limits.
    """
    if via == "batch-api":
        from .batch_api import run_via_batch_api

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


class _BadLines:
    """The errors file: rewritten on every run (it describes the input, which is re-read)."""

    def __init__(self, path: Path) -> None:
        try:
            self._f: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - see close()
        except OSError as exc:
            raise ConfigurationError(f"cannot write the errors file {path}: {exc}") from exc

    def write(self, bad: BadLine) -> None:
        self._f.write(json.dumps(bad.to_dict(), ensure_ascii=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


# --- dry run --------------------------------------------------------------------------------------


def estimate_file(
    path: str | os.PathLike[str],
    *,
    model: ModelProfile | str | None = None,
    assumed_output_tokens: int = DEFAULT_ASSUMED_OUTPUT_TOKENS,
    batch_api: bool = False,
    skip: set[str] | frozenset[str] = frozenset(),
) -> DryRunEstimate:
    """Estimate a file's tokens and cost without sending anything.

    Input tokens are counted exactly as the client counts them before a call (tiktoken, with
    OpenAI's per-message overhead); output tokens are each body's ``max_tokens`` /
    ``max_completion_tokens`` / ``max_output_tokens``, or ``assumed_output_tokens`` per
    completion line without one (embeddings produce none). Lines whose ``custom_id`` is in
    ``skip`` (already in the output) are counted as ``skipped``, not estimated.
    """
    from .middleware.tokens import _input_of
    from .tokens import count_tokens

    estimate = DryRunEstimate(assumed_output_tokens=assumed_output_tokens, batch_api=batch_api)
    for item in iter_requests(path, default_model=model):
        if isinstance(item, BadLine):
            estimate.bad += 1
            continue
        if item.custom_id in skip:
            estimate.skipped += 1
            continue
        call = item.call
        profile = call.profile
        tools = call.params.get("tools") if call.operation != "embeddings" else None
        counted = _input_of(call)
        if call.operation == "responses" and isinstance(counted, str):
            # A string input is one user message to the Responses API, and is billed with
            # the message's framing tokens, as the fake server and OpenAI report it.
            counted = [{"role": "user", "content": counted}]
        n_in = count_tokens(counted, model=profile, tools=tools)
        n_out = 0
        if call.operation != "embeddings":
            for name in ("max_output_tokens", "max_completion_tokens", "max_tokens"):
                value = call.params.get(name)
                if isinstance(value, int) and value > 0:
                    n_out = value
                    break
            else:
                n_out = assumed_output_tokens
                estimate.lines_with_assumed_output += 1
        usage = price(
            Usage(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out),
            profile,
            batch=batch_api,
        )
        estimate.lines += 1
        estimate.input_tokens += n_in
        estimate.output_tokens += n_out
        estimate.cost_usd += usage.total_cost
        estimate.by_model[profile.model_name] = estimate.by_model.get(profile.model_name, 0) + 1
    return estimate
