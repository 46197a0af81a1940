"""``llm-client batch`` against the usual hand-rolled script, and a resumed run, side by side.

    python benchmarks/batch.py [--lines 5000] [--concurrency 64] [--rounds 3]

1. **Wall time.** The same 5,000-line file (OpenAI Batch API input format) against the fake
   server in a subprocess (its own core), interleaved round by round:

   - the reference: a plain asyncio script with the raw ``AsyncOpenAI`` SDK and a semaphore,
     reading the file, calling ``chat.completions.create(**body)`` and appending one JSON
     line per answer (the cookbook's approach), on the SDK's default HTTP client and again on
     its aiohttp client (``openai.DefaultAioHttpClient``, what our transport uses);
   - ``OpenAIClient.run_file`` (what ``llm-client batch`` runs): the full default pipeline
     (limiter with budgets far above the load, retries, cost; no cache), bad-line checks,
     resumable output.

   It prints the best round of each and the ratio (ours / reference; lower is better).

2. **Resume after a kill.** ``llm-client batch`` in a real subprocess against a fake server in
   this process; SIGKILL once half the lines are in the output, then the same command again.
   It prints the requests the rerun sent and the lines that were left (they should be equal).

3. **Under a TPM quota.** ``OpenAIClient.run_file`` with the default client (its limiter learns
   the budget from the rate-limit headers) against a fake server enforcing a 120,000 TPM quota
   with OpenAI's accounting (``llm_client.testing.Quota``: input by characters plus the
   ``max_tokens`` cap, charged on arrival), each line asking ``max_tokens=1000``. It prints the
   share of the quota used in the steady state (after a 10 s warm-up) and the 429s, at the
   server and in the output lines.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

from llm_client import OpenAIClient
from llm_client.testing.server import FakeOpenAI
from llm_client.testing.subprocess_server import spawn_server

MODEL = "gpt-5.4-nano"


def write_file(path: Path, n: int) -> None:
    with open(path, "w") as f:
        for i in range(n):
            line = {
                "custom_id": f"row-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": MODEL,
                    "messages": [
                        {"role": "system", "content": "Label the review as positive or negative."},
                        {"role": "user", "content": f"Review {i}: arrived on time, works well."},
                    ],
                    "max_tokens": 20,
                },
            }
            f.write(json.dumps(line) + "\n")


async def reference(
    src: Path, out: Path, base_url: str, concurrency: int, *, aiohttp: bool = False
) -> float:
    """The hand-rolled script: raw SDK, a semaphore, one task per line, append per answer."""
    http = {"http_client": openai.DefaultAioHttpClient()} if aiohttp else {}
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", **http)
    sem = asyncio.Semaphore(concurrency)
    start = time.perf_counter()
    with open(out, "w") as sink:  # noqa: ASYNC230 - as the hand-rolled script does

        async def one(line: dict) -> None:
            async with sem:
                try:
                    resp = await client.chat.completions.create(**line["body"])
                    body, status = resp.model_dump(), 200
                except openai.APIStatusError as exc:
                    body, status = exc.body, exc.status_code
                sink.write(
                    json.dumps(
                        {
                            "custom_id": line["custom_id"],
                            "response": {"status_code": status, "body": body},
                        }
                    )
                    + "\n"
                )

        with open(src) as f:  # noqa: ASYNC230
            lines = [json.loads(raw) for raw in f]
        await asyncio.gather(*(one(line) for line in lines))
    elapsed = time.perf_counter() - start
    await client.close()
    return elapsed


async def ours(src: Path, out: Path, base_url: str, concurrency: int) -> float:
    async with OpenAIClient(
        MODEL,
        base_url=base_url,
        api_key="sk-bench",
        requests_per_minute=1e7,
        tokens_per_minute=1e10,
    ) as client:
        start = time.perf_counter()
        summary = await client.run_file(src, out, concurrency=concurrency, progress=False)
        elapsed = time.perf_counter() - start
    assert summary.succeeded == summary.lines, summary.describe()
    return elapsed


def wall_time_rows(n: int, concurrency: int, rounds: int, tmp: Path) -> None:
    src = tmp / "requests.jsonl"
    write_file(src, n)
    proc, base_url = spawn_server()
    try:
        runners = {
            "reference": functools.partial(reference, aiohttp=False),
            "reference_aiohttp": functools.partial(reference, aiohttp=True),
            "ours": ours,
        }
        best = dict.fromkeys(runners, float("inf"))
        for r in range(rounds):
            for name, fn in runners.items():
                out = tmp / f"{name}-{r}.jsonl"
                elapsed = asyncio.run(fn(src, out, base_url, concurrency))
                best[name] = min(best[name], elapsed)
                out.unlink()
    finally:
        proc.terminate()
        proc.wait()
    ref, ref_aio, our = best["reference"], best["reference_aiohttp"], best["ours"]
    print(f"wall time, {n} lines, concurrency {concurrency}, best of {rounds}:")
    print(f"  raw SDK + semaphore script            {ref:7.2f} s  ({n / ref:6.0f} lines/s)")
    print(f"  the same on the SDK's aiohttp client  {ref_aio:7.2f} s  ({n / ref_aio:6.0f} lines/s)")
    print(f"  llm-client batch (run_file)           {our:7.2f} s  ({n / our:6.0f} lines/s)")
    print(f"  ratio ours / script                   {our / ref:7.2f}x  (target <= 1.0x)")
    print(f"  ratio ours / script on aiohttp        {our / ref_aio:7.2f}x")


def resume_row(n: int, concurrency: int, tmp: Path) -> None:
    src = tmp / "resume.jsonl"
    out = tmp / "resume-out.jsonl"
    write_file(src, n)
    server = FakeOpenAI(log_requests=False, latency=0.002).start_in_thread()
    env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-bench"}
    cmd = [
        sys.executable, "-m", "llm_client.cli", "batch", str(src), "-o", str(out),
        "--concurrency", str(concurrency), "--rpm", "1e7", "--tpm", "1e10", "--no-progress",
    ]  # fmt: skip
    try:
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
        while (out.read_bytes().count(b"\n") if out.exists() else 0) < n // 2:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sent_first = server.count()
        written = out.read_bytes().count(b"\n")
        left = n - written
        subprocess.run(cmd, env=env, check=True, stderr=subprocess.DEVNULL)
        rerun_sent = server.count() - sent_first
    finally:
        server.stop_thread()
    ids = [json.loads(raw)["custom_id"] for raw in out.read_text().splitlines()]
    print(f"resume after SIGKILL at {written}/{n} lines written:")
    print(f"  requests sent by the first run      {sent_first}")
    print(f"  lines left                           {left}")
    print(f"  requests sent by the rerun           {rerun_sent}  (equal: {rerun_sent == left})")
    print(f"  output lines / distinct custom_ids   {len(ids)} / {len(set(ids))}")


def quota_row(n: int, tmp: Path, warmup: float = 10.0) -> None:
    from llm_client.testing import Quota

    src = tmp / "quota.jsonl"
    out = tmp / "quota-out.jsonl"
    with open(src, "w") as f:
        for i in range(n):
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"Write about limits, part {i}."}],
                "max_tokens": 1000,
            }
            f.write(json.dumps({"custom_id": f"q{i}", "url": "/v1/chat/completions", "body": body}))
            f.write("\n")
    tpm = 120_000
    quota = Quota(tokens_per_minute=tpm, keep_history=True)

    async def run() -> tuple[float, float]:
        server = FakeOpenAI(quota=quota, output_tokens=30, latency=0.2, log_requests=False)
        async with server, OpenAIClient(MODEL, base_url=server.base_url, api_key="sk") as client:
            start = time.monotonic()
            summary = await client.run_file(src, out, concurrency=32, progress=False)
            end = time.monotonic()
        assert summary.succeeded + summary.failed == n, summary.describe()
        return start, end

    start, end = asyncio.run(run())
    history = quota.history or []
    t0 = start + warmup
    admits = [t for t, kind, _ in history if kind == "admit"]
    t1 = max(admits) if admits else end
    charged = sum(c for t, kind, c in history if kind == "admit" and t0 <= t <= t1)
    refused = sum(kind == "refuse" for _, kind, _ in history)
    refused_steady = sum(kind == "refuse" and t >= t0 for t, kind, _ in history)
    lines = [json.loads(raw) for raw in out.read_text().splitlines()]
    in_output = sum(1 for line in lines if (line.get("response") or {}).get("status_code") == 429)
    util = charged / (tpm / 60 * (t1 - t0)) if t1 > t0 else float("nan")
    print(f"under a {tpm:,} TPM quota, {n} lines of max_tokens=1000, {end - start:.0f} s:")
    print(f"  quota used in the steady state ({t1 - t0:.0f} s after a {warmup:.0f} s warm-up)"
          f"  {util:.3f}  (target >= 0.95)")  # fmt: skip
    print(f"  429s at the server: {refused} in all, {refused_steady} after the warm-up")
    print(f"  429s in the output lines: {in_output}  (target 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--quota-lines", type=int, default=200, help="lines of the quota run (about 2 a second)"
    )
    parser.add_argument("--only-quota", action="store_true", help="run only the quota row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not args.only_quota:
            wall_time_rows(args.lines, args.concurrency, args.rounds, tmp)
            resume_row(args.lines, args.concurrency, tmp)
        quota_row(args.quota_lines, tmp)


if __name__ == "__main__":
    main()
