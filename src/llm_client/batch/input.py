"""Input lines: parsing and checking each one into a :class:`Request` or a :class:`BadLine`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigurationError, InvalidRequestError
from ..models import ModelProfile
from ..pipeline import Call, Operation
from ..request import build_call

__all__ = ["URLS", "BadLine", "Request", "iter_requests", "parse_line"]

#: The endpoints a line may name, and the operation each one is.
URLS: Mapping[str, Operation] = {
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
}
_URL_OF: Mapping[Operation, str] = {op: url for url, op in URLS.items()}
_LINE_KEYS = frozenset({"custom_id", "method", "url", "body"})


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
