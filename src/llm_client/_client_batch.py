"""The client's batches: :class:`BatchMixin`, the part of :class:`~llm_client.OpenAIClient`
that runs many calls at once (``run_batch``, ``iter_batch``) or a JSONL file (``run_file``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import TYPE_CHECKING, Any, cast

from .exceptions import LLMClientError

if TYPE_CHECKING:
    from .batch import BatchSummary
    from .client import OpenAIClient

__all__ = ["BatchMixin"]


class BatchMixin:
    """``run_batch``, ``iter_batch`` and ``run_file`` of :class:`~llm_client.OpenAIClient` (its
    only subclass)."""

    if TYPE_CHECKING:  # provided by OpenAIClient
        max_concurrency: int

    async def run_batch(
        self, coros: Iterable[Awaitable[Any]], *, max_concurrency: int | None = None
    ) -> list[Any]:
        """Await many calls with at most ``max_concurrency`` running at once; results keep the
        input order, and an exception becomes ``{"status": ..., "error": ...}``."""
        limit = asyncio.Semaphore(max_concurrency or self.max_concurrency)

        async def one(aw: Awaitable[Any]) -> Any:
            async with limit:
                try:
                    return await aw
                except Exception as exc:  # wrapped, never lost
                    return _error_dict(exc)

        return list(await asyncio.gather(*(one(aw) for aw in coros)))

    async def iter_batch(
        self, coros: Iterable[Awaitable[Any]], *, max_concurrency: int | None = None
    ) -> AsyncIterator[Any]:
        """Like :meth:`run_batch`, but yield each result as soon as it completes."""
        limit = asyncio.Semaphore(max_concurrency or self.max_concurrency)

        async def one(aw: Awaitable[Any]) -> Any:
            async with limit:
                try:
                    return await aw
                except Exception as exc:
                    return _error_dict(exc)

        tasks = [asyncio.ensure_future(one(aw)) for aw in coros]
        try:
            for done in asyncio.as_completed(tasks):
                yield await done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_file(
        self,
        path: str | os.PathLike[str],
        output: str | os.PathLike[str],
        **options: Any,
    ) -> BatchSummary:
        """Run a JSONL file of requests (OpenAI's Batch API input format) through this client's
        pipeline and append OpenAI-style output lines to ``output``; resumable. The options
        and behaviour are those of :func:`llm_client.batch.run_file` (``llm-client batch``)."""
        from .batch import run_file

        return await run_file(cast("OpenAIClient", self), path, output, **options)


def _error_dict(exc: BaseException) -> dict[str, Any]:
    status = exc.status if isinstance(exc, LLMClientError) else 500
    return {"status": status, "error": f"{type(exc).__name__}: {exc}", "output": None}
