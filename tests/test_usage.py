"""Usage normalization and pricing."""

from __future__ import annotations

import pytest

from llm_client import GPT5, GPT5Nano, GPT5Point2, TextEmbedding3Large, parse_usage
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
