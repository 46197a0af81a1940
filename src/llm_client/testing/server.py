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

This module holds :class:`FakeOpenAI` itself: its options, routes, lifecycle and request log.
Each API is answered by its own mixin (``chat.py``, ``responses.py``, ``embeddings.py``; the
Files and Batch APIs in ``files.py`` and ``batches.py``) built on the shared plumbing of
``exchange.py``; ``faults.py`` holds the fault queue and ``headers.py`` the rate-limit headers.
The public names are re-exported here and from :mod:`llm_client.testing`.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import threading
from collections import Counter
from types import TracebackType

from aiohttp import web

from . import batches as batches_api
from . import models_api, tools_script, wire
from .chat import ChatAPI
from .content import _dumps, count_tokens, expected_text, prompt_tokens
from .embeddings import EmbeddingsAPI, embed_text
from .exchange import RecordedRequest
from .faults import ENDPOINTS, FAULT_KINDS, Fault, FaultKind, _PendingFault
from .headers import DEFAULT_RATE_LIMIT_HEADERS, format_duration
from .quotas import Quota
from .responses import ResponsesAPI
from .wire import AnswerRecord, FaultDraw

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

_SHUTDOWN_TIMEOUT = 0.2


class FakeOpenAI(ChatAPI, ResponsesAPI, EmbeddingsAPI):
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
        #: The Files and Batch APIs (``/v1/files``, ``/v1/batches``): see ``batches.py``
        #: (and ``files.py``, which it extends).
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

    @property
    def answers(self) -> list[AnswerRecord]:
        """Every answer sent while ``log_requests`` is on, oldest first (see :mod:`.wire`)."""
        return self._wire.records()

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
