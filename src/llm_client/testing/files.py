"""The fake server's Files API: ``/v1/files``, where batch input and output files live.

* ``POST /v1/files`` (multipart ``file`` + ``purpose``), ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``.

Files are kept in memory, in :attr:`FilesAPI.files`, shaped as openai-python's
``FileObject``. :class:`~llm_client.testing.batches.BatchesAPI` builds on this class: a batch
reads its input file here and writes its output and error files here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .server import FakeOpenAI

__all__ = ["FilesAPI"]


@dataclass
class _File:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def obj(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


def invalid_request(status: int, message: str, param: str | None = None) -> web.Response:
    """An ``invalid_request_error`` answer of the Files and Batch APIs."""
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    }
    return web.json_response(body, status=status)


class FilesAPI:
    """The files of one :class:`~llm_client.testing.server.FakeOpenAI`."""

    def __init__(self, server: FakeOpenAI) -> None:
        self.server = server
        self.files: dict[str, _File] = {}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/files", self._create_file)
        router.add_get("/v1/files/{file_id}", self._get_file)
        router.add_get("/v1/files/{file_id}/content", self._file_content)
        router.add_delete("/v1/files/{file_id}", self._delete_file)

    def _auth(self, request: web.Request) -> web.Response | None:
        return self.server._auth_error(request)

    async def _create_file(self, request: web.Request) -> web.StreamResponse:
        self.server._record(request, "files", None)
        if (denied := self._auth(request)) is not None:
            return denied
        form = await request.post()
        upload = form.get("file")
        purpose = form.get("purpose")
        if not hasattr(upload, "file"):
            return invalid_request(400, "'file' is a required multipart field", "file")
        if not isinstance(purpose, str) or not purpose:
            return invalid_request(400, "'purpose' is a required field", "purpose")
        data = upload.file.read()  # type: ignore[union-attr]
        file = _File(
            self.server._new_id("file-"),
            str(getattr(upload, "filename", "") or "upload.jsonl"),
            purpose,
            data,
            int(time.time()),
        )
        self.files[file.id] = file
        return web.json_response(file.obj())

    def _file(self, request: web.Request) -> _File | web.StreamResponse:
        """The file the request names, or the response refusing it (auth, then 404)."""
        if (denied := self._auth(request)) is not None:
            return denied
        file = self.files.get(request.match_info["file_id"])
        if file is None:
            message = f"No such File object: {request.match_info['file_id']}"
            return invalid_request(404, message, "id")
        return file

    async def _get_file(self, request: web.Request) -> web.StreamResponse:
        file = self._file(request)
        if isinstance(file, web.StreamResponse):
            return file
        return web.json_response(file.obj())

    async def _file_content(self, request: web.Request) -> web.StreamResponse:
        self.server._record(request, "files", None)
        file = self._file(request)
        if isinstance(file, web.StreamResponse):
            return file
        return web.Response(body=file.data, content_type="application/octet-stream")

    async def _delete_file(self, request: web.Request) -> web.StreamResponse:
        if (denied := self._auth(request)) is not None:
            return denied
        file_id = request.match_info["file_id"]
        if self.files.pop(file_id, None) is None:
            return invalid_request(404, f"No such File object: {file_id}", "id")
        return web.json_response({"id": file_id, "object": "file", "deleted": True})

    def _new_file(self, purpose: str, lines: list[bytes], name: str) -> str | None:
        if not lines:
            return None
        file = _File(self.server._new_id("file-"), name, purpose, b"".join(lines), int(time.time()))
        self.files[file.id] = file
        return file.id
