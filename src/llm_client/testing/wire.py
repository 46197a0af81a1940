"""How the fake server's answers go out on the wire: stream faults and the answer log.

Three faults act on the bytes of an answer after its headers are sent:

* ``"stall"``: send ``after_chunks`` stream events (a unary answer: nothing), then send nothing
  more and keep the connection open until the client closes it — a model that hangs;
* ``"drip"``: send every event (a unary body: in eight pieces) with ``interval`` seconds
  between them — a slow model or a slow network;
* ``"cut"``: send ``after_chunks`` events (a unary body: half of it), then reset the
  connection — a proxy or a load balancer dropping it mid-answer.

Every answer the server starts to send is kept as an :class:`AnswerRecord` (while
``log_requests`` is on): what was sent, whether the usage reached the client, and when and how
the connection ended. The server learns at once that a client went away (its handlers are
cancelled on disconnect), so a test can check that a client closes an abandoned stream
promptly: ``record.closed - t0``.

:class:`FaultDraw` makes the server pick a fault at random for a share of requests (a soak).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

if TYPE_CHECKING:
    from .faults import Fault

__all__ = ["WIRE_FAULT_KINDS", "AnswerRecord", "FaultDraw", "Outcome", "WireLog"]

#: The fault kinds this module carries out.
WIRE_FAULT_KINDS: frozenset[str] = frozenset({"stall", "drip", "cut"})
#: Pieces a dripped unary body is sent in.
_DRIP_PIECES = 8

Outcome = Literal["sending", "completed", "client_closed", "cut", "server_stopped"]


@dataclass
class AnswerRecord:
    """One answer the server started to send.

    ``opened`` and ``closed`` are ``time.monotonic()`` readings (comparable with the test's own
    clock); ``closed`` is None while the answer is still going out. ``usage`` is the usage
    object the client received (None if it never got that far): what the server "billed".
    """

    endpoint: str
    stream: bool
    body: Any
    opened: float
    events_total: int
    events_sent: int = 0
    outcome: Outcome = "sending"
    closed: float | None = None
    usage: Mapping[str, Any] | None = None
    fault: str | None = None

    @property
    def prompt(self) -> str | None:
        """The last user message (or the ``input`` string) of the request, for matching."""
        body = self.body if isinstance(self.body, dict) else {}
        value = body.get("messages", body.get("input"))
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            for item in reversed(value):
                if isinstance(item, dict) and item.get("role") == "user":
                    content = item.get("content")
                    return content if isinstance(content, str) else json.dumps(content)
        return None

    @property
    def billed_tokens(self) -> tuple[int, int]:
        """(input, output) tokens of the usage the client received; (0, 0) if none."""
        usage = self.usage or {}
        inp = usage.get("prompt_tokens", usage.get("input_tokens", 0))
        out = usage.get("completion_tokens", usage.get("output_tokens", 0))
        return int(inp or 0), int(out or 0)


@dataclass
class FaultDraw:
    """Pick a fault at random for ``rate`` of the requests that have no queued fault.

    ``faults`` are drawn uniformly (repeat one to weigh it more); ``seed`` makes a run
    repeatable. Only faults whose ``endpoint`` matches the request are drawn.
    """

    rate: float
    faults: Sequence[Fault]
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {self.rate!r}")
        if not self.faults:
            raise ValueError("faults must not be empty")
        self._rng = random.Random(self.seed)

    def __call__(self, endpoint: str) -> Fault | None:
        candidates = [f for f in self.faults if f.matches(endpoint)]
        with self._lock:
            if not candidates or self._rng.random() >= self.rate:
                return None
            return self._rng.choice(candidates)


class WireLog:
    """The answer log and the fault draw of one server (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[AnswerRecord] = []
        self.draw: Callable[[str], Fault | None] | None = None

    def records(self) -> list[AnswerRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    async def _open(
        self, request: web.Request, endpoint: str, *, stream: bool, total: int, keep: bool
    ) -> AnswerRecord:
        body = None
        if keep:
            try:
                body = await request.json()  # the body was read already: aiohttp keeps it
            except ValueError:
                body = None
        record = AnswerRecord(endpoint, stream, body, time.monotonic(), total)
        if keep:
            with self._lock:
                self._records.append(record)
        return record


def _endpoint(request: web.Request) -> str:
    path = request.path
    for name in ("chat", "responses", "embeddings", "models"):
        if name in path:
            return name
    return "other"


def _usage_in(event: bytes) -> Mapping[str, Any] | None:
    """The usage object carried by one SSE event or JSON body, if any."""
    if b'"usage":{' not in event:
        return None
    text = event.decode()
    for line in text.splitlines() or [text]:
        payload = line[len("data: ") :] if line.startswith("data: ") else line
        try:
            obj = json.loads(payload)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        usage = obj.get("usage")
        if usage is None and isinstance(obj.get("response"), dict):
            usage = obj["response"].get("usage")
        if isinstance(usage, dict):
            return usage
    return None


def _finish(record: AnswerRecord, outcome: Outcome) -> None:
    if record.closed is None:
        record.outcome = outcome
        record.closed = time.monotonic()


def _gone(running: bool) -> Outcome:
    return "client_closed" if running else "server_stopped"


async def send_stream(
    log: WireLog,
    request: web.Request,
    events: list[bytes],
    headers: dict[str, str],
    fault: Fault | None,
    cut: int,
    *,
    chunk_delay: float,
    keep: bool,
    running: Callable[[], bool],
) -> web.StreamResponse:
    """Send ``events`` as an SSE stream, carrying out a wire fault, and log how it went."""
    kind = fault.kind if fault is not None and fault.kind in WIRE_FAULT_KINDS else None
    if kind in ("stall", "cut"):
        events = events[:cut]
    delay = fault.interval if kind == "drip" and fault is not None else chunk_delay
    record = await log._open(request, _endpoint(request), stream=True, total=len(events), keep=keep)
    record.fault = kind
    response = web.StreamResponse(status=200, headers=headers)
    try:
        await response.prepare(request)
        if delay > 0:
            for event in events:
                await response.write(event)
                record.events_sent += 1
                if keep:
                    record.usage = _usage_in(event) or record.usage
                await asyncio.sleep(delay)
        else:  # one write: same bytes, far fewer syscalls
            await response.write(b"".join(events))
            record.events_sent = len(events)
            if keep:
                for event in reversed(events[-3:]):
                    record.usage = record.usage or _usage_in(event)
        if kind == "stall":
            await asyncio.Event().wait()  # until the client leaves (the handler is cancelled)
        if kind == "cut":
            if request.transport is not None:
                request.transport.abort()
            _finish(record, "cut")
            return response
        await response.write_eof()
    except (asyncio.CancelledError, ConnectionError):
        _finish(record, _gone(running()))
        raise
    _finish(record, "completed")
    return response


async def send_unary(
    log: WireLog,
    request: web.Request,
    payload: bytes,
    headers: dict[str, str],
    fault: Fault | None,
    *,
    keep: bool,
    running: Callable[[], bool],
) -> web.StreamResponse:
    """Send a JSON body, carrying out a wire fault (or none), and log it."""
    kind = fault.kind if fault is not None and fault.kind in WIRE_FAULT_KINDS else None
    if kind is None and not keep:
        return web.Response(body=payload, status=200, headers=headers)
    record = await log._open(request, _endpoint(request), stream=False, total=1, keep=keep)
    record.fault = kind
    if kind is None:
        record.usage = _usage_in(payload)
        record.events_sent = 1
        _finish(record, "completed")
        return web.Response(body=payload, status=200, headers=headers)
    response = web.StreamResponse(status=200, headers=headers)
    response.content_length = len(payload)
    try:
        if kind == "stall":
            await asyncio.Event().wait()  # headers never come: the client has to give up
        await response.prepare(request)
        if kind == "cut":
            await response.write(payload[: len(payload) // 2])
            if request.transport is not None:
                request.transport.abort()
            _finish(record, "cut")
            return response
        assert fault is not None
        step = max(1, -(-len(payload) // _DRIP_PIECES))
        for start in range(0, len(payload), step):
            await response.write(payload[start : start + step])
            await asyncio.sleep(fault.interval)
        await response.write_eof()
    except (asyncio.CancelledError, ConnectionError):
        _finish(record, _gone(running()))
        raise
    record.usage = _usage_in(payload)
    record.events_sent = 1
    _finish(record, "completed")
    return response
