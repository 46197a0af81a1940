"""A fake OpenAI server: a real aiohttp HTTP server speaking the OpenAI wire format.

The official ``openai`` SDK talks to it unchanged (``AsyncOpenAI(base_url=server.base_url)``),
so tests exercise the whole stack down to the socket. Answers are deterministic functions of
the request (see :func:`expected_text`, :func:`count_tokens`, :func:`embed_text`), every
response carries OpenAI's rate-limit headers, and :class:`Fault` objects inject the failures a
real deployment sees (429s, 5xx, dropped connections, truncated or malformed streams, failed
Responses streams).

The server runs either in the caller's event loop (``async with FakeOpenAI() as server``) or
in its own loop on a daemon thread (``with FakeOpenAI() as server`` / ``start_in_thread``), which
is what the pytest fixture ``fake_openai`` uses so that sync and async tests can share it.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import re
import secrets
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from types import TracebackType
from typing import Any, Literal, get_args

from aiohttp import web

from . import batches as batches_api
from . import models_api, tools_script, wire
from .quotas import Quota
from .wire import AnswerRecord, FaultDraw

_QUOTA_CHARGE = web.RequestKey("llm_client_quota_charge", int)

__all__ = [
    "DEFAULT_RATE_LIMIT_HEADERS",
    "ENDPOINTS",
    "FAULT_KINDS",
    "AnswerRecord",
    "FakeOpenAI",
    "Fault",
    "FaultDraw",
    "FaultKind",
    "RecordedRequest",
    "count_tokens",
    "embed_text",
    "expected_text",
    "format_duration",
    "prompt_tokens",
]

FaultKind = Literal[
    "status",
    "drop",
    "truncate",
    "malformed",
    "latency",
    "response_failed",
    "response_incomplete",
    "stream_error",
    "stall",
    "drip",
    "cut",
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
#: Endpoint names used in the request log and as fault filters.
ENDPOINTS: frozenset[str] = frozenset({"chat", "responses", "embeddings", "models", "other"})

#: Rate-limit headers sent with every response unless changed by ``set_rate_limit_headers``.
DEFAULT_RATE_LIMIT_HEADERS: Mapping[str, str] = {
    "x-ratelimit-limit-requests": "1000000",
    "x-ratelimit-limit-tokens": "10000000000",
    "x-ratelimit-remaining-requests": "999999",
    "x-ratelimit-remaining-tokens": "9999999000",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "1ms",
}

_SNIPPET_CHARS = 80
_WORDS_PER_CHUNK = 3
_ARGUMENT_PIECE_CHARS = 12
_SHUTDOWN_TIMEOUT = 0.2
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_WORD_RE = re.compile(r"\w+")
_PIECE_SPLIT_RE = re.compile(r"(?<=\s)(?=\S)")
_JSON_SEPARATORS = (",", ":")
_MALFORMED_JSON = b'{"id": "broken", "object": this is not json'

_MODEL_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_DEFAULT_DIMENSIONS = 1536
_MAX_DIMENSIONS = 16384


# --------------------------------------------------------------------------------------------
# Public value types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One injected failure; see ``docs/testing.md`` for what each kind does on the wire.

    ``times`` is how many matching requests it affects; ``endpoint`` restricts it to one of
    ``"chat"``, ``"responses"``, ``"embeddings"``, ``"models"`` (None matches any request).
    ``delay`` seconds are waited before the fault acts (for ``"latency"`` that is the fault).
    ``after_chunks`` is how many stream chunks/events go out before a stream fault strikes.
    ``interval`` is the pause between pieces of a ``"drip"`` (see :mod:`.wire`).
    """

    kind: FaultKind
    _: KW_ONLY
    times: int = 1
    endpoint: str | None = None
    status: int = 500
    retry_after: float | None = None
    retry_after_ms: float | None = None
    headers: Mapping[str, str] | None = None
    after_chunks: int = 2
    delay: float = 0.0
    message: str | None = None
    interval: float = 0.05

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {sorted(FAULT_KINDS)}")
        if self.endpoint is not None and self.endpoint not in ENDPOINTS:
            raise ValueError(
                f"unknown endpoint {self.endpoint!r}; use None or one of {sorted(ENDPOINTS)}"
            )
        if self.times < 1:
            raise ValueError("times must be >= 1")
        if self.after_chunks < 0:
            raise ValueError("after_chunks must be >= 0")
        if self.delay < 0 or self.interval < 0:
            raise ValueError("delay and interval must be >= 0")
        if not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")

    def matches(self, endpoint: str) -> bool:
        """Whether this fault applies to a request for ``endpoint``."""
        return self.endpoint is None or self.endpoint == endpoint


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it (headers with lower-case names)."""

    method: str
    path: str
    endpoint: str
    headers: dict[str, str]
    json: Any
    time: float

    @property
    def model(self) -> str | None:
        """The ``model`` field of the JSON body, if any."""
        if isinstance(self.json, dict):
            model = self.json.get("model")
            return model if isinstance(model, str) else None
        return None

    @property
    def stream(self) -> bool:
        """Whether the body asked for a stream."""
        return isinstance(self.json, dict) and bool(self.json.get("stream"))


# --------------------------------------------------------------------------------------------
# Deterministic content: tokens, answers, embeddings
# --------------------------------------------------------------------------------------------


def count_tokens(text: str) -> int:
    """The fake tokenizer: one token per run of word characters and per punctuation mark."""
    return len(_TOKEN_RE.findall(text))


def _cut_tokens(text: str, limit: int) -> str:
    """The prefix of ``text`` holding its first ``limit`` fake tokens."""
    if limit <= 0:
        return ""
    for i, match in enumerate(_TOKEN_RE.finditer(text), start=1):
        if i == limit:
            return text[: match.end()]
    return text


def _content_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the text parts of a part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    return ""


@dataclass(frozen=True, slots=True)
class _Msg:
    role: str
    text: str


def _normalize(conversation: str | Sequence[Any], instructions: str | None = None) -> list[_Msg]:
    """Chat messages or Responses input items as (role, text) pairs.

    Chat ``tool`` messages and Responses ``function_call_output`` items become role ``tool``;
    assistant tool calls / ``function_call`` items contribute their names and arguments.
    """
    msgs: list[_Msg] = []
    if instructions:
        msgs.append(_Msg("system", instructions))
    if isinstance(conversation, str):
        msgs.append(_Msg("user", conversation))
        return msgs
    for item in conversation:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "function_call_output":
            msgs.append(_Msg("tool", _content_text(item.get("output"))))
        elif kind == "function_call":
            msgs.append(_Msg("assistant", f"{item.get('name', '')} {item.get('arguments', '')}"))
        elif "role" in item:
            text = _content_text(item.get("content"))
            for call in item.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    text += f" {function.get('name', '')} {function.get('arguments', '')}"
            msgs.append(_Msg(str(item["role"]), text))
    return msgs


def _snippet(text: str) -> str:
    return " ".join(text.split())[:_SNIPPET_CHARS].rstrip()


def _last_user_text(msgs: Sequence[_Msg]) -> str:
    for msg in reversed(msgs):
        if msg.role == "user":
            return msg.text
    return ""


def _answer_for(msgs: Sequence[_Msg]) -> str:
    if msgs and msgs[-1].role == "tool":
        return f"Fake answer using tool result: {_snippet(msgs[-1].text)}"
    return f"Fake answer to: {_snippet(_last_user_text(msgs))}"


def expected_text(conversation: str | Sequence[Any], *, instructions: str | None = None) -> str:
    """The plain-text answer the server gives for chat ``messages`` or Responses ``input``.

    ``"Fake answer to: <last user text>"``, or ``"Fake answer using tool result: <text>"``
    when the conversation ends with a tool result; the quoted text is whitespace-collapsed and
    cut to 80 characters. (``stop``, ``max_tokens`` and response formats change it further.)
    """
    return _answer_for(_normalize(conversation, instructions))


def prompt_tokens(conversation: str | Sequence[Any], *, instructions: str | None = None) -> int:
    """Prompt/input tokens the server reports: per message ``count_tokens(text) + 3``, plus 3."""
    return _prompt_tokens(_normalize(conversation, instructions))


def _prompt_tokens(msgs: Sequence[_Msg]) -> int:
    return sum(count_tokens(m.text) + 3 for m in msgs) + 3


@functools.lru_cache(maxsize=65536)
def _word_slot(word: str, dimensions: int) -> tuple[int, float]:
    digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return digest % dimensions, (1.0 if digest >> 63 else -1.0)


def _embed_words(words: Iterable[str], dimensions: int) -> list[float]:
    sparse: dict[int, float] = {}
    for word in words:
        index, sign = _word_slot(word, dimensions)
        sparse[index] = sparse.get(index, 0.0) + sign
    vector = [0.0] * dimensions
    norm = math.sqrt(sum(v * v for v in sparse.values()))
    if norm > 0:
        for index, value in sparse.items():
            vector[index] = value / norm
    # Round to float32 so the float and base64 encodings carry identical numbers.
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *vector)))


def embed_text(text: str, dimensions: int = _DEFAULT_DIMENSIONS) -> list[float]:
    """The embedding the server returns for ``text``: a hashed, L2-normalized bag of words.

    Each lower-cased word (``\\w+``) is hashed with blake2b to an index and a sign; the counts
    are summed and normalized, then rounded to float32. Texts sharing most words have a high
    cosine similarity, texts sharing none have a similarity near 0.
    """
    return _embed_words(_WORD_RE.findall(text.lower()), dimensions)


def format_duration(seconds: float) -> str:
    """A duration as OpenAI's rate-limit headers write it: ``20ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    secs_text = f"{round(secs, 3):g}s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{secs_text}"
    if minutes:
        return f"{int(minutes)}m{secs_text}"
    return secs_text


