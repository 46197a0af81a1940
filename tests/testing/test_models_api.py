"""The fake server's GET /v1/models and /v1/models/{id}, through the real SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from openai import AsyncOpenAI

from llm_client.testing import FakeOpenAI
from llm_client.testing.models_api import DEFAULT_MODELS


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def sdk(fake: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    client = AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
    yield client
    await client.close()


async def test_list_has_openais_shape_and_shutdown_dates(fake: FakeOpenAI, sdk: AsyncOpenAI):
    models = [m async for m in sdk.models.list()]
    assert [m.id for m in models] == list(DEFAULT_MODELS)
    by_id = {m.id: m for m in models}
    nano = by_id["gpt-5-nano"]
    assert nano.object == "model" and nano.owned_by == "openai" and nano.created > 0
    assert nano.shutdown_date == "2026-12-11"  # the SDK's Model type has this field
    assert by_id["gpt-5-nano-2025-08-07"].shutdown_date == "2026-12-11"
    assert by_id["gpt-5.4-nano"].shutdown_date is None
    raw = await sdk.models.with_raw_response.list()
    item = raw.http_response.json()["data"][0]
    assert set(item) == {"id", "object", "created", "owned_by", "shutdown_date"}
    assert "x-request-id" in raw.headers


async def test_retrieve_one_and_unknown_is_404(fake: FakeOpenAI, sdk: AsyncOpenAI):
    model = await sdk.models.retrieve("gpt-5-mini")
    assert (model.id, model.shutdown_date) == ("gpt-5-mini", "2026-12-11")
    with pytest.raises(openai.NotFoundError) as info:
        await sdk.models.retrieve("gpt-does-not-exist")
    assert info.value.code == "model_not_found"
    assert "gpt-does-not-exist" in info.value.message


async def test_the_catalogue_is_a_plain_dict_tests_may_change(
    fake: FakeOpenAI, sdk: AsyncOpenAI
) -> None:
    other = FakeOpenAI()
    assert other.models == dict(DEFAULT_MODELS) and other.models is not fake.models
    fake.models = {"ft:gpt-5.4-nano:acme::1": "2027-06-01"}
    models = [m async for m in sdk.models.list()]
    assert [(m.id, m.owned_by, m.shutdown_date) for m in models] == [
        ("ft:gpt-5.4-nano:acme::1", "user", "2027-06-01")
    ]
    assert fake.count("models") == 1
