"""llm_client.defaults: the default chain, in its documented order, built from the options."""

from __future__ import annotations

import pytest

from llm_client import ConfigurationError, GPT5Nano
from llm_client.config import ClientConfig, RetryConfig, TimeoutConfig
from llm_client.defaults import default_pipeline
from llm_client.middleware import CacheMiddleware, RateLimit, Retry, Timeout


def test_every_step_in_the_documented_order() -> None:
    pipeline = default_pipeline(GPT5Nano, cache_backend="memory")
    assert pipeline.names() == ["cost", "timeout", "cache", "tokens", "retry", "limit"]
    assert pipeline.find(CacheMiddleware) is not None and pipeline.find(RateLimit) is not None


def test_steps_that_are_switched_off_are_left_out() -> None:
    pipeline = default_pipeline(GPT5Nano, rate_limit_backend=None)
    assert pipeline.names() == ["cost", "timeout", "tokens", "retry"]


def test_a_config_object_sets_the_steps() -> None:
    config = ClientConfig(retry=RetryConfig(attempts=5), timeouts=TimeoutConfig(total=7))
    pipeline = default_pipeline(GPT5Nano, config)
    retry, timeout = pipeline.find(Retry), pipeline.find(Timeout)
    assert retry is not None and retry.attempts == 5
    assert timeout is not None and timeout.default == 7


def test_a_config_and_keywords_together_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="either config= or keyword options"):
        default_pipeline(GPT5Nano, ClientConfig(), attempts=2)
