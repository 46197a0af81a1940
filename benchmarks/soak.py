"""Fault soak: many calls and streams against a fake server that misbehaves on purpose.

    python benchmarks/soak.py [--calls 10000] [--streams 2000] [--concurrency 64]
                              [--fault-rate 0.1] [--timeout 2] [--default-calls 300] [--seed 1]

The fake OpenAI server runs in a child process (its own interpreter and core) and gives
``--fault-rate`` of all requests a random fault (``server.draw_faults``): 429 with
``Retry-After``, 500, 503, a dropped connection, a truncated or malformed body, latency, a
stalled answer, a slow drip, a connection reset mid-answer. Then:

1. ``--calls`` chat calls at ``--concurrency``: most through a client with the default chain
   (limits raised far above the load), ``--default-calls`` of them at the same time through the
   default client — ``OpenAIClient(model, timeout=...)`` and nothing else (its limiter holds it
   to the model's 500 requests a minute);
2. ``--streams`` streams at ``--concurrency`` (the server spaces chunks out, so a stream lasts a
   while), a third of them abandoned after their first text — half with ``break``, half with
   ``aclose()`` — with the garbage collector switched off.

It prints, with the target of each in brackets:

* answered: calls that returned a result, streams that ended in ``done``/``error`` [all];
* hangs past deadline + 1 s [0];
* status-200 answers that differ from the server's (``expected_text``) [0];
* server requests not explained by retries: per prompt, requests the server saw beyond the
  attempts the client reported [0];
* reported usage vs the server's: tokens of every result whose usage is the server's, against
  what the server sent for those prompts [equal]; estimated usage is shown beside it;
* RSS growth from call 1,000 to the end [< 20 MiB];
* abandoned streams whose connection the server saw close, with no GC [all], and how soon
  after the consumer left (median, p99, max; how many within 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from llm_client import OpenAIClient
from llm_client.testing import Fault, expected_text

MODEL = "gpt-5-nano"
API_KEY = "sk-soak-test"


def fault_mix() -> list[Fault]:
    return [
        Fault("status", status=429, retry_after=0.05),
        Fault("status", status=500),
        Fault("status", status=503),
        Fault("drop"),
        Fault("truncate", after_chunks=2),
        Fault("malformed", after_chunks=2),
        Fault("latency", delay=0.3),
        Fault("stall", after_chunks=2),
        Fault("drip", interval=0.05),
        Fault("cut", after_chunks=2),
    ]


# --- the server, in a child process --------------------------------------------------------


def serve(conn: Connection, rate: float, seed: int) -> None:
    """Run the fake server; answer the parent's commands until told to stop."""
    from llm_client.testing import FakeOpenAI, FaultDraw

    server = FakeOpenAI(log_requests=True).start_in_thread()
    server.draw_faults(FaultDraw(rate, fault_mix(), seed=seed))
    conn.send(server.base_url)
    while True:
        command, value = conn.recv()
        if command == "chunk_delay":
            server.chunk_delay = value
            conn.send(None)
        elif command == "report":
            conn.send(report(server))
        else:
            server.stop_thread()
            conn.send(None)
            return


def report(server: Any) -> dict[str, Any]:
    """Per prompt: requests seen, tokens sent in usage, and how each stream answer ended."""
    requests: Counter[str] = Counter()
    for request in server.requests:
        messages = (request.json or {}).get("messages") or [{}]
        requests[str(messages[-1].get("content"))] += 1
    billed: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    streams: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
    for answer in server.answers:
        prompt = str(answer.prompt)
        if answer.usage is not None:
            inp, out = answer.billed_tokens
            billed[prompt][0] += inp
            billed[prompt][1] += out
        if answer.stream:
            streams[prompt].append((answer.outcome, answer.closed))
    return {"requests": dict(requests), "billed": dict(billed), "streams": dict(streams)}


# --- the client side -----------------------------------------------------------------------


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass(slots=True)
class Outcome:
    """What one call or stream came to (compact: the soak keeps 12,000 of them)."""

    prompt: str
    status: int | None = None  # None: never answered
    wrong: bool = False  # a 200 whose output is not the server's answer
    attempts: int = 0
    tokens: tuple[int, int] = (0, 0)
    estimated: bool = False
    seconds: float = 0.0
    abandoned_at: float | None = None  # time.monotonic() when the consumer left
    leave: str = ""  # how it was left: "break" or "aclose"


def take(outcome: Outcome, result: Any) -> None:
    outcome.status = result.status
    outcome.wrong = result.status == 200 and result.output != expected_text(
        [{"role": "user", "content": outcome.prompt}]
    )
    outcome.attempts = result.attempts
    outcome.tokens = (result.usage.input_tokens, result.usage.output_tokens)
    outcome.estimated = result.usage.estimated


async def one_call(client: OpenAIClient, prompt: str, timeout: float) -> Outcome:
    outcome = Outcome(prompt)
    start = time.monotonic()
    take(outcome, await client.invoke([{"role": "user", "content": prompt}], timeout=timeout))
    outcome.seconds = time.monotonic() - start
    return outcome


