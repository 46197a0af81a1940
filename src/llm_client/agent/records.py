"""What a run leaves behind: :class:`RunBudget`, the records of each turn and tool call,
:class:`AgentResult` and the :class:`AgentEvent` of a streamed run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from ..exceptions import ConfigurationError
from ..result import LLMResult
from ..streaming import LLMEvent
from ..usage import Usage

if TYPE_CHECKING:
    from .errors import StopRun

Api: TypeAlias = Literal["chat", "responses"]
ErrorKind: TypeAlias = Literal[
    "invalid_arguments", "raised", "timeout", "unknown_tool", "cancelled", "stopped", "budget"
]
StopReason: TypeAlias = Literal["answer", "max_turns", "stopped", "budget", "error"]


@dataclass(frozen=True, slots=True)
class RunBudget:
    """Caps on one run; each is checked *before* the step that would exceed it.

    :param max_requests: model calls.
    :param max_tool_calls: tool calls executed.
    :param max_total_tokens: input + output tokens; a model call is allowed only if the tokens
        used so far plus the call's estimate (its counted input, plus ``max_output_tokens`` or
        the limiter's default reservation for the output) fit.
    :param max_cost: USD, with the same estimate priced at the model's rates.
    """

    max_requests: int | None = None
    max_tool_calls: int | None = None
    max_total_tokens: int | None = None
    max_cost: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_requests", "max_tool_calls", "max_total_tokens"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 0
            ):
                raise ConfigurationError(f"{name} must be an integer >= 0 or None, got {value!r}")
        cost = self.max_cost
        if cost is not None and (
            not isinstance(cost, (int, float)) or isinstance(cost, bool) or not 0 <= cost < 1e300
        ):
            raise ConfigurationError(f"max_cost must be a number of USD >= 0 or None, got {cost!r}")


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One tool call: what the model asked, what it got back, and how long it took.

    ``output`` is the text the model saw. On success ``result`` is the function's return
    value and ``error`` is None; otherwise ``error`` says what went wrong and ``error_kind`` is
    one of ``invalid_arguments``, ``raised``, ``timeout``, ``unknown_tool``, ``cancelled``,
    ``stopped`` (the tool raised :class:`StopRun`) or ``budget`` (not run: the tool-call budget
    was used up).
    """

    id: str
    name: str
    arguments: str
    turn: int
    output: str
    parsed_arguments: Mapping[str, Any] | None = None
    result: Any = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    duration: float = 0.0
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "arguments": self.arguments,
            "turn": self.turn,
            "output": self.output,
            "error": self.error,
            "error_kind": self.error_kind,
            "duration": self.duration,
            "attempts": self.attempts,
        }


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One model call of a run and the tool calls it asked for."""

    index: int
    result: LLMResult
    tool_calls: tuple[ToolCallRecord, ...] = ()
    duration: float = 0.0
    tools_disabled: bool = False

    @property
    def usage(self) -> Usage:
        return self.result.usage

    @property
    def cost(self) -> float:
        return self.result.usage.total_cost

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "usage": self.usage.to_dict(),
            "cost": self.cost,
            "finish_reason": self.result.finish_reason,
            "cached": self.result.cached,
            "tool_calls": [c.id for c in self.tool_calls],
            "duration": self.duration,
            "tools_disabled": self.tools_disabled,
        }


@dataclass(frozen=True, slots=True)
class AgentResult:
    """The outcome of a run.

    ``transcript`` is the whole conversation (the input, each assistant turn, each tool
    output, the final answer) in the API's own format: pass it back, with a new user message
    appended, to continue. ``usage`` and ``cost`` are summed over every turn; each
    :class:`TurnRecord` has its own.
    """

    output: Any
    transcript: list[dict[str, Any]]
    tool_calls: tuple[ToolCallRecord, ...]
    turns: tuple[TurnRecord, ...]
    usage: Usage
    stop_reason: StopReason
    api: Api

    @property
    def cost(self) -> float:
        """USD spent over every turn."""
        return self.usage.total_cost

    @property
    def turn_count(self) -> int:
        """Model calls made (the final tools-disabled call included)."""
        return len(self.turns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "stop_reason": self.stop_reason,
            "api": self.api,
            "turns": [t.to_dict() for t in self.turns],
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "usage": self.usage.to_dict(),
            "cost": self.cost,
            "transcript": self.transcript,
        }


@dataclass(frozen=True, slots=True)
class AgentEvent(LLMEvent):
    """An event of a streamed run; the final ``done`` (and an ``error``) carry the run's
    :class:`AgentResult` in ``run`` (partial for ``error``)."""

    run: AgentResult | None = field(default=None, compare=False)


@dataclass
class _Run:
    api: Api
    conversation: list[dict[str, Any]]
    params: dict[str, Any]
    budget: RunBudget | None
    max_turns: int
    turns: list[TurnRecord] = field(default_factory=list)
    calls: list[ToolCallRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    output: Any = None
    stop_reason: StopReason = "answer"
    stopped: StopRun | None = None

    def result(self, stop_reason: StopReason | None = None) -> AgentResult:
        return AgentResult(
            output=self.output,
            transcript=list(self.conversation),
            tool_calls=tuple(self.calls),
            turns=tuple(self.turns),
            usage=self.usage,
            stop_reason=stop_reason or self.stop_reason,
            api=self.api,
        )
