"""A one-page chat that streams the answer token by token over Server-Sent Events.

Run it with ``python examples/chat_page/server.py`` and open http://127.0.0.1:8080/. Without
``OPENAI_API_KEY`` it answers from the bundled fake OpenAI server, slowed down so that the
tokens arrive visibly (``--chunk-delay``); with a key (or ``--openai``) it asks OpenAI.

The page opens the browser's own ``EventSource`` on ``/chat?prompt=...&id=...``. The ``id``
makes the stream resumable: when the connection drops, the browser reconnects with
``Last-Event-ID`` and gets the rest from the event buffer, and a reload replays the whole
answer, both without a second model call. ``&drop_after=N`` makes the server cut the first
connection of a stream after N frames, to watch that happen.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from llm_client import OpenAIClient
from llm_client.sse import SSE_HEADERS

HERE = Path(__file__).resolve().parent
PAGE = HERE / "index.html"

CLIENT: web.AppKey[OpenAIClient] = web.AppKey("client", OpenAIClient)
DROPPED: web.AppKey[set[str]] = web.AppKey("dropped", set)


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-cache"})


async def chat(request: web.Request) -> web.StreamResponse:
    prompt = request.query.get("prompt", "").strip()
    stream_id = request.query.get("id", "")
    if not prompt or not stream_id or len(prompt) > 4000 or len(stream_id) > 100:
        raise web.HTTPBadRequest(text="prompt (<= 4000 characters) and id are required")
    client = request.app[CLIENT]
    frames = client.stream_sse(
        [{"role": "user", "content": prompt}],
        identifier=f"chat-page:{stream_id}",
        last_event_id=request.headers.get("Last-Event-ID"),
        retry=500,  # reconnect half a second after a drop
    )
    drop_after = request.query.get("drop_after", "")
    dropped = request.app[DROPPED]
    cut = int(drop_after) if drop_after.isdigit() and stream_id not in dropped else None
    response = web.StreamResponse(headers=dict(SSE_HEADERS))
    await response.prepare(request)
    sent = 0
    try:
        async for frame in frames:
            await response.write(frame.encode())
            sent += 1
            if cut is not None and sent > cut:  # retry frame + cut events: a flaky network
                dropped.add(stream_id)
                if request.transport is not None:
                    request.transport.close()
                break
    finally:
        await frames.aclose()  # type: ignore[attr-defined]
    return response


def make_app(client: OpenAIClient) -> web.Application:
    app = web.Application()
    app[CLIENT] = client
    app[DROPPED] = set()
    app.router.add_get("/", index)
    app.router.add_get("/chat", chat)
    return app


async def serve(host: str, port: int, *, use_openai: bool, chunk_delay: float, model: str) -> None:
    fake: Any = None
    if use_openai:
        client = OpenAIClient(model)
        where = "OpenAI"
    else:
        from llm_client.testing import FakeOpenAI

        fake = FakeOpenAI(chunk_delay=chunk_delay)
        await fake.start()
        client = OpenAIClient(model, base_url=fake.base_url, api_key="sk-fake")
        where = f"the fake OpenAI server at {fake.base_url}"
    runner = web.AppRunner(make_app(client))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"chat page on http://{host}:{port}/ answering from {where}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await client.close()
        if fake is not None:
            await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--model", default="gpt-5-nano")
    parser.add_argument(
        "--openai",
        action="store_true",
        default=bool(os.environ.get("OPENAI_API_KEY")),
        help="ask OpenAI (the default when OPENAI_API_KEY is set)",
    )
    parser.add_argument("--fake", dest="openai", action="store_false", help="use the fake server")
    parser.add_argument(
        "--chunk-delay", type=float, default=0.25, help="fake server: seconds between tokens"
    )
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                args.host,
                args.port,
                use_openai=args.openai,
                chunk_delay=args.chunk_delay,
                model=args.model,
            )
        )


if __name__ == "__main__":
    main()
