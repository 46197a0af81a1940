"""Model profiles: the built-in table, keys, snapshots and user profiles."""

from __future__ import annotations

import datetime as dt
import json
import logging
from importlib import resources

import pytest

import llm_client
from llm_client import (
    GPT5,
    ConfigurationError,
    GPT5Mini,
    GPT5Nano,
    GPT5Point1,
    GPT5Point2,
    ModelProfile,
    OpenAIClient,
    RateLimits,
    TextEmbedding3Large,
    TextEmbedding3Small,
    UnknownModelError,
    UsageCosts,
)
from llm_client.models import retirement_warning, warn_if_retiring


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


# --- current models (issue 7, part 3) -------------------------------------------------------

CURRENT = {
    # key: (class name, (input, cached, output), (context, max input, max output))
    "gpt-5.4": ("GPT5Point4", (2.50, 0.25, 15.0), (1_050_000, 922_000, 128_000)),
    "gpt-5.4-mini": ("GPT5Point4Mini", (0.75, 0.075, 4.50), (400_000, 272_000, 128_000)),
    "gpt-5.4-nano": ("GPT5Point4Nano", (0.20, 0.02, 1.25), (400_000, 272_000, 128_000)),
    "gpt-5.5": ("GPT5Point5", (5.0, 0.50, 30.0), (1_050_000, 922_000, 128_000)),
    "gpt-5.6-sol": ("GPT5Point6Sol", (5.0, 0.50, 30.0), (1_050_000, 922_000, 128_000)),
    "gpt-5.6-terra": ("GPT5Point6Terra", (2.0, 0.20, 12.0), (1_050_000, 922_000, 128_000)),
    "gpt-5.6-luna": ("GPT5Point6Luna", (0.20, 0.02, 1.20), (1_050_000, 922_000, 128_000)),
}


@pytest.mark.parametrize("key", sorted(CURRENT))
def test_current_profiles_are_exported_with_prices_and_limits(key):
    name, prices, limits = CURRENT[key]
    profile = getattr(llm_client, name)
    assert name in llm_client.__all__
    assert ModelProfile.get(key) is profile
    assert profile.model_name == key and profile.category == "completions"
    c = profile.usage_costs
    assert (c.input, c.cached_input, c.output) == prices
    assert (profile.context_window, profile.max_input, profile.max_output) == limits
    assert profile.max_input + profile.max_output == profile.context_window
    assert profile.shutdown_date is None and profile.status() == "active"


@pytest.mark.parametrize(
    "snapshot",
    [
        "gpt-5.4-2026-03-05",
        "gpt-5.4-mini-2026-03-17",
        "gpt-5.4-nano-2026-03-17",
        "gpt-5.5-2026-04-23",
        "gpt-5.6-sol-2026-07-09",
        "gpt-5.6-terra-2026-07-09",
        "gpt-5.6-luna-2026-07-09",
    ],
)
def test_dated_snapshots_resolve_to_their_family(snapshot):
    family = ModelProfile.get(snapshot[: -len("-2026-03-05")])
    profile = ModelProfile.get(snapshot)
    assert profile.model_name == snapshot  # the snapshot is what is sent
    assert profile.key == family.key
    assert profile.usage_costs == family.usage_costs
    assert profile.long_context == family.long_context
    assert profile.max_input == family.max_input


def test_pricing_rules_are_data():
    lc = {p.key for p in ModelProfile.all() if p.long_context is not None}
    assert lc == {"gpt-5.4", "gpt-5.5", "gpt-5.6-sol", "gpt-5.6-terra", "gpt-5.6-luna"}
    for key in lc:
        rule = ModelProfile.get(key).long_context
        assert rule is not None
        assert (rule.above_input_tokens, rule.input_multiplier, rule.output_multiplier) == (
            272_000,
            2.0,
            1.5,
        )
    writes = {p.key: p.usage_costs.cache_write for p in ModelProfile.all()}
    assert writes["gpt-5.6-sol"] == 6.25 and writes["gpt-5.6-terra"] == 2.50
    assert writes["gpt-5.6-luna"] == 0.25
    assert writes["gpt-5.4"] is None and writes["gpt-5-nano"] is None
    assert ModelProfile.get("gpt-5.6") is ModelProfile.get("gpt-5.6-sol")  # OpenAI's alias


