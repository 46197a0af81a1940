"""Rate limiter benchmark: llm_client's Limiter side by side with aiolimiter.

Run once from the repository root::

    .venv/bin/python benchmarks/limiter.py            # everything (distributed needs Redis)
    .venv/bin/python benchmarks/limiter.py --quick    # shorter simulated windows

It prints, for both limiters configured for the same rate and the same one-second burst
(``Limiter(tpm, rpm)`` against ``AsyncLimiter(tpm / 60, 1)``):

1. utilization under saturating load of mixed sizes (1-200 tokens) over a long *simulated*
   window (a virtual-time event loop, so an hour runs in seconds): admitted tokens / limit,
   target >= 0.97, and how many 1 s / 10 s / 60 s windows went over ``burst + rate * w``;
2. the same where answers use on average 30% of the reserved tokens and the budget is
   usage-based (ours reconciles its usage bucket to real usage; aiolimiter cannot), target
   >= 0.90 of real usage / limit;
3. fairness at 1.5x load: admission rate of >150-token requests over that of <50-token
   requests, target >= 0.9;
4. overhead: CPU microseconds per acquire+release with 1,000 concurrent waiters on the real
   clock, ours / aiolimiter, target <= 1.5;
5. distributed: 4 processes sharing one budget through Redis (``REDIS_URL``, default
   redis://127.0.0.1:6379/0): total throughput / limit, target >= 0.95, and the largest
   overshoot of any 1 s / 10 s window as the server saw it, target <= 1%;
6. against the fake server's quota (``llm_client.testing.Quota``: OpenAI's accounting,
   charged at arrival, no refund), in real time, the *default* client
   (``OpenAIClient(GPT5Nano, cache_backend=None)``): 120,000 TPM, ``max_tokens=1000``,
   answers of about 30 tokens: 429s in steady state (target 0) and the share of the
   server's token budget used (target >= 0.95); then with a usage-based budget of 120,000
   binding instead and answers of 30% of ``max_tokens``: its utilization (target >= 0.90).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiolimiter import AsyncLimiter

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "plugins" / "llm-client-redis" / "src")]

from llm_client.rate_limit import Limiter  # noqa: E402

TPM = 60_000.0  # 1,000 tokens per second
RPM = 1_000_000.0  # requests never bind in the simulated runs
RATE = TPM / 60
BURST = RATE * 1.0  # both limiters: one second of budget
WINDOWS = (1.0, 10.0, 60.0)


# --- virtual time -----------------------------------------------------------------------------


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer whenever nothing is ready to run.

    Like a real clock, time also moves by at least :data:`TICK` per idle turn, so a timer
    that keeps re-arming itself "now" (float rounding) cannot spin forever.
    """

    TICK = 1e-7

    def __init__(self) -> None:
        super().__init__()
        self._virtual = 0.0

    def time(self) -> float:
        return self._virtual

    def _run_once(self) -> None:
        ready: Any = self._ready  # type: ignore[attr-defined]
        scheduled: Any = self._scheduled  # type: ignore[attr-defined]
        while scheduled and scheduled[0]._cancelled:  # as the base loop does, before jumping
            self._timer_cancelled_count -= 1  # type: ignore[attr-defined]
            heapq.heappop(scheduled)._scheduled = False
        if not ready and scheduled:
            self._virtual = max(scheduled[0]._when, self._virtual + self.TICK)
        super()._run_once()  # type: ignore[misc]