async def one_stream(client: OpenAIClient, prompt: str, timeout: float, leave: str) -> Outcome:
    """Stream ``prompt``; ``leave`` is "", "break" or "aclose" (after the first text)."""
    outcome = Outcome(prompt, leave=leave)
    start = time.monotonic()
    if leave == "break":
        async for event in client.stream([{"role": "user", "content": prompt}], timeout=timeout):
            if event.type == "text_delta":
                break  # the stream is dropped unfinished: only its own finalizer may close it
            if event.result is not None:
                take(outcome, event.result)
        else:
            outcome.seconds = time.monotonic() - start
            return outcome
        outcome.abandoned_at = time.monotonic()
        return outcome
    stream = client.stream([{"role": "user", "content": prompt}], timeout=timeout)
    async for event in stream:
        if leave and event.type == "text_delta":
            await stream.aclose()
            outcome.abandoned_at = time.monotonic()
            return outcome
        if event.result is not None:
            take(outcome, event.result)
    outcome.seconds = time.monotonic() - start
    return outcome


async def run(args: argparse.Namespace, url: str, conn: Connection) -> None:
    rng = random.Random(args.seed)
    main = OpenAIClient(
        MODEL,
        base_url=url,
        api_key=API_KEY,
        timeout=args.timeout,
        backoff=0.05,
        requests_per_minute=10**7,
        tokens_per_minute=10**10,
    )
    default = OpenAIClient(MODEL, base_url=url, api_key=API_KEY, timeout=args.timeout)
    calls: list[Outcome] = []
    default_calls: list[Outcome] = []
    rss: dict[str, float] = {}
    semaphore = asyncio.Semaphore(args.concurrency)

    async def call(i: int, client: OpenAIClient, into: list[Outcome]) -> None:
        async with semaphore:
            into.append(
                await one_call(client, f"soak call {i}: tell me about item {i}", args.timeout)
            )
            if len(calls) + len(default_calls) == 1000:
                rss["at 1000"] = rss_mib()

    async def default_leg() -> None:
        inner = asyncio.Semaphore(8)

        async def go(i: int) -> None:
            async with inner:
                default_calls.append(
                    await one_call(default, f"soak default {i}: tell me about {i}", args.timeout)
                )

        await asyncio.gather(*(go(i) for i in range(args.default_calls)))

    started = time.monotonic()
    main_calls = args.calls - args.default_calls
    await asyncio.gather(default_leg(), *(call(i, main, calls) for i in range(main_calls)))
    calls_seconds = time.monotonic() - started
    gc.collect()
    rss["after calls"] = rss_mib()

    conn.send(("chunk_delay", 0.05))
    conn.recv()
    streams: list[Outcome] = []
    gc.collect()
    gc.disable()  # from here on, nothing may rely on the garbage collector to close a stream
    started = time.monotonic()

    async def stream(i: int) -> None:
        leave = ""
        if i % 3 == 0:
            leave = "break" if rng.random() < 0.5 else "aclose"
        async with semaphore:
            streams.append(
                await one_stream(
                    main, f"soak stream {i}: tell me a story about {i}", args.timeout, leave
                )
            )

    await asyncio.gather(*(stream(i) for i in range(args.streams)))
    streams_seconds = time.monotonic() - started
    await asyncio.sleep(1.0)  # let the server's last close notices land
    gc.enable()
    gc.collect()
    rss["end"] = rss_mib()
    conn.send(("report", None))
    server = conn.recv()
    stats = main.stats()["totals"]
    default_stats = default.stats()["totals"]
    await main.close()
    await default.close()
    print_report(
        args,
        calls,
        default_calls,
        streams,
        server,
        rss,
        stats,
        default_stats,
        calls_seconds,
        streams_seconds,
    )


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median, 99th percentile and maximum (0s for no values)."""
    if not values:
        return (0.0, 0.0, 0.0)
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return (pick(0.5), pick(0.99), ordered[-1])


def print_report(
    args: argparse.Namespace,
    calls: list[Outcome],
    default_calls: list[Outcome],
    streams: list[Outcome],
    server: dict[str, Any],
    rss: dict[str, float],
    stats: dict[str, Any],
    default_stats: dict[str, Any],
    calls_seconds: float,
    streams_seconds: float,
) -> None:
    requests: dict[str, int] = server["requests"]
    billed: dict[str, list[int]] = server["billed"]
    finished = [o for o in (*calls, *default_calls, *streams) if o.abandoned_at is None]
    abandoned = [o for o in streams if o.abandoned_at is not None]
    answered = sum(o.status is not None for o in finished)
    hangs = sum(o.seconds > args.timeout + 1.0 for o in finished)
    wrong = sum(o.wrong for o in finished)
    unexplained = sum(max(0, requests.get(o.prompt, 0) - o.attempts) for o in finished)
    exact = [o for o in finished if o.status is not None and not o.estimated]
    reported = (sum(o.tokens[0] for o in exact), sum(o.tokens[1] for o in exact))
    sent = (
        sum(billed.get(o.prompt, [0, 0])[0] for o in exact),
        sum(billed.get(o.prompt, [0, 0])[1] for o in exact),
    )
    estimated = [o for o in finished if o.estimated]
    est_reported = (sum(o.tokens[0] for o in estimated), sum(o.tokens[1] for o in estimated))
    est_sent = (
        sum(billed.get(o.prompt, [0, 0])[0] for o in estimated),
        sum(billed.get(o.prompt, [0, 0])[1] for o in estimated),
    )
    closed = []
    by_mode: dict[str, list[float]] = defaultdict(list)
    still_open = completed_first = 0
    for o in abandoned:
        ends = server["streams"].get(o.prompt, [])
        last = ends[-1] if ends else ("none", None)
        if last[0] == "client_closed" and last[1] is not None:
            closed.append(max(0.0, last[1] - (o.abandoned_at or 0.0)))
            by_mode[o.leave].append(closed[-1])
        elif last[0] in ("completed", "cut"):
            completed_first += 1  # the server had ended the answer before the consumer left
        else:
            still_open += 1
            print("  still open:", o, ends)
    statuses = Counter(o.status for o in finished)
    faults = len(fault_mix())
    print(
        f"fault soak: {args.calls} calls + {args.streams} streams, concurrency"
        f" {args.concurrency}, {args.fault_rate:.0%} of requests faulted ({faults} kinds),"
        f" timeout {args.timeout:g}s, seed {args.seed}"
    )
    print(
        f"  calls took {calls_seconds:.1f}s, streams {streams_seconds:.1f}s;"
        f" {len(default_calls)} calls on the default client"
    )
    print(f"  statuses: {dict(sorted(statuses.items(), key=lambda kv: str(kv[0])))}")
    print()
    print(f"{'measure':<58}{'figure':>16}  target")
    rows = [
        ("answered", f"{answered}/{len(finished)}", "all"),
        ("hangs past deadline + 1 s", str(hangs), "0"),
        ("status-200 answers differing from the server's", str(wrong), "0"),
        ("server requests not explained by retries", str(unexplained), "0"),
        (
            "reported usage vs server's (input, output tokens)",
            f"{'equal' if reported == sent else 'DIFFERENT'}",
            "equal",
        ),
        ("  reported (server-counted usage)", f"{reported[0]}, {reported[1]}", ""),
        ("  the server sent for those prompts", f"{sent[0]}, {sent[1]}", ""),
        (
            f"  estimated usage of {len(estimated)} cut calls (ours; server sent)",
            f"{est_reported[0]}, {est_reported[1]}; {est_sent[0]}, {est_sent[1]}",
            "",
        ),
        (
            "RSS growth from call 1,000 to the end (MiB)",
            f"{rss['end'] - rss.get('at 1000', rss['end']):.1f}",
            "< 20",
        ),
        (
            "  of which during the calls / the streams",
            f"{rss['after calls'] - rss.get('at 1000', rss['end']):.1f} /"
            f" {rss['end'] - rss['after calls']:.1f}",
            "",
        ),
        (
            "abandoned streams the server saw close, no GC",
            f"{len(closed)}/{len(abandoned) - completed_first}",
            "all",
        ),
        (
            "  close after the consumer left: median / p99 / max (ms)",
            " / ".join(f"{q * 1000:.0f}" for q in spread(closed)),
            "",
        ),
        *(
            (
                f"    after {mode}: median / p99 / max (ms)",
                " / ".join(f"{q * 1000:.0f}" for q in spread(by_mode[mode])),
                "",
            )
            for mode in ("aclose", "break")
        ),
        (
            "  closed within 100 ms of the consumer leaving",
            f"{sum(c <= 0.1 for c in closed)}/{len(closed)}",
            "",
        ),
        ("  abandoned after the server had sent everything", str(completed_first), ""),
        ("  still open", str(still_open), "0"),
    ]
    for name, figure, target in rows:
        print(f"{name:<58}{figure:>16}  {target}")
    print()
    print(
        f"stats() of the main client: requests {stats['requests']}, attempts"
        f" {stats['attempts']}, failed {stats['failed']}, abandoned {stats['abandoned']},"
        f" estimated {stats['estimated']}"
    )
    print(
        f"stats() of the default client: requests {default_stats['requests']}, attempts"
        f" {default_stats['attempts']}, failed {default_stats['failed']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--streams", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--default-calls", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    context = mp.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=serve, args=(child, args.fault_rate, args.seed))
    process.start()
    try:
        url = parent.recv()
        asyncio.run(run(args, url, parent))
    finally:
        parent.send(("stop", None))
        if parent.poll(10):
            parent.recv()
        process.join(10)
        if process.is_alive():
            process.terminate()


if __name__ == "__main__":
    main()
