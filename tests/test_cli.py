"""The llm-client command."""

from __future__ import annotations

import subprocess
import sys

from llm_client import GPT5Point6Sol
from llm_client.cli import main, model_differences
from llm_client.testing import FakeOpenAI


def test_models_lists_profiles_prices_and_status(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "gpt-5-nano" in out and "0.05" in out and "272,000" in out
    assert "text-embedding-3-large" in out and "openai.com/api/docs/pricing" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("gpt-")}
    assert "2026-12-11" in rows["gpt-5-nano"] and "gpt-5.6-luna" in rows["gpt-5-nano"]
    assert rows["gpt-5.4-nano"].rstrip().endswith("active")
    assert "1,050,000" in rows["gpt-5.6-luna"] and "922,000" in rows["gpt-5.6-luna"]
    assert "Long-context pricing" in out and "gpt-5.6-sol $6.25" in out


def test_models_check_against_the_fake_server(fake_openai: FakeOpenAI, capsys):
    """``--check`` asks GET /v1/models through the SDK (OPENAI_BASE_URL, OPENAI_API_KEY)."""
    assert main(["models", "--check"]) == 0
    assert "No differences." in capsys.readouterr().out
    request = fake_openai.last_request("models")
    assert request is not None and request.path.endswith("/v1/models")
    assert request.headers["authorization"] == "Bearer sk-fake-test-key"

    del fake_openai.models["gpt-5.6-sol"]
    fake_openai.models["gpt-5.4-nano"] = "2027-03-18"
    fake_openai.models["gpt-5-nano-2025-08-07"] = "2026-12-01"
    fake_openai.models["gpt-9-unprofiled"] = "2030-01-01"
    assert main(["models", "--check"]) == 1
    out = capsys.readouterr().out
    assert "missing   gpt-5.6-sol" in out
    assert "gpt-5.4-nano: the API says 2027-03-18, the profile says none" in out
    assert "gpt-5-nano-2025-08-07 (profile gpt-5-nano): the API says 2026-12-01" in out
    assert "gpt-9" not in out and "3 differences." in out


def test_models_check_reports_an_unreachable_api(monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-nothing-listens-there")
    assert main(["models", "--check"]) == 2
    err = capsys.readouterr().err
    assert "GET /models failed" in err and "sk-nothing" not in err


def test_model_differences_ignores_absent_dates():
    listed = [{"id": "gpt-5.6-sol", "object": "model"}]  # an API without shutdown_date
    assert model_differences(listed, [GPT5Point6Sol]) == []
    assert model_differences([], [GPT5Point6Sol])[0].startswith("missing   gpt-5.6-sol")


def test_demo_runs_offline_and_second_round_hits_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    proc = subprocess.run(
        [sys.executable, "-m", "llm_client.cli", "demo", "--cache-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines()]
    rows = [r for r in lines if r and r[0] in ("1", "2")]
    assert len(rows) == 2
    first, second = rows
    assert int(first[1]) == 9 and int(first[2]) == 0  # 9 requests, no hits
    assert int(second[1]) == 9 and int(second[2]) == 9  # all 9 from the cache
    assert float(first[5]) > 0 and float(second[5]) == 0  # cost spent, then nothing
    assert float(second[6]) > 0  # what the hits saved
    assert (tmp_path / "llm_cache.sqlite3").exists()


def test_live_demo_needs_a_key(monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["demo", "--live"]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err
