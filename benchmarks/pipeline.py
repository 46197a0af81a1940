"""Throughput of the full pipeline against the raw OpenAI SDK, side by side, in one run.

    python benchmarks/pipeline.py [--calls 2000] [--concurrency 64] [--rounds 3]

The fake OpenAI server runs in a subprocess (its own core), and four clients send the same
chat calls to it at the same concurrency, interleaved round by round:

1. the raw ``AsyncOpenAI`` SDK on its default HTTP client;
2. the raw SDK on its aiohttp client (``openai.DefaultAioHttpClient``);
3. ``OpenAIClient`` with the full default pipeline (cache off, limiter on with limits far
   above the load);
4. ``OpenAIClient`` with a memory cache that answers every call (a hit never touches the
   network or the SDK).

It prints calls/s (best round of each) and the ratios, then ``import llm_client`` time as a
ratio to ``import openai`` (median of fresh interpreters).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import openai

from llm_client import GPT5Nano, OpenAIClient
from llm_client.testing.subprocess_server import spawn_server

Prompt = list[dict[str, str]]


def prompts(n: int) -> list[Prompt]:
    return [[{"role": "user", "content": f"benchmark question number {i}"}] for i in range(n)]


async def drive(call: Callable[[Prompt], Awaitable[Any]], msgs: list[Prompt], conc: int) -> float:
    sem = asyncio.Semaphore(conc)

    async def one(m: Prompt) -> None:
        async with sem:
            await call(m)

    start = time.perf_counter()
    await asyncio.gather(*(one(m) for m in msgs))
    return len(msgs) / (time.perf_counter() - start)


def import_ratio(runs: int = 15) -> tuple[float, float]:
    def once(module: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        return time.perf_counter() - start

    env_base = [once("openai"), once("llm_client")]  # warm the page cache
    del env_base
    t_openai, t_ours = [], []
    for _ in range(runs):
        t_openai.append(once("openai"))
        t_ours.append(once("llm_client"))
    return statistics.median(t_openai), statistics.median(t_ours)


async def main(args: argparse.Namespace) -> None:
    proc, url = spawn_server()
    try:
        msgs = prompts(args.calls)
        key = "sk-bench"
        raw_default = openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0)
        raw_aiohttp = openai.AsyncOpenAI(
            base_url=url, api_key=key, max_retries=0, http_client=openai.DefaultAioHttpClient()
        )
        ours = OpenAIClient(
            GPT5Nano,
            base_url=url,
            api_key=key,
            cache_backend=None,
            tokens_per_minute=10**12,
            requests_per_minute=10**9,
        )
        cached = OpenAIClient(
            GPT5Nano,
            base_url=url,
            api_key=key,
            cache_backend="memory",
            tokens_per_minute=10**12,
            requests_per_minute=10**9,
        )

        async def raw_d(m: Prompt) -> Any:
            return await raw_default.chat.completions.create(model="gpt-5-nano", messages=m)  # type: ignore[arg-type]

        async def raw_a(m: Prompt) -> Any:
            return await raw_aiohttp.chat.completions.create(model="gpt-5-nano", messages=m)  # type: ignore[arg-type]

        async def full(m: Prompt) -> Any:
            r = await ours.get_response(messages=m)
            assert r["status"] == 200, r["error"]
            return r

        async def hit(m: Prompt) -> Any:
            r = await cached.get_response(messages=m)
            assert r["cached"], "expected a cache hit"
            return r

        # warm up connections, encoders and the cache (every prompt stored once)
        warm = msgs[: min(200, len(msgs))]
        for fn in (raw_d, raw_a, full):
            await drive(fn, warm, args.concurrency)
        await drive(cached.get_response, msgs, args.concurrency)

        names = {
            "raw SDK, default client": raw_d,
            "raw SDK, aiohttp client": raw_a,
            "llm-client full pipeline": full,
            "llm-client cache hit": hit,
        }
        results: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.rounds):
            for name, fn in names.items():
                results[name].append(await drive(fn, msgs, args.concurrency))
        best = {n: max(v) for n, v in results.items()}

        print(
            f"{args.calls} chat calls, concurrency {args.concurrency}, best of {args.rounds}"
            f" rounds, fake server in a subprocess\n"
        )
        for name, rate in best.items():
            rounds = ", ".join(f"{r:,.0f}" for r in results[name])
            print(f"  {name:28s} {rate:9,.0f} calls/s   (rounds: {rounds})")
        d, a = best["raw SDK, default client"], best["raw SDK, aiohttp client"]
        f, h = best["llm-client full pipeline"], best["llm-client cache hit"]
        print()
        print(f"  full pipeline / raw SDK default client : {f / d:5.2f}x   (target >= 1.6)")
        print(f"  full pipeline / raw SDK aiohttp client : {f / a:5.2f}x   (target >= 0.95)")
        print(f"  cache hit     / raw SDK default client : {h / d:5.2f}x   (target >= 5)")
        await raw_default.close()
        await raw_aiohttp.close()
        await ours.close()
        await cached.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    t_openai, t_ours = import_ratio()
    print(
        f"\n  import openai {t_openai * 1000:.0f} ms, import llm_client {t_ours * 1000:.0f} ms"
        f" -> ratio {t_ours / t_openai:.2f}   (target <= 1.15)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    os.environ.setdefault("LLM_CLIENT_NO_DOTENV", "1")
    asyncio.run(main(parser.parse_args()))
