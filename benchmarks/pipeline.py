"""Throughput of the full pipeline against the raw OpenAI SDK, side by side, in one run.

    python benchmarks/pipeline.py [--calls 2000] [--concurrency 64] [--rounds 3]

The fake OpenAI server runs in a subprocess (its own core), and four clients send the same
chat calls to it at the same concurrency, interleaved round by round:

1. the raw ``AsyncOpenAI`` SDK on its default HTTP client;
2. the raw SDK on its aiohttp client (``openai.DefaultAioHttpClient``);
3. ``OpenAIClient`` with the full default pipeline (cache off, limiter on with limits far
   above the load);
4. the *default* client, ``OpenAIClient(GPT5Nano, cache_backend=None)`` with no limit
   arguments: its limiter starts from the profile's limits (500 RPM) and follows the server,
   which advertises ``x-ratelimit-limit-requests: 1000000`` and ``-tokens: 10000000000``;
5. ``OpenAIClient(GPT5Nano, cache_backend="memory")``, built like the default client (no
   limit arguments), with a memory cache that answers every call (a hit never touches the
   network or the SDK).

It prints calls/s (best round of each) and the ratios, then a paced run: a second server
enforcing 30,000 RPM (OpenAI's accounting, ``llm_client.testing.Quota``) and the default
client sending as fast as it can: the achieved rate after the first second (target: within
5% of 500 calls/s) and the 429s (target 0). Last, ``import llm_client`` time as a ratio to
``import openai`` (median of fresh interpreters).
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


async def paced_run(seconds: float, conc: int, rpm: int = 30_000) -> None:
    """The default client against a server enforcing ``rpm``: rate after the first second."""
    proc, url = spawn_server(["--quota-rpm", str(rpm)])
    target = rpm / 60
    try:
        client = OpenAIClient(GPT5Nano, base_url=url, api_key="sk-bench", cache_backend=None)
        done: list[float] = []
        statuses: list[int] = []
        start = time.perf_counter()
        stop = start + seconds

        async def worker(w: int) -> None:
            i = 0
            while time.perf_counter() < stop:
                m = [{"role": "user", "content": f"paced {w} {i}"}]
                r = await client.get_response(messages=m)
                statuses.append(r["status"])
                done.append(time.perf_counter() - start)
                i += 1

        await asyncio.gather(*(worker(w) for w in range(conc)))
        stats = client.stats()["limiter"]
        await client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    after = [t for t in done if 1.0 <= t <= seconds]
    rate = len(after) / (seconds - 1.0)
    print(
        f"\n  paced: default client vs a server enforcing {rpm:,} RPM, {seconds:.0f} s,"
        f" concurrency {conc}"
    )
    print(
        f"  achieved after the first second: {rate:,.1f} calls/s = {rate / target:.3f} x"
        f" {target:.0f}/s   (target within 5%)"
    )
    print(
        f"  429s seen by the limiter: {int(stats['throttle_events'])}, non-200 results:"
        f" {sum(s != 200 for s in statuses)}   (target 0)"
    )


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
        default = OpenAIClient(GPT5Nano, base_url=url, api_key=key, cache_backend=None)
        # as a new user builds a cached client: the backend named, no limits given
        cached = OpenAIClient(GPT5Nano, base_url=url, api_key=key, cache_backend="memory")

        async def raw_d(m: Prompt) -> Any:
            return await raw_default.chat.completions.create(model="gpt-5-nano", messages=m)  # type: ignore[arg-type]

        async def raw_a(m: Prompt) -> Any:
            return await raw_aiohttp.chat.completions.create(model="gpt-5-nano", messages=m)  # type: ignore[arg-type]

        async def full(m: Prompt) -> Any:
            r = await ours.get_response(messages=m)
            assert r["status"] == 200, r["error"]
            return r

        async def dflt(m: Prompt) -> Any:
            r = await default.get_response(messages=m)
            assert r["status"] == 200, r["error"]
            return r

        async def hit(m: Prompt) -> Any:
            r = await cached.get_response(messages=m)
            assert r["cached"], "expected a cache hit"
            return r

        # warm up connections, encoders and the cache (every prompt stored once)
        warm = msgs[: min(200, len(msgs))]
        for fn in (raw_d, raw_a, full, dflt):
            await drive(fn, warm, args.concurrency)
        await drive(cached.get_response, msgs, args.concurrency)

        names = {
            "raw SDK, default client": raw_d,
            "raw SDK, aiohttp client": raw_a,
            "llm-client full pipeline": full,
            "llm-client default client": dflt,
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
        dc = best["llm-client default client"]
        print()
        print(f"  full pipeline / raw SDK default client : {f / d:5.2f}x   (target >= 1.6)")
        print(f"  full pipeline / raw SDK aiohttp client : {f / a:5.2f}x   (target >= 0.95)")
        print(f"  default client / raw SDK default client: {dc / d:5.2f}x   (target >= 1.6)")
        print(f"  default client / raw SDK aiohttp client: {dc / a:5.2f}x   (target >= 0.95)")
        print(f"  cache hit     / raw SDK default client : {h / d:5.2f}x   (target >= 5)")
        await raw_default.close()
        await raw_aiohttp.close()
        await ours.close()
        await default.close()
        await cached.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    await paced_run(args.paced_seconds, args.concurrency)

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
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    os.environ.setdefault("LLM_CLIENT_NO_DOTENV", "1")
    asyncio.run(main(parser.parse_args()))
