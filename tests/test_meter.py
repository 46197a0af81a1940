"""llm_client.meter: what one call has spent so far, settled and in flight."""

from __future__ import annotations

from llm_client import GPT5Nano
from llm_client.meter import CallMeter, meter_of
from llm_client.pipeline import Call
from llm_client.usage import Usage


def test_settled_usage_adds_up_and_the_attempt_in_flight_is_estimated_lazily() -> None:
    meter = CallMeter()
    assert meter.spent() == Usage() and not meter.open
    calls: list[int] = []

    def estimate() -> Usage:
        calls.append(1)
        return Usage(input_tokens=10, total_tokens=10)

    meter.sent(estimate)
    assert meter.open and meter.attempts == 1 and calls == []  # nothing computed yet
    assert meter.spent().input_tokens == 10 and calls == [1]
    meter.ended(Usage(input_tokens=12, output_tokens=3, total_tokens=15))
    assert not meter.open
    meter.sent(estimate)
    meter.update(Usage(input_tokens=12, output_tokens=5, total_tokens=17))
    spent = meter.spent()
    assert meter.attempts == 2
    assert (spent.input_tokens, spent.output_tokens, spent.total_tokens) == (24, 8, 32)
    meter.ended(None)  # an attempt that ended without usage adds nothing
    assert meter.spent().total_tokens == 15


def test_update_without_an_attempt_in_flight_is_ignored() -> None:
    meter = CallMeter()
    meter.update(Usage(input_tokens=5, total_tokens=5))
    assert not meter.open and meter.spent() == Usage()


def test_meter_of_finds_the_calls_meter_only() -> None:
    meter = CallMeter()
    call = Call(profile=GPT5Nano, operation="chat", params={}, context={"meter": meter})
    assert meter_of(call) is meter
    assert meter_of(call.replace(context={"meter": "not one"})) is None
    assert meter_of(call.replace(context={})) is None
