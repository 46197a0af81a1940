"""Streaming overhead: ``client.stream`` against iterating the raw SDK stream, in one run.

    python benchmarks/streaming.py [--ttfe-calls 300] [--streams 400] [--concurrency 16] \
        [--rounds 3]

The fake OpenAI server runs in a subprocess (its own core) and sends every stream as fast as it
can. Three readers stream the same chat calls from it, interleaved round by round:

1. ``raw``: ``AsyncOpenAI(max_retries=0)`` on the SDK's aiohttp client
   (``openai.DefaultAioHttpClient``, the HTTP client ``OpenAIClient`` uses), iterating
   ``chat.completions.create(stream=True, stream_options={"include_usage": True})``;
2. ``client``: ``OpenAIClient`` with the full chain (cost, timeout, cache in memory, tokens,
   retry, limiter with limits far above the load), iterating ``client.stream(...)``;
3. ``default``: the default client, ``OpenAIClient(GPT5Nano)`` with no options but the URL
   and key (no cache; its limiter starts from the profile's limits and follows the server).

Figures:

- time to first event: one stream at a time, from the call to the first piece of answer text
  (a chunk with ``delta.content`` / a ``text_delta`` event); median and p90 over
  ``--ttfe-calls`` calls. Target: at most 1 ms added.
- events per second: ``--streams`` streams with long answers (a scripted 600-word answer,
  about 200 text deltas each), ``--concurrency`` at a time; answer-text events received per
  second of wall time (best round). Target: >= 0.9x the raw SDK.

Every prompt differs, so the cache never answers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai

from llm_client import GPT5Nano, OpenAIClient
from llm_client.testing import ToolScript
from llm_client.testing.subprocess_server import spawn_server

#: A long answer (a scripted final text of 600 words): the fake server sends ~200 text deltas.
STORY = " ".join(f"word{i}" for i in range(600))
LONG_DIRECTIVE = ToolScript((), STORY).directive()

Reader = Callable[[list[dict[str, str]], dict[str, Any]], AsyncIterator[None]]


def raw_reader(sdk: openai.AsyncOpenAI) -> Reader:
    async def read(messages: list[dict[str, str]], extra: dict[str, Any]) -> AsyncIterator[None]:
        stream = await sdk.chat.completions.create(
            model="gpt-5-nano",
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
            **extra,
        )
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    yield None

    return read


def client_reader(client: OpenAIClient) -> Reader:
    async def read(messages: list[dict[str, str]], extra: dict[str, Any]) -> AsyncIterator[None]:
        async for event in client.stream(messages, **extra):
            if event.type == "text_delta":
                yield None

    return read


async def time_to_first_event(read: Reader, tag: str, n: int) -> list[float]:
    out = []
    for i in range(n):
        messages = [{"role": "user", "content": f"ttfe {tag} {i} {time.time_ns()}"}]
        start = time.perf_counter()
        first = None
        async for _ in read(messages, {}):
            if first is None:
                first = time.perf_counter() - start
        assert first is not None
        out.append(first)
    return out


async def events_per_second(read: Reader, tag: str, streams: int, conc: int) -> float:
    sem = asyncio.Semaphore(conc)
    count = 0

    async def one(i: int) -> None:
        nonlocal count
        async with sem:
            text = f"eps {tag} {i} {time.time_ns()} {LONG_DIRECTIVE}"
            async for _ in read([{"role": "user", "content": text}], {}):
                count += 1

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(streams)))
    return count / (time.perf_counter() - start)


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(args: argparse.Namespace) -> None:
    proc, url = spawn_server()
    try:
        sdk = openai.AsyncOpenAI(
            base_url=url,
            api_key="sk-bench",
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(),
        )
        full = OpenAIClient(
            GPT5Nano,
            base_url=url,
            api_key="sk-bench",
            cache_backend="memory",
            tokens_per_minute=10**12,
            requests_per_minute=10**9,
        )
        default = OpenAIClient(GPT5Nano, base_url=url, api_key="sk-bench")
        readers: dict[str, Reader] = {
            "raw": raw_reader(sdk),
            "client": client_reader(full),
            "default": client_reader(default),
        }
        for name, read in readers.items():  # warm up connections, encoders, imports
            await time_to_first_event(read, "warm" + name, 20)
            await events_per_second(read, "warm" + name, 20, args.concurrency)
        ttfe: dict[str, list[float]] = {name: [] for name in readers}
        eps: dict[str, float] = dict.fromkeys(readers, 0.0)
        for r in range(args.rounds):
            for name, read in readers.items():
                ttfe[name] += await time_to_first_event(read, f"{r}{name}", args.ttfe_calls)
                rate = await events_per_second(read, f"{r}{name}", args.streams, args.concurrency)
                eps[name] = max(eps[name], rate)
        print(f"fake server in a subprocess at {url}; {args.rounds} rounds")
        print(
            f"{'reader':<9} {'TTFE median':>12} {'TTFE p90':>10} {'added (median)':>15}"
            f" {'events/s':>10} {'ratio':>6}"
        )
        base = statistics.median(ttfe["raw"])
        for name in readers:
            med = statistics.median(ttfe[name])
            ratio = eps[name] / eps["raw"]
            print(
                f"{name:<9} {1000 * med:>10.3f}ms {ms(ttfe[name], 0.9):>8.3f}ms"
                f" {1000 * (med - base):>+13.3f}ms {eps[name]:>10.0f} {ratio:>6.2f}"
            )
        await full.close()
        await default.close()
        await sdk.close()
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="client.stream vs the raw SDK stream")
    parser.add_argument("--ttfe-calls", type=int, default=300)
    parser.add_argument("--streams", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
