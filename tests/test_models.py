"""Model profiles: the built-in table, keys, snapshots and user profiles."""

from __future__ import annotations

import pytest

from llm_client import (
    GPT5,
    ConfigurationError,
    GPT5Mini,
    GPT5Nano,
    GPT5Point1,
    GPT5Point2,
    ModelProfile,
    RateLimits,
    TextEmbedding3Large,
    TextEmbedding3Small,
    UnknownModelError,
    UsageCosts,
)


@pytest.mark.parametrize(
    ("profile", "prices"),
    [
        (GPT5, (1.25, 0.125, 10)),
        (GPT5Point1, (1.25, 0.125, 10)),
        (GPT5Mini, (0.25, 0.025, 2)),
        (GPT5Nano, (0.05, 0.005, 0.40)),
        (GPT5Point2, (1.75, 0.175, 14)),
    ],
)
def test_gpt5_family_prices_and_limits(profile, prices):
    c = profile.usage_costs
    assert (c.input, c.cached_input, c.output) == prices
    assert (profile.context_window, profile.max_input, profile.max_output) == (
        400_000,
        272_000,
        128_000,
    )


def test_embeddings():
    assert TextEmbedding3Small.output_dimensions == 1536
    assert TextEmbedding3Large.output_dimensions == 3072
    assert TextEmbedding3Small.usage_costs.input == 0.02
    assert TextEmbedding3Large.usage_costs.input == 0.13
    assert TextEmbedding3Small.is_embeddings


def test_get_by_key_and_snapshot():
    assert ModelProfile.get("gpt-5.1") is GPT5Point1
    snap = ModelProfile.get("gpt-5-nano-2025-08-07")
    assert snap.model_name == "gpt-5-nano-2025-08-07"
    assert snap.usage_costs == GPT5Nano.usage_costs


def test_unknown_key_lists_choices():
    with pytest.raises(UnknownModelError, match="gpt-5-nano") as info:
        ModelProfile.get("gpt-6")
    assert "'gpt-6'" in str(info.value)


def test_register_user_profile():
    mine = ModelProfile(
        key="my-ft",
        model_name="ft:gpt-5-nano:acme::abc",
        category="completions",
        context_window=400_000,
        max_input=272_000,
        max_output=128_000,
        rate_limits=RateLimits(10_000, 100),
        usage_costs=UsageCosts(0.1, 0.01, 0.8),
    )
    ModelProfile.register(mine)
    assert ModelProfile.get("my-ft") is mine
    assert ModelProfile.get("ft:gpt-5-nano:acme::abc") is mine
    with pytest.raises(ConfigurationError, match="already registered"):
        ModelProfile.register(
            ModelProfile(
                key="my-ft",
                model_name="other",
                category="completions",
                context_window=1,
                max_input=1,
                max_output=1,
                rate_limits=RateLimits(1, 1),
                usage_costs=UsageCosts(0, 0, 0),
            )
        )


def test_invalid_limits():
    with pytest.raises(ConfigurationError, match="tkn_per_min"):
        RateLimits(0, 10)
    with pytest.raises(ConfigurationError, match="req_per_min"):
        RateLimits(10, -1)
