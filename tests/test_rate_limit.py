"""Unit tests for the local limiter, its buckets and the rate-limit header parsing."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from llm_client.clock import ManualClock, MonotonicClock
from llm_client.exceptions import (
    ConfigurationError,
    InvalidRequestError,
    RequestTooLargeError,
    ServerError,
)
from llm_client.rate_limit import (
    DEFAULT_BURST_SECONDS,
    Lease,
    Limiter,
    RateLimiter,
    RateLimitHeaders,
    TokenBucket,
    parse_reset_duration,
    parse_retry_after,
)


async def settle(rounds: int = 10) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


def make(tpm: float = 6000, rpm: float = 600, **kw) -> tuple[Limiter, ManualClock]:
    clock = ManualClock()
    return Limiter(tpm, rpm, clock=clock, **kw), clock


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, -0.5, math.nan, math.inf, "100", None, True, [60]])
def test_bad_limits_are_rejected(bad):
    with pytest.raises(ConfigurationError, match="tokens_per_minute"):
        Limiter(bad, 60)
    with pytest.raises(ConfigurationError, match="requests_per_minute"):
        Limiter(6000, bad)


@pytest.mark.parametrize("bad", [0, -1, 61, math.nan, "1", True])
def test_bad_burst_is_rejected(bad):
    with pytest.raises(ConfigurationError, match="burst_seconds"):
        Limiter(6000, 60, burst_seconds=bad)


@pytest.mark.parametrize("bad", [-1, -0.1, math.nan, math.inf, "10", None, False])
def test_bad_amounts_are_rejected(bad):
    limiter, _ = make()
    with pytest.raises(InvalidRequestError, match="tokens"):
        limiter.limit(bad)
    with pytest.raises(InvalidRequestError, match="requests"):
        limiter.limit(10, bad)
    with pytest.raises(InvalidRequestError, match="tokens"):
        Lease(1, 1).record(bad)


@pytest.mark.parametrize("bad", [0, -1, math.inf])
def test_bad_bucket_is_rejected(bad):
    with pytest.raises(ConfigurationError):
        TokenBucket(bad, 1.0, clock=ManualClock())
    with pytest.raises(ConfigurationError):
        TokenBucket(1.0, bad, clock=ManualClock())


async def test_request_larger_than_a_minute_fails_at_once_and_leaves_no_trace():
    limiter, _ = make(tpm=6000, rpm=10)
    before = limiter.stats()
    with pytest.raises(RequestTooLargeError, match="6000 tokens per minute") as info:
        async with limiter.limit(6001):
            pytest.fail("must not be admitted")
    assert info.value.status == 413
    with pytest.raises(RequestTooLargeError, match="requests per minute"):
        async with limiter.limit(1, 11):
            pytest.fail("must not be admitted")
    assert limiter.stats() == before


# --- the bucket ---------------------------------------------------------------------------------


def test_bucket_refills_up_to_capacity_and_keeps_debt():
    clock = ManualClock()
    bucket = TokenBucket(100, 10, clock=clock)
    assert bucket.level == 100
    assert bucket.try_take(60)
    assert not bucket.try_take(50)
    assert bucket.wait_time(50) == pytest.approx(1.0)
    clock.advance(1.0)
    assert bucket.fits(50)
    # larger than the capacity: waits for a full bucket, then leaves a debt
    assert bucket.wait_time(250) == pytest.approx(5.0)
    clock.advance(10)
    assert bucket.level == 100
    bucket.take(250)
    assert bucket.level == -150
    assert bucket.wait_time(1) == pytest.approx(15.1)
    # a refund never lifts the level over the capacity
    assert bucket.refund(1000) == 1000 - 750
    assert bucket.level == 100
    bucket.lower_to(20)
    assert bucket.level == 20
    bucket.lower_to(50)  # never raises
    assert bucket.level == 20
    # a smaller budget: the level scales down, so the bucket is full again no sooner (8 s)
    bucket.reconfigure(10, 1)
    assert (bucket.capacity, bucket.rate) == (10, 1)
    assert bucket.level == pytest.approx(2)
    bucket.reconfigure(100, 10)  # a larger one never raises the level
    assert bucket.level == pytest.approx(2)


# --- admission ----------------------------------------------------------------------------------


async def test_default_burst_is_one_second_of_budget():
    limiter, _ = make(tpm=6000, rpm=30)
    assert DEFAULT_BURST_SECONDS == 1.0
    stats = limiter.stats()
    assert stats["capacity_tokens"] == 100
    assert stats["capacity_requests"] == 1  # at least one request
    assert isinstance(limiter, RateLimiter)


async def test_admits_at_once_within_the_burst_and_paces_after():
    limiter, clock = make(tpm=6000, rpm=6000)  # 100 tokens/s, burst 100
    admitted: list[float] = []

    async def call(tokens: int) -> None:
        async with limiter.limit(tokens):
            admitted.append(clock.now())

    tasks = [asyncio.create_task(call(50)) for _ in range(4)]
    await settle()
    assert admitted == [0.0, 0.0]
    assert limiter.stats()["waiters"] == 2
    clock.advance(0.5)
    await settle()
    assert admitted == [0.0, 0.0, 0.5]
    clock.advance(0.5)
    await settle()
    assert admitted == [0.0, 0.0, 0.5, 1.0]
    await asyncio.gather(*tasks)
    stats = limiter.stats()
    assert stats["waiters"] == 0
    assert stats["admitted_tokens"] == 200
    assert stats["total_wait_seconds"] == pytest.approx(1.5)


async def test_large_request_is_admitted_on_a_full_bucket_and_its_debt_waited_out():
    limiter, clock = make(tpm=6000, rpm=6000)  # burst 100
    order: list[tuple[str, float]] = []

    async def call(name: str, tokens: int) -> None:
        async with limiter.limit(tokens):
            order.append((name, clock.now()))

    small = asyncio.create_task(call("small", 30))
    await settle()
    big = asyncio.create_task(call("big", 500))  # above the burst, within the minute
    after = asyncio.create_task(call("after", 10))
    await settle()
    assert order == [("small", 0.0)]
    clock.advance(0.3)  # full again
    await settle()
    assert order == [("small", 0.0), ("big", 0.3)]
    assert limiter.stats()["level_tokens"] == pytest.approx(-400)
    clock.advance(4.0)
    await settle()
    assert len(order) == 2  # a debt of 400 plus 10 more: 4.1 s
    clock.advance(0.1)
    await settle()
    assert order[-1][0] == "after"
    assert order[-1][1] == pytest.approx(4.4)
    await asyncio.gather(small, big, after)


async def test_fifo_small_requests_do_not_overtake_a_waiting_large_one():
    limiter, clock = make(tpm=6000, rpm=6000)
    order: list[str] = []

    async def call(name: str, tokens: int) -> None:
        async with limiter.limit(tokens):
            order.append(name)

    async with limiter.limit(100):
        pass  # empties the bucket
    tasks = [asyncio.create_task(call("big", 90))]
    await settle()
    tasks += [asyncio.create_task(call(f"small{i}", 1)) for i in range(3)]
    await settle()
    assert order == []  # the small ones fit, but must not jump the queue
    clock.advance(0.9)
    await settle()
    assert order == ["big"]
    clock.advance(0.03)
    await settle()
    assert order == ["big", "small0", "small1", "small2"]
    await asyncio.gather(*tasks)


async def test_both_dimensions_are_taken_together_or_not_at_all():
    limiter, clock = make(tpm=6000, rpm=60)  # 1 request burst, 1 request/s
    async with limiter.limit(10):
        pass
    task = asyncio.create_task(limiter.limit(10).__aenter__())
    await settle()
    assert not task.done()
    stats = limiter.stats()
    assert stats["level_tokens"] == 90  # nothing taken while the request dimension waits
    assert stats["level_requests"] == 0
    clock.advance(1.0)
    await settle()
    assert task.done()
    assert limiter.stats()["level_tokens"] == 90  # refilled to 100, then both taken


# --- reconciliation ------------------------------------------------------------------------------


async def test_record_never_refunds_the_per_minute_bucket_but_charges_overruns():
    """OpenAI counts the estimate when the request arrives and gives nothing back."""
    limiter, _ = make(tpm=60_000, rpm=6000)  # a 1000-token burst
    async with limiter.limit(80) as lease:
        lease.record(30)
    assert limiter.stats()["level_tokens"] == 920
    async with limiter.limit(40) as lease:
        lease.record(100)
    stats = limiter.stats()
    assert stats["level_tokens"] == 820
    assert stats["charged_tokens"] == 60
    assert stats["refunded_tokens"] == 0


async def test_a_usage_based_bucket_is_reconciled_both_ways():
    limiter, clock = make(tpm=60_000, rpm=6000, usage_tokens_per_minute=6000)
    assert limiter.usage_tokens_per_minute == 6000
    async with limiter.limit(80) as lease:
        lease.record(30)
    assert limiter.stats()["level_usage_tokens"] == 70
    assert limiter.stats()["level_tokens"] == 1000 - 80  # the per-minute bucket keeps it
    async with limiter.limit(40) as lease:
        lease.record(100)
    assert limiter.stats()["level_usage_tokens"] == -30
    clock.advance(10)
    async with limiter.limit(90) as lease:
        lease.record(0)
    assert limiter.stats()["level_usage_tokens"] == 100  # a refund never over the capacity
    # a call waits for the usage bucket too
    async with limiter.limit(100) as lease:
        lease.record(100)
    admitted: list[float] = []

    async def call() -> None:
        async with limiter.limit(50):
            admitted.append(clock.now())

    task = asyncio.create_task(call())
    await settle()
    assert admitted == []
    clock.advance(0.5 + 1e-6)
    await settle()
    assert admitted == [pytest.approx(10.5, abs=1e-5)]
    await task


async def test_exit_without_record_keeps_the_estimate_and_the_request():
    limiter, _ = make(tpm=6000, rpm=600)
    async with limiter.limit(40):
        pass
    with pytest.raises(ServerError):
        async with limiter.limit(20):
            raise ServerError("boom")
    stats = limiter.stats()
    assert stats["level_tokens"] == 40
    assert stats["level_requests"] == 8
    assert stats["in_flight"] == 0


async def test_not_sent_errors_and_refund_give_everything_back():
    limiter, _ = make(tpm=6000, rpm=600)
    with pytest.raises(InvalidRequestError):
        async with limiter.limit(40):
            raise InvalidRequestError("bad messages")
    async with limiter.limit(30) as lease:
        lease.refund()
    with pytest.raises(ConfigurationError):
        async with limiter.limit(30) as lease:
            raise ConfigurationError("bad option")
    stats = limiter.stats()
    assert (stats["level_tokens"], stats["level_requests"]) == (100, 10)
    assert stats["refunded_requests"] == 3


async def test_recorded_usage_wins_over_an_error():
    limiter, _ = make(tpm=6000, rpm=600)
    with pytest.raises(ServerError):
        async with limiter.limit(40) as lease:
            lease.record(60)
            raise ServerError("stream broke")
    assert limiter.stats()["level_tokens"] == 40


# --- cancellation ---------------------------------------------------------------------------------


async def test_cancelled_waiter_leaves_no_trace_and_unblocks_the_next():
    limiter, clock = make(tpm=6000, rpm=6000)
    order: list[str] = []

    async def call(name: str, tokens: int) -> None:
        async with limiter.limit(tokens):
            order.append(name)

    async with limiter.limit(100):
        pass
    head = asyncio.create_task(call("head", 100))
    await settle()
    nxt = asyncio.create_task(call("next", 5))
    await settle()
    clock.advance(0.05)
    before = limiter.stats()
    head.cancel()
    await settle()
    assert order == ["next"]
    after = limiter.stats()
    assert after["level_tokens"] == before["level_tokens"] - 5
    assert after["admitted_tokens"] == before["admitted_tokens"] + 5
    assert after["waiters"] == 0
    await nxt
    with pytest.raises(asyncio.CancelledError):
        await head


async def test_waiter_cancelled_right_after_admission_gives_it_back():
    limiter, _ = make(tpm=6000, rpm=6000)
    ran = False

    async def waiter() -> None:
        nonlocal ran
        async with limiter.limit(60):
            ran = True

    async with limiter.limit(100) as lease:
        task = asyncio.create_task(waiter())
        await settle()
        lease.refund()
    # The exit admitted the waiter synchronously; cancel it before it can run.
    assert limiter.stats()["level_tokens"] == 40
    task.cancel()
    await settle()
    assert task.cancelled() and not ran
    stats = limiter.stats()
    assert stats["level_tokens"] == 100
    assert stats["level_requests"] == 100
    assert stats["in_flight"] == 0


async def test_timeout_while_waiting_leaves_no_trace():
    limiter = Limiter(60, 60, clock=MonotonicClock())  # 1 token/s
    async with limiter.limit(1):
        pass
    level = limiter.stats()["level_tokens"]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            async with limiter.limit(1):
                pytest.fail("must not be admitted")
    stats = limiter.stats()
    assert stats["waiters"] == 0
    assert stats["admitted_tokens"] == 1
    assert stats["level_tokens"] == pytest.approx(level, abs=0.1)


async def test_cancelled_while_running_is_reconciled_like_any_exit():
    limiter, _ = make(tpm=6000, rpm=6000)
    started = asyncio.Event()

    async def call() -> None:
        async with limiter.limit(50) as lease:
            lease.record(70)
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(call())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.stats()["level_tokens"] == 30


async def test_real_clock_paces_with_loop_timers():
    limiter = Limiter(60_000, 60_000, burst_seconds=0.01)  # 1000/s, burst 10
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def call() -> None:
        async with limiter.limit(10):
            pass

    await asyncio.gather(*(call() for _ in range(4)))
    assert loop.time() - start >= 0.029
    assert limiter.stats()["admitted_tokens"] == 40


async def test_aclose_fails_waiters_and_refuses_new_calls():
    limiter, _ = make()
    async with limiter.limit(100):
        pass
    task = asyncio.create_task(limiter.limit(50).__aenter__())
    await settle()
    await limiter.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await task
    with pytest.raises(RuntimeError, match="closed"):
        async with limiter.limit(1):
            pass


# --- headers ------------------------------------------------------------------------------------

# Header sets as OpenAI sends them (values copied from real responses and the API docs).
OPENAI_OK = {
    "x-ratelimit-limit-requests": "5000",
    "x-ratelimit-limit-tokens": "2000000",
    "x-ratelimit-remaining-requests": "4999",
    "x-ratelimit-remaining-tokens": "1999824",
    "x-ratelimit-reset-requests": "12ms",
    "x-ratelimit-reset-tokens": "5ms",
}
OPENAI_DOCS = {
    "x-ratelimit-limit-requests": "60",
    "x-ratelimit-limit-tokens": "150000",
    "x-ratelimit-remaining-requests": "59",
    "x-ratelimit-remaining-tokens": "149984",
    "x-ratelimit-reset-requests": "1s",
    "x-ratelimit-reset-tokens": "6m0s",
}
OPENAI_429_TOKENS = {
    "X-RateLimit-Limit-Requests": "500",
    "X-RateLimit-Limit-Tokens": "30000",
    "X-RateLimit-Remaining-Requests": "497",
    "X-RateLimit-Remaining-Tokens": "1203",
    "X-RateLimit-Reset-Requests": "360ms",
    "X-RateLimit-Reset-Tokens": "57.594s",
    "Retry-After": "2",
    "retry-after-ms": "1594",
}
OPENAI_429_REQUESTS = {
    "x-ratelimit-limit-requests": "3",
    "x-ratelimit-limit-tokens": "40000",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-remaining-tokens": "39870",
    "x-ratelimit-reset-requests": "19.912s",
    "x-ratelimit-reset-tokens": "195ms",
}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1m30.5s", 90.5),
        ("57.594s", 57.594),
        ("12ms", 0.012),
        ("2h0m0s", 7200.0),
        ("1h2m3s", 3723.0),
        ("0s", 0.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("100ns", 1e-7),
        (" 7.5s ", 7.5),
        ("3", 3.0),
        ("0.25", 0.25),
    ],
)
def test_parse_reset_duration(value, seconds):
    assert parse_reset_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", [None, "", "  ", "-1", "-1s", "abc", "1x", "s", "1m-3s", "1.2.3s", "nan", "inf", "1 s"]
)
def test_parse_reset_duration_tolerates_garbage(value):
    assert parse_reset_duration(value) is None


def test_parse_retry_after():
    assert parse_retry_after({"retry-after-ms": "1594", "retry-after": "2"}) == 1.594
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "garbage", "retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "-5"}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-1"}) is None
    assert parse_retry_after({}) is None
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=timezone.utc).timestamp()
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after({"retry-after": date}, now=now) == 30.0
    assert parse_retry_after({"retry-after": date}, now=now + 60) == 0.0
    later = datetime.now(timezone.utc) + timedelta(seconds=100)
    waited = parse_retry_after({"retry-after": format_datetime(later, usegmt=True)})
    assert waited is not None and 98 <= waited <= 100


def test_parse_headers_from_real_responses():
    info = RateLimitHeaders.parse(OPENAI_DOCS)
    assert info == RateLimitHeaders(
        limit_tokens=150000,
        limit_requests=60,
        remaining_tokens=149984,
        remaining_requests=59,
        reset_tokens=360.0,
        reset_requests=1.0,
        retry_after=None,
    )
    info = RateLimitHeaders.parse(OPENAI_429_TOKENS)
    assert info.retry_after == 1.594
    assert info.reset_tokens == pytest.approx(57.594)
    assert info.exhausted() == (True, False)
    info = RateLimitHeaders.parse(OPENAI_429_REQUESTS)
    assert info.exhausted() == (False, True)
    assert info.pause_seconds(tokens=False) == pytest.approx(19.912)
    missing = RateLimitHeaders.parse({"x-ratelimit-limit-tokens": "-1", "x-request-id": "req_1"})
    assert missing == RateLimitHeaders()
    assert missing.exhausted() == (True, True)
    assert missing.pause_seconds(tokens=True) == 1.0


async def test_headers_lower_the_limit_and_resync_remaining():
    limiter, _ = make(tpm=2_000_000, rpm=5000)
    limiter.update_from_headers(OPENAI_OK)  # plenty remaining: nothing changes
    stats = limiter.stats()
    assert stats["level_tokens"] == pytest.approx(2_000_000 / 60)
    assert stats["tokens_per_minute"] == 2_000_000
    limiter.update_from_headers({**OPENAI_OK, "x-ratelimit-remaining-tokens": "1000"})
    assert limiter.stats()["level_tokens"] == 1000
    limiter.update_from_headers(OPENAI_DOCS)  # the account's limit is lower than configured
    stats = limiter.stats()
    assert stats["tokens_per_minute"] == 150_000
    assert stats["requests_per_minute"] == 60
    assert stats["capacity_tokens"] == 2500
    # 1000 of a 33,333 burst: the same time to full (0.97 s) at 2500 tokens/s
    assert stats["level_tokens"] == pytest.approx(75)
    limiter.update_from_headers({"x-ratelimit-limit-tokens": "9000000"})  # never above config
    assert limiter.stats()["tokens_per_minute"] == 2_000_000
    with pytest.raises(RequestTooLargeError):
        async with limiter.limit(1, 6000):
            pass


async def test_a_lower_limit_does_not_refill_the_bucket_for_a_large_request():
    """Regression (property test): a limit header used to cap the level at the new, smaller
    burst, so the bucket counted as full and a waiter larger than the new burst went out at
    once: 150 + 151 tokens in the same instant, over max(burst, largest) + rate * w = 300."""
    limiter, clock = make(tpm=6000, rpm=6, burst_seconds=2.0)  # 200-token burst, 100/s
    admitted: list[tuple[float, int]] = []
    release = asyncio.Event()

    async def call(tokens: int) -> None:
        async with limiter.limit(tokens, 0):
            admitted.append((clock.now(), tokens))
            await release.wait()

    first = asyncio.create_task(call(150))
    await settle()
    assert admitted == [(0.0, 150)]
    second = asyncio.create_task(call(151))  # waits for 151 tokens: 1.01 s
    await settle()
    limiter.update_from_headers({"x-ratelimit-limit-tokens": "300"})  # 10-token burst, 5/s
    await settle()
    stats = limiter.stats()
    assert (stats["capacity_tokens"], stats["tokens_per_minute"]) == (10, 300)
    assert stats["level_tokens"] == pytest.approx(2.5)  # 50 of 200 -> 2.5 of 10, not 10
    assert admitted == [(0.0, 150)]  # not admitted on a bucket "full" at once
    clock.advance(1.49)
    await settle()
    assert len(admitted) == 1
    clock.advance(0.01 + 1e-6)  # full again when it would have been under the old budget
    await settle()
    assert admitted == [(0.0, 150), (pytest.approx(1.5, abs=1e-5), 151)]
    release.set()
    await asyncio.gather(first, second)


async def test_a_refund_after_a_lower_limit_counts_at_the_old_rate():
    """A call admitted under the configured usage-based budget and settled after a limit
    header lowered it gives back its unused tokens in proportion (their time at the old
    rate): given back in full, they would fill the small new bucket, and a request larger
    than it would go out at once: 200 - 190 + 300 = 310 tokens in an instant, over
    max(burst, largest) = 300."""
    # usage-based: 200-token burst, 100/s; the per-minute bucket is far larger
    limiter, clock = make(tpm=60_000, rpm=600, burst_seconds=2.0, usage_tokens_per_minute=6000)
    async with limiter.limit(200, 0) as lease:
        limiter.update_from_headers({"x-ratelimit-limit-tokens_usage_based": "300"})  # 10, 5/s
        assert limiter.stats()["level_usage_tokens"] == 0
        lease.record(10)
    stats = limiter.stats()
    assert stats["usage_tokens_per_minute"] == 300
    assert stats["level_usage_tokens"] == pytest.approx(190 * 5 / 100)  # 9.5, not a full 10
    admitted: list[float] = []

    async def large() -> None:
        async with limiter.limit(300, 0):
            admitted.append(clock.now())

    task = asyncio.create_task(large())
    await settle()
    assert admitted == []
    clock.advance(0.1 + 1e-6)
    await settle()
    assert admitted == [pytest.approx(0.1, abs=1e-5)]
    await task


async def test_429_pauses_only_the_exhausted_dimension_and_does_not_compound():
    limiter, clock = make(tpm=30000, rpm=500)  # 500 tokens/s, 8.33 requests/s
    limiter.update_from_headers(OPENAI_429_TOKENS, status=429)
    stats = limiter.stats()
    assert stats["throttle_events"] == 1
    assert stats["level_tokens"] == pytest.approx(-500 * 1.594)
    assert stats["level_requests"] == pytest.approx(500 / 60)  # untouched
    assert stats["paused_seconds_left"] == pytest.approx(1.594)
    clock.advance(0.5)
    limiter.update_from_headers(OPENAI_429_TOKENS, status=429)  # a burst of 429s
    assert limiter.stats()["level_tokens"] == pytest.approx(-500 * 1.594)
    assert limiter.stats()["throttle_events"] == 2
    admitted: list[float] = []

    async def call() -> None:
        async with limiter.limit(1):
            admitted.append(clock.now())

    task = asyncio.create_task(call())
    await settle()
    # the tokens-429 padded estimates by 5%: the 1-token call counts 1.05 tokens
    assert limiter.token_pad == pytest.approx(1.05)
    clock.advance(1.594)  # the pause is over; 1.05 tokens take 2.1 ms more
    await settle()
    assert admitted == []
    clock.advance(0.0021)
    await settle()
    assert admitted == [pytest.approx(2.0961)]
    await task

    limiter2, _ = make(tpm=40000, rpm=3)
    limiter2.update_from_headers(OPENAI_429_REQUESTS, status=429)
    stats = limiter2.stats()
    assert stats["level_requests"] == pytest.approx(-0.05 * 19.912)
    assert stats["level_tokens"] == pytest.approx(40000 / 60)


async def test_stats_are_complete():
    limiter, _ = make()
    stats = limiter.stats()
    for key in (
        "level_tokens",
        "level_requests",
        "waiters",
        "total_wait_seconds",
        "throttle_events",
        "admitted_tokens",
        "admitted_requests",
        "refunded_tokens",
        "charged_tokens",
        "in_flight",
    ):
        assert key in stats
    assert all(isinstance(v, (int, float)) for v in stats.values())


# --- in the client --------------------------------------------------------------------------------


async def test_client_limits_every_attempt_learns_from_a_429_and_spares_cache_hits():
    from llm_client import GPT5Nano, OpenAIClient
    from llm_client.testing import FakeOpenAI

    messages = [{"role": "user", "content": "Hello"}]
    async with FakeOpenAI() as server:
        client = OpenAIClient(
            GPT5Nano,
            base_url=server.base_url,
            api_key="sk-test",
            cache_backend="memory",
            rate_limit_backend="local",
            backoff=0.01,
        )
        try:
            server.rate_limit_next(retry_after=None, retry_after_ms=20)
            first = await client.get_response(messages=messages)
            again = await client.get_response(messages=messages)  # a cache hit
            stats = client.stats()["limiter"]
        finally:
            await client.close()
    assert first["status"] == 200 and again["status"] == 200
    assert stats["admitted_requests"] == 2  # the 429'd attempt and its retry
    assert stats["throttle_events"] == 1
    assert stats["in_flight"] == 0
    # the retry recorded the real usage, below the estimate: the per-minute budget keeps
    # the estimate, as OpenAI does
    assert stats["refunded_tokens"] == 0


# --- following the server's limits ----------------------------------------------------------------


def follower(tpm: float = 200_000, rpm: float = 500, **kw) -> tuple[Limiter, ManualClock]:
    """A limiter whose starting limits are only a guess, as the client builds it."""
    return make(tpm, rpm, max_tokens_per_minute=math.inf, max_requests_per_minute=math.inf, **kw)


def test_a_follower_takes_the_servers_limits_both_ways():
    limiter, _ = follower()
    limiter.update_from_headers(
        {"x-ratelimit-limit-requests": "1000000", "x-ratelimit-limit-tokens": "10000000000"}
    )
    assert (limiter.requests_per_minute, limiter.tokens_per_minute) == (1_000_000, 10**10)
    assert limiter.stats()["capacity_requests"] == pytest.approx(1_000_000 / 60)
    limiter.update_from_headers({"x-ratelimit-limit-requests": "5000"})
    assert limiter.requests_per_minute == 5000
    assert limiter.tokens_per_minute == 10**10  # a header that names only requests


@pytest.mark.parametrize("value", ["0", "-1", "", "lots", "nan", "inf", "1e400"])
def test_a_follower_ignores_limits_that_say_nothing(value):
    limiter, _ = follower()
    limiter.update_from_headers(
        {"x-ratelimit-limit-requests": value, "x-ratelimit-limit-tokens": value}
    )
    assert (limiter.requests_per_minute, limiter.tokens_per_minute) == (500, 200_000)
    limiter.update_from_headers({"x-ratelimit-remaining-requests": "5"})  # no limit at all
    assert (limiter.requests_per_minute, limiter.tokens_per_minute) == (500, 200_000)


def test_a_limit_on_a_429_lasts_only_until_the_next_response():
    """One 429 carrying limit-requests: 60 must not pin the client at 1 call/s for good."""
    limiter, _ = follower()
    normal = {"x-ratelimit-limit-requests": "30000", "x-ratelimit-limit-tokens": "150000000"}
    limiter.update_from_headers(normal)
    limiter.update_from_headers(
        {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0"}, status=429
    )
    assert limiter.requests_per_minute == 60
    limiter.update_from_headers(normal, status=200)
    assert limiter.requests_per_minute == 30000
    assert limiter.stats()["limit_changes"] == 4


def test_explicit_limits_are_a_ceiling_headers_lower_but_never_raise():
    limiter, _ = make(tpm=30_000, rpm=500)  # the limits given are the ceiling by default
    assert limiter.max_tokens_per_minute == 30_000
    limiter.update_from_headers(
        {"x-ratelimit-limit-requests": "1000000", "x-ratelimit-limit-tokens": "10000000000"}
    )
    assert (limiter.requests_per_minute, limiter.tokens_per_minute) == (500, 30_000)
    limiter.update_from_headers({"x-ratelimit-limit-requests": "60"})
    assert limiter.requests_per_minute == 60
    limiter.update_from_headers({"x-ratelimit-limit-requests": "1000000"})
    assert limiter.requests_per_minute == 500  # back up, to the ceiling and no further
    # a ceiling above the start: the server may raise the budget that far
    ceiling, _ = make(tpm=30_000, rpm=500, max_requests_per_minute=2000)
    ceiling.update_from_headers({"x-ratelimit-limit-requests": "1000000"})
    assert ceiling.requests_per_minute == 2000


@pytest.mark.parametrize("bad", [0, -1, math.nan, "10", True])
def test_bad_ceilings_are_rejected(bad):
    with pytest.raises(ConfigurationError, match="max_tokens_per_minute"):
        Limiter(6000, 60, max_tokens_per_minute=bad)
    with pytest.raises(ConfigurationError, match="max_requests_per_minute"):
        Limiter(6000, 60, max_requests_per_minute=bad)


async def test_a_follower_does_not_refuse_a_large_call_before_the_server_has_spoken():
    limiter, _ = follower(tpm=6000, rpm=600)
    async with limiter.limit(9000):  # over the starting guess: admitted on a full bucket
        pass
    limiter.update_from_headers({"x-ratelimit-limit-tokens": "8000"})
    with pytest.raises(RequestTooLargeError, match="8000"):
        async with limiter.limit(9000):
            pass


def test_the_usage_based_headers_start_a_third_bucket():
    limiter, _ = follower()
    assert limiter.usage_bucket is None
    limiter.update_from_headers(
        {
            "x-ratelimit-limit-tokens": "160000",
            "x-ratelimit-limit-tokens_usage_based": "120000",
            "x-ratelimit-remaining-tokens_usage_based": "500",
            "x-ratelimit-reset-tokens_usage_based": "59s",
        }
    )
    assert limiter.usage_tokens_per_minute == 120_000
    assert limiter.stats()["level_usage_tokens"] == 500  # re-synced down from the burst
    info = RateLimitHeaders.parse({"x-ratelimit-reset-tokens_usage_based": "1m30s"})
    assert info.reset_usage_tokens == 90


def test_a_usage_based_429_pauses_the_usage_bucket_not_the_per_minute_one():
    limiter, _ = follower(usage_tokens_per_minute=60_000)
    limiter.update_from_headers(
        {
            "x-ratelimit-remaining-tokens": "150000",
            "x-ratelimit-remaining-requests": "400",
            "x-ratelimit-remaining-tokens_usage_based": "0",
            "retry-after-ms": "2000",
        },
        status=429,
    )
    stats = limiter.stats()
    assert stats["level_usage_tokens"] == pytest.approx(-1000 * 2)
    assert stats["level_tokens"] > 0
    assert stats["token_pad"] == 1.0  # the per-minute estimate was not the problem


# --- pauses from headers are bounded (issue 8, defect 1) ----------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "100000"},
        {"retry-after-ms": "100000000"},
        {"x-ratelimit-reset-tokens": "27h46m40s", "x-ratelimit-remaining-tokens": "0"},
        {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"},
    ],
)
def test_a_pause_from_headers_is_capped(headers):
    from llm_client.rate_limit import MAX_HEADER_PAUSE_SECONDS

    limiter, clock = make(tpm=30_000, rpm=500)
    limiter.update_from_headers(headers, status=429)
    left = limiter.stats()["paused_seconds_left"]
    assert 0 < left <= MAX_HEADER_PAUSE_SECONDS
    clock.advance(MAX_HEADER_PAUSE_SECONDS)
    assert limiter.stats()["paused_seconds_left"] == 0
    assert limiter.stats()["level_tokens"] >= 0


def test_tokens_429s_pad_estimates_once_per_pause_up_to_a_bound():
    from llm_client.rate_limit import MAX_TOKEN_PAD

    limiter, clock = make(tpm=30_000, rpm=500)
    tokens_429 = {"x-ratelimit-remaining-tokens": "10", "retry-after-ms": "500"}
    for _ in range(20):  # a burst of 429s, one per call in flight: one step
        limiter.update_from_headers(tokens_429, status=429)
    assert limiter.token_pad == pytest.approx(1.05)
    for _ in range(50):
        clock.advance(1)
        limiter.update_from_headers(tokens_429, status=429)
    assert limiter.token_pad == MAX_TOKEN_PAD
    requests_429 = {"x-ratelimit-remaining-requests": "0", "retry-after-ms": "500"}
    other, _ = make(tpm=30_000, rpm=500)
    other.update_from_headers(requests_429, status=429)
    assert other.token_pad == 1.0