class LoopClock:
    """The llm_client Clock protocol on an event loop's (virtual) time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def now(self) -> float:
        return self._loop.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def simulate(main: Callable[[], Awaitable[Any]]) -> Any:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


# --- the two limiters behind one face ---------------------------------------------------------


@dataclass
class Log:
    """Admissions (+) and refunds (-) with their times, plus real usage at admission time."""

    spend: list[tuple[float, float]] = field(default_factory=list)
    real: list[tuple[float, float]] = field(default_factory=list)


NAMES = {"ours": "llm_client", "theirs": "aiolimiter"}


class Subject:
    def limit(self, tokens: int) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError


class Ours(Subject):
    def __init__(self, rate: float, clock: Any = None, *, usage: bool = False) -> None:
        if usage:  # a usage-based budget binds; the per-minute one is far away
            self.limiter = Limiter(rate * 6000, RPM, clock=clock, usage_tokens_per_minute=rate * 60)
        else:
            self.limiter = Limiter(rate * 60, RPM, clock=clock)

    def limit(self, tokens: int) -> AbstractAsyncContextManager[Any]:
        return self.limiter.limit(tokens)


class Theirs(Subject):
    def __init__(self, rate: float) -> None:
        self.limiter = AsyncLimiter(rate, 1)

    @asynccontextmanager
    async def _limit(self, tokens: int) -> Any:
        await self.limiter.acquire(tokens)
        yield None

    def limit(self, tokens: int) -> AbstractAsyncContextManager[Any]:
        return self._limit(tokens)


def make(
    kind: str,
    loop: asyncio.AbstractEventLoop | None = None,
    rate: float = RATE,
    *,
    usage: bool = False,
) -> Subject:
    """Either limiter at ``rate`` tokens/s with a one-second burst (on ``loop``'s clock);
    ``usage``: ours as a usage-based budget."""
    if kind == "ours":
        return Ours(rate, LoopClock(loop) if loop is not None else None, usage=usage)
    return Theirs(rate)


def windows_over(events: list[tuple[float, float]], burst: float) -> tuple[int, float]:
    """How many windows (starting at an event) exceed burst + rate * w; the worst ratio."""
    events = sorted(events)
    over, worst = 0, 0.0
    for w in WINDOWS:
        bound = burst + RATE * w
        j, total = 0, 0.0
        for i, (start, _) in enumerate(events):
            while j < len(events) and events[j][0] <= start + w:
                total += events[j][1]
                j += 1
            worst = max(worst, total / bound)
            if total > bound * (1 + 1e-9):
                over += 1
            total -= events[i][1]
    return over, worst


# --- 1 and 2: utilization ---------------------------------------------------------------------


def utilization(kind: str, *, seconds: float, used_share: float | None, seed: int = 1) -> Log:
    """Saturating closed-loop load; answers use ``used_share`` of the reservation on average."""
    log = Log()
    rng = random.Random(seed)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        subject = make(kind, loop, usage=used_share is not None)

        async def worker() -> None:
            while True:
                size = rng.randint(1, 200)
                async with subject.limit(size) as lease:
                    now = loop.time()
                    if now > seconds:
                        return
                    log.spend.append((now, size))
                    used = (
                        size if used_share is None else round(size * rng.uniform(0, 2 * used_share))
                    )
                    used = min(used, size)
                    log.real.append((now, used))
                    await asyncio.sleep(rng.uniform(0.2, 2.0))  # the call's latency
                    if lease is not None:
                        lease.record(used)
                        log.spend.append((loop.time(), used - size))

        await asyncio.gather(*(worker() for _ in range(300)))

    simulate(main)
    return log


def report_utilization(seconds: float) -> None:
    print(f"\n1) utilization, saturating load, sizes 1-200, {seconds:.0f} s simulated")
    print(f"   {'':12} {'admitted/limit':>15} {'windows over':>13} {'worst window':>13}")
    for kind in ("ours", "theirs"):
        log = utilization(kind, seconds=seconds, used_share=None)
        total = sum(n for _, n in log.real)
        over, worst = windows_over(log.spend, BURST)
        name = NAMES[kind]
        print(f"   {name:12} {total / (BURST + RATE * seconds):15.3f} {over:13d} {worst:13.3f}")
    print("   (limit = burst + rate * window; target: ours >= 0.97, 0 windows over)")
    print(f"\n2) utilization when answers use 30% of the reserved tokens, {seconds:.0f} s")
    print(f"   {'':12} {'used/limit':>15} {'windows over':>13} {'worst window':>13}")
    for kind in ("ours", "theirs"):
        log = utilization(kind, seconds=seconds, used_share=0.3)
        total = sum(n for _, n in log.real)
        over, worst = windows_over(log.spend, BURST)
        real_over, real_worst = windows_over(log.real, BURST)
        name = NAMES[kind]
        print(f"   {name:12} {total / (BURST + RATE * seconds):15.3f} {over:13d} {worst:13.3f}")
        print(f"   {'':12} {'(real usage)':>15} {real_over:13d} {real_worst:13.3f}")
    print("   (used = real usage / limit, target >= 0.90; windows count reservations net of")
    print("   refunds, and on the second line the real usage at admission)")


# --- 3: fairness ------------------------------------------------------------------------------


def fairness(kind: str, *, seconds: float, load: float = 1.5, seed: int = 2) -> tuple[float, float]:
    """Open-loop arrivals at ``load`` x the rate; admitted share of large and small requests."""
    rng = random.Random(seed)
    arrived = {"large": 0, "small": 0}
    admitted = {"large": 0, "small": 0}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        subject = make(kind, loop)
        mean = 100.5
        tasks: list[asyncio.Task[None]] = []

        async def call(size: int) -> None:
            cls = "large" if size > 150 else "small" if size < 50 else None
            async with subject.limit(size):
                if cls is not None and loop.time() <= seconds:
                    admitted[cls] += 1

        while loop.time() < seconds:
            await asyncio.sleep(rng.expovariate(load * RATE / mean))
            size = rng.randint(1, 200)
            if size > 150:
                arrived["large"] += 1
            elif size < 50:
                arrived["small"] += 1
            tasks.append(asyncio.create_task(call(size)))
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    simulate(main)
    return admitted["large"] / arrived["large"], admitted["small"] / arrived["small"]


def report_fairness(seconds: float) -> None:
    print(f"\n3) fairness at 1.5x load, {seconds:.0f} s simulated: share of requests admitted")
    print(f"   {'':12} {'>150 tokens':>12} {'<50 tokens':>12} {'ratio':>8}")
    for kind in ("ours", "theirs"):
        large, small = fairness(kind, seconds=seconds)
        print(f"   {NAMES[kind]:12} {large:12.3f} {small:12.3f} {large / small:8.3f}")
    print("   target: ours >= 0.9")


# --- 4: overhead ------------------------------------------------------------------------------


def overhead(kind: str, *, waiters: int, calls: int, rate: float) -> float:
    """CPU microseconds per acquire+release, ``waiters`` tasks contending on the real clock."""

    async def main() -> float:
        per_task = calls // waiters
        # Each library's own API, without wrappers: ``limiter.limit(1)`` / ``async with limiter``
        if kind == "ours":
            ours = Limiter(rate * 60, rate * 60)  # both dimensions at the same rate

            async def worker() -> None:
                for _ in range(per_task):
                    async with ours.limit(1):
                        pass

        else:
            theirs = AsyncLimiter(rate, 1)

            async def worker() -> None:
                for _ in range(per_task):
                    async with theirs:
                        pass

        start = time.process_time()
        await asyncio.gather(*(worker() for _ in range(waiters)))
        return (time.process_time() - start) / (per_task * waiters) * 1e6

    return asyncio.run(main())


def report_overhead(calls: int) -> None:
    print(f"\n4) overhead: CPU us per acquire+release, 1,000 concurrent waiters, {calls} calls")
    print(f"   {'':32} {'llm_client':>11} {'aiolimiter':>11} {'ratio':>7}")
    for label, rate in (
        ("saturated (10,000 calls/s limit)", 10_000.0),
        ("unsaturated (no waiting)", 1e9),
    ):
        ours = min(overhead("ours", waiters=1000, calls=calls, rate=rate) for _ in range(2))
        theirs = min(overhead("theirs", waiters=1000, calls=calls, rate=rate) for _ in range(2))
        print(f"   {label:32} {ours:11.1f} {theirs:11.1f} {ours / theirs:7.2f}")
    print("   target: ratio <= 1.5")


# --- 5: distributed -----------------------------------------------------------------------------


def _redis_worker(url: str, key: str, tpm: float, rpm: float, seconds: float, out: Any) -> None:
    async def main() -> None:
        from llm_client_redis.rate_limit import RedisLimiter

        limiter = RedisLimiter(
            tokens_per_minute=tpm, requests_per_minute=rpm, redis_url=url, key=key
        )
        rng = random.Random(os.getpid())
        admitted: list[tuple[float, int]] = []
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                size = rng.randint(1, 200)
                async with limiter.limit(size) as lease:
                    admitted.append((lease.admitted_at or 0.0, size))

        await asyncio.gather(*(worker() for _ in range(50)))
        await limiter.aclose()
        out.put(admitted)

    asyncio.run(main())


def report_distributed(seconds: float) -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    print(f"\n5) distributed: 4 processes sharing one Redis budget, {seconds:.0f} s real time")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        from llm_client_redis.rate_limit import RedisLimiter  # noqa: F401
    except Exception as exc:  # any reason to skip is reported
        print(f"   skipped: {type(exc).__name__}: {exc}")
        return
    tpm, rpm = 120_000.0, 1_000_000.0  # 2,000 tokens/s shared
    key = f"bench:limiter:{os.getpid()}:{time.time_ns()}"
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_redis_worker, args=(url, key, tpm, rpm, seconds, out)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    admitted: list[tuple[float, int]] = []
    for _ in procs:
        admitted.extend(out.get())
    for p in procs:
        p.join()
    redis.Redis.from_url(url).delete(f"{{{key}}}:state", f"{{{key}}}:members")
    admitted.sort()
    rate = tpm / 60
    burst = rate * 1.0
    start, end = admitted[0][0], admitted[-1][0]
    total = sum(n for _, n in admitted)
    span = end - start
    print(f"   admitted {total} tokens in {span:.2f} s (server clock); limit {rate:.0f}/s")
    print(f"   total throughput / limit (burst excluded): {(total - burst) / (rate * span):.3f}")
    events = [(t, float(n)) for t, n in admitted]
    worst = 0.0
    for w in (1.0, 10.0):
        j, acc = 0, 0.0
        for i, (t0, _) in enumerate(events):
            while j < len(events) and events[j][0] <= t0 + w:
                acc += events[j][1]
                j += 1
            if t0 + w <= end:
                worst = max(worst, acc / (burst + rate * w))
            acc -= events[i][1]
    print(f"   worst 1 s / 10 s window / (burst + rate * w): {worst:.4f}")
    print("   target: throughput >= 0.95; never over by more than 1%")


# --- 6: against the fake server's quota -----------------------------------------------------


async def quota_run(
    quota: Any, *, calls: int, conc: int, output_tokens: int, latency: float
) -> tuple[float, float]:
    """The default client against a fake server enforcing ``quota``; (start, end) times."""
    from llm_client import GPT5Nano, OpenAIClient
    from llm_client.testing import FakeOpenAI

    server = FakeOpenAI(quota=quota, output_tokens=output_tokens, latency=latency)
    server.log_requests = False
    async with server:
        client = OpenAIClient(
            GPT5Nano, base_url=server.base_url, api_key="sk-bench", cache_backend=None
        )
        sem = asyncio.Semaphore(conc)
        statuses: list[int] = []

        async def one(i: int) -> None:
            async with sem:
                msgs = [{"role": "user", "content": f"Write about limits, part {i}."}]
                r = await client.get_response(messages=msgs, max_tokens=1000)
                statuses.append(r["status"])

        start = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(calls)))
        end = time.monotonic()
        pad = client.limiter.token_pad
        await client.close()
    failed = sum(s != 200 for s in statuses)
    print(
        f"   {calls} calls at concurrency {conc} in {end - start:.1f} s; failed calls: {failed};"
        f" token pad {pad:.2f}"
    )
    return start, end


def steady(
    history: list[tuple[float, str, int]], start: float, end: float, warmup: float
) -> tuple[float, float, list[tuple[float, str, int]]]:
    t0 = start + warmup
    admits = [t for t, kind, _ in history if kind == "admit"]
    t1 = max(admits) if admits else end
    return t0, t1, [e for e in history if t0 <= e[0] <= t1]


def report_quota(quick: bool) -> None:
    from llm_client.testing import Quota

    calls = 100 if quick else 200
    warmup = 10.0
    print(
        "\n6) the default client against the fake server's quota (OpenAI's accounting), real time"
    )
    print("   a) 120,000 TPM, max_tokens=1000, answers of 30 tokens, latency 0.2 s")
    quota = Quota(tokens_per_minute=120_000, keep_history=True)
    start, end = asyncio.run(quota_run(quota, calls=calls, conc=32, output_tokens=30, latency=0.2))
    assert quota.history is not None
    t0, t1, window = steady(quota.history, start, end, warmup)
    refused_all = sum(kind == "refuse" for _, kind, _ in quota.history)
    refused = sum(kind == "refuse" for _, kind, _ in window)
    charged = sum(n for _, kind, n in window if kind == "admit")
    util = charged / (120_000 / 60 * (t1 - t0))
    print(f"   429s: {refused} after the first {warmup:.0f} s, {refused_all} in all   (target 0)")
    print(
        f"   server token budget used, {t1 - t0:.0f} s steady state: {util:.3f}   (target >= 0.95)"
    )
    print(
        "   b) usage-based 120,000 TPM binding (per-minute TPM 10,000,000), answers of 300"
        " tokens = 30% of max_tokens, latency 0.5 s"
    )
    quota = Quota(tokens_per_minute=10_000_000, usage_tokens_per_minute=120_000, keep_history=True)
    start, end = asyncio.run(
        quota_run(quota, calls=2 * calls, conc=32, output_tokens=300, latency=0.5)
    )
    assert quota.history is not None
    t0, t1, window = steady(quota.history, start, end, warmup)
    refused = sum(kind == "refuse" for _, kind, _ in quota.history)
    used = sum(n for _, kind, n in window if kind == "used")
    util = used / (120_000 / 60 * (t1 - t0))
    print(
        f"   429s: {refused};  usage-based budget used, {t1 - t0:.0f} s steady state:"
        f" {util:.3f}   (target >= 0.90)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows, fewer calls")
    parser.add_argument(
        "--only-quota", action="store_true", help="run only part 6, against the fake server"
    )
    args = parser.parse_args()
    if args.only_quota:
        report_quota(args.quick)
        return
    sim = 600.0 if args.quick else 3600.0
    print("llm_client Limiter vs aiolimiter AsyncLimiter; same rate, same 1 s burst")
    print(f"rate {RATE:.0f} tokens/s (TPM {TPM:.0f}); burst {BURST:.0f} tokens")
    report_utilization(sim)
    report_fairness(sim / 6)
    report_overhead(20_000 if args.quick else 100_000)
    report_distributed(5.0 if args.quick else 20.0)
    report_quota(args.quick)


if __name__ == "__main__":
    main()
