"""``llm-client batch`` / ``OpenAIClient.run_file``: end to end through the real SDK against the
fake server (in a thread, or the CLI in a real subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from llm_client import OpenAIClient, Pipeline
from llm_client.batch import (
    BadLine,
    Request,
    errors_path_for,
    estimate_file,
    parse_line,
    read_output,
)
from llm_client.testing.server import FakeOpenAI

MODEL = "gpt-5.4-nano"


def chat_line(i: int, **body) -> dict:
    return {
        "custom_id": f"c{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": INSTRUCTIONS},
                {"role": "user", "content": f"Label this review: {review(i)}"},
            ],
            "max_tokens": 30,
            **body,
        },
    }


def write_lines(path: Path, lines: list) -> None:
    with open(path, "w") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(raw) for raw in path.read_text().splitlines()]


def make_client(server: FakeOpenAI, **kw) -> OpenAIClient:
    if "pipeline" not in kw:  # the default chain's options; a custom chain carries its own
        kw.setdefault("backoff", 0.001)
        # budgets far above the profile's tier-1 defaults: the fake server answers at once
        kw.setdefault("requests_per_minute", 1e7)
        kw.setdefault("tokens_per_minute", 1e10)
    return OpenAIClient(MODEL, base_url=server.base_url, api_key="sk-test", **kw)


BAD_LINES = [
    "{not json",
    json.dumps([1, 2]),
    json.dumps({"method": "POST", "url": "/v1/chat/completions", "body": {}}),
    json.dumps({"custom_id": "bad-url", "url": "/v1/completions", "body": {"model": MODEL}}),
    json.dumps({"custom_id": "bad-body", "url": "/v1/chat/completions", "body": {"model": MODEL}}),
    json.dumps(
        {
            "custom_id": "bad-temp",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "top_p": 9},
        }
    ),
    json.dumps({"custom_id": "bad-model", "messages": [], "model": "no-such-model"}),
    json.dumps({"custom_id": "c1", "messages": [{"role": "user", "content": "dup"}]}),
]
BAD_CODES = [
    "invalid_json",
    "invalid_line",
    "missing_custom_id",
    "invalid_url",
    "invalid_body",
    "invalid_body",
    "unknown_model",
    "duplicate_custom_id",
]


_REVIEW_TEXT = (
    "the parcel arrived late and the box was damaged so I want a refund please "
    "great service friendly staff and quick delivery would order again "
    "colour faded after one wash disappointing quality for the price"
)
WORDS = _REVIEW_TEXT.split(" ")
#: A labelling prompt of realistic length, in plain words. The fake server counts tokens with
#: its own tokenizer (a word or a punctuation mark is a token; tiktoken merges differently)
#: and leaves the role out of each message's framing, so on punctuated text it drifts about 1%
#: from tiktoken whatever the client does; plain words keep that drift out of this test.
INSTRUCTIONS = " ".join(
    [
        "you label customer reviews for an online shop and read each review and answer with",
        "one word which is positive or negative or mixed and a review is positive when the",
        "customer is happy with the product and the service and negative when the customer",
        "complains about the product or the delivery or the price and mixed when it praises",
        "one thing and faults another and you ignore spelling mistakes and judge only what",
        "the customer says about the product and the service",
    ]
    * 3
)


def review(i: int) -> str:
    """A short review text, different for each row."""
    words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(6 + i % 9)]
    return " ".join(words)


def mixed_file(path: Path, n: int, bad_every: int = 20) -> tuple[set[str], list[int]]:
    """``n`` good lines of every kind, with a bad line after every ``bad_every`` good ones."""
    lines: list = []
    good: set[str] = set()
    bad_numbers: list[int] = []
    k = 0
    for i in range(n):
        if i % 4 == 0:
            line = {"custom_id": f"c{i}", "input": review(i), "max_output_tokens": 16}
        elif i % 4 == 1:
            line = {
                "custom_id": f"c{i}",
                "url": "/v1/embeddings",
                "method": "POST",
                "body": {"model": "text-embedding-3-small", "input": review(i)},
            }
        else:
            line = chat_line(i)
        lines.append(line)
        good.add(f"c{i}")
        if i % bad_every == bad_every - 1:
            bad = BAD_LINES[k % len(BAD_LINES)]
            if k >= len(BAD_LINES):  # the same mistakes again, under new custom_ids
                bad = bad.replace('"bad-', f'"bad{k}-').replace('"c1"', f'"c{i}"')
            lines.append(bad)
            bad_numbers.append(len(lines))
            k += 1
    write_lines(path, lines)
    return good, bad_numbers


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "code"), list(zip(BAD_LINES[:-1], BAD_CODES[:-1], strict=True)))
def test_each_bad_line_is_named_with_its_reason(raw, code):
    item = parse_line(raw, 7, default_model=MODEL)
    assert isinstance(item, BadLine)
    assert item.line == 7
    assert item.code == code
    assert item.message


def test_a_batch_line_is_built_by_the_clients_request_checks():
    item = parse_line(json.dumps(chat_line(3)), 1)
    assert isinstance(item, Request)
    assert item.call.operation == "chat"
    # the client's own request building: max_tokens becomes max_completion_tokens
    assert item.call.params["max_completion_tokens"] == 30
    assert item.call.params["model"] == MODEL


def test_short_forms_pick_the_endpoint_from_messages_or_input():
    chat = parse_line(
        '{"custom_id": "a", "messages": [{"role": "user", "content": "x"}]}', 1, default_model=MODEL
    )
    resp = parse_line('{"custom_id": "b", "input": "x"}', 2, default_model=MODEL)
    emb = parse_line('{"custom_id": "c", "input": "x"}', 3, default_model="text-embedding-3-small")
    assert isinstance(chat, Request) and chat.url == "/v1/chat/completions"
    assert isinstance(resp, Request) and resp.url == "/v1/responses"
    assert isinstance(emb, Request) and emb.url == "/v1/embeddings"
    missing = parse_line('{"custom_id": "d", "input": "x"}', 4)
    assert isinstance(missing, BadLine) and missing.code == "missing_model"


def test_a_model_that_does_not_fit_the_url_is_refused():
    line = {"custom_id": "e", "url": "/v1/embeddings", "body": {"model": MODEL, "input": "x"}}
    item = parse_line(json.dumps(line), 1)
    assert isinstance(item, BadLine) and item.code == "model_mismatch"
    streamed = parse_line(json.dumps(chat_line(1, stream=True)), 1)
    assert isinstance(streamed, BadLine) and "stream" in streamed.message


# --- one run ----------------------------------------------------------------------------------


async def test_2000_lines_with_bad_lines_and_faults_give_one_line_each(tmp_path):
    src = tmp_path / "requests.jsonl"
    out = tmp_path / "results.jsonl"
    good, bad_numbers = mixed_file(src, 1900, bad_every=19)
    assert len(good) + len(bad_numbers) == 2000
    async with FakeOpenAI(log_requests=False) as server:
        server.rate_limit_next(times=15, retry_after=0.01)
        server.fail_next(500, times=15)
        server.fail_next(503, times=10)
        async with make_client(server, attempts=6) as client:
            summary = await client.run_file(src, out, concurrency=32)
        sent = server.count()
    lines = read_jsonl(out)
    ids = Counter(line["custom_id"] for line in lines)
    assert set(ids) == good and max(ids.values()) == 1  # exactly one output line per good line
    assert summary.succeeded + summary.failed == len(good)
    assert sent == summary.succeeded + 40  # each injected fault cost exactly one more request
    ok = [line for line in lines if line["response"] and line["response"]["status_code"] == 200]
    assert len(ok) == summary.succeeded
    for line in ok:
        assert line["id"].startswith("batch_req_") and line["error"] is None
        assert line["response"]["request_id"].startswith("req_")
        assert line["usage"]["total_tokens"] > 0 and line["cost"] > 0
    errors = read_jsonl(errors_path_for(out))
    assert [e["line"] for e in errors] == bad_numbers
    assert Counter(e["error"]["code"] for e in errors) == Counter(
        BAD_CODES[k % len(BAD_CODES)] for k in range(len(bad_numbers))
    )
    assert summary.bad == len(bad_numbers)


async def test_output_lines_follow_openais_batch_output_shapes(tmp_path):
    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    write_lines(
        src,
        [
            chat_line(0),
            {"custom_id": "r", "url": "/v1/responses", "body": {"model": MODEL, "input": "hi"}},
            {"custom_id": "e", "input": ["a", "b"], "model": "text-embedding-3-small"},
        ],
    )
    async with FakeOpenAI() as server, make_client(server) as client:
        await client.run_file(src, out)
    by_id = {line["custom_id"]: line for line in read_jsonl(out)}
    chat = by_id["c0"]["response"]["body"]
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"]["content"] == FakeOpenAI.expected_text(
        chat_line(0)["body"]["messages"]
    )
    resp = by_id["r"]["response"]["body"]
    assert resp["object"] == "response" and resp["status"] == "completed"
    assert resp["output"][0]["content"][0]["text"] == FakeOpenAI.expected_text("hi")
    emb = by_id["e"]["response"]["body"]
    assert emb["object"] == "list" and [d["index"] for d in emb["data"]] == [0, 1]
    assert len(emb["data"][0]["embedding"]) == 1536


async def test_a_failed_line_keeps_its_status_and_openais_error_body(tmp_path):
    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    write_lines(src, [chat_line(i) for i in range(3)])
    async with FakeOpenAI() as server, make_client(server, attempts=1) as client:
        server.fail_next(500, times=1)
        summary = await client.run_file(src, out, concurrency=1)
    assert (summary.succeeded, summary.failed) == (2, 1)
    failed = read_jsonl(out)[0]
    assert failed["response"]["status_code"] == 500
    assert failed["response"]["body"]["error"]["type"] == "server_error"
    assert failed["error"] is None


async def test_the_input_is_streamed_not_read_ahead(tmp_path, monkeypatch):
    import llm_client.batch.input as batch_module

    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    write_lines(src, [chat_line(i) for i in range(120)])
    parsed = 0
    real_parse = batch_module.parse_line

    def counting_parse(*args, **kwargs):
        nonlocal parsed
        parsed += 1
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(batch_module, "parse_line", counting_parse)
    workers = 3
    most_ahead = 0
    async with FakeOpenAI(latency=0.005) as server, make_client(server) as client:
        run = asyncio.create_task(client.run_file(src, out, concurrency=workers))
        while not run.done():
            written = out.read_bytes().count(b"\n") if out.exists() else 0
            most_ahead = max(most_ahead, parsed - written)
            await asyncio.sleep(0.002)
        summary = await run
    assert summary.succeeded == 120
    # lines parsed but not yet written: the workers' calls plus the small queue, never the file
    assert 0 < most_ahead <= 3 * workers + 1


async def test_a_failing_output_stops_the_run_with_its_error(tmp_path, monkeypatch):
    import llm_client.batch.output as batch_module

    src = tmp_path / "in.jsonl"
    write_lines(src, [chat_line(i) for i in range(200)])
    real_write = batch_module._Appender.write
    written = 0

    def failing_write(self, obj):
        nonlocal written
        if written == 20:
            raise OSError(28, "No space left on device")
        written += 1
        real_write(self, obj)

    monkeypatch.setattr(batch_module._Appender, "write", failing_write)
    async with FakeOpenAI() as server, make_client(server) as client:
        run = client.run_file(src, tmp_path / "out.jsonl", concurrency=4)
        with pytest.raises(OSError, match="No space left"):
            await asyncio.wait_for(run, 60)  # a guard against a hang, not a timing claim
        assert server.count() < 200  # the reader stopped feeding lines
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 20


def test_an_output_that_cannot_be_written_is_a_clear_error(tmp_path, fake_openai):
    from llm_client.cli import main

    src = tmp_path / "in.jsonl"
    write_lines(src, [chat_line(0)])
    assert main(["batch", str(src), "-o", str(tmp_path / "no" / "such" / "out.jsonl")]) == 2
    assert fake_openai.count() == 0


# --- resuming ---------------------------------------------------------------------------------


async def test_a_rerun_sends_only_what_is_missing_and_repairs_a_partial_last_line(tmp_path):
    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    write_lines(src, [chat_line(i) for i in range(50)])
    async with FakeOpenAI() as server, make_client(server) as client:
        await client.run_file(src, out)
        assert server.count() == 50
        kept = out.read_text().splitlines(keepends=True)[:40]
        # as if killed while writing line 41: 40 whole lines and half of the next
        out.write_text("".join(kept) + kept[0][: len(kept[0]) // 2])
        summary = await client.run_file(src, out)
        assert server.count() == 60  # the 10 lines without a whole output line, nothing else
        assert (summary.skipped, summary.succeeded) == (40, 10)
        again = await client.run_file(src, out)
        assert server.count() == 60 and again.skipped == 50
    ids = Counter(line["custom_id"] for line in read_jsonl(out))
    assert len(ids) == 50 and max(ids.values()) == 1


async def test_retry_failed_runs_only_the_error_lines_again(tmp_path):
    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    write_lines(src, [chat_line(i) for i in range(10)])
    async with FakeOpenAI() as server, make_client(server, attempts=1) as client:
        server.fail_next(500, times=3)
        first = await client.run_file(src, out, concurrency=1)
        assert first.failed == 3
        plain = await client.run_file(src, out)
        assert (plain.skipped, server.count()) == (10, 10)  # failures are not re-run by default
        retried = await client.run_file(src, out, retry_failed=True)
        assert (retried.succeeded, retried.skipped, server.count()) == (3, 7, 13)
    lines = read_jsonl(out)
    assert len(lines) == 10 and all(line["response"]["status_code"] == 200 for line in lines)
    assert read_output(out) == ({f"c{i}" for i in range(10)}, set())


async def test_a_cache_hit_is_marked_and_costs_nothing(tmp_path):
    src = tmp_path / "in.jsonl"
    write_lines(src, [chat_line(i) for i in range(5)])
    async with FakeOpenAI() as server, make_client(server, cache_backend="memory") as client:
        await client.run_file(src, tmp_path / "a.jsonl")
        summary = await client.run_file(src, tmp_path / "b.jsonl")
        assert server.count() == 5
    assert summary.cached == 5 and summary.cost_usd == 0
    assert all(line["cached"] for line in read_jsonl(tmp_path / "b.jsonl"))


async def test_two_runs_cannot_write_one_output(tmp_path):
    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    write_lines(src, [chat_line(i) for i in range(20)])
    from llm_client.exceptions import ConfigurationError

    async with FakeOpenAI(latency=0.05) as server, make_client(server) as client:
        first = asyncio.create_task(client.run_file(src, out, concurrency=2))
        while not out.exists():  # noqa: ASYNC110 - polling a file, no event to wait on
            await asyncio.sleep(0.01)
        with pytest.raises(ConfigurationError, match="locked"):
            await client.run_file(src, out)
        await first


# --- a real process, killed ---------------------------------------------------------------------


class HoldingServer(FakeOpenAI):
    """Answers the first ``hold_after`` chat requests, then holds the rest until released.
    ``answered`` counts, per prompt, the answers actually handed to a live connection."""

    def __init__(self, hold_after: int | None) -> None:
        super().__init__(log_requests=False)
        self.hold_after = hold_after
        self.arrived = 0
        self.answered: Counter[str] = Counter()

    async def _handle_chat(self, request):
        body = await request.json()
        key = body["messages"][-1]["content"]
        self.arrived += 1
        if self.hold_after is not None and self.arrived > self.hold_after:
            while self.hold_after is not None:  # noqa: ASYNC110 - set from the test's thread
                await asyncio.sleep(0.01)
        response = await super()._handle_chat(request)
        if request.transport is not None and not request.transport.is_closing():
            self.answered[key] += 1
        return response


def _cli(src: Path, out: Path, server: FakeOpenAI) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "sk-test"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llm_client.cli",
            "batch",
            str(src),
            "-o",
            str(out),
            "--concurrency",
            "16",
            "--rpm",
            "1e7",
            "--tpm",
            "1e10",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_a_run_killed_midway_and_rerun_pays_no_line_twice(tmp_path):
    n, answered_before_kill = 600, 250
    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    lines = [chat_line(i) for i in range(n)]
    for i, line in enumerate(lines):  # a distinct prompt per line, to count them at the server
        line["body"]["messages"][-1]["content"] = f"row {i}"
    write_lines(src, lines)
    server = HoldingServer(hold_after=answered_before_kill).start_in_thread()
    try:
        proc = _cli(src, out, server)
        deadline = time.monotonic() + 60
        while (
            _lines(out) < answered_before_kill or server.arrived <= answered_before_kill
        ) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        assert _lines(out) == answered_before_kill  # every answer received is on disk
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        held = server.arrived - answered_before_kill
        assert held > 0  # requests were in flight when the process died
        server.hold_after = None  # let the held handlers go: their connections are gone
        time.sleep(0.3)
        assert server.answered.total() == answered_before_kill
        arrived_before = server.arrived
        rerun = _cli(src, out, server)
        _, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err.decode()
        assert server.arrived - arrived_before == n - answered_before_kill  # the lines left
    finally:
        server.stop_thread()
    assert len(server.answered) == n and max(server.answered.values()) == 1  # none paid twice
    ids = Counter(line["custom_id"] for line in read_jsonl(out))
    assert len(ids) == n and max(ids.values()) == 1


# --- dry run, progress, CLI -----------------------------------------------------------------------


async def test_dry_run_input_tokens_are_within_one_percent_of_the_tokens_used(tmp_path):
    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    good, _ = mixed_file(src, 200, bad_every=50)
    estimate = estimate_file(src, model=MODEL)
    assert estimate.lines == len(good) and estimate.bad == 4
    counted: list[int] = []

    async def record_count(call, next):
        counted.append(call.context["input_tokens"])
        return await next(call)

    pipeline = Pipeline.default(MODEL, requests_per_minute=1e7, tokens_per_minute=1e10)
    pipeline.insert_after("tokens", "record", record_count)
    async with FakeOpenAI() as server, make_client(server, pipeline=pipeline) as client:
        summary = await client.run_file(src, out)
        assert server.count() == len(good)
    # exact: the estimate counts as the client counts before each call (tiktoken)
    responses_framing = 7 * 50  # a string input billed as one user message (see estimate_file)
    assert estimate.input_tokens == sum(counted) + responses_framing
    used = summary.input_tokens
    assert abs(estimate.input_tokens - used) <= 0.01 * used, (estimate.input_tokens, used)
    # output: each line's max token count, or the stated assumption (embeddings: none)
    assert estimate.output_tokens == 50 * 16 + 100 * 30
    assert estimate.cost_usd > 0


async def test_progress_is_quiet_off_a_terminal_and_a_bar_on_request(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    write_lines(src, [chat_line(i) for i in range(5)])
    async with FakeOpenAI() as server, make_client(server) as client:
        await client.run_file(src, tmp_path / "a.jsonl")
        assert capsys.readouterr().err == ""
        await client.run_file(src, tmp_path / "b.jsonl", progress=True)
        assert "5/5" in capsys.readouterr().err


def test_cli_reports_a_summary_and_exit_status(tmp_path, fake_openai):
    from llm_client.cli import main

    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    write_lines(src, [chat_line(i) for i in range(3)])
    assert main(["batch", str(src), "-o", str(out)]) == 0
    write_lines(src, [chat_line(i) for i in range(3)] + ["{oops"])
    assert main(["batch", str(src), "-o", str(out)]) == 1  # a bad line
    assert main(["batch", str(tmp_path / "missing.jsonl"), "-o", str(out)]) == 2
    assert fake_openai.count() == 3


def test_cli_dry_run_prints_the_estimate_and_sends_nothing(tmp_path, fake_openai, capsys):
    from llm_client.cli import main

    src = tmp_path / "in.jsonl"
    write_lines(src, [chat_line(i) for i in range(4)] + [{"custom_id": "x", "input": "hi"}])
    assert main(["batch", str(src), "-o", str(tmp_path / "o.jsonl"), "--dry-run"]) == 0
    captured = capsys.readouterr()
    estimate = json.loads(captured.out)
    assert estimate["lines"] == 5 and estimate["lines_with_assumed_output"] == 1
    assert estimate["output_tokens"] == 4 * 30 + 256
    assert "assumed 256 output tokens" in captured.err
    assert fake_openai.count() == 0
    # after a partial run, the estimate covers only what is left
    (tmp_path / "o.jsonl").write_text("")
    assert main(["batch", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", MODEL]) == 0
    write_lines(src, [chat_line(i) for i in range(6)] + [{"custom_id": "x", "input": "hi"}])
    capsys.readouterr()
    assert main(["batch", str(src), "-o", str(tmp_path / "o.jsonl"), "--dry-run"]) == 0
    left = json.loads(capsys.readouterr().out)
    assert (left["lines"], left["skipped"], left["output_tokens"]) == (2, 5, 2 * 30)


def test_cli_cache_sqlite_answers_a_second_run_from_the_cache(tmp_path, fake_openai):
    from llm_client.cli import main

    src = tmp_path / "in.jsonl"
    write_lines(src, [chat_line(i) for i in range(4)])
    cache = f"sqlite:{tmp_path / 'cache.sqlite3'}"
    assert main(["batch", str(src), "-o", str(tmp_path / "a.jsonl"), "--cache", cache]) == 0
    assert main(["batch", str(src), "-o", str(tmp_path / "b.jsonl"), "--cache", cache]) == 0
    assert fake_openai.count() == 4
    assert all(line["cached"] for line in read_jsonl(tmp_path / "b.jsonl"))