def _example(schema: Any, name: str, root: Any, depth: int = 0) -> Any:
    """A deterministic value that satisfies a (simple) JSON schema."""
    if not isinstance(schema, dict) or depth > 8:
        return f"fake_{name}" if name else "fake"
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return _example(target, name, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            preferred = [
                o for o in options if not (isinstance(o, dict) and o.get("type") == "null")
            ]
            return _example((preferred or options)[0], name, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and "properties" in schema:
        kind = "object"
    if kind == "object":
        properties = schema.get("properties") or {}
        required = schema.get("required") or ()
        return {
            key: _example(properties.get(key), key, root, depth + 1)
            for key in required
            if isinstance(key, str)
        }
    if kind == "array":
        if schema.get("maxItems") == 0:
            return []
        return [_example(schema.get("items"), name, root, depth + 1)]
    if kind == "integer":
        minimum = schema.get("minimum")
        return int(minimum) if isinstance(minimum, (int, float)) else 1
    if kind == "number":
        minimum = schema.get("minimum")
        return float(minimum) if isinstance(minimum, (int, float)) else 1.0
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2024-01-01T00:00:00Z"
    if fmt == "date":
        return "2024-01-01"
    return f"fake_{name}" if name else "fake"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=_JSON_SEPARATORS).encode()


def _pieces(text: str) -> list[str]:
    """``text`` split into stream deltas of a few words each; they join back to ``text``."""
    words = _PIECE_SPLIT_RE.split(text)
    return [
        "".join(words[i : i + _WORDS_PER_CHUNK]) for i in range(0, len(words), _WORDS_PER_CHUNK)
    ]


def _argument_pieces(arguments: str) -> list[str]:
    return [
        arguments[i : i + _ARGUMENT_PIECE_CHARS]
        for i in range(0, len(arguments), _ARGUMENT_PIECE_CHARS)
    ] or [""]


def _short_hash(*parts: object) -> str:
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=12).hexdigest()


# --------------------------------------------------------------------------------------------
# Generation: what a request is answered with
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ToolCall:
    call_id: str
    name: str
    arguments: str