def test_data_file_names_sources_and_dates():
    raw = json.loads(
        resources.files("llm_client").joinpath("data/models.json").read_text("utf-8")
    )
    assert raw["checked"] == "2026-11-29"
    assert "deprecations" in raw["source"] and "pricing" in raw["source"]
    notes = " ".join(raw["notes"])
    for topic in ("gpt-5.6-sol", "1,050,000", "Cache writes", "272,000"):
        assert topic in notes
    for row in raw["models"]:
        if row["key"] in CURRENT:
            assert row["source"]


@pytest.mark.parametrize("key", ["gpt-5", "gpt-5-mini", "gpt-5-nano"])
def test_gpt5_shuts_down_on_december_11(key):
    profile = ModelProfile.get(key)
    assert profile.shutdown_date == dt.date(2026, 12, 11)
    snapshot = ModelProfile.get(f"{key}-2025-08-07")
    assert snapshot.shutdown_date == dt.date(2026, 12, 11)
    assert profile.replacement is not None
    assert ModelProfile.get(profile.replacement).shutdown_date is None
    assert profile.status(dt.date(2026, 11, 10)) == "deprecated"
    assert profile.status(dt.date(2026, 11, 11)) == "retiring"
    assert profile.status(dt.date(2026, 12, 11)) == "shut down"


def _retiring(shutdown: dt.date, replacement: str | None = "gpt-5.6-luna") -> ModelProfile:
    return ModelProfile(
        key="old-model",
        model_name="old-model",
        category="completions",
        context_window=1000,
        max_input=900,
        max_output=100,
        rate_limits=RateLimits(1000, 10),
        usage_costs=UsageCosts(1, 0.1, 2),
        shutdown_date=shutdown,
        replacement=replacement,
    )


def test_retirement_warning_window():
    day = dt.date(2027, 3, 1)
    profile = _retiring(day)
    assert retirement_warning(profile, day - dt.timedelta(days=31)) is None
    soon = retirement_warning(profile, day - dt.timedelta(days=30))
    assert soon is not None
    assert "2027-03-01" in soon and "in 30 days" in soon
    assert "gpt-5.6-luna (GPT5Point6Luna)" in soon
    assert "in 1 day)" in str(retirement_warning(profile, day - dt.timedelta(days=1)))
    gone = retirement_warning(profile, day)
    assert gone is not None and "was shut down" in gone and "2027-03-01" in gone
    assert "was shut down" in str(retirement_warning(profile, day + dt.timedelta(days=400)))
    no_hint = retirement_warning(_retiring(day, replacement=None), day)
    assert no_hint is not None and "deprecations" in no_hint
    assert retirement_warning(GPT5Point2, day) is None  # no shutdown announced


def test_warn_if_retiring_logs_one_warning(caplog):
    day = dt.date(2027, 3, 1)
    with caplog.at_level(logging.WARNING, logger="llm_client.models"):
        assert warn_if_retiring(_retiring(day), today=day - dt.timedelta(days=3))
        assert not warn_if_retiring(_retiring(day), today=day - dt.timedelta(days=90))
    records = [r for r in caplog.records if r.name == "llm_client.models"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert "2027-03-01" in records[0].getMessage()


def test_building_a_client_for_a_retiring_model_logs_once(caplog):
    """2026-12-11 is within 30 days of today (and stays past it): one warning per client."""
    with caplog.at_level(logging.DEBUG, logger="llm_client"):
        OpenAIClient(GPT5Nano, api_key="sk-test", base_url="http://127.0.0.1:9/v1")
        OpenAIClient(
            "gpt-5-nano-2025-08-07", api_key="sk-test", base_url="http://127.0.0.1:9/v1"
        )
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2
    for record in warnings:
        message = record.getMessage()
        assert record.name == "llm_client.models"
        assert "2026-12-11" in message and "gpt-5.6-luna (GPT5Point6Luna)" in message
    assert "'gpt-5-nano-2025-08-07'" in warnings[1].getMessage()
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="llm_client"):
        OpenAIClient(llm_client.GPT5Point4Nano, api_key="sk-test", base_url="http://x/v1")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_invalid_shutdown_and_prices():
    with pytest.raises(ConfigurationError, match="shutdown_date"):
        dataclass_replace(GPT5Nano, shutdown_date="2026-12-11")
    with pytest.raises(ConfigurationError, match="cache_write"):
        UsageCosts(1, 0.1, 2, -1)
    with pytest.raises(ConfigurationError, match="above_input_tokens"):
        llm_client.LongContextPricing(-1, 2.0, 1.5)


def dataclass_replace(profile: ModelProfile, **changes: object) -> ModelProfile:
    import dataclasses

    return dataclasses.replace(profile, **changes)  # type: ignore[arg-type]
