"""Usage normalization and pricing."""

from __future__ import annotations

from fractions import Fraction

import pytest

from llm_client import (
    GPT5,
    GPT5Nano,
    GPT5Point2,
    GPT5Point4,
    GPT5Point4Nano,
    GPT5Point6Luna,
    GPT5Point6Sol,
    OpenAIClient,
    TextEmbedding3Large,
    parse_usage,
)
from llm_client.testing import FakeOpenAI
from llm_client.usage import Usage


def test_chat_usage_with_details():
    u = parse_usage(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 200, "cache_write_tokens": 50},
            "completion_tokens_details": {"reasoning_tokens": 300},
        },
        GPT5,
    )
    assert (u.input_tokens, u.cached_input_tokens, u.output_tokens) == (1000, 200, 500)
    assert u.reasoning_tokens == 300 and u.cache_write_tokens == 50 and u.total_tokens == 1500
    assert u.input_cost == pytest.approx(800 * 1.25 / 1e6)
    assert u.cached_input_cost == pytest.approx(200 * 0.125 / 1e6)
    assert u.output_cost == pytest.approx(500 * 10 / 1e6)


def test_responses_usage_and_missing_details():
    u = parse_usage(
        {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15, "input_tokens_details": None},
        GPT5Point2,
    )
    assert u.cached_input_tokens == 0 and u.reasoning_tokens == 0
    assert u.total_cost == pytest.approx((10 * 1.75 + 5 * 14) / 1e6)


def test_embedding_usage_and_batch_discount():
    u = parse_usage({"prompt_tokens": 1_000_000, "total_tokens": 1_000_000}, TextEmbedding3Large)
    assert u.total_cost == pytest.approx(0.13)
    b = parse_usage({"prompt_tokens": 1_000_000}, TextEmbedding3Large, batch=True)
    assert b.total_cost == pytest.approx(0.065)


def test_sum_and_saved():
    a = parse_usage({"prompt_tokens": 100, "completion_tokens": 10}, GPT5Nano)
    both = a + a
    assert both.input_tokens == 200 and both.total_cost == pytest.approx(2 * a.total_cost)
    saved = a.as_saved()
    assert saved.total_cost == 0 and saved.saved_cost == pytest.approx(a.total_cost)
    assert Usage.from_dict(a.to_dict()) == a


def test_garbage_is_tolerated():
    u = parse_usage({"prompt_tokens": "x", "completion_tokens": None, "prompt_tokens_details": 3})
    assert u == Usage()


def test_to_dict_has_every_field_and_the_total():
    from dataclasses import fields

    u = parse_usage({"prompt_tokens": 3, "completion_tokens": 2}, GPT5Nano)
    d = u.to_dict()
    assert set(d) == {f.name for f in fields(Usage)} | {"total_cost"}
    assert d["total_cost"] == u.total_cost


# --- pricing rules (issue 7, part 3): exact to the published prices ---------------------------

M = Fraction(1_000_000)


def _usd(tokens: int, price: str, multiplier: str = "1") -> float:
    """The exact cost, correctly rounded: what the published price says, to the last bit."""
    return float(tokens * Fraction(price) * Fraction(multiplier) / M)


def test_costs_are_exact_to_the_published_prices():
    u = parse_usage(
        {
            "prompt_tokens": 1_234_567,
            "completion_tokens": 7_654_321,
            "prompt_tokens_details": {"cached_tokens": 345_678},
        },
        GPT5Point4Nano,
    )
    assert u.input_cost == _usd(1_234_567 - 345_678, "0.20")
    assert u.cached_input_cost == _usd(345_678, "0.02")
    assert u.output_cost == _usd(7_654_321, "1.25")


def test_long_context_rule_threshold_and_batch():
    at = parse_usage({"input_tokens": 272_000, "output_tokens": 1_000}, GPT5Point4)
    assert at.input_cost == _usd(272_000, "2.50")  # at the threshold: normal price
    assert at.output_cost == _usd(1_000, "15")
    over = parse_usage(
        {"input_tokens": 272_001, "output_tokens": 1_000, "input_tokens_details": {
            "cached_tokens": 100_000}},
        GPT5Point4,
    )
    assert over.input_cost == _usd(172_001, "2.50", "2")
    assert over.cached_input_cost == _usd(100_000, "0.25", "2")
    assert over.output_cost == _usd(1_000, "15", "1.5")
    batch = parse_usage({"input_tokens": 300_000, "output_tokens": 10}, GPT5Point6Sol, batch=True)
    assert batch.input_cost == _usd(300_000, "5", "1")  # 2x long context x 0.5 batch
    assert batch.output_cost == _usd(10, "30", "0.75")
    small = parse_usage({"input_tokens": 300_000, "output_tokens": 10}, GPT5Point4Nano)
    assert small.input_cost == _usd(300_000, "0.20")  # no long-context rule on nano