@dataclass(slots=True)
class _Answer:
    text: str | None
    tool_calls: list[_ToolCall]
    finish_reason: str  # chat vocabulary: stop | length | tool_calls
    prompt_tokens: int
    visible_tokens: int
    #: set when the model refuses: the refusal text (then ``text`` is None)
    refusal: str | None = None


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _tool_specs(tools: Any, *, flat: bool) -> list[tuple[str, Any]]:
    """(name, parameters) of the function tools; chat nests them under ``function``."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _BadRequest("'tools' must be an array", "tools")
    specs = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            continue
        spec = tool if flat else tool.get("function")
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            specs.append((spec["name"], spec.get("parameters") or {}))
    return specs


def _chosen_tools(
    specs: Sequence[tuple[str, Any]],
    tool_choice: Any,
    parallel: bool,
    msgs: Sequence[_Msg],
    *,
    flat: bool,
) -> list[tuple[str, Any]]:
    if not specs or tool_choice == "none":
        return []
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        function = tool_choice if flat else tool_choice.get("function")
        wanted = function.get("name") if isinstance(function, dict) else None
        # Accept either nesting: the SDK's types differ between the two APIs.
        wanted = wanted or tool_choice.get("name")
        return [spec for spec in specs if spec[0] == wanted][:1]
    required = tool_choice == "required"
    if not required and msgs and msgs[-1].role == "tool":
        return []  # a tool result just came back: answer in text
    lowered = _last_user_text(msgs).lower()
    mentioned = [spec for spec in specs if spec[0].lower() in lowered]
    if not mentioned and required:
        mentioned = [specs[0]]
    return mentioned if parallel else mentioned[:1]


def _apply_stop(text: str, stop: Any) -> tuple[str, bool]:
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    cut = min((text.find(s) for s in stops if isinstance(s, str) and s and s in text), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _plan(
    msgs: list[_Msg],
    *,
    specs: list[tuple[str, Any]],
    tool_choice: Any,
    parallel: bool,
    flat: bool,
    schema: Any,
    json_object: bool,
    stop: Any,
    max_tokens: Any,
    scripted: tools_script.Turn | None = None,
) -> _Answer:
    prompt = _prompt_tokens(msgs)
    if scripted is not None:  # a tool script decides (see tools_script.py)
        schemas = dict(specs)
        chosen = [(name, schemas.get(name, {"type": "object"})) for name, _ in scripted.calls]
        wire: list[str | None] = [arguments for _, arguments in scripted.calls]
    else:
        chosen = _chosen_tools(specs, tool_choice, parallel, msgs, flat=flat)
        wire = [None] * len(chosen)
    if chosen:
        calls = []
        for index, (name, parameters) in enumerate(chosen):
            arguments = wire[index]
            if arguments is None:
                arguments = json.dumps(_example(parameters, "", parameters))
            call_id = "call_" + _short_hash(name, arguments, len(msgs), index)
            calls.append(_ToolCall(call_id, name, arguments))
        visible = sum(count_tokens(c.name) + count_tokens(c.arguments) for c in calls)
        return _Answer(None, calls, "tool_calls", prompt, visible)
    if scripted is not None and scripted.final is not None:
        text = scripted.final
    elif schema is not None:
        text = json.dumps(_example(schema, "", schema))
    elif json_object:
        text = json.dumps({"answer": _answer_for(msgs)})
    else:
        text = _answer_for(msgs)
    text, _ = _apply_stop(text, stop)
    finish = "stop"
    limited = isinstance(max_tokens, int) and not isinstance(max_tokens, bool)
    if limited and count_tokens(text) > max_tokens:
        text = _cut_tokens(text, max_tokens)
        finish = "length"
    return _Answer(text, [], finish, prompt, count_tokens(text))


def _truncate_answer(answer: _Answer, pieces: int) -> _Answer:
    """The answer cut after ``pieces`` stream deltas, as if the output limit was hit."""
    if answer.text is None:
        return dataclasses.replace(answer, finish_reason="length")
    text = "".join(_pieces(answer.text)[:pieces])
    return dataclasses.replace(
        answer, text=text, finish_reason="length", visible_tokens=count_tokens(text)
    )


def _status_error_fields(status: int) -> tuple[str, str | None, str]:
    """(type, code, default message) of OpenAI's error body for an HTTP status."""
    if status == 429:
        return (
            "requests",
            "rate_limit_exceeded",
            "Rate limit reached for requests (FakeOpenAI injected fault).",
        )
    if status == 401:
        return "invalid_request_error", "invalid_api_key", "Incorrect API key provided."
    if status == 403:
        return "permission_error", None, "You are not allowed to perform this request."
    if status == 404:
        return "invalid_request_error", "not_found", "The requested resource does not exist."
    if status >= 500:
        return (
            "server_error",
            None,
            "The server had an error while processing your request (FakeOpenAI injected fault).",
        )
    return "invalid_request_error", None, "Invalid request (FakeOpenAI injected fault)."


def _error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> bytes:
    return _dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


@dataclass
class _PendingFault:
    fault: Fault
    remaining: int = field(default=0)


