"""What a run did (:class:`BatchSummary`), and its progress bar."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["BatchSummary"]


@dataclass
class BatchSummary:
    """What a run did. ``succeeded``/``failed``/``cached`` count this run's lines;
    ``skipped`` the lines already in the output; ``bad`` the lines in the errors file."""

    lines: int = 0
    succeeded: int = 0
    failed: int = 0
    cached: int = 0
    skipped: int = 0
    bad: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    wall_time: float = 0.0
    output: str = ""
    errors: str = ""

    @property
    def ok(self) -> bool:
        """True when no line failed and no line was bad."""
        return self.failed == 0 and self.bad == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cached": self.cached,
            "skipped": self.skipped,
            "bad": self.bad,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "wall_time": self.wall_time,
            "output": self.output,
            "errors": self.errors,
        }

    def describe(self) -> str:
        """A short human summary."""
        return (
            f"done {self.succeeded}, failed {self.failed}, cached {self.cached},"
            f" already done {self.skipped}, bad lines {self.bad};"
            f" tokens {self.input_tokens} in / {self.output_tokens} out;"
            f" cost ${self.cost_usd:.6f}; wall time {self.wall_time:.2f}s"
        )


class _Progress:
    """A tqdm bar on a terminal, nothing otherwise."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="req", dynamic_ncols=True, file=sys.stderr)

    def update(self, n: int, summary: BatchSummary) -> None:
        if self._bar is None:
            return
        self._bar.set_postfix(
            ok=summary.succeeded,
            failed=summary.failed,
            tokens=summary.input_tokens + summary.output_tokens,
            cost=f"${summary.cost_usd:.4f}",
            refresh=False,
        )
        self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
