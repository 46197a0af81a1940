"""llm_client.transport: a client that is never closed releases its HTTP session quietly
(issue 7, part 4).

The SDK's aiohttp client opens an ``aiohttp.ClientSession`` on the first request; before the
fix, a client that was never closed left it to the garbage collector, and aiohttp printed
"Unclosed client session" / "Unclosed connector" on stderr after the seed's quickstart.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_client import GPT5Point4Nano, OpenAIClient
from llm_client.testing import FakeOpenAI, expected_text
from llm_client.testing.subprocess_server import spawn_server

QUICKSTART = Path(__file__).parent / "examples" / "seed_quickstart.py"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello, how are you?"},
]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    proc, url = spawn_server()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize(
    "flags",
    [[], ["-W", "error::ResourceWarning"], ["-W", "always::ResourceWarning"]],
    ids=["default", "resourcewarning-is-error", "resourcewarning-always-shown"],
)
def test_seed_quickstart_exits_quietly(server_url: str, tmp_path: Path, flags: list[str]) -> None:
    env = {
        **os.environ,
        "OPENAI_BASE_URL": server_url,
        "OPENAI_API_KEY": "sk-quickstart-test",
        "LLM_CLIENT_NO_DOTENV": "1",
    }
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run(
        [sys.executable, *flags, str(QUICKSTART)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected_text(MESSAGES)
    assert proc.stderr == ""


async def test_a_dropped_client_closes_its_session_while_the_loop_runs() -> None:
    async with FakeOpenAI() as server:
        client = OpenAIClient(GPT5Point4Nano, base_url=server.base_url, api_key="sk-test")
        assert (await client.invoke(input="hello")).ok
        sdk = client._transport.sdk
        assert not sdk.is_closed()
        del client
        gc.collect()
        for _ in range(100):
            if sdk.is_closed():
                break
            await asyncio.sleep(0.01)
        assert sdk.is_closed()


def test_a_client_outlives_its_event_loop(fake_openai: FakeOpenAI) -> None:
    """Each ``asyncio.run`` closes the session it used; the next one opens a fresh one."""
    client = OpenAIClient(GPT5Point4Nano, cache_backend=None)
    first_sdk = client._transport.sdk
    assert asyncio.run(client.invoke(input="one")).output == expected_text("one")
    assert first_sdk.is_closed()  # closed when that loop shut down, without a close() call
    assert asyncio.run(client.invoke(input="two")).output == expected_text("two")
    asyncio.run(client.close())
    assert client._transport.sdk.is_closed()


async def test_close_still_closes_and_a_given_http_client_stays_the_callers() -> None:
    import openai

    async with FakeOpenAI() as server:
        client = OpenAIClient(GPT5Point4Nano, base_url=server.base_url, api_key="sk-test")
        assert (await client.invoke(input="hi")).ok
        await client.close()
        assert client._transport.sdk.is_closed()
        await client.close()  # twice is harmless

        http = openai.DefaultAioHttpClient()
        mine = OpenAIClient(
            GPT5Point4Nano, base_url=server.base_url, api_key="sk-test", http_client=http
        )
        assert (await mine.invoke(input="hi")).ok
        assert not http.is_closed  # not ours to close behind the caller's back
        await mine.close()  # an explicit close() closes the SDK client, as before
        assert http.is_closed
