"""llm_client.exceptions: the status-to-error mapping and the one list of transient statuses."""

from __future__ import annotations

import pytest

from llm_client.exceptions import (
    RETRYABLE_STATUSES,
    ConflictError,
    RateLimitError,
    ServerError,
    error_for_status,
    is_transient_status,
)
from llm_client.middleware.retry import RETRYABLE_STATUSES as RETRY_STEP_STATUSES
from llm_client.middleware.retry import ExponentialBackoff


def test_the_transient_statuses_are_the_sdks() -> None:
    # openai._base_client.BaseClient._should_retry: 408, 409, 429 and every 5xx.
    assert {408, 409, 429} == RETRYABLE_STATUSES
    assert RETRY_STEP_STATUSES is RETRYABLE_STATUSES
    assert [s for s in range(400, 600) if is_transient_status(s)] == [
        408,
        409,
        429,
        *range(500, 600),
    ]


@pytest.mark.parametrize("status", range(400, 600))
def test_an_error_is_retryable_exactly_when_its_status_is_transient(status: int) -> None:
    error = error_for_status(status, "failed")
    assert error.status == status
    assert error.retryable is is_transient_status(status)
    policy = ExponentialBackoff(base=0.0, rng=lambda: 0.0)
    assert (policy.delay(1, error) is not None) is is_transient_status(status)


def test_statuses_map_to_their_classes() -> None:
    assert type(error_for_status(409, "x")) is ConflictError
    assert type(error_for_status(429, "x")) is RateLimitError
    assert type(error_for_status(408, "x")) is ServerError
    assert type(error_for_status(503, "x")) is ServerError