class FakeOpenAI:
    """A fake OpenAI HTTP server on 127.0.0.1 (see the module docstring and docs/testing.md).

    ``latency`` seconds are waited before answering every request. ``api_key``, when given, is
    the only bearer token accepted (otherwise any ``Authorization: Bearer`` passes).
    ``output_tokens`` overrides the visible completion-token count in usage;
    ``reasoning_tokens`` and ``cached_tokens`` are reported in the usage details (reasoning
    tokens are added to the completion/output tokens; cached tokens are capped at the prompt
    tokens); ``cache_write_tokens`` are reported as ``cache_write_tokens`` in the input details
    (capped at the uncached prompt tokens). ``models`` maps the ids ``GET /v1/models`` lists to
    their ``shutdown_date`` (see :mod:`llm_client.testing.models_api`). ``chunk_delay``
    seconds are waited after each stream chunk/event (0 sends a whole
    stream in one write). ``log_requests=False`` keeps only the counters, not the request log
    (for long benchmark runs). These are plain attributes and may be changed while the server
    runs.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        rate_limit_headers: bool = True,
        api_key: str | None = None,
        output_tokens: int | None = None,
        reasoning_tokens: int = 0,
        cached_tokens: int = 0,
        log_requests: bool = True,
        chunk_delay: float = 0.0,
        quota: Quota | None = None,
    ) -> None:
        self.host = host
        self.quota = quota
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.rate_limit_headers = rate_limit_headers
        self.api_key = api_key
        self.output_tokens = output_tokens
        self.reasoning_tokens = reasoning_tokens
        self.cached_tokens = cached_tokens
        self.cache_write_tokens = 0
        self.models = models_api.default_models()
        #: The Files and Batch APIs (``/v1/files``, ``/v1/batches``): see ``batches.py``.
        self.batches = batches_api.BatchesAPI(self)
        #: The tool script for requests that carry none (see tools_script.py).
        self.tool_script: tools_script.ToolScript | None = None
        #: When set, the model refuses every text answer with this text (see _refused).
        self.refusal: str | None = None
        self.log_requests = log_requests
        self._requested_port = port
        self._port: int | None = None
        self._lock = threading.Lock()
        self._log: list[RecordedRequest] = []
        self._counts: Counter[str] = Counter()
        self._faults: list[_PendingFault] = []
        self._rate_headers: dict[str, str] = dict(DEFAULT_RATE_LIMIT_HEADERS)
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread_stop: asyncio.Event | None = None
        self._id_tag = secrets.token_hex(6)
        self._id_counter = itertools.count(1)
        self._wire = wire.WireLog()

    # The deterministic-output helpers, also reachable from a server instance.
    expected_text = staticmethod(expected_text)
    prompt_tokens = staticmethod(prompt_tokens)
    count_tokens = staticmethod(count_tokens)
    embed_text = staticmethod(embed_text)

    def _new_id(self, prefix: str) -> str:
        """A unique id (random per server, then a counter: cheaper than uuid4 per request)."""
        return f"{prefix}{self._id_tag}{next(self._id_counter):012x}"

    # -- addresses ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (only known once started)."""
        if self._port is None:
            raise RuntimeError("FakeOpenAI is not running; start it first")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``: what ``AsyncOpenAI(base_url=...)`` takes."""
        return f"{self.url}/v1"

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._runner is not None

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not running"
        return f"<FakeOpenAI {where}>"

    # -- lifecycle: in the current loop ------------------------------------------------------

    async def start(self) -> None:
        """Start serving in the running event loop."""
        if self._runner is not None:
            raise RuntimeError("FakeOpenAI is already running")
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        app.router.add_post("/v1/responses", self._handle_responses)
        app.router.add_post("/v1/embeddings", self._handle_embeddings)
        app.router.add_get("/v1/models", self._handle_models)
        app.router.add_get("/v1/models/{model}", self._handle_model)
        self.batches.add_routes(app.router)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        runner = web.AppRunner(  # cancel a handler when its client leaves: see .wire
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
            handler_cancellation=True,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        address = runner.addresses[0]
        self._port = int(address[1])
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving and close every connection."""
        runner, self._runner = self._runner, None
        await self.batches.aclose()
        if runner is not None:
            await runner.cleanup()
        self._port = None

    async def __aenter__(self) -> FakeOpenAI:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- lifecycle: in a background thread ----------------------------------------------------

    def start_in_thread(self, timeout: float = 10.0) -> FakeOpenAI:
        """Start serving in a new event loop on a daemon thread; returns ``self``."""
        if self._thread is not None or self._runner is not None:
            raise RuntimeError("FakeOpenAI is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=self._thread_main, args=(ready, failure), name="FakeOpenAI", daemon=True
        )
        thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("FakeOpenAI did not start in time")
        if failure:
            thread.join()
            raise failure[0]
        self._thread = thread
        return self

    def _thread_main(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve_in_thread(loop, ready, failure))
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _serve_in_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        ready: threading.Event,
        failure: list[BaseException],
    ) -> None:
        stop = asyncio.Event()
        try:
            await self.start()
        except BaseException as exc:  # reported to the starting thread
            failure.append(exc)
            ready.set()
            return
        self._thread_loop = loop
        self._thread_stop = stop
        ready.set()
        try:
            await stop.wait()
        finally:
            await self.stop()

    def stop_thread(self, timeout: float = 10.0) -> None:
        """Stop a server started with :meth:`start_in_thread` and join its thread."""
        thread, loop, stop = self._thread, self._thread_loop, self._thread_stop
        if thread is None or loop is None or stop is None:
            return
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("FakeOpenAI thread did not stop in time")
        self._thread = self._thread_loop = self._thread_stop = None

    def __enter__(self) -> FakeOpenAI:
        return self.start_in_thread()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_thread()

    # -- request log --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def count(self, endpoint: str | None = None) -> int:
        """How many requests arrived (for one endpoint, or in all), logged or not."""
        with self._lock:
            return self._counts[endpoint] if endpoint is not None else self._counts.total()

    def last_request(self, endpoint: str | None = None) -> RecordedRequest:
        """The most recent logged request (for one endpoint); raises LookupError if none."""
        with self._lock:
            for request in reversed(self._log):
                if endpoint is None or request.endpoint == endpoint:
                    return request
        where = f" for endpoint {endpoint!r}" if endpoint is not None else ""
        raise LookupError(f"no request recorded{where}")

    def reset(self) -> None:
        """Clear the request log, the answer log, the counters and every pending fault."""
        with self._lock:
            self._log.clear()
            self._counts.clear()
            self._faults.clear()
        self._wire.clear()

    def _record(self, request: web.Request, endpoint: str, body: Any) -> None:
        with self._lock:
            self._counts[endpoint] += 1
            if self.log_requests:
                headers = {k.lower(): v for k, v in request.headers.items()}
                self._log.append(
                    RecordedRequest(
                        request.method, request.path, endpoint, headers, body, time.time()
                    )
                )

    # -- rate-limit headers -------------------------------------------------------------------

    def set_rate_limit_headers(self, headers: Mapping[str, str | int | float | None]) -> None:
        """Change the rate-limit headers sent with every response.

        Keys are header names, with or without the ``x-ratelimit-`` prefix
        (``"remaining-requests"``); a value of None removes that header.
        """
        updated = dict(self._rate_headers)
        for key, value in headers.items():
            name = key.lower()
            if not name.startswith("x-ratelimit-"):
                name = "x-ratelimit-" + name
            if value is None:
                updated.pop(name, None)
            else:
                updated[name] = str(value)
        self._rate_headers = updated  # swapped whole, so readers need no lock

    def reset_rate_limit_headers(self) -> None:
        """Restore :data:`DEFAULT_RATE_LIMIT_HEADERS`."""
        self._rate_headers = dict(DEFAULT_RATE_LIMIT_HEADERS)

    @property
    def rate_limit_header_values(self) -> dict[str, str]:
        """The rate-limit headers currently sent (a copy)."""
        return dict(self._rate_headers)

    def _headers(self, content_type: str | None = "application/json") -> dict[str, str]:
        headers = dict(self._rate_headers) if self.rate_limit_headers else {}
        if self.quota is not None and self.rate_limit_headers:
            headers.update(self.quota.headers())  # truthful: the quota's state right now
        headers["x-request-id"] = self._new_id("req_")
        if content_type is not None:
            headers["Content-Type"] = content_type
        return headers

    # -- faults -------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Queue ``fault``; faults are consumed in the order they were added."""
        with self._lock:
            self._faults.append(_PendingFault(fault, fault.times))

    @property
    def faults(self) -> list[Fault]:
        """Pending faults, with ``times`` set to the uses left."""
        with self._lock:
            return [dataclasses.replace(p.fault, times=p.remaining) for p in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for i, pending in enumerate(self._faults):
                if pending.fault.matches(endpoint):
                    pending.remaining -= 1
                    if pending.remaining <= 0:
                        del self._faults[i]
                    return pending.fault
        draw = self._wire.draw
        return draw(endpoint) if draw is not None else None

    def fail_next(
        self,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        endpoint: str | None = None,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The next ``times`` matching requests get an error ``status`` with OpenAI's body."""
        self.add_fault(
            Fault(
                "status",
                times=times,
                status=status,
                retry_after=retry_after,
                retry_after_ms=retry_after_ms,
                endpoint=endpoint,
                message=message,
                headers=headers,
            )
        )

    def rate_limit_next(
        self,
        *,
        times: int = 1,
        retry_after: float | None = 1.0,
        retry_after_ms: float | None = None,
        endpoint: str | None = None,
    ) -> None:
        """The next ``times`` matching requests get a 429 with ``retry-after``."""
        self.fail_next(
            429,
            times=times,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            endpoint=endpoint,
        )

    def drop_next(self, *, times: int = 1, endpoint: str | None = None) -> None:
        """The next ``times`` matching requests have their connection aborted, unanswered."""
        self.add_fault(Fault("drop", times=times, endpoint=endpoint))

    def truncate_next(
        self, *, after_chunks: int = 2, times: int = 1, endpoint: str | None = None
    ) -> None:
        """Streams end cleanly after ``after_chunks`` chunks; unary bodies are cut in half."""
        self.add_fault(Fault("truncate", times=times, endpoint=endpoint, after_chunks=after_chunks))

    def malformed_next(
        self, *, after_chunks: int = 2, times: int = 1, endpoint: str | None = None
    ) -> None:
        """Unary bodies are invalid JSON; streams carry one invalid chunk after ``after_chunks``."""
        self.add_fault(
            Fault("malformed", times=times, endpoint=endpoint, after_chunks=after_chunks)
        )

    def delay_next(self, delay: float, *, times: int = 1, endpoint: str | None = None) -> None:
        """The next ``times`` matching requests are answered normally after ``delay`` seconds."""
        self.add_fault(Fault("latency", times=times, endpoint=endpoint, delay=delay))

    def fail_stream_next(
        self,
        kind: Literal["response_failed", "response_incomplete", "stream_error"] = "stream_error",
        *,
        after_chunks: int = 2,
        times: int = 1,
        endpoint: str | None = None,
        message: str | None = None,
    ) -> None:
        """Queue one of the stream-level faults (see :class:`Fault`)."""
        self.add_fault(
            Fault(kind, times=times, endpoint=endpoint, after_chunks=after_chunks, message=message)
        )

    def stall_next(
        self, *, after_chunks: int = 2, times: int = 1, endpoint: str | None = None
    ) -> None:
        """Send ``after_chunks`` stream events (a unary answer: no headers), then hang."""
        self.add_fault(Fault("stall", times=times, endpoint=endpoint, after_chunks=after_chunks))

    def drip_next(
        self, interval: float = 0.05, *, times: int = 1, endpoint: str | None = None
    ) -> None:
        """Send every stream event (a unary body: in pieces) ``interval`` seconds apart."""
        self.add_fault(Fault("drip", times=times, endpoint=endpoint, interval=interval))

    def cut_next(
        self, *, after_chunks: int = 2, times: int = 1, endpoint: str | None = None
    ) -> None:
        """Send ``after_chunks`` stream events (a unary body: half), then reset the connection."""
        self.add_fault(Fault("cut", times=times, endpoint=endpoint, after_chunks=after_chunks))

    def draw_faults(self, draw: FaultDraw | None) -> None:
        """Give ``draw.rate`` of the requests without a queued fault a random fault from
        ``draw.faults``; None stops drawing."""
        self._wire.draw = draw

    @property
    def answers(self) -> list[AnswerRecord]:
        """Every answer sent while ``log_requests`` is on, oldest first (see :mod:`.wire`)."""
        return self._wire.records()

    # -- request plumbing ---------------------------------------------------------------------

    def _json_response(self, payload: bytes, status: int = 200) -> web.Response:
        return web.Response(body=payload, status=status, headers=self._headers())

    def _error_response(
        self,
        status: int,
        message: str,
        type_: str,
        *,
        param: str | None = None,
        code: str | None = None,
    ) -> web.Response:
        return self._json_response(_error_body(message, type_, param, code), status)

    def _fault_status_response(self, fault: Fault) -> web.Response:
        type_, code, default_message = _status_error_fields(fault.status)
        headers = self._headers()
        if fault.status == 429:
            wait = fault.retry_after if fault.retry_after is not None else 1.0
            headers["x-ratelimit-remaining-requests"] = "0"
            headers["x-ratelimit-reset-requests"] = format_duration(wait)
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        if fault.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{fault.retry_after_ms:g}"
        if fault.headers:
            headers.update(fault.headers)
        body = _error_body(fault.message or default_message, type_, None, code)
        return web.Response(body=body, status=fault.status, headers=headers)

    def _auth_error(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return self._error_response(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                "invalid_request_error",
            )
        if self.api_key is not None and token != self.api_key:
            shown = f"{token[:3]}***{token[-4:]}" if len(token) > 8 else "***"
            return self._error_response(
                401,
                f"Incorrect API key provided: {shown}.",
                "invalid_request_error",
                code="invalid_api_key",
            )
        return None

    async def _prelude(
        self, request: web.Request, endpoint: str, *, has_body: bool
    ) -> tuple[Any, web.StreamResponse | Fault | None]:
        """Read, log, wait, authenticate and pick a fault.

        Returns ``(body, outcome)`` where ``outcome`` is a response to send as is, a fault to
        apply to the normal answer, or None for a normal answer.
        """
        body: Any = None
        malformed = False
        if has_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                malformed = True
        self._record(request, endpoint, body)
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        auth_error = self._auth_error(request)
        if auth_error is not None:
            return body, auth_error
        if has_body and (malformed or not isinstance(body, dict)):
            return body, self._error_response(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload, but what was sent was not valid JSON.)",
                "invalid_request_error",
            )
        if self.quota is not None and endpoint in ("chat", "responses", "embeddings"):
            refused = self._quota_admit(request, endpoint, body)
            if refused is not None:
                return body, refused
        fault = self._take_fault(endpoint)
        if fault is None:
            return body, None
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault.kind == "latency":
            return body, None
        if fault.kind == "status":
            return body, self._fault_status_response(fault)
        if fault.kind == "drop":
            if request.transport is not None:
                request.transport.abort()
            return body, web.Response()
        return body, fault

    def _quota_admit(
        self, request: web.Request, endpoint: str, body: dict[str, Any]
    ) -> web.Response | None:
        """Charge the quota at arrival (testing/quotas.py); a 429 if it cannot cover it."""
        assert self.quota is not None
        charge, refusal = self.quota.admit(endpoint, body)
        if refusal is None:
            request[_QUOTA_CHARGE] = charge
            return None
        model = body.get("model") if isinstance(body.get("model"), str) else "the model"
        headers = self._headers()
        headers.update(refusal.retry_headers())
        payload = _error_body(
            refusal.message(str(model)), refusal.error_type, None, "rate_limit_exceeded"
        )
        return web.Response(body=payload, status=429, headers=headers)

    def _quota_settle(self, request: web.Request, used: int) -> None:
        """Reconcile a usage-based quota to the answer's real usage."""
        charge = request.get(_QUOTA_CHARGE)
        if self.quota is not None and charge is not None:
            self.quota.settle(charge, used)

    def _bad_request(self, exc: _BadRequest) -> web.Response:
        return self._error_response(400, exc.message, "invalid_request_error", param=exc.param)

    def _fault_as_status(self, fault: Fault) -> web.Response:
        return self._fault_status_response(dataclasses.replace(fault, kind="status"))

    async def _send_unary(
        self, request: web.Request, payload: bytes, fault: Fault | None
    ) -> web.StreamResponse:
        if fault is None or fault.kind in wire.WIRE_FAULT_KINDS:
            return await wire.send_unary(
                self._wire,
                request,
                payload,
                self._headers(),
                fault,
                keep=self.log_requests,
                running=lambda: self.running,
            )
        if fault.kind == "malformed":
            return self._json_response(_MALFORMED_JSON)
        if fault.kind == "truncate":
            response = web.StreamResponse(status=200, headers=self._headers())
            response.content_length = len(payload)
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            if request.transport is not None:
                request.transport.close()  # flushes the half body, then closes
            return response
        return self._fault_as_status(fault)

    async def _send_stream(
        self,
        request: web.Request,
        events: list[bytes],
        fault: Fault | None,
        cut: int,
        failure_event: bytes | None = None,
    ) -> web.StreamResponse:
        """Send ``events``; a fault keeps the first ``cut`` and replaces the rest."""
        if fault is not None:
            if fault.kind == "truncate":
                events = events[:cut]
            elif fault.kind == "malformed":
                events = [*events[:cut], b"data: " + _MALFORMED_JSON + b"\n\n"]
            elif failure_event is not None:
                events = [*events[:cut], failure_event]
        headers = self._headers("text/event-stream; charset=utf-8")
        headers["Cache-Control"] = "no-cache"
        return await wire.send_stream(
            self._wire,
            request,
            events,
            headers,
            fault,
            cut,
            chunk_delay=self.chunk_delay,
            keep=self.log_requests,
            running=lambda: self.running,
        )

    def _usage_numbers(self, answer: _Answer) -> tuple[int, int, int, int]:
        """(prompt, completion incl. reasoning, cached, reasoning) tokens for ``answer``."""
        visible = self.output_tokens if self.output_tokens is not None else answer.visible_tokens
        reasoning = self.reasoning_tokens
        cached = min(self.cached_tokens, answer.prompt_tokens)
        return answer.prompt_tokens, visible + reasoning, cached, reasoning

    # -- chat completions ---------------------------------------------------------------------

    def _refused(self, answer: _Answer) -> _Answer:
        """The answer as a refusal, when :attr:`refusal` is set: OpenAI then sends the text in
        ``message.refusal`` (Chat) or an ``output_text``-less ``refusal`` content part
        (Responses), streamed as ``delta.refusal`` / ``response.refusal.delta``."""
        if self.refusal is None or answer.tool_calls:
            return answer
        return dataclasses.replace(
            answer, text=None, refusal=self.refusal, visible_tokens=count_tokens(self.refusal)
        )

    def _chat_answer(self, body: dict[str, Any]) -> _Answer:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest("you must provide a model parameter", "model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("'messages' must be a non-empty array", "messages")
        n = body.get("n")
        if n is not None and n != 1:
            raise _BadRequest("FakeOpenAI supports only n=1", "n")
        response_format = body.get("response_format")
        schema = None
        json_object = False
        if isinstance(response_format, dict):
            if response_format.get("type") == "json_schema":
                spec = response_format.get("json_schema")
                schema = spec.get("schema", {}) if isinstance(spec, dict) else {}
            json_object = response_format.get("type") == "json_object"
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        specs = _tool_specs(body.get("tools"), flat=False)
        return self._refused(
            _plan(
                _normalize(messages),
                specs=specs,
                tool_choice=body.get("tool_choice"),
                parallel=body.get("parallel_tool_calls", True) is not False,
                scripted=self._scripted(messages, "chat", body, specs),
                flat=False,
                schema=schema,
                json_object=json_object,
                stop=body.get("stop"),
                max_tokens=max_tokens,
            )
        )

    def _scripted(
        self, conversation: Any, api: tools_script.Api, body: dict[str, Any], specs: list[Any]
    ) -> tools_script.Turn | None:
        """OpenAI's 400 for a broken tool transcript, then the tool script's turn, if any."""
        if api == "chat" or body.get("previous_response_id") is None:
            problem = tools_script.transcript_error(conversation, api)
            if problem is not None:
                raise _BadRequest(*problem)
        try:
            return tools_script.turn_calls(
                conversation,
                default=self.tool_script,
                tools_offered=bool(specs),
                tool_choice=body.get("tool_choice"),
                parallel=body.get("parallel_tool_calls", True) is not False,
            )
        except ValueError as exc:
            raise _BadRequest(f"FakeOpenAI: malformed <fake-tools> directive: {exc}") from exc

    def _chat_usage(self, answer: _Answer) -> dict[str, Any]:
        prompt, completion, cached, reasoning = self._usage_numbers(answer)
        details: dict[str, int] = {"cached_tokens": cached, "audio_tokens": 0}
        if self.cache_write_tokens:
            details["cache_write_tokens"] = min(self.cache_write_tokens, prompt - cached)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": details,
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        body, outcome = await self._prelude(request, "chat", has_body=True)
        if isinstance(outcome, web.StreamResponse):
            return outcome
        fault = outcome
        try:
            answer = self._chat_answer(body)
        except _BadRequest as exc:
            return self._bad_request(exc)
        stream = bool(body.get("stream"))
        if fault is not None and fault.kind == "response_incomplete":
            answer = _truncate_answer(answer, fault.after_chunks)
            fault = None
        elif fault is not None and fault.kind in ("response_failed", "stream_error") and not stream:
            return self._fault_as_status(fault)
        self._quota_settle(request, sum(self._usage_numbers(answer)[:2]))
        model = body["model"]
        completion_id = self._new_id("chatcmpl-")
        created = int(time.time())
        if not stream:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": answer.text,
                "refusal": answer.refusal,
                "annotations": [],
            }
            if answer.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": call.call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in answer.tool_calls
                ]
            payload = {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": answer.finish_reason,
                    }
                ],
                "usage": self._chat_usage(answer),
                "service_tier": "default",
                "system_fingerprint": "fp_fakeopenai",
            }
            return await self._send_unary(request, _dumps(payload), fault)
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        events = self._chat_stream_events(answer, completion_id, created, model, include_usage)
        # a stream fault always strikes before the finish_reason chunk
        cut = min(fault.after_chunks, len(events) - 2 - include_usage) if fault else 0
        failure = None
        if fault is not None and fault.kind in ("response_failed", "stream_error"):
            type_, code, default_message = _status_error_fields(fault.status)
            failure = b"data: " + _error_body(fault.message or default_message, type_, None, code)
            failure += b"\n\n"
        return await self._send_stream(request, events, fault, cut, failure)

    def _chat_stream_events(
        self, answer: _Answer, completion_id: str, created: int, model: str, include_usage: bool
    ) -> list[bytes]:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            obj: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fakeopenai",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if include_usage:
                obj["usage"] = None
            return b"data: " + _dumps(obj) + b"\n\n"

        if answer.tool_calls:
            events = [chunk({"role": "assistant", "content": None, "refusal": None})]
            for index, call in enumerate(answer.tool_calls):
                events.append(
                    chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": call.call_id,
                                    "type": "function",
                                    "function": {"name": call.name, "arguments": ""},
                                }
                            ]
                        }
                    )
                )
                for piece in _argument_pieces(call.arguments):
                    events.append(
                        chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                    )
        elif answer.refusal is not None:
            events = [chunk({"role": "assistant", "content": None, "refusal": ""})]
            events.extend(chunk({"refusal": piece}) for piece in _pieces(answer.refusal))
        else:
            events = [chunk({"role": "assistant", "content": "", "refusal": None})]
            events.extend(chunk({"content": piece}) for piece in _pieces(answer.text or ""))
        events.append(chunk({}, answer.finish_reason))
        if include_usage:
            usage_chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fakeopenai",
                "choices": [],
                "usage": self._chat_usage(answer),
            }
            events.append(b"data: " + _dumps(usage_chunk) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return events

    # -- Responses API ------------------------------------------------------------------------

    def _responses_answer(self, body: dict[str, Any]) -> _Answer:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest("you must provide a model parameter", "model")
        conversation = body.get("input")
        if not isinstance(conversation, (str, list)):
            raise _BadRequest("'input' must be a string or an array of input items", "input")
        instructions = body.get("instructions")
        schema = None
        json_object = False
        text_config = body.get("text")
        if isinstance(text_config, dict) and isinstance(text_config.get("format"), dict):
            fmt = text_config["format"]
            if fmt.get("type") == "json_schema":
                schema = fmt.get("schema", {})
            json_object = fmt.get("type") == "json_object"
        specs = _tool_specs(body.get("tools"), flat=True)
        return self._refused(
            _plan(
                _normalize(conversation, instructions if isinstance(instructions, str) else None),
                specs=specs,
                tool_choice=body.get("tool_choice"),
                parallel=body.get("parallel_tool_calls", True) is not False,
                scripted=self._scripted(conversation, "responses", body, specs),
                flat=True,
                schema=schema,
                json_object=json_object,
                stop=None,
                max_tokens=body.get("max_output_tokens"),
            )
        )

    def _responses_usage(self, answer: _Answer) -> dict[str, Any]:
        prompt, completion, cached, reasoning = self._usage_numbers(answer)
        return {
            "input_tokens": prompt,
            "input_tokens_details": {
                "cached_tokens": cached,
                "cache_write_tokens": min(self.cache_write_tokens, prompt - cached),
            },
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion,
        }

    def _response_object(
        self,
        body: dict[str, Any],
        response_id: str,
        created: int,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        *,
        error: dict[str, Any] | None = None,
        incomplete_reason: str | None = None,
    ) -> dict[str, Any]:
        return {
            "id": response_id,
            "object": "response",
            "created_at": created,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": (
                {"reason": incomplete_reason} if incomplete_reason is not None else None
            ),
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": body["model"],
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": usage,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def _reasoning_items(self, body: dict[str, Any], answer: _Answer) -> list[dict[str, Any]]:
        """A reasoning item with a summary first, when the request asks for a summary
        (``reasoning={"summary": "auto" | "concise" | "detailed"}``), as OpenAI's reasoning
        models send it."""
        reasoning = body.get("reasoning")
        if not isinstance(reasoning, dict) or reasoning.get("summary") is None:
            return []
        what = "call a tool" if answer.tool_calls else "answer directly"
        summary = f"**Planning the reply**\n\nThe request is clear; I will {what}."
        return [
            {
                "type": "reasoning",
                "id": self._new_id("rs_"),
                "summary": [{"type": "summary_text", "text": summary}],
            }
        ]

    def _output_items(self, answer: _Answer, item_status: str) -> list[dict[str, Any]]:
        if answer.tool_calls:
            return [
                {
                    "type": "function_call",
                    "id": "fc_" + _short_hash(call.call_id),
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "status": item_status,
                }
                for call in answer.tool_calls
            ]
        return [
            {
                "type": "message",
                "id": self._new_id("msg_"),
                "role": "assistant",
                "status": item_status,
                "content": [
                    {"type": "refusal", "refusal": answer.refusal}
                    if answer.refusal is not None
                    else {"type": "output_text", "text": answer.text or "", "annotations": []}
                ],
            }
        ]

    async def _handle_responses(self, request: web.Request) -> web.StreamResponse:
        body, outcome = await self._prelude(request, "responses", has_body=True)
        if isinstance(outcome, web.StreamResponse):
            return outcome
        fault = outcome
        try:
            answer = self._responses_answer(body)
        except _BadRequest as exc:
            return self._bad_request(exc)
        stream = bool(body.get("stream"))
        if fault is not None and fault.kind == "response_incomplete":
            answer = _truncate_answer(answer, fault.after_chunks)
            fault = None
        if fault is not None and fault.kind == "stream_error" and not stream:
            return self._fault_as_status(fault)
        self._quota_settle(request, sum(self._usage_numbers(answer)[:2]))
        incomplete = answer.finish_reason == "length"
        status = "incomplete" if incomplete else "completed"
        reason = "max_output_tokens" if incomplete else None
        response_id = self._new_id("resp_")
        created = int(time.time())
        output = self._reasoning_items(body, answer) + self._output_items(answer, status)
        usage = self._responses_usage(answer)
        if not stream:
            if fault is not None and fault.kind == "response_failed":
                payload = self._response_object(
                    body, response_id, created, "failed", [], None, error=self._failure(fault)
                )
                return self._json_response(_dumps(payload))
            payload = self._response_object(
                body, response_id, created, status, output, usage, incomplete_reason=reason
            )
            return await self._send_unary(request, _dumps(payload), fault)
        final = self._response_object(
            body, response_id, created, status, output, usage, incomplete_reason=reason
        )
        events = self._responses_stream_events(body, response_id, created, answer, final)
        # a stream fault always strikes before the terminal response.completed event
        cut = min(fault.after_chunks, len(events) - 1) if fault else 0
        failure = None
        if fault is not None and fault.kind == "response_failed":
            failed = self._response_object(
                body, response_id, created, "failed", [], None, error=self._failure(fault)
            )
            failure = _sse_event("response.failed", {"response": failed, "sequence_number": cut})
        elif fault is not None and fault.kind == "stream_error":
            failure = _sse_event(
                "error",
                {
                    "code": "server_error",
                    "message": fault.message or "The server had an error while streaming.",
                    "param": None,
                    "sequence_number": cut,
                },
            )
        return await self._send_stream(request, events, fault, cut, failure)

    @staticmethod
    def _failure(fault: Fault) -> dict[str, Any]:
        return {
            "code": "server_error",
            "message": fault.message or "The model failed to generate a response.",
        }

    def _responses_stream_events(
        self,
        body: dict[str, Any],
        response_id: str,
        created: int,
        answer: _Answer,
        final: dict[str, Any],
    ) -> list[bytes]:
        events: list[bytes] = []

        def emit(kind: str, data: dict[str, Any]) -> None:
            data["sequence_number"] = len(events)
            events.append(_sse_event(kind, data))

        started = self._response_object(body, response_id, created, "in_progress", [], None)
        emit("response.created", {"response": started})
        emit("response.in_progress", {"response": started})
        for index, item in enumerate(final["output"]):
            item_id = item["id"]
            if item["type"] == "function_call":
                emit(
                    "response.output_item.added",
                    {
                        "output_index": index,
                        "item": {**item, "arguments": "", "status": "in_progress"},
                    },
                )
                for piece in _argument_pieces(item["arguments"]):
                    emit(
                        "response.function_call_arguments.delta",
                        {"item_id": item_id, "output_index": index, "delta": piece},
                    )
                emit(
                    "response.function_call_arguments.done",
                    {
                        "item_id": item_id,
                        "output_index": index,
                        "name": item["name"],
                        "arguments": item["arguments"],
                    },
                )
            elif item["type"] == "reasoning":
                emit(
                    "response.output_item.added",
                    {"output_index": index, "item": {**item, "summary": []}},
                )
                for n, summary in enumerate(item["summary"]):
                    position = {"item_id": item_id, "output_index": index, "summary_index": n}
                    emit(
                        "response.reasoning_summary_part.added",
                        {**position, "part": {**summary, "text": ""}},
                    )
                    for piece in _pieces(summary["text"]):
                        emit("response.reasoning_summary_text.delta", {**position, "delta": piece})
                    emit(
                        "response.reasoning_summary_text.done",
                        {**position, "text": summary["text"]},
                    )
                    emit("response.reasoning_summary_part.done", {**position, "part": summary})
            elif item["content"][0]["type"] == "refusal":
                part = item["content"][0]
                emit(
                    "response.output_item.added",
                    {
                        "output_index": index,
                        "item": {**item, "content": [], "status": "in_progress"},
                    },
                )
                position = {"item_id": item_id, "output_index": index, "content_index": 0}
                emit("response.content_part.added", {**position, "part": {**part, "refusal": ""}})
                for piece in _pieces(part["refusal"]):
                    emit("response.refusal.delta", {**position, "delta": piece})
                emit("response.refusal.done", {**position, "refusal": part["refusal"]})
                emit("response.content_part.done", {**position, "part": part})
            else:
                part = item["content"][0]
                emit(
                    "response.output_item.added",
                    {
                        "output_index": index,
                        "item": {**item, "content": [], "status": "in_progress"},
                    },
                )
                position = {"item_id": item_id, "output_index": index, "content_index": 0}
                emit(
                    "response.content_part.added",
                    {**position, "part": {**part, "text": ""}},
                )
                for piece in _pieces(part["text"]):
                    emit("response.output_text.delta", {**position, "delta": piece, "logprobs": []})
                emit(
                    "response.output_text.done",
                    {**position, "text": part["text"], "logprobs": []},
                )
                emit("response.content_part.done", {**position, "part": part})
            emit("response.output_item.done", {"output_index": index, "item": item})
        terminal = (
            "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        )
        emit(terminal, {"response": final})
        return events

    # -- embeddings ---------------------------------------------------------------------------

    def _embedding_inputs(self, body: dict[str, Any]) -> list[list[str]]:
        """Each input as its list of words (token ids become ``tok<id>`` words)."""
        value = body.get("input")
        items: list[Any]
        if isinstance(value, str):
            items = [value]
        elif isinstance(value, list) and value:
            items = [value] if all(isinstance(v, int) for v in value) else list(value)
        else:
            raise _BadRequest("'input' must be a non-empty string or array", "input")
        words: list[list[str]] = []
        for item in items:
            if isinstance(item, str):
                if not item:
                    raise _BadRequest("'input' cannot contain an empty string", "input")
                words.append(_WORD_RE.findall(item.lower()))
            elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
                words.append([f"tok{t}" for t in item])
            else:
                raise _BadRequest("'input' items must be strings or arrays of token ids", "input")
        return words

    async def _handle_embeddings(self, request: web.Request) -> web.StreamResponse:
        body, outcome = await self._prelude(request, "embeddings", has_body=True)
        if isinstance(outcome, web.StreamResponse):
            return outcome
        fault = outcome
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self._bad_request(_BadRequest("you must provide a model parameter", "model"))
        try:
            inputs = self._embedding_inputs(body)
        except _BadRequest as exc:
            return self._bad_request(exc)
        dimensions = body.get("dimensions")
        if dimensions is None:
            dimensions = _MODEL_DIMENSIONS.get(model, _DEFAULT_DIMENSIONS)
        if (
            not isinstance(dimensions, int)
            or isinstance(dimensions, bool)
            or not 1 <= dimensions <= _MAX_DIMENSIONS
        ):
            return self._bad_request(
                _BadRequest(
                    f"'dimensions' must be an integer in 1..{_MAX_DIMENSIONS}", "dimensions"
                )
            )
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            return self._bad_request(
                _BadRequest("'encoding_format' must be 'float' or 'base64'", "encoding_format")
            )
        raw_input = body["input"]
        data = []
        tokens = 0
        for index, words in enumerate(inputs):
            vector = _embed_words(words, dimensions)
            if isinstance(raw_input, str) or (
                isinstance(raw_input, list) and isinstance(raw_input[index], str)
            ):
                tokens += count_tokens(
                    raw_input if isinstance(raw_input, str) else raw_input[index]
                )
            else:
                tokens += len(words)
            embedding: list[float] | str = vector
            if encoding == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        self._quota_settle(request, tokens)
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return await self._send_unary(request, _dumps(payload), fault)

    # -- models and the rest ------------------------------------------------------------------

    async def _handle_models(self, request: web.Request) -> web.StreamResponse:
        _, outcome = await self._prelude(request, "models", has_body=False)
        if isinstance(outcome, web.StreamResponse):
            return outcome
        return await self._send_unary(request, _dumps(models_api.models_list(self.models)), outcome)

    async def _handle_model(self, request: web.Request) -> web.StreamResponse:
        _, outcome = await self._prelude(request, "models", has_body=False)
        if isinstance(outcome, web.StreamResponse):
            return outcome
        model = request.match_info["model"]
        if model not in self.models:
            message, param, code = models_api.not_found(model)
            return self._error_response(
                404, message, "invalid_request_error", param=param, code=code
            )
        payload = models_api.model_object(model, self.models[model])
        return await self._send_unary(request, _dumps(payload), outcome)

    async def _handle_unknown(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self._record(request, "other", None)
        return self._error_response(
            404,
            f"Invalid URL ({request.method} {request.path})",
            "invalid_request_error",
        )


def _sse_event(kind: str, data: dict[str, Any]) -> bytes:
    data = {"type": kind, **data}
    return b"event: " + kind.encode() + b"\ndata: " + _dumps(data) + b"\n\n"
