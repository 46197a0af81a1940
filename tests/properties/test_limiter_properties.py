"""Property tests of the local limiter, driven by a fake clock (nothing sleeps).

The stateful test interleaves acquires of mixed sizes (some above the burst, some above the
per-minute limit), releases with real usage (refunds and charges), explicit refunds,
not-sent errors, cancellations of waiters and of running calls, header syncs and 429s, and
clock advances, and checks after every step and at the end:

* every 1 s, 10 s and 60 s window admits at most ``max(burst, largest request) + rate * w``
  tokens (net of refunds), and likewise requests, against the limit in force at each moment:
  the limiter either follows the server's ``limit-*`` headers both ways (its starting limits
  are a guess) or takes them only up to its ceiling; the bound uses the largest burst and
  the integral of the rate in force over the window;
* the per-minute token bucket never refunds an estimate the call recorded less than;
* the level never exceeds the capacity, and stays above the debt its admissions explain;
* admission is FIFO;
* a waiter not disturbed by charges or headers is admitted by its bound: what was queued
  ahead of it plus its own need, minus the level when it arrived, over the rate;
* nobody is stranded: once time runs on, every waiter is admitted;
* a request larger than the per-minute limit fails at once and leaves the budget as it was;
* a cancelled waiter leaves no trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from llm_client.clock import ManualClock
from llm_client.exceptions import InvalidRequestError, RequestTooLargeError, ServerError
from llm_client.rate_limit import Limiter, TokenBucket, parse_reset_duration

WINDOWS = (1.0, 10.0, 60.0)
TOL = 1e-6
EXAMPLES = int(os.environ.get("LIMITER_PROPERTY_EXAMPLES", "150"))


class SteppingClock(ManualClock):
    """A ManualClock that can tell when its next sleeper is due, to advance timer by timer."""

    def next_wake(self) -> float | None:
        due = [at for at, fut in self._sleepers if not fut.done()]
        return min(due) if due else None


# --- the bucket alone -------------------------------------------------------------------------

ops = st.lists(
    st.tuples(
        st.sampled_from(["advance", "take", "try_take", "refund", "charge", "lower"]),
        st.floats(0, 500, allow_nan=False),
    ),
    max_size=40,
)


@given(capacity=st.floats(1, 1000), rate=st.floats(0.1, 1000), steps=ops)
def test_bucket_level_never_exceeds_capacity(capacity, rate, steps):
    clock = ManualClock()
    bucket = TokenBucket(capacity, rate, clock=clock)
    for op, x in steps:
        if op == "advance":
            clock.advance(x / 100)
        elif op == "take":
            if bucket.fits(x):
                before = bucket.level
                bucket.take(x)
                # admitted only with level >= min(x, capacity): debt at most x - capacity
                assert bucket.level >= min(0.0, capacity - x) - TOL * capacity
                assert bucket.level == pytest.approx(before - x)
        elif op == "try_take":
            fits = bucket.fits(x)
            assert bucket.try_take(x) == fits
        elif op == "refund":
            before = bucket.level
            rose = bucket.refund(x)
            assert 0 <= rose <= x + TOL
            assert bucket.level == pytest.approx(min(capacity, before + x))
        elif op == "charge":
            bucket.charge(x)
        else:
            bucket.lower_to(x - 250)
        assert bucket.level <= capacity


@given(
    capacity=st.floats(1, 1000),
    rate=st.floats(0.1, 1000),
    level=st.floats(-5000, 1000),
    amount=st.floats(0, 5000),
)
@example(capacity=10.0, rate=1.0, level=0.0, amount=1e-05)  # the tolerance case, found by CI
def test_bucket_wait_time_is_exact(capacity, rate, level, amount):
    clock = ManualClock()
    bucket = TokenBucket(capacity, rate, clock=clock, level=level)
    wait = bucket.wait_time(amount)
    clock.advance(wait)
    assert bucket.fits(amount)
    # The bucket counts a deficit of up to 1e-9 of its capacity as fitting (float round-off):
    # a wait is checked to be no shorter than needed only when its last 0.1% is worth more
    # than that (capacity=10, amount=1e-5 from empty: the last 0.1% is exactly 1e-8).
    if wait > 1e-6 and wait * rate * 1e-3 > 2e-9 * capacity:
        clock = ManualClock()
        bucket = TokenBucket(capacity, rate, clock=clock, level=level)
        clock.advance(wait * 0.999)
        assert not bucket.fits(amount)


@given(
    h=st.integers(0, 30),
    m=st.integers(0, 59),
    s=st.decimals(0, 59, places=3),
    ms=st.integers(0, 999),
)
def test_go_durations_parse(h, m, s, ms):
    """Every shape Go's Duration.String() gives (as OpenAI's reset headers carry)."""
    expected = h * 3600 + m * 60 + float(s)
    text = f"{h}h{m}m{s}s" if h else (f"{m}m{s}s" if m else f"{s}s")
    assert parse_reset_duration(text) == pytest.approx(expected)
    assert parse_reset_duration(f"{ms}ms") == pytest.approx(ms / 1000)


@given(st.text(max_size=12))
def test_reset_parsing_never_raises(text):
    value = parse_reset_duration(text)
    assert value is None or (value >= 0 and math.isfinite(value))


# --- the limiter as a state machine -------------------------------------------------------------


@dataclass(eq=False)
class Call:
    seq: int
    tokens: float  # as the limiter counts it: the amount asked for, times the token pad
    requests: int
    enqueued: float
    deadline: float
    task: asyncio.Task[None] | None = None
    admitted_at: float | None = None
    finished: bool = False
    cancelled: bool = False
    disturbed: bool = False
    release: asyncio.Future[Any] | None = None
    record_on_cancel: int | None = None
    asked: int = 0


@dataclass
class Release:
    used: int | None
    refund: bool = False
    error: BaseException | None = None
    cancel_after: Call | None = None


@dataclass
class Ledger:
    """What the model saw admitted and given back, with times, for the window checks."""

    events: list[tuple[float, float, float, float]] = field(default_factory=list)
    # (time, tokens, requests, size of the admission or 0 for a refund)

    def admit(self, t: float, tokens: float, requests: float) -> None:
        self.events.append((t, tokens, requests, tokens))

    def refund(self, t: float, tokens: float, requests: float) -> None:
        self.events.append((t, -tokens, -requests, 0.0))


Shape = tuple[float, float, float, float, float]  # since (time): cap_t, rate_t, cap_r, rate_r


def _in_force(
    shapes: list[Shape], start: float, end: float
) -> tuple[float, float, float, float, float, float]:
    """Over [start, end]: the largest and smallest capacities and the integrals of the
    rates (tokens: cap_max, cap_min, area; then the same for requests)."""
    cap_t = cap_r = area_t = area_r = 0.0
    min_t = min_r = math.inf
    for i, (since, ct, rt, cr, rr) in enumerate(shapes):
        until = shapes[i + 1][0] if i + 1 < len(shapes) else math.inf
        lo, hi = max(since, start), min(until, end)
        if hi < lo:
            continue  # a change at the window's first instant still counts: calls admitted
            # in that instant (before it) were admitted under the shape it replaced
        cap_t, cap_r = max(cap_t, ct), max(cap_r, cr)
        min_t, min_r = min(min_t, ct), min(min_r, cr)
        area_t += rt * (hi - lo)
        area_r += rr * (hi - lo)
    return cap_t, min_t, area_t, cap_r, min_r, area_r


def check_windows(
    ledger: Ledger,
    cap_t: float,
    rate_t: float,
    cap_r: float,
    rate_r: float,
    shapes: list[Shape] | None = None,
) -> None:
    """Every window within max(burst, largest) + the rate integrated over it; ``shapes``
    gives the budget in force over time (else the one given stays in force).

    With a budget that changes inside the window the bound is: the largest burst in force
    (what the level can hold when the window opens), plus the most a call larger than the
    burst can leave as debt (its size less the smallest burst in force), plus the rate
    integrated over the window. With one budget this is exactly max(burst, largest) +
    rate * w."""
    events = sorted(ledger.events, key=lambda e: e[0])
    for i, (start, *_rest) in enumerate(events):
        for w in WINDOWS:
            tokens = requests = biggest = biggest_r = 0.0
            for t, dt, dr, size in events[i:]:
                if t > start + w:
                    break
                tokens += dt
                requests += dr
                biggest = max(biggest, size)
                biggest_r = max(biggest_r, dr)
            if shapes is None:
                bound_t = max(cap_t, biggest) + rate_t * w
                bound_r = max(cap_r, biggest_r) + rate_r * w
            else:
                ct, lo_t, area_t, cr, lo_r, area_r = _in_force(shapes, start, start + w)
                bound_t = ct + max(0.0, biggest - lo_t) + area_t
                bound_r = cr + max(0.0, biggest_r - lo_r) + area_r
            assert tokens <= bound_t * (1 + TOL), (start, w, tokens, bound_t)
            assert requests <= bound_r * (1 + TOL), (start, w, requests, bound_r)


async def settle(rounds: int = 12) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


class LimiterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = SteppingClock()
        self.calls: list[Call] = []
        self.ledger = Ledger()
        self.seq = 0
        self.order: list[int] = []
        self.charged = 0.0
        self.max_pause = 0.0
        self.biggest = 0.0
        self.refunded_t = 0.0
        self.admitted_t = 0.0

    # -- set-up ------------------------------------------------------------------------------

    @initialize(
        tpm=st.sampled_from([600, 6000, 90000]),
        rpm=st.sampled_from([6, 60, 600]),
        burst=st.sampled_from([None, 0.5, 2.0, 10.0]),
        follow=st.booleans(),
    )
    def setup(self, tpm: int, rpm: int, burst: float | None, follow: bool) -> None:
        ceiling = math.inf if follow else None  # follow the server, or a ceiling
        self.limiter = Limiter(
            tpm,
            rpm,
            burst_seconds=burst,
            clock=self.clock,
            max_tokens_per_minute=ceiling,
            max_requests_per_minute=ceiling,
        )
        stats = self.limiter.stats()
        self.tpm, self.rpm = tpm, rpm
        self.cap_t, self.cap_r = stats["capacity_tokens"], stats["capacity_requests"]
        self.rate_t, self.rate_r = tpm / 60, rpm / 60
        self.max_rpm = rpm
        self.max_rate_r = self.rate_r
        self.limit_known = not follow
        self.shapes: list[Shape] = [(0.0, self.cap_t, self.rate_t, self.cap_r, self.rate_r)]

    def note_shape(self) -> None:
        """Record the budget in force from now on (for the window checks)."""
        t, r = self.limiter.token_bucket, self.limiter.request_bucket
        self.rate_t = max(self.rate_t, t.rate)
        self.max_rpm = max(self.max_rpm, self.limiter.requests_per_minute)
        self.max_rate_r = max(self.max_rate_r, r.rate)
        shape = (self.clock.now(), t.capacity, t.rate, r.capacity, r.rate)
        if shape[1:] != self.shapes[-1][1:]:
            self.shapes.append(shape)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def settle(self) -> None:
        self.run(settle())

    # -- the model ---------------------------------------------------------------------------

    def waiting(self) -> list[Call]:
        return [c for c in self.calls if c.admitted_at is None and not c.cancelled]

    def running(self) -> list[Call]:
        return [c for c in self.calls if c.admitted_at is not None and not c.finished]

    async def body(self, call: Call) -> None:
        with contextlib.suppress(ServerError, InvalidRequestError):
            await self.call_body(call)

    async def call_body(self, call: Call) -> None:
        async with self.limiter.limit(call.asked, call.requests) as lease:
            assert lease.tokens == pytest.approx(call.tokens)
            call.admitted_at = self.clock.now()
            self.order.append(call.seq)
            self.ledger.admit(call.admitted_at, call.tokens, call.requests)
            self.admitted_t += call.tokens
            self.biggest = max(self.biggest, call.tokens)
            call.release = asyncio.get_running_loop().create_future()
            try:
                release: Release = await call.release
            except asyncio.CancelledError:
                if call.record_on_cancel is not None:
                    lease.record(call.record_on_cancel)
                self.reconcile(call, call.record_on_cancel, refund=False)
                call.finished = True
                raise
            if release.used is not None:
                lease.record(release.used)
            if release.refund:
                lease.refund()
            self.reconcile(
                call,
                release.used,
                refund=release.refund
                or (release.used is None and isinstance(release.error, InvalidRequestError)),
            )
            call.finished = True
            if release.error is not None:
                raise release.error
        if release.cancel_after is not None and release.cancel_after.task is not None:
            release.cancel_after.cancelled = True
            release.cancel_after.task.cancel()

    def reconcile(self, call: Call, used: int | None, *, refund: bool) -> None:
        now = self.clock.now()
        if refund:
            self.ledger.refund(now, call.tokens, call.requests)
            self.refunded_t += call.tokens
        elif used is not None and used > call.tokens:  # below it: no refund (OpenAI's rule)
            self.charged += used - call.tokens
            for c in self.waiting():
                c.disturbed = True

    # -- rules ---------------------------------------------------------------------------------

    @rule(
        data=st.data(),
        kind=st.sampled_from(["small", "small", "burst", "large"]),
        requests=st.integers(0, 2),
    )
    def acquire(self, data: st.DataObject, kind: str, requests: int) -> None:
        tpm = self.limiter.tokens_per_minute
        cap = self.limiter.stats()["capacity_tokens"]
        top = {"small": max(1, int(cap / 4)), "burst": int(cap), "large": int(tpm)}[kind]
        asked = data.draw(st.integers(0, top), label="tokens")
        largest = self.limiter._largest_t  # padding never makes a call too large to run
        tokens = asked * self.limiter.token_pad
        tokens = tokens if tokens <= largest else max(asked, largest)
        requests = min(requests, int(self.limiter.requests_per_minute))
        now = self.clock.now()
        ahead = self.waiting()
        level_t = self.limiter.token_bucket.level
        level_r = self.limiter.request_bucket.level
        need_t = min(tokens, self.limiter.token_bucket.capacity)
        need_r = min(requests, self.limiter.request_bucket.capacity)
        rate_t, rate_r = self.limiter.token_bucket.rate, self.limiter.request_bucket.rate
        bound_t = max(0.0, sum(c.tokens for c in ahead) + need_t - level_t) / rate_t
        bound_r = max(0.0, sum(c.requests for c in ahead) + need_r - level_r) / rate_r
        call = Call(self.seq, tokens, requests, now, now + bound_t + bound_r, asked=asked)
        self.seq += 1
        self.calls.append(call)
        call.task = self.loop.create_task(self.body(call))
        self.settle()
        if not ahead and call.deadline == now:
            assert call.admitted_at == now, "a call that fits an idle limiter waits"

    @precondition(lambda self: self.limit_known)
    @rule(over=st.integers(1, 1000))
    def too_large(self, over: int) -> None:
        before = self.limiter.stats()
        tokens = int(self.limiter.tokens_per_minute) + over

        async def attempt() -> None:
            with pytest.raises(RequestTooLargeError):
                async with self.limiter.limit(tokens):
                    pytest.fail("admitted a call larger than the per-minute limit")

        self.run(asyncio.wait_for(attempt(), 1))  # the fake clock never moves: no waiting
        after = self.limiter.stats()
        assert after["level_tokens"] == before["level_tokens"]
        assert after["admitted_tokens"] == before["admitted_tokens"]
        assert after["waiters"] == before["waiters"]

    @precondition(lambda self: any(True for _ in self.running()))
    @rule(
        data=st.data(),
        how=st.sampled_from(["used", "used", "estimate", "refund", "not_sent", "error"]),
        race=st.booleans(),
    )
    def release(self, data: st.DataObject, how: str, race: bool) -> None:
        call = data.draw(st.sampled_from(self.running()), label="call")
        used = None
        if how == "used":
            used = data.draw(st.integers(0, int(2 * call.tokens) + 5), label="used")
        error: BaseException | None = {
            "not_sent": InvalidRequestError("bad input"),
            "error": ServerError("boom"),
        }.get(how)
        waiting = self.waiting()
        victim = waiting[0] if race and waiting else None
        assert call.release is not None
        call.release.set_result(
            Release(used, refund=how == "refund", error=error, cancel_after=victim)
        )
        self.settle()
        assert call.finished

    @precondition(lambda self: any(True for _ in self.waiting()))
    @rule(data=st.data())
    def cancel_waiter(self, data: st.DataObject) -> None:
        call = data.draw(st.sampled_from(self.waiting()), label="call")
        before = self.limiter.stats()
        admitted = len(self.order)
        call.cancelled = True
        assert call.task is not None
        call.task.cancel()
        self.settle()
        assert call.admitted_at is None
        newly = [c for c in self.calls if c.seq in self.order[admitted:]]
        after = self.limiter.stats()
        taken = sum(c.tokens for c in newly)
        assert after["level_tokens"] == pytest.approx(before["level_tokens"] - taken, abs=1e-6)
        assert after["admitted_tokens"] == before["admitted_tokens"] + taken

    @precondition(lambda self: any(True for _ in self.running()))
    @rule(data=st.data(), record=st.none() | st.integers(0, 200))
    def cancel_running(self, data: st.DataObject, record: int | None) -> None:
        call = data.draw(st.sampled_from(self.running()), label="call")
        call.record_on_cancel = record
        assert call.task is not None
        call.task.cancel()
        self.settle()
        assert call.finished

    @rule(
        remaining_t=st.none() | st.integers(0, 3000),
        remaining_r=st.none() | st.integers(0, 3),
        limit_t=st.none() | st.sampled_from([300, 3000, 90000, 10**7]),
        limit_r=st.none() | st.sampled_from([3, 60, 6000]),
        status=st.sampled_from([200, 200, 429]),
        retry_ms=st.none() | st.integers(0, 5000),
    )
    def headers(
        self,
        remaining_t: int | None,
        remaining_r: int | None,
        limit_t: int | None,
        limit_r: int | None,
        status: int,
        retry_ms: int | None,
    ) -> None:
        headers = {"x-ratelimit-reset-tokens": "1m30.5s", "x-ratelimit-reset-requests": "20ms"}
        if remaining_t is not None:
            headers["x-ratelimit-remaining-tokens"] = str(remaining_t)
        if remaining_r is not None:
            headers["x-ratelimit-remaining-requests"] = str(remaining_r)
        if limit_t is not None:
            headers["x-ratelimit-limit-tokens"] = str(limit_t)
            self.limit_known = True
        if limit_r is not None:
            headers["x-ratelimit-limit-requests"] = str(limit_r)
        if retry_ms is not None:
            headers["retry-after-ms"] = str(retry_ms)
        for c in self.waiting():
            c.disturbed = True
        self.max_pause = max(self.max_pause, 60.0 if retry_ms is None else retry_ms / 1000)
        self.limiter.update_from_headers(headers, status=status)
        self.note_shape()
        self.settle()

    @rule(dt=st.sampled_from([0.001, 0.01, 0.1, 0.3, 1.0, 2.5, 10.0, 30.0]))
    def advance(self, dt: float) -> None:
        self.advance_to(self.clock.now() + dt)

    def advance_to(self, target: float) -> None:
        for _ in range(100_000):
            wake = self.clock.next_wake()
            if wake is None or wake > target:
                break
            self.clock.advance(max(0.0, wake - self.clock.now()))
            self.settle()
            self.check_deadlines()
        else:
            pytest.fail("timers keep firing without time passing")
        self.clock.advance(max(0.0, target - self.clock.now()))
        self.settle()
        self.check_deadlines()

    def check_deadlines(self) -> None:
        now = self.clock.now()
        for c in self.waiting():
            if not c.disturbed:
                assert now <= c.deadline + TOL * max(1.0, c.deadline), (
                    f"call {c.seq} ({c.tokens} tokens) still waits at {now}, bound {c.deadline}"
                )

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def level_within_bounds(self) -> None:
        if not hasattr(self, "limiter"):
            return
        stats = self.limiter.stats()
        assert stats["level_tokens"] <= stats["capacity_tokens"] * (1 + TOL)
        assert stats["level_requests"] <= stats["capacity_requests"] * (1 + TOL)
        floor_t = -(max(self.biggest, self.rate_t * self.max_pause) + self.charged)
        floor_r = -max(self.max_rpm, self.max_rate_r * self.max_pause)
        assert stats["level_tokens"] >= floor_t - TOL
        assert stats["level_requests"] >= floor_r - TOL
        assert stats["waiters"] == len(self.waiting())
        assert stats["in_flight"] == len(self.running())

    @invariant()
    def fifo(self) -> None:
        assert self.order == sorted(self.order)

    @invariant()
    def totals_agree(self) -> None:
        if not hasattr(self, "limiter"):
            return
        stats = self.limiter.stats()
        net = stats["admitted_tokens"] - stats["refunded_tokens"]
        assert net == pytest.approx(self.admitted_t - self.refunded_t, abs=1e-6)

    def teardown(self) -> None:
        try:
            if hasattr(self, "limiter"):
                self.drain()
                check_windows(
                    self.ledger, self.cap_t, self.rate_t, self.cap_r, self.rate_r, self.shapes
                )
        finally:
            for c in self.calls:
                if c.task is not None and not c.task.done():
                    c.task.cancel()
            self.settle()
            self.loop.close()

    def drain(self) -> None:
        """Let time run: every waiter must get in (no deadlock, no starvation)."""
        for _ in range(10_000):
            if not self.waiting():
                break
            wake = self.clock.next_wake()
            assert wake is not None, "waiters but no timer: stranded"
            self.advance_to(wake)
        assert not self.waiting()
        for c in self.running():
            assert c.release is not None
            c.release.set_result(Release(used=None))
        self.settle()
        assert not self.running()


LimiterMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLimiterMachine = LimiterMachine.TestCase


# --- a whole saturated run --------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 400), min_size=20, max_size=120),
    burst=st.sampled_from([None, 0.5, 3.0]),
)
def test_saturated_fifo_run_uses_the_budget_and_respects_every_window(sizes, burst):
    """All calls queued at once: FIFO, windows within bounds, the budget used to the full."""
    assume(sum(sizes) > 600)
    clock = SteppingClock()
    limiter = Limiter(6000, 6000, burst_seconds=burst, clock=clock)  # 100 tokens/s
    cap = limiter.stats()["capacity_tokens"]
    ledger = Ledger()
    order: list[int] = []

    async def call(i: int, tokens: int) -> None:
        async with limiter.limit(tokens):
            order.append(i)
            ledger.admit(clock.now(), tokens, 1)

    async def main() -> None:
        tasks = [asyncio.create_task(call(i, n)) for i, n in enumerate(sizes)]
        await settle()
        while not all(t.done() for t in tasks):
            wake = clock.next_wake()
            assert wake is not None
            clock.advance(max(0.0, wake - clock.now()))
            await settle()
        await asyncio.gather(*tasks)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert order == list(range(len(sizes)))
    check_windows(ledger, cap, 100.0, cap, 100.0)
    # Utilization: the last admission comes exactly when the budget allows it.
    last = ledger.events[-1][0]
    spent_before_last = sum(sizes[:-1])
    expected = max(0.0, spent_before_last + min(sizes[-1], cap) - cap) / 100.0
    assert last == pytest.approx(expected, rel=1e-6, abs=1e-6)
