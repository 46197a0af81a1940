"""The Batch API's files and batches, as plain dicts (used by :mod:`llm_client.batch.api`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import openai


class BatchAPI:
    """The :class:`~llm_client.transport.Transport` methods for OpenAI's Files and Batches."""

    if TYPE_CHECKING:
        sdk: openai.AsyncOpenAI

        async def _sdk_call(self, fn: Any, *args: Any, **kwargs: Any) -> Any: ...

    async def upload_file(self, name: str, data: bytes, purpose: str = "batch") -> dict[str, Any]:
        """``files.create``: upload ``data`` as ``name``; the file object as a dict."""
        obj = await self._sdk_call(self.sdk.files.create, file=(name, data), purpose=purpose)
        return dict(obj.model_dump(mode="json"))

    async def file_content(self, file_id: str) -> bytes:
        """``files.content``: the bytes of a file (a batch's output or error file)."""
        response = await self._sdk_call(self.sdk.files.content, file_id)
        return bytes(response.content)

    async def create_batch(
        self, input_file_id: str, endpoint: str, metadata: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``batches.create`` with ``completion_window="24h"`` (the only window OpenAI offers)."""
        obj = await self._sdk_call(
            self.sdk.batches.create,
            input_file_id=input_file_id,
            endpoint=endpoint,
            completion_window="24h",
            metadata=dict(metadata) if metadata else None,
        )
        return dict(obj.model_dump(mode="json"))

    async def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        """``batches.retrieve``: the batch object as a dict."""
        obj = await self._sdk_call(self.sdk.batches.retrieve, batch_id)
        return dict(obj.model_dump(mode="json"))

    async def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        """``batches.cancel``: the batch (now ``cancelling``) as a dict."""
        obj = await self._sdk_call(self.sdk.batches.cancel, batch_id)
        return dict(obj.model_dump(mode="json"))
