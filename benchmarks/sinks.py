"""The PusherSink row of the streaming benchmark: events/s through ``client.stream`` alone
against ``client.stream_to_sink`` into a ``PusherSink``.

    python benchmarks/sinks.py [--streams 200] [--concurrency 16] [--rounds 5]

The fake OpenAI server and the verifying Pusher server (``llm_client_pusher.testing``) each
run in a child process, so the client's process does only the client's work, as it would
against the real services. Sides, each streaming ``--streams`` calls, ``--concurrency`` at
a time, on one client without cache or limiter; each sink side gives every stream its own
``PusherSink`` and channel (sharing one HTTP session), as a chat server would:

- **stream**: ``async for event in client.stream(...)`` — the reference;
- **sink, interval 0**: ``stream_to_sink`` into a ``PusherSink(flush_interval=0)``: every
  batch the feed has goes out at once (what the sink's work costs: translating, merging,
  signing, HTTP);
- **sink, default**: the same with the default ``flush_interval=0.1`` (the Pusher-friendly
  setting: a few requests a second per stream; ``stream_to_sink`` then waits for the last
  batch, up to one interval after the model's last event).

Events/s counts the events the model's streams produced (the same on every side). Rounds are
interleaved (stream, sink, sink, stream ...) and the best round of each side is shown. Every
Pusher request is verified by the server; the script checks that none was rejected and that
the channel got the whole text.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

_TIKTOKEN = Path(__file__).resolve().parents[1].parent / "shared" / "tiktoken-cache"
if "TIKTOKEN_CACHE_DIR" not in os.environ and _TIKTOKEN.is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(_TIKTOKEN)

import aiohttp  # noqa: E402
from llm_client_pusher import PusherSink  # noqa: E402

from llm_client import GPT5Point4Nano, OpenAIClient  # noqa: E402
from llm_client.testing.subprocess_server import spawn_server  # noqa: E402

CREDENTIALS = {"app_id": "42", "key": "bench-key", "secret": "bench-secret"}


def _serve_pusher(port_out: Any, report_in: Any) -> None:
    """Child process: a verifying Pusher server; sends its port, then on request its counts."""
    from llm_client_pusher.testing import PusherServer

    async def run() -> None:
        async with PusherServer(**CREDENTIALS) as server:
            port_out.send(server.base_url)
            loop = asyncio.get_running_loop()
            while True:
                msg = await loop.run_in_executor(None, report_in.recv)
                if msg == "stop":
                    return
                port_out.send(
                    {
                        "requests": len(server.requests),
                        "rejections": [r.reason for r in server.rejections[:3]],
                        "events": len(server.events),
                        "text_bytes": sum(
                            len(e.json().get("text", "")) for e in server.events
                        ),
                    }
                )

    asyncio.run(run())


def prompt(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Stream number {i}: tell me about harbours and tides."}]


async def main(args: argparse.Namespace) -> None:
    proc, url = spawn_server()
    parent_out, child_out = multiprocessing.Pipe()
    child_in, parent_in = multiprocessing.Pipe()
    pusher_proc = multiprocessing.Process(target=_serve_pusher, args=(child_out, child_in))
    pusher_proc.start()
    pusher_url = parent_out.recv()
    client = OpenAIClient(
        GPT5Point4Nano,
        base_url=url,
        api_key="sk-bench",
        cache_backend=None,
        rate_limit_backend=None,
    )
    counter = iter(range(10**9))
    text_chars = 0
    try:

        async def run_side(one: Callable[[int], Awaitable[int]]) -> tuple[float, int]:
            gate = asyncio.Semaphore(args.concurrency)

            async def guarded(i: int) -> int:
                async with gate:
                    return await one(i)

            before = client.stats()["sinks"]["events"]
            start = time.perf_counter()
            counts = await asyncio.gather(*(guarded(next(counter)) for _ in range(args.streams)))
            elapsed = time.perf_counter() - start
            # plain streams count their own events; sink sides, what the sink was offered
            return elapsed, sum(counts) or client.stats()["sinks"]["events"] - before

        async def plain(i: int) -> int:
            n = 0
            async for _ in client.stream(prompt(i)):
                n += 1
            return n

        def via_sink(flush_interval: float) -> Callable[[int], Awaitable[int]]:
            async def one(i: int) -> int:  # a sink (and channel) per stream, one HTTP session
                nonlocal text_chars
                sink = PusherSink(
                    f"bench-{i}",
                    base_url=pusher_url,
                    flush_interval=flush_interval,
                    session=session,
                    **CREDENTIALS,
                )
                async with sink:
                    result = await client.stream_to_sink(sink, prompt(i))
                assert result.ok, result.error
                text_chars += len(result.output)
                return 0

            return one

        session = aiohttp.ClientSession()
        sides: dict[str, Callable[[int], Awaitable[int]]] = {
            "stream": plain,
            "sink, interval 0": via_sink(0),
            "sink, default 0.1 s": via_sink(0.1),
        }
        await run_side(plain)  # warm-up: connections, tiktoken
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, one in sides.items():
                elapsed, events = await run_side(one)
                rate = events / elapsed
                best[name] = max(best.get(name, 0.0), rate)
        await session.close()
        parent_in.send("report")
        report = parent_out.recv()
        stats = client.stats()["sinks"]
    finally:
        await client.close()
        parent_in.send("stop")
        pusher_proc.join(10)
        proc.terminate()
        proc.wait()

    assert not report["rejections"], report["rejections"]
    assert report["text_bytes"] == text_chars, (report["text_bytes"], text_chars)
    assert stats["failed"] == stats["dropped"] == 0, stats
    reference = best["stream"]
    print(
        f"{args.streams} streams x {args.rounds} rounds, concurrency {args.concurrency};"
        " best round per side"
    )
    print(f"{'side':<22}{'events/s':>12}{'vs stream':>12}")
    for name, rate in best.items():
        print(f"{name:<22}{rate:>12,.0f}{rate / reference:>11.2f}x")
    print(
        f"Pusher server: {report['requests']} requests verified, {report['events']} events,"
        f" 0 rejected; sink events delivered {stats['delivered']}, failed/dropped 0"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
