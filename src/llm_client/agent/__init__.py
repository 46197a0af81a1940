"""Agents: :class:`Tool` and :class:`AgentRunner`, a tool-calling loop on top of the client.

The loop is a client of the chain: every model turn is one ordinary ``client.invoke`` (or
``client.stream``) call, so the cache, limiter, retry, timeout and cost accounting apply to each
turn with no special case. Between turns the runner executes the requested tools (concurrently,
sync functions in a thread), appends the calls and their outputs to the transcript, and calls
the model again, until it answers without tool calls.

Failures of a tool call go back to the model as that call's output, never up the stack, and
every tool call in the transcript gets an output (OpenAI answers 400 "No tool output found for
function call ..." to a transcript with a call left unanswered). See ``docs/agents.md``.


The package: ``tools`` (:class:`Tool`), ``records`` (budgets, records, results, events),
``errors``, ``runner`` (the loop, awaited or streamed), ``execution`` (one turn's tool calls)
and ``transcript`` (the conversation in each API's format).
"""

from __future__ import annotations

from .errors import AgentError, BudgetExceededError, MaxTurnsExceededError, StopRun
from .records import (  # noqa: F401  (Api, ErrorKind, StopReason: type aliases, kept importable)
    AgentEvent,
    AgentResult,
    Api,
    ErrorKind,
    RunBudget,
    StopReason,
    ToolCallRecord,
    TurnRecord,
)
from .runner import AgentRunner
from .tools import Tool

__all__ = [
    "AgentError",
    "AgentEvent",
    "AgentResult",
    "AgentRunner",
    "BudgetExceededError",
    "MaxTurnsExceededError",
    "RunBudget",
    "StopRun",
    "Tool",
    "ToolCallRecord",
    "TurnRecord",
]
