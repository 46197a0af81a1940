"""Cost accounting: the outermost step.

Why here: it sees every outcome — answers, failures and cache hits — so its totals are the
whole truth: tokens and USD actually spent, and what cache hits saved. It runs after the
reply exists, so it never delays a call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..exceptions import LLMClientError
from ..pipeline import Call, Next, Reply
from ..result import LLMResult
from ..usage import Usage
from ._stream import is_stream, on_final

__all__ = ["CostAccounting", "CostTotals"]


@dataclass
class CostTotals:
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    cache_hits: int = 0
    attempts: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CostAccounting:
    """Totals of every call that passed through: counts, tokens, USD spent and saved."""

    def __init__(self) -> None:
        self.totals = CostTotals()

    def reset(self) -> None:
        self.totals = CostTotals()

    def _add(self, result: LLMResult | None, usage: Usage | None = None) -> None:
        t = self.totals
        t.requests += 1
        if result is None:
            t.failed += 1
            return
        if result.ok:
            t.succeeded += 1
        else:
            t.failed += 1
        if result.cached:
            t.cache_hits += 1
        t.attempts += result.attempts
        u = usage or result.usage
        if not result.cached:
            t.input_tokens += u.input_tokens
            t.cached_input_tokens += u.cached_input_tokens
            t.output_tokens += u.output_tokens
            t.reasoning_tokens += u.reasoning_tokens
        t.cost_usd += u.total_cost
        t.saved_usd += u.saved_cost

    async def __call__(self, call: Call, next: Next, /) -> Reply:
        try:
            reply = await next(call)
        except LLMClientError as exc:
            usage = exc.usage if isinstance(exc.usage, Usage) else Usage()
            self.totals.requests += 1
            self.totals.failed += 1
            self.totals.attempts += exc.attempts
            self.totals.input_tokens += usage.input_tokens
            self.totals.output_tokens += usage.output_tokens
            self.totals.cost_usd += usage.total_cost
            raise
        if is_stream(reply):
            return on_final(reply, self._add)  # type: ignore[arg-type]
        assert isinstance(reply, LLMResult)
        self._add(reply)
        return reply
