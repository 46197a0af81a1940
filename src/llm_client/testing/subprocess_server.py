"""Run the fake OpenAI server in a child process (its own interpreter, its own core).

Benchmarks use it so that the server's work does not share the measured client's GIL.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

__all__ = ["spawn_server"]


def spawn_server(args: Sequence[str] = ()) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m llm_client.testing --port 0 [args]``; return the process and its
    base URL. Terminate the process when done."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_client.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"the fake OpenAI server did not start: {url!r}")
    return proc, url
