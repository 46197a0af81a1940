"""The web responses of :mod:`llm_client.sse`: SSE frames written by aiohttp or Starlette.

:data:`SSE_HEADERS` are the headers an SSE response needs. :func:`aiohttp_response` and
:func:`starlette_response` stream the frames of :func:`~llm_client.sse.stream_sse` with them,
and close the frames when the HTTP client goes away, so that a non-resumable stream closes its
upstream call at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from ..middleware._stream import aclose

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("llm_client.sse")

#: The headers of an SSE response: the media type, no caching, and no buffering in nginx
#: (``X-Accel-Buffering: no``) so that every frame reaches the browser as it is written.
SSE_HEADERS: Mapping[str, str] = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


async def aiohttp_response(
    request: web.Request,
    frames: AsyncIterator[str],
    *,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """Write ``frames`` (from :func:`stream_sse`) as an aiohttp streaming response.

    When the browser goes away, the next write fails (a heartbeat at the latest) or aiohttp
    cancels the handler; either way the frames are closed, which closes the upstream call of a
    non-resumable stream at once.
    """
    from aiohttp import web

    response = web.StreamResponse(headers={**SSE_HEADERS, **(headers or {})})
    try:
        await response.prepare(request)
        async for frame in frames:
            await response.write(frame.encode())
    except (ConnectionResetError, asyncio.CancelledError):
        log.debug("SSE client went away")
        raise
    finally:
        await aclose(frames)
    return response


def starlette_response(
    frames: AsyncIterator[str], *, headers: Mapping[str, str] | None = None
) -> Any:
    """``frames`` as a Starlette (and FastAPI) ``StreamingResponse`` with the SSE headers.

    Starlette is an optional dependency (``pip install llm-client[starlette]``), imported only
    here. Starlette cancels the body's iteration when the client disconnects, which closes the
    frames and with them a non-resumable upstream call.
    """
    try:
        from starlette.responses import StreamingResponse
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "starlette_response needs Starlette: pip install 'llm-client[starlette]'"
        ) from exc
    merged = {**SSE_HEADERS, **(headers or {})}
    merged.pop("Content-Type")
    return StreamingResponse(
        _closing(frames), media_type="text/event-stream; charset=utf-8", headers=merged
    )


async def _closing(frames: AsyncIterator[str]) -> AsyncIterator[str]:
    try:
        async for frame in frames:
            yield frame
    finally:
        await aclose(frames)
