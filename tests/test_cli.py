"""The llm-client command."""

from __future__ import annotations

import subprocess
import sys

from llm_client.cli import main


def test_models_lists_profiles_and_prices(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "gpt-5-nano" in out and "0.05" in out and "272,000" in out
    assert "text-embedding-3-large" in out and "openai.com/api/pricing" in out


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
