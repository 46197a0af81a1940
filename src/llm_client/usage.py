"""Normalized token usage and its cost in USD.

Chat Completions reports ``prompt_tokens``/``completion_tokens`` with optional
``prompt_tokens_details``/``completion_tokens_details``; the Responses API reports
``input_tokens``/``output_tokens`` with ``input_tokens_details``/``output_tokens_details``;
embeddings report only ``prompt_tokens``. :func:`parse_usage` reads all three, treating every
``*_details`` object (and each field in it) as optional, and prices the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from ._replace import fast_replace

if TYPE_CHECKING:
    from .models import ModelProfile

__all__ = ["Usage", "parse_usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and cost of one call (summed over its attempts).

    ``input_tokens`` includes ``cached_input_tokens``; ``output_tokens`` includes
    ``reasoning_tokens``. Costs are USD. ``saved_cost`` is what a cache hit did not spend.
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
        values = {k: v for k, v in data.items() if k in _FIELDS}
        if "estimated" in values:
            values["estimated"] = values["estimated"] is True
        return cls(**values)


_FIELDS = frozenset(f.name for f in fields(Usage))


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


def price(usage: Usage, profile: ModelProfile, *, batch: bool = False) -> Usage:
    """Fill in the USD costs of ``usage`` at ``profile``'s prices."""
    from .models import BATCH_DISCOUNT

    per_in, per_cached, per_out = profile.usage_costs.per_token()
    factor = BATCH_DISCOUNT if batch else 1.0
    uncached = usage.input_tokens - usage.cached_input_tokens
    return fast_replace(
        usage,
        {
            "input_cost": uncached * per_in * factor,
            "cached_input_cost": usage.cached_input_tokens * per_cached * factor,
            "output_cost": usage.output_tokens * per_out * factor,
        },
    )
