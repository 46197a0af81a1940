"""Shared test set-up: tiktoken's offline cache, no .env loading, and the ``server`` fixture."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # imported in the fixture: llm_client is imported after the set-up below
    from llm_client.testing import FakeOpenAI

_TIKTOKEN = Path(__file__).resolve().parents[1].parent / "shared" / "tiktoken-cache"
if "TIKTOKEN_CACHE_DIR" not in os.environ and _TIKTOKEN.is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(_TIKTOKEN)
os.environ.setdefault("LLM_CLIENT_NO_DOTENV", "1")


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    """A fake OpenAI server in the test's own event loop (unlike the ``fake_openai`` fixture's
    background thread): the test sees a connection close as soon as it happens."""
    from llm_client.testing import FakeOpenAI

    async with FakeOpenAI() as fake:
        yield fake
