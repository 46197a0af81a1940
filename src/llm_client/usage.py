"""Normalized token usage and its cost in USD.

Chat Completions reports ``prompt_tokens``/``completion_tokens`` with optional
``prompt_tokens_details``/``completion_tokens_details``; the Responses API reports
``input_tokens``/``output_tokens`` with ``input_tokens_details``/``output_tokens_details``;
embeddings report only ``prompt_tokens``. :func:`parse_usage` reads all three, treating every
``*_details`` object (and each field in it) as optional, and prices the result.

Pricing is exact: each price and multiplier is read as the decimal it was written as (``0.075``
is 75/1000, not the nearest float), the arithmetic is done in integers, and each cost is the
correctly rounded float of the exact result. Two rules of OpenAI's price list are applied:

- long-context pricing (:class:`~llm_client.models.LongContextPricing`): a prompt over the
  profile's threshold (272,000 input tokens for gpt-5.4, gpt-5.5 and gpt-5.6) bills every input
  rate at 2x and output at 1.5x, for the whole request;
- cache writes: tokens reported as ``cache_write_tokens`` are billed at the profile's
  ``cache_write`` price (1.25x input on gpt-5.6), or as ordinary input where it has none.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ._replace import fast_replace

if TYPE_CHECKING:
    from .models import ModelProfile, UsageCosts

__all__ = ["Usage", "parse_usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and cost of one call (summed over its attempts).

    ``input_tokens`` includes ``cached_input_tokens`` and ``cache_write_tokens``;
    ``output_tokens`` includes ``reasoning_tokens``. Costs are USD: ``input_cost`` covers the
    input not read from the prompt cache (cache writes included), ``cached_input_cost`` the
    input that was. ``saved_cost`` is what a cache hit did not spend.
    ``estimated`` is true when some of these numbers are our count rather than the server's:
    a call cut short (by its deadline, or a stream that broke off) bills tokens that the server
    never reported, so the input is counted locally and the output from the text that arrived.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    total_tokens: int = 0
    input_cost: float = 0.0
    cached_input_cost: float = 0.0
    output_cost: float = 0.0
    saved_cost: float = 0.0
    estimated: bool = False

    @property
    def total_cost(self) -> float:
        return self.input_cost + self.cached_input_cost + self.output_cost

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            input_cost=self.input_cost + other.input_cost,
            cached_input_cost=self.cached_input_cost + other.cached_input_cost,
            output_cost=self.output_cost + other.output_cost,
            saved_cost=self.saved_cost + other.saved_cost,
            estimated=self.estimated or other.estimated,
        )

    def as_saved(self) -> Usage:
        """The same tokens, reported as not spent: costs move into ``saved_cost``."""
        return fast_replace(
            self,
            {
                "input_cost": 0.0,
                "cached_input_cost": 0.0,
                "output_cost": 0.0,
                "saved_cost": self.total_cost + self.saved_cost,
            },
        )

    def to_dict(self) -> dict[str, Any]:
        # Written out rather than dataclasses.asdict(): this runs on every result, and
        # asdict's recursive deep copy costs more than the rest of a cache hit's bookkeeping.
        return {
            "input_tokens": self.input_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "total_tokens": self.total_tokens,
            "input_cost": self.input_cost,
            "cached_input_cost": self.cached_input_cost,
            "output_cost": self.output_cost,
            "saved_cost": self.saved_cost,
            "total_cost": self.total_cost,
            "estimated": self.estimated,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        values = {k: v for k, v in data.items() if k in USAGE_FIELDS}
        if "estimated" in values:
            values["estimated"] = values["estimated"] is True
        return cls(**values)


#: The names of :class:`Usage`'s fields (what :meth:`Usage.from_dict` keeps).
USAGE_FIELDS = frozenset(f.name for f in fields(Usage))


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return max(0, int(value))


def parse_usage(usage: Any, profile: ModelProfile | None = None, *, batch: bool = False) -> Usage:
    """Normalize any OpenAI usage object (SDK model or dict) and price it for ``profile``.

    :param usage: ``CompletionUsage``, ``ResponseUsage``, embeddings usage, or their dicts.
    :param profile: the model whose prices apply; ``None`` leaves costs at zero.
    :param batch: price at the Batch API discount.
    """
    if usage is None:
        return Usage()
    if isinstance(usage, Usage):
        return usage
    input_tokens = _int(_get(usage, "input_tokens")) or _int(_get(usage, "prompt_tokens"))
    output_tokens = _int(_get(usage, "output_tokens")) or _int(_get(usage, "completion_tokens"))
    in_details = _get(usage, "input_tokens_details") or _get(usage, "prompt_tokens_details")
    out_details = _get(usage, "output_tokens_details") or _get(usage, "completion_tokens_details")
    cached = min(_int(_get(in_details, "cached_tokens")), input_tokens)
    cache_write = _int(_get(in_details, "cache_write_tokens"))
    if not cache_write:  # only the per-retention breakdown was sent
        write_details = _get(in_details, "cache_write_tokens_details")
        cache_write = _int(_get(write_details, "ttl_30m_tokens")) + _int(
            _get(write_details, "ttl_12h_tokens")
        )
    cache_write = min(cache_write, input_tokens - cached)
    reasoning = _int(_get(out_details, "reasoning_tokens"))
    total = _int(_get(usage, "total_tokens")) or input_tokens + output_tokens
    result = Usage(
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        output_tokens=output_tokens,
        reasoning_tokens=reasoning,
        cache_write_tokens=cache_write,
        total_tokens=total,
    )
    return price(result, profile, batch=batch) if profile is not None else result


@functools.lru_cache(maxsize=1024)
def _ratio(value: float) -> tuple[int, int]:
    """``value`` as the exact decimal it was written as: ``0.075`` -> ``(3, 40)``."""
    exact = Fraction(repr(float(value)))
    return exact.numerator, exact.denominator


@functools.lru_cache(maxsize=256)
def _exact_prices(costs: UsageCosts) -> tuple[int, int, int, int, int]:
    """(input, cached, output, cache write) prices per 1M tokens as integers over one common
    denominator, which comes last."""
    write = costs.input if costs.cache_write is None else costs.cache_write
    ratios = [_ratio(p) for p in (costs.input, costs.cached_input, costs.output, write)]
    den = math.lcm(*(d for _, d in ratios))
    n_in, n_cached, n_out, n_write = (n * (den // d) for n, d in ratios)
    return n_in, n_cached, n_out, n_write, den


def price(usage: Usage, profile: ModelProfile, *, batch: bool = False) -> Usage:
    """Fill in the USD costs of ``usage`` at ``profile``'s prices and pricing rules."""
    from .models import BATCH_DISCOUNT

    n_in, n_cached, n_out, n_write, den = _exact_prices(profile.usage_costs)
    b_num, b_den = _ratio(BATCH_DISCOUNT) if batch else (1, 1)
    in_num = in_den = out_num = out_den = 1
    rule = profile.long_context
    if rule is not None and usage.input_tokens > rule.above_input_tokens:
        in_num, in_den = _ratio(rule.input_multiplier)
        out_num, out_den = _ratio(rule.output_multiplier)
    cached = usage.cached_input_tokens
    writes = max(0, min(usage.cache_write_tokens, usage.input_tokens - cached))
    plain = max(0, usage.input_tokens - cached - writes)
    # int / int is the correctly rounded float of the exact quotient.
    in_scale = den * 1_000_000 * in_den * b_den
    return fast_replace(
        usage,
        {
            "input_cost": (plain * n_in + writes * n_write) * in_num * b_num / in_scale,
            "cached_input_cost": cached * n_cached * in_num * b_num / in_scale,
            "output_cost": usage.output_tokens * n_out * out_num * b_num
            / (den * 1_000_000 * out_den * b_den),
        },
    )
