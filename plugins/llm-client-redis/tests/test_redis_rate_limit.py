"""The Redis-backed rate limiter against a real Redis server.

The server comes from ``REDIS_URL`` (default: the local one). When it is not reachable the
tests are skipped, unless ``LLM_CLIENT_REQUIRE_SERVICES=1`` turns that into a failure. Each
test uses its own key and removes it afterwards. Outages are real: a closed port, and a TCP
proxy in front of Redis that a test stops and starts again, and a private redis-server that a
test freezes with SIGSTOP. The state-machine test of the same limiter lives in
``tests/properties/test_redis_limiter_properties.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from llm_client_redis.rate_limit import RedisLimiter

from llm_client.clock import ManualClock
from llm_client.exceptions import ConfigurationError, InvalidRequestError, RequestTooLargeError
from llm_client.plugins import new_plugin_manager, rate_limiter
from llm_client.rate_limit import RateLimiter
from llm_client.testing.services import RedisServer, free_port, require_redis

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
LOGGER = "llm_client_redis"


@pytest.fixture(scope="module")
def redis_url() -> str:
    return require_redis(REDIS_URL)


@pytest.fixture
async def key(redis_url: str) -> AsyncIterator[str]:
    name = f"test:limiter:{uuid.uuid4().hex[:12]}"
    yield name
    raw = aioredis.Redis.from_url(redis_url)
    try:
        parts = ("state", "members", "pending", "kt", "kr")
        await raw.delete(*(f"{{{name}}}:{part}" for part in parts))
    finally:
        await raw.aclose()


def make(url: str, key: str, **kw: Any) -> RedisLimiter:
    kw.setdefault("tokens_per_minute", 60_000)  # 1,000 tokens/s
    kw.setdefault("requests_per_minute", 60_000)
    kw.setdefault("command_timeout", 30.0)  # a loaded test machine must not look like an outage
    return RedisLimiter(redis_url=url, key=key, **kw)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -5, float("nan"), "60", None, True])
def test_bad_limits_are_rejected(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="tokens_per_minute"):
        RedisLimiter(tokens_per_minute=bad, requests_per_minute=60)
    with pytest.raises(ConfigurationError, match="requests_per_minute"):
        RedisLimiter(tokens_per_minute=60, requests_per_minute=bad)


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ConfigurationError, match="burst_seconds"):
        RedisLimiter(tokens_per_minute=60, requests_per_minute=60, burst_seconds=0)
    with pytest.raises(ConfigurationError, match="fallback_share"):
        RedisLimiter(tokens_per_minute=60, requests_per_minute=60, fallback_share=2)
    with pytest.raises(ConfigurationError, match="key"):
        RedisLimiter(tokens_per_minute=60, requests_per_minute=60, key="")
    limiter = RedisLimiter(tokens_per_minute=60, requests_per_minute=60)
    with pytest.raises(InvalidRequestError, match="tokens"):
        limiter.limit(-1)
    with pytest.raises(InvalidRequestError, match="requests"):
        limiter.limit(1, "x")  # type: ignore[arg-type]


async def test_too_large_fails_at_once_without_touching_redis(redis_url: str, key: str) -> None:
    limiter = make(redis_url, key, tokens_per_minute=600)
    try:
        with pytest.raises(RequestTooLargeError, match="600 tokens per minute"):
            async with limiter.limit(601):
                pytest.fail("admitted")
        raw = aioredis.Redis.from_url(redis_url)
        assert not await raw.exists(f"{{{key}}}:state")
        await raw.aclose()
    finally:
        await limiter.aclose()


# --- a shared budget -----------------------------------------------------------------------


async def test_is_a_rate_limiter_and_comes_from_the_plugin(redis_url: str, key: str) -> None:
    limiter = rate_limiter(
        "redis",
        plugin_manager=new_plugin_manager(autoload=True),
        tokens_per_minute=6000,
        requests_per_minute=60,
        burst_seconds=None,
        key=key,
        redis_url=redis_url,
    )
    try:
        assert isinstance(limiter, RedisLimiter)
        assert isinstance(limiter, RateLimiter)
        async with limiter.limit(10) as lease:
            lease.record(4)  # OpenAI's per-minute limit keeps the estimate: no refund
        async with limiter.limit(10) as lease:
            lease.refund()  # never sent
        stats = limiter.stats()
        assert stats["admitted_tokens"] == 20
        assert stats["refunded_tokens"] == 10
        assert stats["redis_up"] == 1
        assert stats["processes"] == 1
    finally:
        await limiter.aclose()


async def test_two_limiters_share_one_budget_on_the_server_clock(redis_url: str, key: str) -> None:
    one = make(redis_url, key, burst_seconds=0.1)  # burst 100 tokens, 1,000 tokens/s
    two = make(redis_url, key, burst_seconds=0.1)
    admitted: list[float] = []

    async def call(limiter: RedisLimiter) -> None:
        async with limiter.limit(100) as lease:
            assert lease.admitted_at is not None
            admitted.append(lease.admitted_at)

    try:
        start = time.monotonic()
        await asyncio.gather(*(call(one if i % 2 else two) for i in range(6)))
        elapsed = time.monotonic() - start
        admitted.sort()
        gaps = [b - a for a, b in itertools.pairwise(admitted)]
        assert all(g == pytest.approx(0.1, abs=1e-3) for g in gaps), gaps
        assert elapsed >= 0.49
        assert one.stats()["processes"] == 2
    finally:
        await one.aclose()
        await two.aclose()


async def test_refund_is_shared_and_never_over_the_burst(redis_url: str, key: str) -> None:
    one = make(redis_url, key, burst_seconds=0.1, server_clock=ManualClock(5.0))
    try:
        async with one.limit(30) as lease:
            lease.record(10)  # a shorter answer gives nothing back (OpenAI's rule)
        level_t, _ = await one.levels()
        assert level_t == pytest.approx(70)
        async with one.limit(10) as lease:
            lease.refund()  # never sent: everything back
        assert (await one.levels())[0] == pytest.approx(70)
        async with one.limit(50) as lease:
            lease.refund()
        assert (await one.levels())[0] == pytest.approx(70)
    finally:
        await one.aclose()


async def test_refund_made_while_a_large_call_waits_never_lets_the_next_go_early(
    redis_url: str, key: str
) -> None:
    # Found by the state machine: 90,000 TPM is 1,500 tokens/s with a 1,500-token burst.
    # A takes 1 token; B (1,501, larger than the burst) is scheduled for when the bucket is
    # full again, 1/1500 s later; A then refunds its token while B still sleeps, so the refund
    # lands at B's slot, before B is admitted. Crediting it moved the schedule back by
    # 1/1500 s and let C (1,501) start exactly 1 s after B: 3,002 tokens admitted in
    # [B, B + 1 s], over the bound max(burst, 1,501) + 1,500 * 1 = 3,001.
    clock = ManualClock(1000.0)
    limiter = RedisLimiter(
        tokens_per_minute=90_000,
        requests_per_minute=6,
        redis_url=redis_url,
        key=key,
        clock=clock,
        server_clock=clock,
    )
    rate, cap = 1500.0, 1500.0
    admitted: list[tuple[float, int]] = []
    released = asyncio.Event()

    async def call(tokens: int, *, used: int | None = None) -> None:
        async with limiter.limit(tokens, requests=0) as lease:
            assert lease.admitted_at is not None
            admitted.append((lease.admitted_at, tokens))
            if used is not None:
                await released.wait()
                lease.refund()  # the only refund left: a call that was never sent

    try:
        a = asyncio.create_task(call(1, used=0))
        await asyncio.sleep(0.05)
        b = asyncio.create_task(call(1501))
        for _ in range(200):
            await asyncio.sleep(0.001)
            if limiter.stats()["waiters"]:
                break
        assert limiter.stats()["waiters"] == 1  # B sleeps until its slot
        released.set()
        await a  # A refunds its token while B is still scheduled ahead
        clock.advance(1 / rate)
        await b
        c = asyncio.create_task(call(1501))
        for _ in range(200):
            await asyncio.sleep(0.001)
            if limiter.stats()["waiters"]:
                break
        clock.advance(2.0)  # C wakes at its slot; its admission time is the schedule's
        await asyncio.wait_for(c, 5)
        (t_b, _), (t_c, _) = admitted[1], admitted[2]
        assert t_b == pytest.approx(1000.0 + 1 / rate, abs=1e-6)
        # Every window of 1 s starting at B's admission stays within the bound. The refund
        # was applied before B was admitted, so it is no credit against that window.
        in_window = sum(n for t, n in admitted if t_b <= t <= t_b + 1.0 + 1e-6)
        assert in_window <= max(cap, 1501) + rate * 1.0
        assert t_c >= t_b + 1501 / rate - 1e-6
        assert (await limiter.levels())[0] <= cap
    finally:
        await limiter.aclose()


async def test_429_pauses_every_process_using_the_key(redis_url: str, key: str) -> None:
    one = make(redis_url, key)
    two = make(redis_url, key)
    try:
        async with one.limit(1):
            pass
        one.update_from_headers(
            {"x-ratelimit-remaining-tokens": "0", "retry-after-ms": "300"}, status=429
        )
        await one.flush()
        assert one.stats()["throttle_events"] == 1
        start = time.monotonic()
        async with two.limit(1):
            waited = time.monotonic() - start
        assert waited >= 0.29
    finally:
        await one.aclose()
        await two.aclose()


async def test_cancelled_waiter_gives_its_reservation_back(redis_url: str, key: str) -> None:
    limiter = make(redis_url, key, burst_seconds=0.1)
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with limiter.limit(100):
            pass
        before = await raw.hmget(f"{{{key}}}:state", "tt", "tr", "last")
        task = asyncio.create_task(limiter.limit(100).__aenter__())
        for _ in range(200):
            await asyncio.sleep(0.001)
            if limiter.stats()["waiters"]:
                break
        assert limiter.stats()["waiters"] == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await limiter.flush()
        assert await raw.hmget(f"{{{key}}}:state", "tt", "tr", "last") == before
        assert limiter.stats()["lost_slots"] == 0
    finally:
        await raw.aclose()
        await limiter.aclose()


async def test_a_slot_that_has_come_cannot_be_given_back(redis_url: str, key: str) -> None:
    # A cancellation that reaches Redis after the reservation's slot has come (the caller was
    # cancelled while its reservation was on the wire) finds nothing to undo: the slot counts
    # as lost and the schedule is left as it was.
    clock = ManualClock(1000.0)
    limiter = make(redis_url, key, burst_seconds=0.1, clock=clock, server_clock=clock)
    raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with limiter.limit(60):
            pass
        clock.advance(0.01)
        async with limiter.limit(10):
            pass  # the first reservation's slot has come: it leaves the pending list
        before = await raw.hgetall(f"{{{key}}}:state")
        limiter._give_back(1)
        await limiter.flush()
        assert limiter.stats()["lost_slots"] == 1
        after = await raw.hgetall(f"{{{key}}}:state")
        assert {k: after[k] for k in ("tt", "tr", "last")} == {
            k: before[k] for k in ("tt", "tr", "last")
        }
        assert (await limiter.levels())[0] == pytest.approx(100 - 60 + 10 - 10)
    finally:
        await raw.aclose()
        await limiter.aclose()


async def _park(limiter: RedisLimiter, waiters: int, in_flight: int | None = None) -> None:
    """Run the loop until ``waiters`` callers sleep until their slots (and ``in_flight`` run)."""
    for _ in range(2000):
        stats = limiter.stats()
        if (
            stats["waiters"] == waiters
            and in_flight in (None, stats["in_flight"])
            and not limiter._background
        ):
            return
        await asyncio.sleep(0.001)
    pytest.fail(f"expected {waiters} waiters, found {limiter.stats()['waiters']}")


@pytest.mark.parametrize(("cancelled", "order"), [(78, "fifo"), (300, "fifo"), (300, "random")])
async def test_cancelled_waiters_give_their_slots_back(
    redis_url: str, key: str, cancelled: int, order: str
) -> None:
    # 600 RPM: 10 requests a second, a burst of 10. Ten calls run and drain the burst, so a
    # next call is due 0.1 s later. Had it come after `cancelled` waiters that were then
    # cancelled (a batch hitting its timeout cancels them oldest first), it used to queue
    # behind all their dead slots but the latest: 28.3 s for 300, 7.6 s for 78.
    clock = ManualClock(1000.0)
    limiter = make(
        redis_url,
        key,
        tokens_per_minute=6_000_000,
        requests_per_minute=600,
        clock=clock,
        server_clock=clock,
    )
    hold = asyncio.Event()

    async def call() -> None:
        async with limiter.limit(1):
            await hold.wait()

    try:
        running = [asyncio.create_task(call()) for _ in range(10)]
        await _park(limiter, 0, in_flight=10)
        waiting = [asyncio.create_task(call()) for _ in range(cancelled)]
        await _park(limiter, cancelled)
        if order == "random":
            random.Random(cancelled).shuffle(waiting)
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        await limiter.flush()
        assert limiter.stats()["lost_slots"] == 0
        # The shared schedule stands as if those calls had never been made.
        _, level_r = await limiter.levels()
        assert level_r == pytest.approx(0.0, abs=1e-6)  # ten taken from a burst of ten

        cm = limiter.limit(1)
        nxt = asyncio.create_task(cm.__aenter__())
        await _park(limiter, 1)
        clock.advance(0.1)  # when the next call is due had the others never been made
        lease = await asyncio.wait_for(nxt, 5)
        assert lease.admitted_at == pytest.approx(1000.1, abs=1e-6)
        await cm.__aexit__(None, None, None)
        hold.set()
        await asyncio.gather(*running)
    finally:
        hold.set()
        await limiter.aclose()


async def test_slots_freed_by_one_process_serve_another(redis_url: str, key: str) -> None:
    # Two processes share one key: A's waiters are cancelled while B's, reserved after them,
    # keep their slots (B sleeps and cannot be moved). The schedule is replayed without A's:
    # the bucket refills in the gap they leave, so a call from A is admitted together with
    # B's last one instead of a tenth of a second after it.
    clock = ManualClock(1000.0)
    a, b = (
        make(
            redis_url,
            key,
            tokens_per_minute=6_000_000,
            requests_per_minute=600,
            clock=clock,
            server_clock=clock,
        )
        for _ in range(2)
    )
    hold = asyncio.Event()

    async def call(limiter: RedisLimiter) -> None:
        async with limiter.limit(1):
            await hold.wait()

    try:
        tasks = [asyncio.create_task(call(a)) for _ in range(10)]  # drain the burst
        await _park(a, 0, in_flight=10)
        a_waiting = [asyncio.create_task(call(a)) for _ in range(20)]
        await _park(a, 20)
        b_waiting = [asyncio.create_task(call(b)) for _ in range(3)]  # slots 2.1, 2.2, 2.3 s
        await _park(b, 3)
        for task in a_waiting:
            task.cancel()
        await asyncio.gather(*a_waiting, return_exceptions=True)
        await a.flush()
        assert a.stats()["lost_slots"] == 0
        cm = a.limit(1)
        nxt = asyncio.create_task(cm.__aenter__())
        await _park(a, 1)
        clock.advance(2.3)
        await _park(b, 0, in_flight=3)  # B's callers woke at their own slots
        lease = await asyncio.wait_for(nxt, 5)
        assert lease.admitted_at == pytest.approx(1002.3, abs=1e-6)  # not 1002.4
        await cm.__aexit__(None, None, None)
        hold.set()
        await asyncio.gather(*tasks, *b_waiting)
    finally:
        hold.set()
        await a.aclose()
        await b.aclose()


# --- outages -----------------------------------------------------------------------------------


async def test_unreachable_redis_falls_back_to_a_local_share_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    limiter = RedisLimiter(
        tokens_per_minute=6000,
        requests_per_minute=600,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        key="unreachable",
        clock=clock,
        fallback_share=0.5,
        reconnect_interval=5.0,
    )
    caplog.set_level(logging.INFO, logger=LOGGER)
    try:
        for _ in range(3):
            async with limiter.limit(10) as lease:
                lease.record(10)
        stats = limiter.stats()
        assert stats["redis_up"] == 0
        assert stats["fallback_calls"] == 3
        assert stats["redis_failures"] == 1  # tried once, then waits out the interval
        assert limiter._local().stats()["capacity_tokens"] == 50  # half of 100
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "unavailable" in warnings[0].getMessage()
        clock.advance(5.0)
        async with limiter.limit(10):
            pass
        assert limiter.stats()["fallback_calls"] == 4  # the call did not wait for the probe
        await limiter.flush()  # the probe made in the background
        assert limiter.stats()["redis_failures"] == 2
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    finally:
        await limiter.aclose()


class PrivateRedis(RedisServer):
    """A redis-server of this test alone, on a free port, that the test can freeze."""

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.thaw()
        super().stop()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        if os.environ.get("LLM_CLIENT_REQUIRE_SERVICES") == "1":
            pytest.fail("redis-server is not installed (LLM_CLIENT_REQUIRE_SERVICES=1)")
        pytest.skip("redis-server is not installed")
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


async def test_a_frozen_redis_does_not_stall_limiter_calls(private_redis: PrivateRedis) -> None:
    # A frozen server accepts connections and never answers. Each limiter call used to wait
    # for it for about 4 s (a 2 s socket timeout, then the same again on redis-py's retry),
    # holding up the process's other callers behind it, and again at every reconnect attempt.
    clock = ManualClock()
    limiter = RedisLimiter(
        tokens_per_minute=60_000,
        requests_per_minute=60_000,
        redis_url=private_redis.url,
        key="frozen",
        clock=clock,
        reconnect_interval=1.0,
    )

    async def call() -> None:
        async with limiter.limit(10) as lease:
            lease.record(5)

    try:
        await call()
        assert limiter.stats()["fallback_calls"] == 0
        private_redis.freeze()
        started = time.monotonic()
        # Twenty concurrent calls: one finds out that Redis is gone, within one short round
        # trip; the others, queued behind it, use the local share at once.
        await asyncio.gather(*(call() for _ in range(20)))
        stats = limiter.stats()
        assert stats["fallback_calls"] == 20
        assert stats["redis_up"] == 0
        assert stats["redis_failures"] == 1
        # Later calls, each when a new attempt is due: a background probe makes it, and the
        # call does not wait for its answer.
        for i in range(1, 6):
            clock.advance(1.0)
            failures = limiter.stats()["redis_failures"]
            await call()
            stats = limiter.stats()
            assert stats["fallback_calls"] == 20 + i
            assert stats["redis_failures"] == failures  # this round's probe is still out
        elapsed = time.monotonic() - started
        assert elapsed < 4.0, elapsed  # today one call alone took about 4 s
        await limiter.flush()
        assert limiter.stats()["redis_failures"] == 6  # every probe timed out
    finally:
        private_redis.thaw()
    # Thawed: the next probe finds Redis, and calls use it again.
    clock.advance(1.0)
    await call()
    await limiter.flush()
    assert limiter.stats()["redis_up"] == 1
    await call()
    assert limiter.stats()["fallback_calls"] == 26
    await limiter.aclose()


class Proxy:
    """A TCP proxy in front of Redis that a test can take down and bring back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()
        self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


