"""The exceptions of agent runs, and :class:`StopRun`, which a tool raises to end its run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import LLMClientError

if TYPE_CHECKING:
    from .records import AgentResult


class StopRun(Exception):
    """Raise inside a tool to end the run after this turn's tool calls.

    ``output`` becomes the run's :attr:`AgentResult.output` (``None`` if not given); the model
    is not called again. The call that raised still gets an output in the transcript.
    """

    def __init__(self, output: Any = None, message: str = "the tool ended the run") -> None:
        super().__init__(message)
        self.output = output
        self.message = message


class AgentError(LLMClientError):
    """A run that could not finish; ``result`` is the partial :class:`AgentResult` (its
    transcript is valid: every tool call in it has an output)."""

    def __init__(self, message: str, *, result: AgentResult, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.result = result
        self.usage = result.usage


class BudgetExceededError(AgentError):
    """The next step would go over the run's :class:`RunBudget`; raised before it is taken.

    ``limit`` names the budget (``"max_requests"``, ``"max_tool_calls"``,
    ``"max_total_tokens"``, ``"max_cost"``), ``allowed`` its value, ``used`` what the run has
    spent so far and ``needed`` what the next step would add (an estimate for model calls).
    """

    default_status = 429

    def __init__(
        self,
        message: str,
        *,
        result: AgentResult,
        limit: str,
        allowed: float,
        used: float,
        needed: float,
    ) -> None:
        super().__init__(message, result=result)
        self.limit = limit
        self.allowed = allowed
        self.used = used
        self.needed = needed


class MaxTurnsExceededError(AgentError):
    """``max_turns`` was reached with ``on_max_turns="raise"``."""

    default_status = 400
