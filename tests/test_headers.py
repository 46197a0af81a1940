"""llm_client.headers: the one Retry-After parser, shared by the transport, the retry step
and the rate limiters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from llm_client import GPT5Nano, OpenAIClient, RateLimitError
from llm_client.headers import parse_retry_after
from llm_client.rate_limit import parse_retry_after as rate_limit_parse_retry_after
from llm_client.testing import FakeOpenAI, Fault

MESSAGES = [{"role": "user", "content": "hello"}]
NOW = datetime(2015, 10, 21, 7, 27, 30, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run with a local time zone 5 hours off UTC, so reading a date as local time shows."""
    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    "value",
    [
        "Wed, 21 Oct 2015 07:28:00 GMT",  # IMF-fixdate
        "Wednesday, 21-Oct-15 07:28:00 GMT",  # obsolete RFC 850 form
        "Wed Oct 21 07:28:00 2015",  # asctime: no zone at all
        "Wed, 21 Oct 2015 07:28:00 -0000",  # RFC 5322's "zone unknown"
        "Wed, 21 Oct 2015 07:28:00",  # no zone
    ],
)
def test_a_date_without_a_time_zone_is_gmt(far_from_utc: None, value: str) -> None:
    assert parse_retry_after({"retry-after": value}, now=NOW) == 30.0


def test_a_date_with_a_zone_keeps_it() -> None:
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 08:28:00 +0100"}, now=NOW) == 30.0


def test_milliseconds_win_and_bad_values_say_nothing() -> None:
    assert parse_retry_after({"Retry-After-Ms": "250", "Retry-After": "9"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "", "retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "-3"}) is None
    assert parse_retry_after({"retry-after": "Someday, 99 Foo 2015"}) is None


def test_the_rate_limiter_reads_retry_after_with_the_same_parser() -> None:
    assert rate_limit_parse_retry_after is parse_retry_after


async def test_the_transport_reads_a_zoneless_date_as_gmt(far_from_utc: None) -> None:
    """End to end: a 429 whose Retry-After is an HTTP date with no zone (asctime form)."""
    later = datetime.now(timezone.utc) + timedelta(seconds=100)
    asctime = later.strftime("%a %b %d %H:%M:%S %Y")
    async with FakeOpenAI() as server:
        server.add_fault(Fault("status", status=429, headers={"retry-after": asctime}))
        client = OpenAIClient(GPT5Nano, base_url=server.base_url, api_key="sk-test")
        try:
            with pytest.raises(RateLimitError) as info:
                await client.invoke(MESSAGES, raise_on_error=True, attempts=1)
        finally:
            await client.close()
    waited = info.value.retry_after
    assert waited is not None and 90 <= waited <= 100


async def test_the_transport_and_a_gmt_date_agree() -> None:
    later = datetime.now(timezone.utc) + timedelta(seconds=100)
    async with FakeOpenAI() as server:
        server.add_fault(
            Fault("status", status=429, headers={"retry-after": format_datetime(later, True)})
        )
        client = OpenAIClient(GPT5Nano, base_url=server.base_url, api_key="sk-test")
        try:
            with pytest.raises(RateLimitError) as info:
                await client.invoke(MESSAGES, raise_on_error=True, attempts=1)
        finally:
            await client.close()
    waited = info.value.retry_after
    assert waited is not None and 90 <= waited <= 100
