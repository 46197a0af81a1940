"""The dry run: a file's tokens and cost, estimated without sending anything."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..models import ModelProfile
from ..usage import Usage, price
from .input import BadLine, iter_requests

__all__ = ["DEFAULT_ASSUMED_OUTPUT_TOKENS", "DryRunEstimate", "estimate_file"]

#: Output assumed per completion line in a dry run when the body names no max token count.
DEFAULT_ASSUMED_OUTPUT_TOKENS = 256


@dataclass
class DryRunEstimate:
    """A dry run's estimate: input tokens counted exactly with tiktoken; output tokens from
    each body's max token count, else ``assumed_output_tokens`` per completion line."""

    lines: int = 0
    bad: int = 0
    skipped: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    assumed_output_tokens: int = DEFAULT_ASSUMED_OUTPUT_TOKENS
    lines_with_assumed_output: int = 0
    batch_api: bool = False
    by_model: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "bad": self.bad,
            "skipped": self.skipped,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": self.cost_usd,
            "assumed_output_tokens": self.assumed_output_tokens,
            "lines_with_assumed_output": self.lines_with_assumed_output,
            "batch_api": self.batch_api,
            "by_model": dict(self.by_model),
        }

    def describe(self) -> str:
        rate = " at the Batch API's 50% rate" if self.batch_api else ""
        assumed = (
            f"; {self.lines_with_assumed_output} lines name no max token count, assumed"
            f" {self.assumed_output_tokens} output tokens each"
            if self.lines_with_assumed_output
            else ""
        )
        done = f", {self.skipped} already in the output" if self.skipped else ""
        return (
            f"{self.lines} requests to run ({self.bad} bad lines{done}):"
            f" {self.input_tokens} input tokens"
            f" (exact), {self.output_tokens} output tokens (at most){assumed};"
            f" estimated cost ${self.cost_usd:.6f}{rate}"
        )


def estimate_file(
    path: str | os.PathLike[str],
    *,
    model: ModelProfile | str | None = None,
    assumed_output_tokens: int = DEFAULT_ASSUMED_OUTPUT_TOKENS,
    batch_api: bool = False,
    skip: set[str] | frozenset[str] = frozenset(),
) -> DryRunEstimate:
    """Estimate a file's tokens and cost without sending anything.

    Input tokens are counted exactly as the client counts them before a call (tiktoken, with
    OpenAI's per-message overhead); output tokens are each body's ``max_tokens`` /
    ``max_completion_tokens`` / ``max_output_tokens``, or ``assumed_output_tokens`` per
    completion line without one (embeddings produce none). Lines whose ``custom_id`` is in
    ``skip`` (already in the output) are counted as ``skipped``, not estimated.
    """
    from ..middleware.tokens import _input_of
    from ..tokens import count_tokens

    estimate = DryRunEstimate(assumed_output_tokens=assumed_output_tokens, batch_api=batch_api)
    for item in iter_requests(path, default_model=model):
        if isinstance(item, BadLine):
            estimate.bad += 1
            continue
        if item.custom_id in skip:
            estimate.skipped += 1
            continue
        call = item.call
        profile = call.profile
        tools = call.params.get("tools") if call.operation != "embeddings" else None
        counted = _input_of(call)
        if call.operation == "responses" and isinstance(counted, str):
            # A string input is one user message to the Responses API, and is billed with
            # the message's framing tokens, as the fake server and OpenAI report it.
            counted = [{"role": "user", "content": counted}]
        n_in = count_tokens(counted, model=profile, tools=tools)
        n_out = 0
        if call.operation != "embeddings":
            for name in ("max_output_tokens", "max_completion_tokens", "max_tokens"):
                value = call.params.get(name)
                if isinstance(value, int) and value > 0:
                    n_out = value
                    break
            else:
                n_out = assumed_output_tokens
                estimate.lines_with_assumed_output += 1
        usage = price(
            Usage(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out),
            profile,
            batch=batch_api,
        )
        estimate.lines += 1
        estimate.input_tokens += n_in
        estimate.output_tokens += n_out
        estimate.cost_usd += usage.total_cost
        estimate.by_model[profile.model_name] = estimate.by_model.get(profile.model_name, 0) + 1
    return estimate
