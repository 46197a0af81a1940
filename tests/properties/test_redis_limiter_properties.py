"""The Redis limiter's invariants, against the real Redis server, driven by a state machine.

Time is a fake clock: the scripts take "now" from it (``server_clock``) instead of Redis
``TIME``, and waiters sleep on it, so nothing sleeps for real. Each run uses its own key,
deleted at the end. Checked after every step and at the end:

* every 1 s, 10 s and 60 s window admits at most ``max(burst, largest request) + rate * w``
  tokens net of refunds (refunds count when the server applied them), and likewise requests;
* the shared level never exceeds the burst;
* admission is first come, first served, and each call is admitted exactly when the
  schedule said: ``max(now, previous admission, when each dimension has room)``, so its wait
  is what was queued ahead of it over the rate;
* a request larger than the per-minute limit fails at once and leaves Redis untouched;
* a cancelled waiter gives its slot back, whichever it was: its reservation leaves the
  schedule's pending list, no slot is lost, and the schedule is always its base replayed
  through that list, so it stands as if the cancelled call had never been made (a latest
  reservation cancelled before anything else happened leaves Redis exactly as it was).

Skipped when Redis is unreachable, unless ``LLM_CLIENT_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from llm_client_redis.rate_limit import RedisLimiter

from llm_client.clock import ManualClock
from llm_client.exceptions import InvalidRequestError, RequestTooLargeError, ServerError
from llm_client.testing.services import require_redis

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
WINDOWS = (1.0, 10.0, 60.0)
TOL = 1e-6
EXAMPLES = int(os.environ.get("LIMITER_PROPERTY_EXAMPLES", "40"))

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module", autouse=True)
def _redis_available() -> None:
    require_redis(REDIS_URL)


class SteppingClock(ManualClock):
    def next_wake(self) -> float | None:
        due = [at for at, fut in self._sleepers if not fut.done()]
        return min(due) if due else None


class ObservedLimiter(RedisLimiter):
    """Records when the server applied each reconciliation (for the window check)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settlements: list[tuple[float, float, float]] = []

    def _settled(self, at: float, credit_tokens: float, credit_requests: float) -> None:
        self.settlements.append((at, credit_tokens, credit_requests))


@dataclass(eq=False)
class Call:
    seq: int
    tokens: int
    requests: int
    expected_at: float
    before: dict[str, float]
    reserved_seq: int = -1
    task: asyncio.Task[None] | None = None
    admitted_at: float | None = None
    release: asyncio.Future[Any] | None = None
    finished: bool = False
    cancelled: bool = False


@dataclass
class Release:
    used: int | None
    refund: bool = False
    error: BaseException | None = None


def check_windows(
    events: list[tuple[float, float, float, float]],
    cap_t: float,
    rate_t: float,
    cap_r: float,
    rate_r: float,
) -> None:
    events = sorted(events, key=lambda e: e[0])
    for i, (start, *_rest) in enumerate(events):
        for w in WINDOWS:
            tokens = requests = biggest = biggest_r = 0.0
            for t, dt, dr, size in events[i:]:
                if t > start + w + TOL:
                    break
                tokens += dt
                requests += dr
                biggest = max(biggest, size)
                biggest_r = max(biggest_r, dr)
            bound_t = max(cap_t, biggest) + rate_t * w
            bound_r = max(cap_r, biggest_r) + rate_r * w
            assert tokens <= bound_t * (1 + TOL), (start, w, tokens, bound_t)
            assert requests <= bound_r * (1 + TOL), (start, w, requests, bound_r)


class RedisLimiterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = SteppingClock(start=1000.0)
        self.key = f"test:limiter:{uuid.uuid4().hex[:12]}"
        self.calls: list[Call] = []
        self.seq = 0
        self.events: list[tuple[float, float, float, float]] = []
        self.raw: Any = None

    @initialize(
        tpm=st.sampled_from([600, 6000, 90000]),
        rpm=st.sampled_from([6, 60, 600]),
        burst=st.sampled_from([None, 0.5, 5.0]),
    )
    def setup(self, tpm: int, rpm: int, burst: float | None) -> None:
        import redis.asyncio as aioredis

        self.limiter = ObservedLimiter(
            tokens_per_minute=tpm,
            requests_per_minute=rpm,
            burst_seconds=burst,
            redis_url=REDIS_URL,
            key=self.key,
            clock=self.clock,
            server_clock=self.clock,
            command_timeout=30.0,  # a loaded test machine must not look like an outage
        )
        self.raw = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        stats = self.limiter.stats()
        self.cap_t, self.cap_r = stats["capacity_tokens"], stats["capacity_requests"]
        self.rate_t, self.rate_r = tpm / 60, rpm / 60

    # -- helpers -------------------------------------------------------------------------------

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def waiting(self) -> list[Call]:
        return [c for c in self.calls if c.admitted_at is None and not c.cancelled]

    def running(self) -> list[Call]:
        return [c for c in self.calls if c.admitted_at is not None and not c.finished]

    def state(self) -> dict[str, float]:
        """The schedule in Redis (a missing hash reads as a full bucket, as the scripts do)."""
        raw = self.run(self.raw.hgetall(f"{{{self.key}}}:state"))
        now = self.clock.now() * 1e6
        return {k: float(raw[k]) if k in raw else now for k in ("tt", "tr", "last")}

    def seq_in_redis(self) -> int:
        return int(self.run(self.raw.hget(f"{{{self.key}}}:state", "seq")) or 0)

    def pending(self) -> list[list[str]]:
        """The schedule's pending entries: kind, seq, m_t, m_r, d_t, d_r."""
        entries = self.run(self.raw.lrange(f"{{{self.key}}}:pending", 0, -1))
        return [e.split(" ") for e in entries]

    def reservation_pending(self, call: Call) -> bool:
        return any(e[0] == "r" and int(e[1]) == call.reserved_seq for e in self.pending())

    def settle(self) -> None:
        """Run the loop until every call is parked on the fake clock or its release."""

        async def quiet() -> None:
            for _ in range(2000):
                await asyncio.sleep(0)
                await self.limiter.flush()
                pending = [c for c in self.calls if c.task is not None and not c.task.done()]
                parked = self.limiter.stats()["waiters"] + sum(
                    1 for c in pending if c.admitted_at is not None and not c.finished
                )
                if parked == len(pending) and not self.limiter._background:
                    for _ in range(3):
                        await asyncio.sleep(0)
                    return
                await asyncio.sleep(0.0005)
            pytest.fail("the limiter did not settle")

        self.run(quiet())

    def expected_admission(self, tokens: int, requests: int) -> float:
        """When the schedule must admit a call arriving now: the script's rule, in Python."""
        s = self.state()
        now = self.clock.now() * 1e6
        tt, tr, last = s["tt"], s["tr"], s["last"]
        cap_t, cap_r = self.limiter._cap_t(), self.limiter._cap_r()
        rt, rr = self.limiter.tokens_per_minute / 60e6, self.limiter.requests_per_minute / 60e6
        at = max(
            now,
            last,
            tt - (cap_t - min(tokens, cap_t)) / rt,
            tr - (cap_r - min(requests, cap_r)) / rr,
        )
        return at / 1e6

    async def body(self, call: Call) -> None:
        try:
            async with self.limiter.limit(call.tokens, call.requests) as lease:
                call.admitted_at = self.clock.now()
                assert lease.admitted_at == pytest.approx(call.expected_at, abs=1e-6)
                assert call.admitted_at >= call.expected_at - 1e-6
                self.events.append((lease.admitted_at, call.tokens, call.requests, call.tokens))
                call.release = asyncio.get_running_loop().create_future()
                try:
                    release: Release = await call.release
                finally:
                    call.finished = True
                if release.used is not None:
                    lease.record(release.used)
                if release.refund:
                    lease.refund()
                if release.error is not None:
                    raise release.error
        except (ServerError, InvalidRequestError):
            pass

    # -- rules -----------------------------------------------------------------------------------

    @rule(
        data=st.data(),
        kind=st.sampled_from(["small", "small", "burst", "large"]),
        requests=st.integers(0, 2),
    )
    def acquire(self, data: st.DataObject, kind: str, requests: int) -> None:
        tpm = self.limiter.tokens_per_minute
        top = {"small": max(1, int(self.cap_t / 4)), "burst": int(self.cap_t), "large": int(tpm)}
        tokens = data.draw(st.integers(0, top[kind]), label="tokens")
        requests = min(requests, int(self.limiter.requests_per_minute))
        call = Call(
            self.seq, tokens, requests, self.expected_admission(tokens, requests), self.state()
        )
        self.seq += 1
        self.calls.append(call)
        call.task = self.loop.create_task(self.body(call))
        self.settle()
        call.reserved_seq = self.seq_in_redis()
        if call.expected_at <= self.clock.now():
            assert call.admitted_at is not None, "a call whose time has come still waits"

    @rule(over=st.integers(1, 1000))
    def too_large(self, over: int) -> None:
        before = self.state()
        tokens = int(self.limiter.tokens_per_minute) + over

        async def attempt() -> None:
            with pytest.raises(RequestTooLargeError):
                async with self.limiter.limit(tokens):
                    pytest.fail("admitted a call larger than the per-minute limit")

        self.run(asyncio.wait_for(attempt(), 5))
        assert self.state() == before

    @precondition(lambda self: any(True for _ in self.running()))
    @rule(
        data=st.data(),
        how=st.sampled_from(["used", "used", "estimate", "refund", "not_sent", "error"]),
    )
    def release(self, data: st.DataObject, how: str) -> None:
        call = data.draw(st.sampled_from(self.running()), label="call")
        used = (
            data.draw(st.integers(0, 2 * call.tokens + 5), label="used") if how == "used" else None
        )
        error: BaseException | None = {
            "not_sent": InvalidRequestError("bad input"),
            "error": ServerError("boom"),
        }.get(how)
        seen = len(self.limiter.settlements)
        level_t, level_r = self.run(self.limiter.levels())
        assert call.release is not None
        call.release.set_result(Release(used, refund=how == "refund", error=error))
        self.settle()
        assert call.task is not None and call.task.done()
        for at, credit_t, credit_r in self.limiter.settlements[seen:]:
            # a refund never credits more than the room the bucket had
            assert credit_t <= max(0.0, self.limiter._cap_t() - level_t) * (1 + TOL) + TOL
            assert credit_r <= max(0.0, self.limiter._cap_r() - level_r) * (1 + TOL) + TOL
            self.events.append((at, -credit_t if credit_t > 0 else 0.0, -credit_r, 0.0))

    @precondition(lambda self: any(True for _ in self.waiting()))
    @rule(data=st.data())
    def cancel_waiter(self, data: st.DataObject) -> None:
        call = data.draw(st.sampled_from(self.waiting()), label="call")
        untouched = self.seq_in_redis() == call.reserved_seq  # nothing happened since
        self.cancel([call])
        event("cancelled the latest reservation" if untouched else "cancelled an earlier one")
        if untouched:  # exactly as if it had never come (but for float rounding)
            assert self.state() == pytest.approx(call.before, rel=1e-12)

    @precondition(lambda self: len(self.waiting()) >= 2)
    @rule(data=st.data())
    def cancel_together(self, data: st.DataObject) -> None:
        """Several waiters cancelled at once (a batch hitting its timeout)."""
        calls = data.draw(
            st.lists(st.sampled_from(self.waiting()), min_size=2, unique=True), label="calls"
        )
        self.cancel(calls)

    def cancel(self, calls: list[Call]) -> None:
        before = self.state()
        lost = self.limiter.stats()["lost_slots"]
        assert all(self.reservation_pending(c) for c in calls)
        for call in calls:
            call.cancelled = True
            assert call.task is not None
            call.task.cancel()
        self.settle()
        after = self.state()
        for call in calls:
            assert call.admitted_at is None
            assert not self.reservation_pending(call)  # its slot is given back
        assert self.limiter.stats()["lost_slots"] == lost
        for key in ("tt", "tr", "last"):  # the schedule ends no later than before
            assert after[key] <= before[key] + TOL

    @precondition(lambda self: any(True for _ in self.running()))
    @rule(data=st.data())
    def cancel_running(self, data: st.DataObject) -> None:
        call = data.draw(st.sampled_from(self.running()), label="call")
        assert call.task is not None
        call.task.cancel()
        self.settle()
        assert call.task.done()

    @rule(
        remaining_t=st.none() | st.integers(0, 3000),
        remaining_r=st.none() | st.integers(0, 3),
        status=st.sampled_from([200, 200, 429]),
        retry_ms=st.none() | st.integers(0, 5000),
    )
    def headers(
        self,
        remaining_t: int | None,
        remaining_r: int | None,
        status: int,
        retry_ms: int | None,
    ) -> None:
        headers = {"x-ratelimit-reset-tokens": "1m30.5s", "x-ratelimit-reset-requests": "20ms"}
        if remaining_t is not None:
            headers["x-ratelimit-remaining-tokens"] = str(remaining_t)
        if remaining_r is not None:
            headers["x-ratelimit-remaining-requests"] = str(remaining_r)
        if retry_ms is not None:
            headers["retry-after-ms"] = str(retry_ms)
        before = self.state()

        async def apply() -> None:
            self.limiter.update_from_headers(headers, status=status)
            await self.limiter.flush()

        self.run(apply())
        after = self.state()
        for key in ("tt", "tr"):  # headers only ever lower the level: tat never moves back
            if key in before:
                assert after[key] >= before[key] - TOL
        self.settle()

    @rule(dt=st.sampled_from([0.001, 0.01, 0.1, 0.3, 1.0, 2.5, 10.0, 30.0]))
    def advance(self, dt: float) -> None:
        self.advance_to(self.clock.now() + dt)

    def advance_to(self, target: float) -> None:
        for _ in range(10_000):
            wake = self.clock.next_wake()
            if wake is None or wake > target:
                break
            self.clock.advance(max(0.0, wake - self.clock.now()))
            self.settle()
            self.check_on_time()
        self.clock.advance(max(0.0, target - self.clock.now()))
        self.settle()
        self.check_on_time()

    def check_on_time(self) -> None:
        now = self.clock.now()
        for c in self.waiting():
            assert now < c.expected_at + TOL, f"call {c.seq} is late: {now} > {c.expected_at}"

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def level_within_bounds(self) -> None:
        if self.raw is None:
            return
        level_t, level_r = self.run(self.limiter.levels())
        assert level_t <= self.limiter._cap_t() * (1 + TOL)
        assert level_r <= self.limiter._cap_r() * (1 + TOL)

    @invariant()
    def schedule_is_its_pending_list(self) -> None:
        """The end of the schedule is its base replayed through the pending entries, and
        every waiter's reservation is among them: a cancellation can give any one back."""
        if self.raw is None:
            return
        raw = self.run(self.raw.hgetall(f"{{{self.key}}}:state"))
        if not raw:
            assert not self.pending()
            return
        # with nothing pending the base is the end itself, and is not stored
        t, r, last = (
            float(raw.get(b, raw[e])) for b, e in (("bt", "tt"), ("br", "tr"), ("bl", "last"))
        )
        for kind, _seq, mt, mr, dt, dr in self.pending():
            t = max(t, float(mt)) + float(dt)
            r = max(r, float(mr)) + float(dr)
            if kind == "r":
                last = float(mt)
        # (a refund computes the end in closed form, so allow for float rounding)
        end = (float(raw["tt"]), float(raw["tr"]), float(raw["last"]))
        assert (t, r, last) == pytest.approx(end, rel=1e-12)
        for c in self.waiting():
            assert c.reserved_seq >= 0 and self.reservation_pending(c)

    @invariant()
    def fifo(self) -> None:
        admitted = [c.admitted_at for c in self.calls if c.admitted_at is not None]
        assert admitted == sorted(admitted)

    def teardown(self) -> None:
        try:
            if self.raw is not None:
                for _ in range(10_000):
                    wake = self.clock.next_wake()
                    if not self.waiting() or wake is None:
                        break
                    self.advance_to(wake)
                assert not self.waiting(), "a waiter was stranded"
                for c in self.running():
                    assert c.release is not None
                    c.release.set_result(Release(used=None))
                self.settle()
                check_windows(self.events, self.cap_t, self.rate_t, self.cap_r, self.rate_r)
        finally:
            for c in self.calls:
                if c.task is not None and not c.task.done():
                    c.task.cancel()
            if self.raw is not None:
                self.run(asyncio.sleep(0))
                self.run(self.limiter.aclose())
                self.run(self.raw.delete(*self.limiter._keys))
                self.run(self.raw.aclose())
            self.loop.close()


RedisLimiterMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRedisLimiterMachine = RedisLimiterMachine.TestCase
