"""Cost accounting: the outermost step.

Why here: it sees every outcome — answers, failures and cache hits — so its totals are the
whole truth: tokens and USD actually spent, and what cache hits saved. It runs after the
reply exists, so it never delays a call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..exceptions import LLMClientError
from ..meter import CallMeter, meter_of
from ..pipeline import Call, Next, Reply
from ..result import LLMResult
from ..usage import Usage
from ._stream import is_stream, on_final

__all__ = ["CostAccounting", "CostTotals"]


@dataclass
class CostTotals:
    """Counts, tokens and USD of every call so far.

    ``abandoned`` counts streams whose consumer stopped reading before the end; ``estimated``
    counts calls whose usage is partly our own count (cut by the deadline after being sent,
    broken off, or abandoned: see :attr:`Usage.estimated <llm_client.usage.Usage.estimated>`).
    """

    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    abandoned: int = 0
    cache_hits: int = 0
    attempts: int = 0
    estimated: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CostAccounting:
    """Totals of every call that passed through: counts, tokens, USD spent and saved.

    It puts a :class:`~llm_client.meter.CallMeter` on each streamed call, so that a stream its
    consumer leaves early still counts what its attempts spent.
    """

    def __init__(self) -> None:
        self.totals = CostTotals()

    def reset(self) -> None:
        self.totals = CostTotals()

    def _spend(self, usage: Usage, *, saved_only: bool = False) -> None:
        t = self.totals
        if not saved_only:
            t.input_tokens += usage.input_tokens
            t.cached_input_tokens += usage.cached_input_tokens
            t.output_tokens += usage.output_tokens
            t.reasoning_tokens += usage.reasoning_tokens
        t.cost_usd += usage.total_cost
        t.saved_usd += usage.saved_cost
        if usage.estimated and not saved_only:
            t.estimated += 1

    def _add(self, result: LLMResult) -> None:
        t = self.totals
        t.requests += 1
        if result.ok:
            t.succeeded += 1
        else:
            t.failed += 1
        if result.cached:
            t.cache_hits += 1
        t.attempts += result.attempts
        self._spend(result.usage, saved_only=result.cached)

    def _add_stream(self, final: LLMResult | None, meter: CallMeter) -> None:
        if final is not None:
            self._add(final)
            return
        t = self.totals  # the consumer left before the end: count what was spent so far
        t.requests += 1
        t.abandoned += 1
        t.attempts += meter.attempts
        self._spend(meter.spent())

    async def __call__(self, call: Call, next: Next, /) -> Reply:
        meter = meter_of(call)
        if meter is None and call.stream:
            meter = CallMeter()
            call = call.replace(context={**call.context, "meter": meter})
        try:
            reply = await next(call)
        except LLMClientError as exc:
            t = self.totals
            t.requests += 1
            t.failed += 1
            t.attempts += exc.attempts
            self._spend(exc.usage if isinstance(exc.usage, Usage) else Usage())
            raise
        if is_stream(reply):
            spent = meter or CallMeter()  # a custom step answered a unary call with a stream
            return on_final(reply, lambda final: self._add_stream(final, spent))  # type: ignore[arg-type]
        assert isinstance(reply, LLMResult)
        self._add(reply)
        return reply
