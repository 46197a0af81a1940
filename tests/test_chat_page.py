"""examples/chat_page in real headless Chromium (Debian's ``chromium``, driven by Playwright
with ``executable_path``): the answer grows in visible steps through the browser's own
EventSource, the usage line appears, and a dropped connection (a reload, or the server cutting
the stream so that EventSource reconnects with Last-Event-ID) still ends in the whole answer
after ONE model request."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from llm_client import GPT5Nano, OpenAIClient
from llm_client.testing import FakeOpenAI

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROMPT = "Tell me a long story about a lighthouse keeper, the sea and a storm at night."
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "chat_page" / "server.py"

if not Path(CHROMIUM).exists():  # .ci/run installs it; a developer machine may not have it
    if os.environ.get("LLM_CLIENT_REQUIRE_SERVICES") == "1":
        raise RuntimeError("chromium is missing: apt-get install chromium (see .ci/run)")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


def load_example():
    spec = importlib.util.spec_from_file_location("chat_page_server", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def site() -> AsyncIterator[tuple[str, FakeOpenAI, web.Application]]:
    example = load_example()
    async with FakeOpenAI(chunk_delay=0.25) as fake:
        client = OpenAIClient(GPT5Nano, base_url=fake.base_url, api_key="sk-fake")
        app = example.make_app(client)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}/", fake, app
        finally:
            await runner.cleanup()
            await client.close()


@pytest.fixture
async def page() -> AsyncIterator[object]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield await browser.new_page(viewport={"width": 900, "height": 560})
        finally:
            await browser.close()


async def watch_answer(page, until: str, seen: list[str], timeout: float = 30.0) -> None:
    """Poll the answer's visible text until the usage line says the stream ended."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        text = await page.inner_text("#answer")
        if not seen or text != seen[-1]:
            seen.append(text)
        if until in (await page.inner_text("#usage")):
            seen.append(await page.inner_text("#answer"))
            return
        await asyncio.sleep(0.03)
    raise AssertionError(f"no usage line after {timeout}s; answer steps: {seen}")


async def ask(page, url: str) -> None:
    await page.goto(url)
    await page.fill("#prompt", PROMPT)
    await page.click("#send")


async def test_answer_streams_in_visible_steps_with_usage(site, page, tmp_path):
    url, fake, _ = site
    await ask(page, url)
    seen: list[str] = []
    await watch_answer(page, "cost $", seen)
    answer = fake.expected_text(PROMPT)
    assert seen[-1] == answer
    steps = [s for s in dict.fromkeys(seen) if s]
    assert len(steps) >= 3, steps  # the text grew in at least three visible steps
    assert all(answer.startswith(s) for s in steps)  # each step a prefix of the answer
    usage = await page.inner_text("#usage")
    assert "input" in usage and "output" in usage and "cost $" in usage
    await page.screenshot(path=str(tmp_path / "chat_page.png"))
    assert (tmp_path / "chat_page.png").stat().st_size > 0
    assert fake.count("chat") == 1


async def test_reload_mid_answer_completes_with_one_request(site, page, tmp_path):
    url, fake, _ = site
    await ask(page, url)
    await page.wait_for_function(
        "document.getElementById('answer').textContent.trim() !== ''", timeout=20_000
    )
    partial = await page.inner_text("#answer")
    assert partial and partial != fake.expected_text(PROMPT)  # mid-answer
    await page.reload()  # the connection drops; the page picks the same stream up again
    seen: list[str] = []
    await watch_answer(page, "cost $", seen)
    assert seen[-1] == fake.expected_text(PROMPT)
    await page.screenshot(path=str(tmp_path / "after_reload.png"))
    assert fake.count("chat") == 1  # ONE model request


async def test_eventsource_reconnects_with_last_event_id(site, page, tmp_path):
    url, fake, app = site
    await ask(page, url + "?drop_after=3")  # the server cuts the first connection
    seen: list[str] = []
    await watch_answer(page, "cost $", seen)
    assert seen[-1] == fake.expected_text(PROMPT)  # nothing lost, nothing doubled
    assert len(app[sys.modules["chat_page_server"].DROPPED]) == 1  # really cut, once
    await page.screenshot(path=str(tmp_path / "after_reconnect.png"))
    assert fake.count("chat") == 1