async def test_recovers_when_redis_returns(
    redis_url: str, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    parts = urlsplit(redis_url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    await proxy.start()
    clock = ManualClock()
    db = parts.path or "/0"
    limiter = make(f"redis://127.0.0.1:{proxy.port}{db}", key, clock=clock, reconnect_interval=1.0)
    caplog.set_level(logging.INFO, logger=LOGGER)
    try:
        async with limiter.limit(10):
            pass
        assert limiter.stats()["fallback_calls"] == 0
        await proxy.stop()
        for _ in range(3):
            async with limiter.limit(10):
                pass
        assert limiter.stats()["redis_up"] == 0
        assert limiter.stats()["fallback_calls"] == 3
        await proxy.start()
        clock.advance(1.0)
        async with limiter.limit(10):
            pass  # served locally while a background probe finds Redis again
        await limiter.flush()
        assert limiter.stats()["redis_up"] == 1
        async with limiter.limit(10):
            pass
        stats = limiter.stats()
        assert stats["redis_up"] == 1
        assert stats["fallback_calls"] == 4
        levels = [r.levelno for r in caplog.records if r.name == LOGGER]
        assert levels.count(logging.WARNING) == 1
        assert levels.count(logging.INFO) == 1
        assert "reachable again" in caplog.records[-1].getMessage()
    finally:
        await limiter.aclose()
        if proxy.server is not None:
            await proxy.stop()


# --- several processes, one budget ---------------------------------------------------------------

_WORKER = """
import asyncio, json, random, sys, time
from llm_client_redis.rate_limit import RedisLimiter

async def main(url, key, seconds):
    limiter = RedisLimiter(
        tokens_per_minute=60_000, requests_per_minute=600_000, redis_url=url, key=key,
        command_timeout=30.0,
    )
    rng = random.Random()
    admitted = []
    deadline = time.monotonic() + seconds

    async def worker():
        while time.monotonic() < deadline:
            size = rng.randint(1, 200)
            async with limiter.limit(size) as lease:
                admitted.append((lease.admitted_at, size))
                lease.record(size)

    await asyncio.gather(*(worker() for _ in range(20)))
    await limiter.aclose()
    print(json.dumps(admitted))

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
"""


def test_processes_share_one_budget_per_window_from_the_servers_view(
    redis_url: str, key: str
) -> None:
    seconds, rate, burst = 2.0, 1000.0, 1000.0  # 60,000 TPM, one second of burst
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, redis_url, key, str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    admitted = sorted(tuple(x) for out in outputs for x in json.loads(out))
    per_process = [len(json.loads(out)) for out in outputs]
    assert all(n > 0 for n in per_process), per_process
    times = [t for t, _ in admitted]
    start, end = times[0], times[-1]
    total = sum(n for _, n in admitted)
    # every window, as the server's clock saw it, within burst + rate * w
    for w in (0.1, 1.0, 2.0):
        j, acc = 0, 0.0
        for i, (t0, _) in enumerate(admitted):
            while j < len(admitted) and admitted[j][0] <= t0 + w:
                acc += admitted[j][1]
                j += 1
            assert acc <= burst + rate * w + 1e-6, (w, t0, acc)
            acc -= admitted[i][1]
    # and the budget is used: all but the first burst at the rate
    assert (total - burst) / (rate * (end - start)) >= 0.9


async def test_two_clients_share_one_budget_through_redis(redis_url: str) -> None:
    from llm_client import GPT5Nano, OpenAIClient
    from llm_client.testing import FakeOpenAI

    shared = f"{{llm_client:ratelimit:{GPT5Nano.model_name}}}"
    raw = aioredis.Redis.from_url(redis_url)
    messages = [{"role": "user", "content": "Hello"}]
    try:
        async with FakeOpenAI() as server:
            clients = [
                OpenAIClient(
                    GPT5Nano,
                    base_url=server.base_url,
                    api_key="sk-test",
                    cache_backend=None,
                    rate_limit_backend="redis",
                    redis_url=redis_url,
                )
                for _ in range(2)
            ]
            try:
                for client in clients:
                    assert (await client.get_response(messages=messages))["status"] == 200
                stats = [client.stats()["limiter"] for client in clients]
            finally:
                for client in clients:
                    await client.close()
        assert all(isinstance(c.limiter, RedisLimiter) for c in clients)
        assert [s["admitted_requests"] for s in stats] == [1, 1]
        assert stats[1]["processes"] == 2  # both used the one budget in Redis
        assert all(s["redis_up"] == 1 for s in stats)
    finally:
        parts = ("state", "members", "pending", "kt", "kr")
        await raw.delete(*(f"{shared}:{part}" for part in parts))
        await raw.aclose()