def test_cache_write_rule():
    usage = {
        "input_tokens": 10_000,
        "output_tokens": 100,
        "input_tokens_details": {"cached_tokens": 4_000, "cache_write_tokens": 5_000},
    }
    luna = parse_usage(usage, GPT5Point6Luna)
    assert luna.cache_write_tokens == 5_000
    assert luna.input_cost == float((1_000 * Fraction("0.20") + 5_000 * Fraction("0.25")) / M)
    assert luna.cached_input_cost == _usd(4_000, "0.02")
    nano = parse_usage(usage, GPT5Point4Nano)  # before gpt-5.6: writes cost plain input
    assert nano.input_cost == _usd(6_000, "0.20")


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        ({"cached_tokens": 10, "cache_write_tokens": None}, 0),
        ({"cached_tokens": 10, "cache_write_tokens": "12"}, 0),
        ({"cached_tokens": 10, "cache_write_tokens": -5}, 0),
        ({"cached_tokens": 10, "cache_write_tokens": True}, 0),
        ({"cached_tokens": 10, "cache_write_tokens": 7.0}, 7),
        ({"cached_tokens": 10, "cache_write_tokens": 10_000}, 90),  # capped: 100 - 10 cached
        ({"cache_write_tokens_details": {"ttl_30m_tokens": 3, "ttl_12h_tokens": 4}}, 7),
        ({"cache_write_tokens_details": ["bogus"]}, 0),
        (["not", "a", "dict"], 0),
        ("garbage", 0),
        (None, 0),
    ],
)
def test_cache_write_tokens_are_read_defensively(details, expected):
    for shape in (
        {"prompt_tokens": 100, "completion_tokens": 1, "prompt_tokens_details": details},
        {"input_tokens": 100, "output_tokens": 1, "input_tokens_details": details},
    ):
        u = parse_usage(shape, GPT5Point6Luna)
        assert u.cache_write_tokens == expected
        assert u.input_cost >= 0 and u.cached_input_cost >= 0


@pytest.fixture
async def fake():
    async with FakeOpenAI() as server:
        yield server


def _client(server: FakeOpenAI, model, **kw) -> OpenAIClient:
    return OpenAIClient(
        model,
        base_url=server.base_url,
        api_key="sk-test",
        rate_limit_backend=None,
        cache_backend=None,
        **kw,
    )


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_long_context_pricing_end_to_end(fake: FakeOpenAI, api: str):
    """A prompt over 272,000 tokens, sent through the SDK, is billed 2x / 1.5x."""
    client = _client(fake, GPT5Point4, api=api)
    try:
        # "a " is one token to the fake and to tiktoken, and keeps the body under 1 MiB
        # (aiohttp warns about larger raw-bytes bodies: docs/models.md, "Long prompts").
        long = await client.invoke(input="a " * 272_100)
        short = await client.invoke(input="a " * 1_000)
    finally:
        await client.close()
    for result in (long, short):
        assert result.ok, result.error
    lu, su = long.usage, short.usage
    assert lu.input_tokens > 272_000 >= su.input_tokens
    assert lu.input_cost == _usd(lu.input_tokens, "2.50", "2")
    assert lu.output_cost == _usd(lu.output_tokens, "15", "1.5")
    assert su.input_cost == _usd(su.input_tokens, "2.50")
    assert su.output_cost == _usd(su.output_tokens, "15")


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_cache_write_pricing_end_to_end(fake: FakeOpenAI, api: str):
    fake.cached_tokens = 3
    fake.cache_write_tokens = 5
    luna = _client(fake, GPT5Point6Luna, api=api)
    nano = _client(fake, GPT5Point4Nano, api=api)
    try:
        a = await luna.invoke(input="one two three four five six seven eight nine ten")
        b = await nano.invoke(input="one two three four five six seven eight nine ten")
    finally:
        await luna.close()
        await nano.close()
    for result in (a, b):
        assert result.ok, result.error
        assert result.usage.cache_write_tokens == 5 and result.usage.cached_input_tokens == 3
    plain = a.usage.input_tokens - 3 - 5
    assert a.usage.input_cost == float(
        (plain * Fraction("0.20") + 5 * Fraction("0.25")) / M
    )
    assert a.usage.cached_input_cost == _usd(3, "0.02")
    assert b.usage.input_cost == _usd(b.usage.input_tokens - 3, "0.20")
