"""The fake server's Batch API, ``/v1/batches``: batches, their lifecycle and their answers.

:class:`BatchesAPI` is also the fake's Files API (``/v1/files``, in :mod:`.files`, which it
extends): a batch reads its input file there and writes its output and error files there.
Shapes follow openai-python's types (``FileObject``, ``Batch``, ``BatchRequestCounts``,
``BatchError``, ``BatchUsage``) and openai-openapi's ``BatchRequestOutput`` for the lines of
the output and error files:

* ``POST /v1/batches`` (``input_file_id``, ``endpoint``, ``completion_window`` which must be
  ``"24h"``, ``metadata``), ``GET /v1/batches/{id}``, ``GET /v1/batches``,
  ``POST /v1/batches/{id}/cancel``.

The lifecycle is OpenAI's: ``validating`` -> ``in_progress`` -> ``finalizing`` ->
``completed``; or ``failed`` when the input file is invalid (not JSONL, a ``custom_id``
repeated, a line whose ``url`` is not the batch's endpoint, more than 50,000 requests, more
than 200 MB, more than one model, more than 50,000 embedding inputs: the checks of
:mod:`.batch_input`), with ``errors.data`` naming the line; ``cancelling`` -> ``cancelled``
after a cancel (partial results in the output file); ``expired`` when
:meth:`BatchesAPI.expire` is called (the completion window passing), where unfinished
requests go to the error file with code ``batch_expired``.

Each request line is answered by the fake server itself: the batch posts it to its own
``/v1/...`` endpoint, so injected faults apply (a 500 there becomes a line of the error file)
and the request log shows it. A line answered 200 goes to the output file, any other status
to the error file (OpenAI's split).

Tests steer the clock: ``hold = True`` keeps new batches in ``validating`` until
:meth:`BatchesAPI.release`; ``expire(id)`` ends a batch's window now.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import ClientSession, web

from .batch_input import MAX_BYTES as MAX_BYTES
from .batch_input import MAX_EMBEDDING_INPUTS as MAX_EMBEDDING_INPUTS
from .batch_input import MAX_REQUESTS as MAX_REQUESTS
from .batch_input import check_input
from .files import FilesAPI, _File
from .files import invalid_request as _error

if TYPE_CHECKING:
    from .server import FakeOpenAI

__all__ = ["MAX_BYTES", "MAX_EMBEDDING_INPUTS", "MAX_REQUESTS", "BatchesAPI"]

_ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings")
_TERMINAL = ("failed", "completed", "expired", "cancelled")
_WINDOW = 24 * 3600


@dataclass
class _Batch:
    data: dict[str, Any]
    file: _File | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[bytes] = field(default_factory=list)
    errors: list[bytes] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    usage: dict[str, int] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class BatchesAPI(FilesAPI):
    """Files and batches of one :class:`~llm_client.testing.server.FakeOpenAI`."""

    def __init__(self, server: FakeOpenAI, *, concurrency: int = 16) -> None:
        super().__init__(server)
        self.concurrency = concurrency
        self.batches: dict[str, _Batch] = {}
        #: Keep new batches in ``validating`` until :meth:`release` (to watch or cancel them).
        self.hold = False
        self._released = asyncio.Event()

    def add_routes(self, router: web.UrlDispatcher) -> None:
        super().add_routes(router)
        router.add_post("/v1/batches", self._create_batch)
        router.add_get("/v1/batches", self._list_batches)
        router.add_get("/v1/batches/{batch_id}", self._get_batch)
        router.add_post("/v1/batches/{batch_id}/cancel", self._cancel_batch)

    async def aclose(self) -> None:
        """Stop the batches still running (the server is stopping)."""
        tasks = [b.task for b in self.batches.values() if b.task is not None and not b.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- steering from tests ----------------------------------------------------------------

    def release(self) -> None:
        """Let held batches run (thread-safe when the server runs in a thread)."""
        self.hold = False
        loop = self.server._thread_loop
        if loop is not None:
            loop.call_soon_threadsafe(self._released.set)
        else:
            self._released.set()

    def expire(self, batch_id: str) -> None:
        """End ``batch_id`` 's completion window now: unfinished requests are ``batch_expired``."""
        batch = self.batches[batch_id]
        if batch.data["status"] in _TERMINAL:
            return
        if batch.task is not None:
            batch.task.cancel()
        message = "This request could not be executed before the completion window expired."
        self._finish(batch, "expired", unfinished=("batch_expired", message))

    # --- batches ----------------------------------------------------------------------------

    async def _create_batch(self, request: web.Request) -> web.StreamResponse:
        self.server._record(request, "batches", None)
        if (denied := self._auth(request)) is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        endpoint = body.get("endpoint")
        if endpoint not in _ENDPOINTS:
            return _error(400, f"Invalid value for 'endpoint': {endpoint!r}", "endpoint")
        if body.get("completion_window") != "24h":
            message = "Invalid value for 'completion_window': only '24h' is supported"
            return _error(400, message, "completion_window")
        file = self.files.get(str(body.get("input_file_id")))
        if file is None:
            return _error(404, f"No such File object: {body.get('input_file_id')}", "input_file_id")
        if file.purpose != "batch":
            message = "The input file must be uploaded with purpose 'batch'"
            return _error(400, message, "input_file_id")
        now = int(time.time())
        data: dict[str, Any] = {
            "id": self.server._new_id("batch_"),
            "object": "batch",
            "endpoint": endpoint,
            "model": None,
            "errors": None,
            "input_file_id": file.id,
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + _WINDOW,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
            "usage": None,
        }
        batch = _Batch(data, file)
        self.batches[data["id"]] = batch
        auth = request.headers.get("Authorization", "")
        batch.task = asyncio.get_running_loop().create_task(self._run(batch, file, auth))
        return web.json_response(data)

    async def _get_batch(self, request: web.Request) -> web.StreamResponse:
        self.server._record(request, "batches", None)
        if (denied := self._auth(request)) is not None:
            return denied
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return _error(404, f"No such Batch object: {request.match_info['batch_id']}", "id")
        return web.json_response(batch.data)

    async def _list_batches(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._auth(request)) is not None:
            return denied
        data = [b.data for b in reversed(self.batches.values())]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": False,
            }
        )

    async def _cancel_batch(self, request: web.Request) -> web.StreamResponse:
        self.server._record(request, "batches", None)
        if (denied := self._auth(request)) is not None:
            return denied
        batch = self.batches.get(request.match_info["batch_id"])
        if batch is None:
            return _error(404, f"No such Batch object: {request.match_info['batch_id']}", "id")
        if batch.data["status"] not in ("validating", "in_progress", "finalizing"):
            return _error(
                409, f"Cannot cancel a batch with status '{batch.data['status']}'."
            )  # OpenAI answers 409 here
        batch.data["status"] = "cancelling"
        batch.data["cancelling_at"] = int(time.time())
        snapshot = dict(batch.data)
        if batch.task is not None:
            batch.task.cancel()
        asyncio.get_running_loop().call_soon(
            lambda: self._finish(batch, "cancelled", unfinished=None)
        )
        return web.json_response(snapshot)

    # --- processing -------------------------------------------------------------------------

    def _validate(self, batch: _Batch, file: _File) -> list[dict[str, Any]] | None:
        lines, model, errors = check_input(file.data, batch.data["endpoint"])
        if errors:
            batch.data["errors"] = {"object": "list", "data": errors}
            return None
        batch.data["model"] = model
        return lines

    async def _run(self, batch: _Batch, file: _File, auth: str) -> None:
        data = batch.data
        if self.hold:
            self._released.clear()
            while self.hold:  # released from a test
                await self._released.wait()
        lines = self._validate(batch, file)
        if lines is None:
            data["status"] = "failed"
            data["failed_at"] = int(time.time())
            return
        batch.lines = lines
        data["status"] = "in_progress"
        data["in_progress_at"] = int(time.time())
        data["request_counts"] = {"total": len(lines), "completed": 0, "failed": 0}
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for line in lines:
            queue.put_nowait(line)
        async with ClientSession() as session:

            async def worker() -> None:
                while not queue.empty():
                    line = queue.get_nowait()
                    await self._answer(batch, session, line, auth)

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        data["status"] = "finalizing"
        data["finalizing_at"] = int(time.time())
        self._finish(batch, "completed", unfinished=None)

    async def _answer(
        self, batch: _Batch, session: ClientSession, line: dict[str, Any], auth: str
    ) -> None:
        url = f"{self.server.url}{line['url']}"
        async with session.post(url, json=line["body"], headers={"Authorization": auth}) as resp:
            raw = await resp.read()
            request_id = resp.headers.get("x-request-id")
            status = resp.status
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"error": {"message": "malformed answer", "type": "server_error"}}
        out = {
            "id": self.server._new_id("batch_req_"),
            "custom_id": line["custom_id"],
            "response": {"status_code": status, "request_id": request_id, "body": body},
            "error": None,
        }
        encoded = (json.dumps(out) + "\n").encode()
        counts = batch.data["request_counts"]
        if status == 200:
            batch.outputs.append(encoded)
            counts["completed"] += 1
            self._add_usage(batch, body.get("usage") or {})
        else:
            batch.errors.append(encoded)
            counts["failed"] += 1
        batch.done.add(line["custom_id"])

    @staticmethod
    def _add_usage(batch: _Batch, usage: dict[str, Any]) -> None:
        total = batch.usage
        n_in = int(usage.get("input_tokens", usage.get("prompt_tokens", 0)) or 0)
        n_out = int(usage.get("output_tokens", usage.get("completion_tokens", 0)) or 0)
        total["input_tokens"] = total.get("input_tokens", 0) + n_in
        total["output_tokens"] = total.get("output_tokens", 0) + n_out

    def _finish(self, batch: _Batch, status: str, *, unfinished: tuple[str, str] | None) -> None:
        data = batch.data
        if data["status"] in _TERMINAL:
            return
        if unfinished is not None:
            code, message = unfinished
            if not batch.lines and batch.file is not None:  # it ended before it was validated
                for raw in batch.file.data.splitlines():
                    try:
                        batch.lines.append({"custom_id": json.loads(raw)["custom_id"]})
                    except (ValueError, KeyError, TypeError):
                        continue
            for line in batch.lines:
                if line["custom_id"] in batch.done:
                    continue
                out = {
                    "id": self.server._new_id("batch_req_"),
                    "custom_id": line["custom_id"],
                    "response": None,
                    "error": {"code": code, "message": message},
                }
                batch.errors.append((json.dumps(out) + "\n").encode())
        data["output_file_id"] = self._new_file("batch_output", batch.outputs, "output.jsonl")
        data["error_file_id"] = self._new_file("batch_output", batch.errors, "errors.jsonl")
        n_in = batch.usage.get("input_tokens", 0)
        n_out = batch.usage.get("output_tokens", 0)
        data["usage"] = {
            "input_tokens": n_in,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": n_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": n_in + n_out,
        }
        data["status"] = status
        data[f"{status}_at"] = int(time.time())
