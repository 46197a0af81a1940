"""Retry mechanism and policy, tower-style: a stub `next`, an injected clock, no sleeping."""

from __future__ import annotations

import pytest

from llm_client import GPT5Nano
from llm_client.clock import ManualClock
from llm_client.exceptions import (
    APIConnectionError,
    BadRequestError,
    ConfigurationError,
    NotFoundError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
    error_for_status,
)
from llm_client.middleware.retry import ExponentialBackoff, Retry
from llm_client.pipeline import Call
from llm_client.result import LLMResult
from llm_client.usage import Usage

CALL = Call(profile=GPT5Nano, operation="chat", params={"model": "gpt-5-nano", "messages": []})


def flaky(errors):
    seen = []

    async def next_(call):
        seen.append(call)
        if errors:
            raise errors.pop(0)
        return LLMResult(params=call.params, output="ok", usage=Usage(total_tokens=5))

    return next_, seen


class RecordingClock(ManualClock):
    def __init__(self):
        super().__init__()
        self.slept: list[float] = []

    async def sleep(self, seconds):
        self.slept.append(seconds)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses(status):
    assert ExponentialBackoff(rng=lambda: 1.0).delay(1, error_for_status(status, "x")) == 0.5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_never_retried(status):
    assert ExponentialBackoff().delay(1, error_for_status(status, "x")) is None


def test_full_jitter_bounds_and_cap():
    hi = ExponentialBackoff(base=0.5, cap=8, rng=lambda: 0.999999)
    lo = ExponentialBackoff(base=0.5, cap=8, rng=lambda: 0.0)
    err = ServerError("x")
    assert [round(hi.delay(n, err), 3) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert lo.delay(3, err) == 0.0


def test_retry_after_is_honoured_and_capped():
    policy = ExponentialBackoff(rng=lambda: 0.0)
    assert policy.delay(1, RateLimitError("x", retry_after=3.5)) == 3.5
    assert policy.delay(1, RateLimitError("x", retry_after=600)) is None


async def test_loop_counts_attempts_and_sums_usage():
    e1 = ServerError("boom")
    e1.usage = Usage(input_tokens=7, total_tokens=7)
    next_, seen = flaky([e1, APIConnectionError("reset")])
    clock = RecordingClock()
    result = await Retry(3, clock=clock, policy=ExponentialBackoff(rng=lambda: 0.5))(CALL, next_)
    assert result.attempts == 3 and len(seen) == 3
    assert result.usage.total_tokens == 12 and result.usage.input_tokens == 7
    assert clock.slept == [0.25, 0.5]
    assert [c.context.get("attempt", 0) for c in seen] == [0, 1, 2]


async def test_gives_up_with_attempts_and_usage_on_the_error():
    errs = [RateLimitError("slow down", retry_after=0.0) for _ in range(3)]
    errs[0].usage = Usage(total_tokens=3)
    next_, _ = flaky(errs)
    with pytest.raises(RateLimitError) as info:
        await Retry(2, clock=RecordingClock())(CALL, next_)
    assert info.value.attempts == 2 and info.value.usage.total_tokens == 3


@pytest.mark.parametrize(
    "err", [BadRequestError("bad"), NotFoundError("nf"), UnprocessableEntityError("u")]
)
async def test_client_errors_fail_at_once(err):
    next_, seen = flaky([err])
    with pytest.raises(type(err)):
        await Retry(5, clock=RecordingClock())(CALL, next_)
    assert len(seen) == 1


async def test_per_call_attempts_override():
    next_, seen = flaky([ServerError("a"), ServerError("b")])
    with pytest.raises(ServerError):
        await Retry(5, clock=RecordingClock())(CALL.replace(attempts=2), next_)
    assert len(seen) == 2


async def test_no_wait_past_the_deadline():
    next_, seen = flaky([RateLimitError("x", retry_after=30)])
    clock = RecordingClock()
    call = CALL.replace(deadline=clock.now() + 1)
    with pytest.raises(RateLimitError):
        await Retry(3, clock=clock)(call, next_)
    assert len(seen) == 1


def test_bad_configuration():
    with pytest.raises(ConfigurationError, match="attempts"):
        Retry(0)
    with pytest.raises(ConfigurationError, match="backoff"):
        ExponentialBackoff(base=-1)
