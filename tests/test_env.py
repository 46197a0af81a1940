"""`.env` is loaded on import and never overrides variables that are already set."""

from __future__ import annotations

import os
import subprocess
import sys


def run_in(tmp_path, env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("LLM_CLIENT_NO_DOTENV", "DEMO_X")}
    env.update(env_extra)
    code = "import os, llm_client; print(os.environ.get('DEMO_X'), os.environ.get('DEMO_Y'))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.split()


def test_dotenv_loaded_from_the_working_directory(tmp_path):
    (tmp_path / ".env").write_text("DEMO_X=from-dotenv\nDEMO_Y=also\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert run_in(nested, {}) == ["from-dotenv", "also"]


def test_dotenv_never_overrides_the_environment(tmp_path):
    (tmp_path / ".env").write_text("DEMO_X=from-dotenv\n")
    assert run_in(tmp_path, {"DEMO_X": "from-env"})[0] == "from-env"


def test_dotenv_can_be_switched_off(tmp_path):
    (tmp_path / ".env").write_text("DEMO_X=from-dotenv\n")
    assert run_in(tmp_path, {"LLM_CLIENT_NO_DOTENV": "1"})[0] == "None"
