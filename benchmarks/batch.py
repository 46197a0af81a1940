"""``llm-client batch`` against the usual hand-rolled script, and a resumed run, side by side.

    python benchmarks/batch.py [--lines 5000] [--concurrency 64] [--rounds 3]

1. **Wall time.** The same 5,000-line file (OpenAI Batch API input format) against the fake
   server in a subprocess (its own core), interleaved round by round:

   - the reference: a plain asyncio script with the raw ``AsyncOpenAI`` SDK and a semaphore,
     reading the file, calling ``chat.completions.create(**body)`` and appending one JSON
     line per answer (the cookbook's approach);
   - ``OpenAIClient.run_file`` (what ``llm-client batch`` runs): the full default pipeline
     (limiter with budgets far above the load, retries, cost; no cache), bad-line checks,
     resumable output.

   It prints the best round of each and the ratio (ours / reference; lower is better).

2. **Resume after a kill.** ``llm-client batch`` in a real subprocess against a fake server in
   this process; SIGKILL once half the lines are in the output, then the same command again.
   It prints the requests the rerun sent and the lines that were left (they should be equal).

The TPM-quota utilization row needs the fake server's quotas (``llm_client.testing.quotas``);
it is printed when that module exists and skipped with a note otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
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


async def reference(src: Path, out: Path, base_url: str, concurrency: int) -> float:
    """The hand-rolled script: raw SDK, a semaphore, one task per line, append per answer."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench")
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
        best = {"reference": float("inf"), "ours": float("inf")}
        for r in range(rounds):
            for name, fn in (("reference", reference), ("ours", ours)):
                out = tmp / f"{name}-{r}.jsonl"
                elapsed = asyncio.run(fn(src, out, base_url, concurrency))
                best[name] = min(best[name], elapsed)
                out.unlink()
    finally:
        proc.terminate()
        proc.wait()
    ref, our = best["reference"], best["ours"]
    print(f"wall time, {n} lines, concurrency {concurrency}, best of {rounds}:")
    print(f"  raw SDK + semaphore script  {ref:7.2f} s  ({n / ref:7.0f} lines/s)")
    print(f"  llm-client batch (run_file) {our:7.2f} s  ({n / our:7.0f} lines/s)")
    print(f"  ratio ours / reference      {our / ref:7.2f}x  (target <= 1.0x)")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        wall_time_rows(args.lines, args.concurrency, args.rounds, tmp)
        resume_row(args.lines, args.concurrency, tmp)
    try:
        import llm_client.testing.quotas  # noqa: F401
    except ImportError:
        print(
            "TPM-quota utilization: skipped (llm_client.testing.quotas, the fake server's"
            " quotas, has not landed yet)"
        )


if __name__ == "__main__":
    main()
