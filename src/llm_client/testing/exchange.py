"""The request plumbing every endpoint shares.

Reading, logging, authenticating and charging a request, picking its fault (:meth:`_prelude`),
and sending the answer as JSON or as a stream (through :mod:`.wire`). The API handlers
(``chat.py``, ``responses.py``, ``embeddings.py``) build on :class:`Exchange`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import tools_script, wire
from .answers import _Answer, _BadRequest, _truncate_answer
from .content import _dumps, count_tokens
from .faults import Fault, FaultInjection
from .headers import RateLimitHeaders, format_duration

__all__ = ["Exchange", "RecordedRequest"]

_QUOTA_CHARGE = web.RequestKey("llm_client_quota_charge", int)
_MALFORMED_JSON = b'{"id": "broken", "object": this is not json'


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


def _sse_event(kind: str, data: dict[str, Any]) -> bytes:
    data = {"type": kind, **data}
    return b"event: " + kind.encode() + b"\ndata: " + _dumps(data) + b"\n\n"


class Exchange(RateLimitHeaders, FaultInjection):
    """State and plumbing shared by the endpoint handlers of
    :class:`~llm_client.testing.server.FakeOpenAI` (which sets every attribute below)."""

    latency: float
    chunk_delay: float
    api_key: str | None
    output_tokens: int | None
    reasoning_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    tool_script: tools_script.ToolScript | None
    refusal: str | None
    log_requests: bool
    _log: list[RecordedRequest]
    _counts: Counter[str]

    _runner: web.AppRunner | None

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._runner is not None

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

    async def _admit_answer(
        self,
        request: web.Request,
        endpoint: str,
        plan: Callable[[dict[str, Any]], _Answer],
        unary_status_faults: frozenset[str],
    ) -> web.StreamResponse | tuple[dict[str, Any], _Answer, Fault | None, bool]:
        """What a model endpoint does before it writes its answer: the prelude, the planned
        answer (a 400 for a bad request), a ``response_incomplete`` fault applied to it, the
        faults that become a plain error status when the request is not streamed, and the
        quota settled to the answer's usage. Returns a response to send as is, or
        ``(body, answer, fault, stream)``."""
        body, outcome = await self._prelude(request, endpoint, has_body=True)
        if isinstance(outcome, web.StreamResponse):
            return outcome
        fault = outcome
        try:
            answer = plan(body)
        except _BadRequest as exc:
            return self._bad_request(exc)
        stream = bool(body.get("stream"))
        if fault is not None and fault.kind == "response_incomplete":
            answer = _truncate_answer(answer, fault.after_chunks)
            fault = None
        elif fault is not None and fault.kind in unary_status_faults and not stream:
            return self._fault_as_status(fault)
        self._quota_settle(request, sum(self._usage_numbers(answer)[:2]))
        return body, answer, fault, stream

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

    def _refused(self, answer: _Answer) -> _Answer:
        """The answer as a refusal, when :attr:`refusal` is set: OpenAI then sends the text in
        ``message.refusal`` (Chat) or an ``output_text``-less ``refusal`` content part
        (Responses), streamed as ``delta.refusal`` / ``response.refusal.delta``."""
        if self.refusal is None or answer.tool_calls:
            return answer
        return dataclasses.replace(
            answer, text=None, refusal=self.refusal, visible_tokens=count_tokens(self.refusal)
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
