"""Cache hit and miss paths of every backend, next to a raw read of the same bytes, in one run.

    python benchmarks/cache.py [--reads 2000] [--keys 200] [--value-bytes 2000]
                               [--concurrency 32] [--calls 300] [--rounds 3]
                               [--backends memory,fs,...] [--skip-client]

Two parts, each backend in turn (memory, fs, sqlite, redis, postgres, pg_redis, qdrant in
local ``:memory:`` mode):

1. **Backend level.** ``--keys`` entries of about ``--value-bytes`` are stored, then read back
   ``--reads`` times through ``backend.get`` (one at a time, for p50/p99 latency; then with
   ``--concurrency`` readers, for hits/s). The same keys are then read *raw*: a
   ``redis.asyncio`` GET, an asyncpg SELECT of the stored column, a file read, a sqlite SELECT,
   a Qdrant ``retrieve``. The ratio ``ours / raw`` is what the backend's hit path costs over
   the bare storage read (decoding the entry included); the target is <= 1.5x. Redis gets a
   second, indented row: the same GET on the backend's own client (a waiting pool and a
   per-command timeout). PostgreSQL gets one too: the same SELECT on a pool that skips
   asyncpg's reset query on release, as the backend's own pool does (asyncpg's default pool
   runs ``RESET ALL ...`` after every query: a second round trip). The targets are against
   the first row, what a hand-written read with the libraries' defaults costs; the second
   row shows how much of the gap is our own work.
2. **Client level.** ``OpenAIClient.get_response`` against the fake OpenAI server (a
   subprocess): ``--calls`` distinct prompts are asked once (all misses; stored) and then
   again (all hits). Hits are timed like part 1 and compared with a raw read of the keys the
   client stored; misses are compared with the same calls through a client without a cache,
   which gives the miss overhead a backend adds to a call. The target for a hit through the
   whole client is <= 1.3x the raw read (redis, postgres, pg_redis; issue 9 §7). The row
   ``default`` times the same hits through a client built as a new user builds it (the
   backend and what reaches it; no rate limits given), against the first raw read.

Every reader is warmed first (one at a time and with all its concurrent readers, so pools are
full). Latencies are then taken read by read in turn (one read by each reader, then the next
key), and rates in interleaved rounds; the best round of each is shown: the machine's noise
hits both sides alike. Miss overhead is measured in pairs (a call
without a cache, then one with it), each with a fresh prompt.

Services come from ``PG_DSN`` / ``REDIS_URL`` (default: the local ones); a backend whose
service is unreachable is skipped with a note. fs and sqlite are compared with two raw reads:
a blocking read on the event loop (the floor) and the same read in a worker thread (what any
async code must do to keep the loop free, and what those backends do).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_TIKTOKEN = Path(__file__).resolve().parents[1].parent / "shared" / "tiktoken-cache"
if "TIKTOKEN_CACHE_DIR" not in os.environ and _TIKTOKEN.is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(_TIKTOKEN)

from llm_client import GPT5Nano, OpenAIClient  # noqa: E402
from llm_client.cache import CacheEntry  # noqa: E402
from llm_client.plugins import cache_backend  # noqa: E402
from llm_client.testing.subprocess_server import spawn_server  # noqa: E402

PG_DSN = os.environ.get("PG_DSN") or "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
ALL = ("memory", "fs", "sqlite", "redis", "postgres", "pg_redis", "qdrant")

Read = Callable[[str], Awaitable[Any]]


# -- timing ---------------------------------------------------------------------------------------


@dataclass
class Timing:
    p50_us: float
    p99_us: float
    per_s: float

    def cells(self) -> str:
        return f"{self.p50_us:8.1f} {self.p99_us:8.1f} {self.per_s:10,.0f}"


def _p50_p99(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


async def alternating(
    readers: dict[str, Read], keys: list[str], n: int
) -> dict[str, tuple[float, float]]:
    """p50 and p99 of ``n`` one-at-a-time reads by each reader, taken in turn (one read of
    each, then the next key): every reader sees the machine in the same state, so a slow
    stretch of the host (this is a shared VM) moves all of them alike."""
    samples: dict[str, list[float]] = {label: [] for label in readers}
    for i in range(n):
        key = keys[i % len(keys)]
        for label, read in readers.items():
            start = time.perf_counter_ns()
            await read(key)
            samples[label].append((time.perf_counter_ns() - start) / 1000)
    return {label: _p50_p99(taken) for label, taken in samples.items()}


async def concurrent(read: Read, keys: list[str], n: int, concurrency: int) -> float:
    """Reads per second with ``concurrency`` readers sharing ``n`` reads."""
    counter = iter(range(n))

    async def reader() -> None:
        for i in counter:
            await read(keys[i % len(keys)])

    start = time.perf_counter()
    await asyncio.gather(*(reader() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


async def measure(
    readers: dict[str, Read], keys: list[str], n: int, concurrency: int, rounds: int
) -> dict[str, Timing]:
    """Time every reader over the same keys, interleaved round by round; best round of each.

    Each reader is warmed first, one at a time and concurrently, so connection set-up (pools
    grow to ``concurrency`` connections) is not timed.
    """
    for read in readers.values():
        for key in keys:
            await read(key)
        await concurrent(read, keys, concurrency * 4, concurrency)
    best: dict[str, Timing] = {}
    for _ in range(rounds):
        latencies = await alternating(readers, keys, n)
        for label, read in readers.items():
            p50, p99 = latencies[label]
            rate = await concurrent(read, keys, n, concurrency)
            old = best.get(label)
            best[label] = (
                Timing(p50, p99, rate)
                if old is None
                else Timing(min(old.p50_us, p50), min(old.p99_us, p99), max(old.per_s, rate))
            )
    return best


# -- backends and their raw reads -----------------------------------------------------------------


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


@dataclass
class Setup:
    """How to build one backend on fresh storage, read its bytes raw, and clean up."""

    name: str
    options: dict[str, Any]
    needs: list[tuple[str, int, str]] = field(default_factory=list)
    cleanup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def missing(self) -> str | None:
        for url, port, what in self.needs:
            if not reachable(url, port):
                return f"{what} not reachable at {url}"
        return None


def setup_for(name: str, workdir: Path) -> Setup:
    tag = uuid.uuid4().hex[:8]
    if name == "memory":
        return Setup(name, {})
    if name == "fs":
        return Setup(name, {"cache_dir": workdir / f"fs-{tag}"})
    if name == "sqlite":
        return Setup(name, {"cache_path": workdir / f"sqlite-{tag}.db"})
    if name == "redis":
        return Setup(
            name,
            {"redis_url": REDIS_URL, "redis_prefix": f"bench:{tag}:"},
            needs=[(REDIS_URL, 6379, "Redis")],
        )
    if name in ("postgres", "pg_redis"):
        needs = [(PG_DSN, 5432, "PostgreSQL")]
        options: dict[str, Any] = {"pg_dsn": PG_DSN, "cache_collection": f"bench_{tag}"}
        if name == "pg_redis":
            needs.append((REDIS_URL, 6379, "Redis"))
            options |= {"redis_url": REDIS_URL, "redis_prefix": f"bench:{tag}:"}
        return Setup(name, options, needs=needs)
    if name == "qdrant":
        return Setup(name, {"qdrant_location": ":memory:", "cache_collection": f"bench_{tag}"})
    raise SystemExit(f"unknown backend {name!r}; choose from {', '.join(ALL)}")


async def raw_readers(backend: Any, setup: Setup) -> dict[str, Read]:
    """Raw reads of the bytes ``backend`` stores for a key (label -> read), and cleanup."""
    name = setup.name
    if name == "memory":
        return {}
    if name == "fs":

        def read_file(key: str) -> bytes:
            return backend.path_for(key).read_bytes()

        async def blocking(key: str) -> bytes:
            return read_file(key)

        async def threaded(key: str) -> bytes:
            return await asyncio.to_thread(read_file, key)

        return {"file read, in a thread": threaded, "file read, blocking": blocking}
    if name == "sqlite":
        conn = sqlite3.connect(backend.path, check_same_thread=False)
        setup.cleanup.append(lambda: asyncio.to_thread(conn.close))
        ns = backend.collection or ""
        sql = "SELECT value FROM llm_cache WHERE collection = ? AND key = ?"

        def select(key: str) -> bytes:
            return bytes(conn.execute(sql, (ns, key)).fetchone()[0])

        async def blocking(key: str) -> bytes:
            return select(key)

        async def threaded(key: str) -> bytes:
            return await asyncio.to_thread(select, key)

        return {"SELECT, in a thread": threaded, "SELECT, blocking": blocking}
    if name in ("redis", "pg_redis"):
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        setup.cleanup.append(client.aclose)
        namespace = backend.namespace if name == "redis" else backend._mirror.namespace

        async def get(key: str) -> bytes:
            return await client.get(namespace + key)

        # the same GET on the backend's own client (waiting pool, per-command timeout): the
        # share of the gap that is the price of never hanging on a frozen Redis
        guarded = (backend if name == "redis" else backend._mirror)._redis()

        async def get_guarded(key: str) -> bytes:
            return await guarded.get(namespace + key)

        return {"redis GET": get, "  same GET, our pool": get_guarded}
    if name == "postgres":
        import asyncpg

        pool = await asyncpg.create_pool(PG_DSN, min_size=1, max_size=10)
        setup.cleanup.append(pool.close)
        sql = f'SELECT data FROM "{backend.table}" WHERE key = $1'

        async def select(key: str) -> bytes:
            return await pool.fetchval(sql, key)

        # the same SELECT on a pool that, like the backend's, skips asyncpg's reset query on
        # release (a second round trip per read): the share of the gap that is our own work
        async def keep_session(conn: Any) -> None:
            return None

        lean = await asyncpg.create_pool(PG_DSN, min_size=1, max_size=10, reset=keep_session)
        setup.cleanup.append(lean.close)

        async def select_lean(key: str) -> bytes:
            return await lean.fetchval(sql, key)

        return {"asyncpg SELECT": select, "  same, no reset query": select_lean}
    if name == "qdrant":
        from llm_client_qdrant.cache import point_id

        client = backend._qdrant()
        collection = backend.collection

        async def retrieve(key: str) -> Any:
            return await client.retrieve(collection, ids=[point_id(key)], with_payload=True)

        return {"qdrant retrieve": retrieve}
    return {}


async def destroy(backend: Any, setup: Setup) -> None:
    """Remove everything the run stored (table, keys, files) and close."""
    try:
        if hasattr(backend, "drop"):
            await backend.drop()
        else:
            await backend.clear()
    finally:
        await backend.aclose()
        for fn in reversed(setup.cleanup):
            await fn()
        setup.cleanup.clear()


def entry(i: int, value_bytes: int) -> CacheEntry:
    text = ("The answer, in some detail: " * (value_bytes // 28 + 1))[:value_bytes]
    return CacheEntry(
        key=f"bench/{i:06d}",
        value={
            "params": {"model": "gpt-5-nano", "messages": [{"role": "user", "content": f"q{i}"}]},
            "output": text,
            "usage": {"input_tokens": 12, "output_tokens": 240, "total_tokens": 252},
            "status": 200,
            "error": "OK",
            "identifier": f"bench/{i:06d}",
        },
        model="gpt-5-nano",
        operation="chat",
        scope="bench",
    )


# -- part 1: backend level ------------------------------------------------------------------------


def ratio_cells(ours: Timing, raw: Timing) -> str:
    return f"{ours.p50_us / raw.p50_us:6.2f}x {raw.per_s / ours.per_s:6.2f}x"


def print_rows(name: str, ours: Timing, raws: dict[str, Timing]) -> None:
    if not raws:
        print(f"  {name:9s} {ours.cells()}   (no raw read to compare with)")
        return
    for i, (label, raw) in enumerate(raws.items()):
        head = f"  {name:9s} {ours.cells()}" if i == 0 else " " * 40
        print(f"{head} | {label:24s} {raw.cells()} | {ratio_cells(ours, raw)}")


HEADER = (
    f"  {'backend':9s} {'p50 µs':>8s} {'p99 µs':>8s} {'hits/s':>10s}"
    f" | {'raw read':24s} {'p50 µs':>8s} {'p99 µs':>8s} {'reads/s':>10s} | {'p50':>7s} {'rate':>7s}"
)


async def backend_level(args: argparse.Namespace, workdir: Path) -> None:
    print(
        f"Backend level: backend.get of {args.keys} keys (~{args.value_bytes} B values),"
        f" {args.reads} reads one at a time (p50/p99), then {args.reads} reads by"
        f" {args.concurrency} concurrent readers (hits/s). Ratios: ours/raw.\n"
    )
    print(HEADER)
    for name in args.backends:
        setup = setup_for(name, workdir)
        if (why := setup.missing()) is not None:
            print(f"  {name:9s} skipped: {why}")
            continue
        backend = cache_backend(name, **setup.options)
        try:
            await backend.warm()
            entries = [entry(i, args.value_bytes) for i in range(args.keys)]
            for e in entries:
                await backend.put(e)
            keys = [e.key for e in entries]
            readers = {"ours": backend.get, **(await raw_readers(backend, setup))}
            timings = await measure(readers, keys, args.reads, args.concurrency, args.rounds)
            ours = timings.pop("ours")
            raws = timings
            print_rows(name, ours, raws)
        finally:
            await destroy(backend, setup)


# -- part 2: through the client -------------------------------------------------------------------


def new_client(url: str, backend: str | None, options: dict[str, Any]) -> OpenAIClient:
    return OpenAIClient(
        GPT5Nano,
        base_url=url,
        api_key="sk-bench",
        cache_backend=backend,
        tokens_per_minute=10**12,
        requests_per_minute=10**9,
        **options,
    )


async def ask(client: OpenAIClient, prompt: str) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter_ns()
    reply = await client.get_response(messages=[{"role": "user", "content": prompt}])
    return (time.perf_counter_ns() - start) / 1000, reply


def hits_of(client: OpenAIClient, prompt_of: dict[str, str]) -> Read:
    """A reader asking ``client`` the prompt stored under each key: a cache hit each time."""

    async def hit(key: str) -> Any:
        reply = await client.get_response(messages=[{"role": "user", "content": prompt_of[key]}])
        assert reply["cached"], "expected a cache hit"
        return reply

    return hit


async def miss_overhead(
    cached: OpenAIClient, plain: OpenAIClient, prompts: list[str]
) -> tuple[float, float]:
    """p50 microseconds of first-time calls with the cache and without, asked in pairs."""
    with_cache, without = [], []
    for prompt in prompts:
        took, reply = await ask(plain, f"no cache: {prompt}")
        assert reply["status"] == 200, reply["error"]
        without.append(took)
        took, reply = await ask(cached, prompt)
        assert reply["status"] == 200 and not reply.get("cached"), reply["error"]
        with_cache.append(took)
    return statistics.median(with_cache), statistics.median(without)


async def client_level(args: argparse.Namespace, workdir: Path) -> None:
    print(
        f"\nClient level: OpenAIClient.get_response, fake OpenAI server in a subprocess,"
        f" {args.calls} distinct prompts. Hits as above (ours = the whole pipeline);"
        f" miss overhead = p50 of a first call with the cache minus p50 without a cache."
        f" Target for hits: p50 <= 1.3x the raw read.\n"
    )
    proc, url = spawn_server()
    plain = new_client(url, None, {})
    try:
        run = uuid.uuid4().hex[:6]
        for i in range(50):  # open connections, load encoders
            await ask(plain, f"warm-up {run} {i}")
        print(HEADER + f" | {'miss p50 µs':>11s} {'no cache':>9s} {'overhead':>9s}")
        for name in args.backends:
            setup = setup_for(name, workdir)
            if (why := setup.missing()) is not None:
                print(f"  {name:9s} skipped: {why}")
                continue
            client = new_client(url, name, setup.options)
            # as a new user builds it: the backend and what reaches it, no limits given
            default = OpenAIClient(
                GPT5Nano, base_url=url, api_key="sk-bench", cache_backend=name, **setup.options
            )
            backend = client.cache
            try:
                await backend.warm()
                for i in range(20):
                    await ask(client, f"{name} {run} warm-up {i}")
                prompts = [f"{name} {run} prompt {i}" for i in range(args.calls)]
                missed, no_cache = await miss_overhead(client, plain, prompts)
                # each stored key and the prompt it answers: hits and raw reads use one set
                prompt_of = {
                    e.key: e.value["params"]["messages"][0]["content"]
                    async for e in backend.export()
                }
                keys = sorted(prompt_of)

                readers = {
                    "ours": hits_of(client, prompt_of),
                    "default": hits_of(default, prompt_of),
                    **(await raw_readers(backend, setup)),
                }
                timings = await measure(readers, keys, args.reads, args.concurrency, args.rounds)
                ours = timings.pop("ours")
                as_built = timings.pop("default")
                tail = f" | {missed:11.1f} {no_cache:9.1f} {missed - no_cache:+8.1f}µs"
                if not timings:
                    print(f"  {name:9s} {ours.cells()}   (no raw read){' ' * 51}{tail}")
                for i, (label, raw) in enumerate(timings.items()):
                    head = f"  {name:9s} {ours.cells()}" if i == 0 else " " * 40
                    print(
                        f"{head} | {label:24s} {raw.cells()} | {ratio_cells(ours, raw)}"
                        + (tail if i == 0 else "")
                    )
                for label, raw in list(timings.items())[:1]:
                    print(
                        f"    default {as_built.cells()} | {label:24s} {raw.cells()} |"
                        f" {ratio_cells(as_built, raw)}"
                    )
            finally:
                await destroy(backend, setup)
                await default.close()
                await client.close()
    finally:
        await plain.close()
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="llm-client-bench-"))
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
        await backend_level(args, workdir)
        if not args.skip_client:
            await client_level(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--value-bytes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    parser.add_argument("--backends", default=",".join(ALL))
    parser.add_argument("--skip-client", action="store_true", help="backend level only")
    ns = parser.parse_args()
    ns.backends = [b.strip() for b in ns.backends.split(",") if b.strip()]
    asyncio.run(main(ns))
