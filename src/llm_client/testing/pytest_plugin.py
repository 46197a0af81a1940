"""pytest plugin of llm-client: the ``fake_openai`` and ``redis_server`` fixtures.

Installed through the ``pytest11`` entry point, so any project that has llm-client installed
can use the fixtures without a conftest. The server module (and aiohttp) is imported only when
a fixture is first used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from llm_client.testing.server import FakeOpenAI
    from llm_client.testing.services import RedisServer

#: The API key the fixture puts in ``OPENAI_API_KEY``.
FAKE_API_KEY = "sk-fake-test-key"


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """A running :class:`~llm_client.testing.FakeOpenAI` for one test.

    The server runs in its own event loop on a background thread, so the fixture works in
    sync and async tests alike. ``OPENAI_BASE_URL`` points at it and ``OPENAI_API_KEY`` is
    ``sk-fake-test-key`` for the duration of the test; the server is stopped afterwards.
    """
    from llm_client.testing.server import FakeOpenAI

    server = FakeOpenAI().start_in_thread()
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
        yield server
    finally:
        server.stop_thread()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private, running :class:`~llm_client.testing.services.RedisServer` for one test.

    The test may stop and start it (``redis_server.url`` stays the same); it is stopped
    afterwards. Skipped when ``redis-server`` is not installed, or failed with
    ``LLM_CLIENT_REQUIRE_SERVICES=1``.
    """
    from llm_client.testing.services import RedisServer, unavailable

    if not RedisServer.installed():
        unavailable("redis-server is not installed")
    with RedisServer() as server:
        yield server
