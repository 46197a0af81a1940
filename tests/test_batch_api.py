"""``--via batch-api``: the round trip through OpenAI's Files and Batch APIs, through the real SDK
against the fake server's ``/v1/files`` and ``/v1/batches``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import openai
import pytest

from llm_client import OpenAIClient, batch_api
from llm_client.batch import errors_path_for
from llm_client.models import ModelProfile
from llm_client.testing.server import FakeOpenAI
from llm_client.usage import parse_usage

MODEL = "gpt-5.4-nano"


def chat_line(i: int) -> dict:
    return {
        "custom_id": f"c{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": [{"role": "user", "content": f"row {i}"}]},
    }


def emb_line(i: int) -> dict:
    return {
        "custom_id": f"e{i}",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "text-embedding-3-small", "input": [f"text {i}", f"more {i}"]},
    }


def write_lines(path: Path, lines: list) -> None:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(raw) for raw in path.read_text().splitlines()]


def client_for(server: FakeOpenAI) -> OpenAIClient:
    return OpenAIClient(MODEL, base_url=server.base_url, api_key="sk-test")


async def test_round_trip_splits_joins_by_custom_id_and_prices_at_half_rate(tmp_path):
    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    write_lines(src, [chat_line(i) for i in range(25)] + [emb_line(i) for i in range(6)] + ["{x"])
    async with FakeOpenAI() as server, client_for(server) as client:
        server.fail_next(500, times=2, endpoint="chat")  # two lines of a batch fail
        summary = await client.run_file(
            src, out, via="batch-api", poll=0.01, max_requests=10, max_embedding_inputs=8
        )
        batches = list(server.batches.batches.values())
    # 25 chat lines in parts of <= 10; 6 embedding lines of 2 inputs in parts of <= 8 inputs
    sizes = Counter((b.data["endpoint"], b.data["request_counts"]["total"]) for b in batches)
    assert sizes == Counter(
        {
            ("/v1/chat/completions", 10): 2,
            ("/v1/chat/completions", 5): 1,
            ("/v1/embeddings", 4): 1,
            ("/v1/embeddings", 2): 1,
        }
    )
    assert all(b.data["status"] == "completed" for b in batches)
    lines = read_jsonl(out)
    ids = Counter(line["custom_id"] for line in lines)
    assert set(ids) == {f"c{i}" for i in range(25)} | {f"e{i}" for i in range(6)}
    assert max(ids.values()) == 1
    failed = [line for line in lines if line["response"]["status_code"] != 200]
    assert len(failed) == 2 and (summary.succeeded, summary.failed) == (29, 2)
    profile = ModelProfile.get(MODEL)
    for line in lines:
        if line in failed or line["custom_id"].startswith("e"):
            continue
        body = line["response"]["body"]
        assert body["object"] == "chat.completion"
        full = parse_usage(body["usage"], profile).total_cost
        assert line["cost"] == pytest.approx(full / 2)  # the Batch API's 50% rate
    assert summary.bad == 1 and read_jsonl(errors_path_for(out))[0]["line"] == 32
    state = json.loads(batch_api.state_path_for(out).read_text())
    assert len(state["batches"]) == 5 and all(b["collected"] for b in state["batches"])


async def test_submit_now_collect_later_and_a_rerun_submits_nothing_twice(tmp_path):
    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    write_lines(src, [chat_line(i) for i in range(12)])
    async with FakeOpenAI() as server, client_for(server) as client:
        server.batches.hold = True
        await client.run_file(src, out, via="batch-api", wait=False, max_requests=5)
        assert len(server.batches.batches) == 3 and not out.read_text()
        status = await batch_api.status(client, out)
        assert [s["status"] for s in status] == ["validating"] * 3
        # the same command again while the batches are pending: poll, do not resubmit
        await client.run_file(src, out, via="batch-api", wait=False)
        assert len(server.batches.batches) == 3
        server.batches.release()
        summary = await batch_api.collect(client, out, poll=0.01)
        assert summary.succeeded == 12
        again = await client.run_file(src, out, via="batch-api", poll=0.01)
        assert again.skipped == 12 and len(server.batches.batches) == 3
        assert server.count("chat") == 12
    assert len(read_jsonl(out)) == 12


async def test_cancel_then_collect_keeps_partial_results_and_retry_failed_resubmits(tmp_path):
    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    write_lines(src, [chat_line(i) for i in range(6)])
    async with FakeOpenAI() as server, client_for(server) as client:
        server.batches.hold = True
        await client.run_file(src, out, via="batch-api", wait=False)
        cancelled = await batch_api.cancel(client, out)
        assert [c["status"] for c in cancelled] == ["cancelling"]
        summary = await batch_api.collect(client, out, poll=0.01)
        assert summary.failed == 6
        codes = {line["error"]["code"] for line in read_jsonl(out)}
        assert codes == {"batch_cancelled"}
        server.batches.hold = False
        retried = await client.run_file(src, out, via="batch-api", retry_failed=True, poll=0.01)
        assert retried.succeeded == 6
    lines = read_jsonl(out)
    assert len(lines) == 6 and all(line["response"]["status_code"] == 200 for line in lines)


async def test_an_expired_batch_reports_its_unfinished_requests(tmp_path):
    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    write_lines(src, [chat_line(i) for i in range(4)])
    async with FakeOpenAI() as server, client_for(server) as client:
        server.batches.hold = True
        await client.run_file(src, out, via="batch-api", wait=False)
        (batch_id,) = server.batches.batches
        server.batches.expire(batch_id)
        summary = await batch_api.collect(client, out, poll=0.01)
    assert summary.failed == 4
    errors = [line["error"] for line in read_jsonl(out)]
    assert {e["code"] for e in errors} == {"batch_expired"}


# --- the fake's Files and Batch APIs, straight through the SDK -----------------------------------


async def test_fake_batch_lifecycle_and_validation_through_the_sdk():
    async with FakeOpenAI() as server:
        sdk = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        good = b"".join((json.dumps(chat_line(i)) + "\n").encode() for i in range(3))
        file = await sdk.files.create(file=("in.jsonl", good), purpose="batch")
        assert (file.object, file.purpose, file.bytes) == ("file", "batch", len(good))
        batch = await sdk.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert batch.status == "validating" and batch.expires_at > batch.created_at
        for _ in range(200):
            batch = await sdk.batches.retrieve(batch.id)
            if batch.status == "completed":
                break
            await server.batches.batches[batch.id].task
        assert batch.status == "completed" and batch.request_counts.completed == 3
        assert batch.usage is not None and batch.usage.input_tokens > 0
        content = (await sdk.files.content(batch.output_file_id)).content
        outputs = [json.loads(x) for x in content.splitlines()]
        assert {o["custom_id"] for o in outputs} == {"c0", "c1", "c2"}
        assert all(o["response"]["body"]["object"] == "chat.completion" for o in outputs)

        dup = (json.dumps(chat_line(0)) + "\n").encode() * 2
        bad = await sdk.files.create(file=("dup.jsonl", dup), purpose="batch")
        failed = await sdk.batches.create(
            input_file_id=bad.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        await server.batches.batches[failed.id].task
        failed = await sdk.batches.retrieve(failed.id)
        assert failed.status == "failed"
        assert failed.errors.data[0].code == "duplicate_custom_id"
        assert failed.errors.data[0].line == 2

        with pytest.raises(openai.BadRequestError):
            await sdk.batches.create(
                input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="1h"
            )
        with pytest.raises(openai.ConflictError):
            await sdk.batches.cancel(batch.id)  # a completed batch cannot be cancelled
        await sdk.close()


def test_cli_via_batch_api_and_status(tmp_path, fake_openai, capsys):
    from llm_client.cli import main

    src = tmp_path / "in.jsonl"
    out = tmp_path / "out.jsonl"
    write_lines(src, [chat_line(i) for i in range(3)])
    assert main(["batch", str(src), "-o", str(out), "--via", "batch-api", "--poll", "0.01"]) == 0
    assert len(read_jsonl(out)) == 3
    capsys.readouterr()
    assert main(["batch", "status", "-o", str(out)]) == 0
    assert "completed" in capsys.readouterr().out
    estimate = ["batch", str(src), "-o", str(out), "--via", "batch-api", "--dry-run"]
    assert main(estimate) == 0
    assert json.loads(capsys.readouterr().out)["batch_api"] is True
