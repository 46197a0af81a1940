"""Agents: :class:`Tool` and :class:`AgentRunner`, a tool-calling loop on top of the client.

The loop is a client of the chain: every model turn is one ordinary ``client.invoke`` (or
``client.stream``) call, so the cache, limiter, retry, timeout and cost accounting apply to each
turn with no special case. Between turns the runner executes the requested tools (concurrently,
sync functions in a thread), appends the calls and their outputs to the transcript, and calls
the model again, until it answers without tool calls.

Failures of a tool call go back to the model as that call's output, never up the stack, and
every tool call in the transcript gets an output (OpenAI answers 400 "No tool output found for
function call ..." to a transcript with a call left unanswered). See ``docs/agents.md``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import time
import typing
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import pydantic

from .exceptions import ConfigurationError, LLMClientError
from .middleware.tokens import estimate_output_tokens
from .result import LLMResult
from .streaming import LLMEvent
from .tokens import count_tokens
from .usage import Usage, price

if TYPE_CHECKING:
    import pluggy

    from .client import OpenAIClient

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

Api: TypeAlias = Literal["chat", "responses"]
ErrorKind: TypeAlias = Literal[
    "invalid_arguments", "raised", "timeout", "unknown_tool", "cancelled", "stopped", "budget"
]
StopReason: TypeAlias = Literal["answer", "max_turns", "stopped", "budget", "error"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# --- exceptions ---------------------------------------------------------------------------------


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


# --- tools --------------------------------------------------------------------------------------


def _empty_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


_SECTION_END = frozenset(
    {"returns:", "return:", "raises:", "yields:", "examples:", "example:", "notes:", "note:"}
)
_GOOGLE_ARGS = frozenset({"args:", "arguments:", "parameters:", "params:"})
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_GOOGLE_PARAM = re.compile(r"^(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {parameter: description}) from a Google- or Sphinx-style docstring."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    indent = 0
    for line in lines:
        stripped = line.strip()
        lowered = stripped.lower()
        sphinx = _SPHINX_PARAM.match(stripped)
        if sphinx:
            section, current = "sphinx", sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            continue
        if stripped.startswith(":"):  # :returns:, :raises ...:
            section, current = "sphinx", None
            continue
        if lowered in _GOOGLE_ARGS:
            section, current, indent = "google", None, -1
            continue
        if lowered in _SECTION_END:
            section, current = "other", None
            continue
        if section is None:
            summary.append(line)
            continue
        if not stripped:
            continue
        if section == "google":
            depth = len(line) - len(line.lstrip())
            google = _GOOGLE_PARAM.match(stripped)
            if google and (indent < 0 or depth <= indent):
                indent = depth
                current = google.group(1)
                params[current] = google.group(2).strip()
                continue
        if current is not None and section in ("google", "sphinx"):
            params[current] = f"{params[current]} {stripped}".strip()
    paragraphs = re.split(r"\n\s*\n", "\n".join(summary).strip())
    description = "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    return description, params


def _strip_titles(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic's schema without the ``title`` of the object and of each property."""
    schema.pop("title", None)
    for prop in (schema.get("properties") or {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return schema


@dataclass(frozen=True, eq=False)  # compared and hashed by identity
class Tool:
    """A function the model may call.

    :param name: 1 to 64 letters, digits, ``_`` or ``-`` (OpenAI's rule).
    :param description: what the tool does, for the model.
    :param parameters: the JSON schema of the arguments (an ``object`` schema).
    :param func: the function, sync (run in a thread) or async; called with the arguments as
        keywords. Raise :class:`StopRun` in it to end the run.
    :param timeout: seconds a call may take (default: the runner's ``tool_timeout``).
    :param retries: extra attempts when the function raises or times out, before the failure
        goes back to the model (invalid arguments are never retried: the model must fix them).

    Arguments are validated before ``func`` runs: with :meth:`from_function` by a pydantic
    model built from the signature; otherwise they must be a JSON object holding the schema's
    ``required`` properties (a tool that needs more checks raises, and the model sees it).
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=_empty_schema)
    func: Callable[..., Any] | None = None
    timeout: float | None = None
    retries: int = 0
    #: The pydantic model that validates the arguments (set by :meth:`from_function`).
    arguments_model: type[pydantic.BaseModel] | None = field(
        default=None, repr=False, compare=False
    )
    _positional: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ConfigurationError(
                f"Tool name must be 1 to 64 letters, digits, '_' or '-', got {self.name!r:.60}"
            )
        if not isinstance(self.description, str):
            raise ConfigurationError(
                f"Tool {self.name!r}: description must be a string,"
                f" got {type(self.description).__name__}"
            )
        if not isinstance(self.parameters, Mapping) or self.parameters.get("type") != "object":
            raise ConfigurationError(
                f"Tool {self.name!r}: parameters must be a JSON schema of type 'object'"
                f" (a dict like {{'type': 'object', 'properties': {{...}}}}),"
                f" got {self.parameters!r:.80}"
            )
        if self.func is None or not callable(self.func):
            raise ConfigurationError(
                f"Tool {self.name!r}: func must be a function (sync or async),"
                f" got {self.func!r:.60}"
            )
        if self.timeout is not None and not (
            isinstance(self.timeout, (int, float))
            and not isinstance(self.timeout, bool)
            and 0 < self.timeout < float("inf")
        ):
            raise ConfigurationError(
                f"Tool {self.name!r}: timeout must be a positive number of seconds or None,"
                f" got {self.timeout!r}"
            )
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise ConfigurationError(
                f"Tool {self.name!r}: retries must be an integer >= 0, got {self.retries!r}"
            )

    @classmethod
    def from_function(
        cls,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        retries: int = 0,
    ) -> Tool:
        """A tool from a (sync or async) function's type hints and docstring.

        The description is the docstring's text before its sections; each parameter's
        description comes from its ``Args:`` (Google) or ``:param x:`` (Sphinx) entry. The
        schema and the validation of arguments come from a pydantic model of the signature
        (unknown arguments are refused); parameters without a hint accept any JSON value.
        """
        if not callable(func):
            raise ConfigurationError(f"Tool.from_function needs a function, got {func!r:.60}")
        tool_name: str = name or str(getattr(func, "__name__", ""))
        try:
            signature = inspect.signature(func)
            hints = typing.get_type_hints(func, include_extras=True)
        except (TypeError, ValueError, NameError) as exc:
            raise ConfigurationError(
                f"Tool.from_function({tool_name!r}): cannot read the signature: {exc}"
            ) from exc
        summary, documented = _parse_docstring(func.__doc__)
        fields: dict[str, Any] = {}
        positional: list[str] = []
        for param in signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigurationError(
                    f"Tool.from_function({tool_name!r}): *{param.name} / **{param.name} cannot"
                    " be described by a JSON schema; name every parameter"
                )
            if param.kind is param.POSITIONAL_ONLY:
                positional.append(param.name)
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (
                hints.get(param.name, Any),
                pydantic.Field(default, description=documented.get(param.name)),
            )
        try:
            model = pydantic.create_model(
                f"{tool_name or 'tool'}_arguments",
                __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True),
                **fields,
            )
            schema = _strip_titles(model.model_json_schema())
        except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError) as exc:
            raise ConfigurationError(
                f"Tool.from_function({tool_name!r}): a parameter type has no JSON schema: {exc}"
            ) from exc
        schema.setdefault("properties", {})
        return cls(
            name=tool_name,
            description=summary if description is None else description,
            parameters=schema,
            func=func,
            timeout=timeout,
            retries=retries,
            arguments_model=model,
            _positional=tuple(positional),
        )

    def spec(self, api: Api = "chat") -> dict[str, Any]:
        """The tool's definition as the API takes it (Chat nests it under ``function``)."""
        function = {
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }
        if api == "responses":
            return {"type": "function", **function}
        return {"type": "function", "function": function}

    def validate(self, arguments: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """(arguments to call with, validation errors); errors read ``"<field>: <problem>"``."""
        model = self.arguments_model
        if model is not None:
            try:
                parsed = model.model_validate(arguments)
            except pydantic.ValidationError as exc:
                return {}, [
                    f"{'.'.join(str(p) for p in err['loc']) or '(arguments)'}: {err['msg']}"
                    for err in exc.errors()
                ]
            return {name: getattr(parsed, name) for name in type(parsed).model_fields}, []
        required = self.parameters.get("required") or ()
        missing = [f"{key}: Field required" for key in required if key not in arguments]
        return dict(arguments), missing

    async def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Call the function with validated ``arguments`` (a sync function runs in a thread)."""
        func = self.func
        assert func is not None
        args = [arguments[n] for n in self._positional if n in arguments]
        kwargs = {k: v for k, v in arguments.items() if k not in self._positional}
        if inspect.iscoroutinefunction(func):
            value = await func(*args, **kwargs)
        else:
            value = await asyncio.to_thread(func, *args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
        return value


# --- budgets and records ------------------------------------------------------------------------


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


# --- the runner ---------------------------------------------------------------------------------


def _output_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


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


class AgentRunner:
    """Runs the tool loop: call the model, run the tools it asks for, repeat until it answers.

    :param client: an :class:`~llm_client.OpenAIClient`; every turn is one call through its
        pipeline, on its API (``"chat"`` or ``"responses"``) unless ``api`` says otherwise.
    :param tools: :class:`Tool` objects, plain functions (made with
        :meth:`Tool.from_function`) or names of tools that plugins registered through the
        ``register_tools`` hook.
    :param max_turns: model calls that may use tools (default 10). If the model still calls
        tools after them, ``on_max_turns="final_answer"`` (default) makes one more call with
        ``tool_choice="none"`` so the run ends with an answer; ``"raise"`` raises
        :class:`MaxTurnsExceededError` instead.
    :param budget: a :class:`RunBudget` for every run (``run(budget=...)`` overrides it).
    :param max_parallel_tools: how many tool calls of one turn run at once (default: all).
    :param tool_timeout: seconds a tool call may take, for tools without their own ``timeout``.
    :param plugin_manager: where tool names are looked up (default: the client's manager, or
        the process-wide one).
    :param params: generation parameters sent on every turn (``temperature=...``,
        ``instructions=...``); ``run(**params)`` adds to them.
    """

    def __init__(
        self,
        client: OpenAIClient,
        tools: Iterable[Tool | str | Callable[..., Any]] = (),
        *,
        max_turns: int = 10,
        on_max_turns: Literal["final_answer", "raise"] = "final_answer",
        budget: RunBudget | None = None,
        max_parallel_tools: int | None = None,
        tool_timeout: float | None = None,
        api: Api | None = None,
        plugin_manager: pluggy.PluginManager | None = None,
        **params: Any,
    ) -> None:
        _check_max_turns(max_turns)
        if on_max_turns not in ("final_answer", "raise"):
            raise ConfigurationError(
                f"on_max_turns must be 'final_answer' or 'raise', got {on_max_turns!r:.60}"
            )
        if budget is not None and not isinstance(budget, RunBudget):
            raise ConfigurationError(f"budget must be a RunBudget, got {type(budget).__name__}")
        if max_parallel_tools is not None and (
            not isinstance(max_parallel_tools, int)
            or isinstance(max_parallel_tools, bool)
            or max_parallel_tools < 1
        ):
            raise ConfigurationError(
                f"max_parallel_tools must be an integer >= 1 or None, got {max_parallel_tools!r}"
            )
        if tool_timeout is not None and not (
            isinstance(tool_timeout, (int, float))
            and not isinstance(tool_timeout, bool)
            and 0 < tool_timeout < float("inf")
        ):
            raise ConfigurationError(
                f"tool_timeout must be a positive number of seconds or None, got {tool_timeout!r}"
            )
        if api is not None and api not in ("chat", "responses"):
            raise ConfigurationError(f"api must be 'chat', 'responses' or None, got {api!r:.60}")
        for reserved in ("tools", "stream", "messages", "input"):
            if reserved in params:
                raise ConfigurationError(
                    f"{reserved} is not a per-runner parameter: pass tools as the second"
                    " argument and the conversation to run()"
                )
        self.client = client
        self.api: Api = api or client.api
        self.max_turns = max_turns
        self.on_max_turns = on_max_turns
        self.budget = budget
        self.max_parallel_tools = max_parallel_tools
        self.tool_timeout = tool_timeout
        self.params = params
        pm = plugin_manager or getattr(client, "plugin_manager", None)
        self.tools: dict[str, Tool] = {}
        for item in tools:
            tool = _resolve_tool(item, pm)
            if tool.name in self.tools:
                raise ConfigurationError(f"two tools are named {tool.name!r}; names must differ")
            self.tools[tool.name] = tool
        self._specs = [t.spec(self.api) for t in self.tools.values()]
        self._names = ", ".join(self.tools) or "(none)"

    # --- public API ---------------------------------------------------------------------------

    async def run(
        self,
        messages: Sequence[Mapping[str, Any]] | None = None,
        *,
        input: str | Sequence[Mapping[str, Any]] | None = None,
        budget: RunBudget | None = None,
        max_turns: int | None = None,
        **params: Any,
    ) -> AgentResult:
        """Run the loop on ``messages`` (or ``input``: a string or a list of items/messages,
        e.g. a previous result's ``transcript`` plus a new user message).

        :raises BudgetExceededError: a budget would be exceeded (``.result`` is the partial run).
        :raises AgentError: a model call failed after the client's retries.
        :raises MaxTurnsExceededError: with ``on_max_turns="raise"``.
        """
        run = self._start(messages, input, budget, max_turns, params)
        final: AgentResult | None = None
        async for event in self._loop(run, stream=False):
            if isinstance(event, AgentEvent) and event.type == "done":
                final = event.run
        assert final is not None
        return final

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]] | None = None,
        *,
        input: str | Sequence[Mapping[str, Any]] | None = None,
        budget: RunBudget | None = None,
        max_turns: int | None = None,
        **params: Any,
    ) -> AsyncIterator[LLMEvent]:
        """Run the loop, streaming each model call: the client's ``meta``, ``text_delta``,
        ``tool_call_delta`` and ``usage`` events, then per turn ``tool_call_start`` and
        ``tool_result`` for each tool call and one ``turn`` event; the last event is ``done``,
        an :class:`AgentEvent` whose ``run`` is the :class:`AgentResult`. A failed model call
        is forwarded as its ``error`` event (an :class:`AgentEvent` carrying the partial run)
        and ends the stream; budgets and ``on_max_turns="raise"`` raise as in :meth:`run`.
        """
        run = self._start(messages, input, budget, max_turns, params)  # bad input raises now
        return self._loop(run, stream=True)

    # --- the loop -----------------------------------------------------------------------------

    def _start(
        self,
        messages: Any,
        input: Any,
        budget: RunBudget | None,
        max_turns: int | None,
        params: dict[str, Any],
    ) -> _Run:
        if (messages is None) == (input is None):
            raise ConfigurationError("pass the conversation as messages=[...] or input=...")
        source = messages if messages is not None else input
        if isinstance(source, str):
            if messages is not None:
                raise ConfigurationError(
                    "messages must be a list of messages; pass a plain string as input='...'"
                )
            conversation: list[dict[str, Any]] = [{"role": "user", "content": source}]
        elif isinstance(source, Sequence) and all(isinstance(m, Mapping) for m in source):
            conversation = [dict(m) for m in source]
        else:
            raise ConfigurationError(
                "the conversation must be a list of message dicts (or input='text'),"
                f" got {type(source).__name__}"
            )
        if not conversation:
            raise ConfigurationError("the conversation is empty: pass at least one message")
        if budget is not None and not isinstance(budget, RunBudget):
            raise ConfigurationError(f"budget must be a RunBudget, got {type(budget).__name__}")
        if max_turns is not None:
            _check_max_turns(max_turns)
        for reserved in ("tools", "stream", "api"):
            if reserved in params:
                raise ConfigurationError(
                    f"{reserved} cannot be passed to run(): it is set on the AgentRunner"
                )
        return _Run(
            api=self.api,
            conversation=conversation,
            params={**self.params, **params},
            budget=budget or self.budget,
            max_turns=self.max_turns if max_turns is None else max_turns,
        )

    async def _loop(self, run: _Run, *, stream: bool) -> AsyncIterator[LLMEvent]:
        client = self.client
        if run.api != client.api:
            run.params["api"] = run.api
        for index in range(run.max_turns + 1):
            last = index == run.max_turns
            if last and self.on_max_turns == "raise":
                raise MaxTurnsExceededError(
                    f"the model was still calling tools after max_turns={run.max_turns} turns",
                    result=run.result("max_turns"),
                )
            call_params = dict(run.params)
            if self._specs:
                call_params["tools"] = self._specs
                if last:
                    call_params["tool_choice"] = "none"
            self._check_model_budget(run, call_params)
            started = time.perf_counter()
            if stream:
                result: LLMResult | None = None
                async for event in client.stream(run.conversation, **call_params):
                    if event.type == "done":
                        result = event.result
                    elif event.type == "error":
                        failed = event.result or LLMResult(
                            params={}, status=int(event.data.get("status", 500))
                        )
                        run.usage = run.usage + failed.usage
                        partial = run.result("error")
                        yield AgentEvent("error", event.data, failed, partial)
                        return
                    else:
                        yield event
                assert result is not None
            else:
                result = await client.invoke(run.conversation, **call_params)
                if not result.ok:
                    run.usage = run.usage + result.usage
                    raise AgentError(
                        f"turn {index}: the model call failed: {result.error}",
                        result=run.result("error"),
                        status=result.status,
                    )
            run.usage = run.usage + result.usage
            calls = result.tool_calls
            if last or not calls:
                # The answer (on the tools-disabled call, stray tool calls are not taken up).
                run.output = result.output
                run.stop_reason = "max_turns" if last else "answer"
                run.conversation.append({"role": "assistant", "content": result.output or ""})
                turn = TurnRecord(index, result, (), time.perf_counter() - started, last)
                run.turns.append(turn)
                if stream:
                    yield LLMEvent("turn", turn.to_dict())
                break
            self._append_calls(run, result)
            records: list[ToolCallRecord] = []
            async for event in self._run_tools(run, index, calls, records, stream):
                yield event
            run.calls.extend(records)
            self._append_outputs(run, records)
            turn = TurnRecord(index, result, tuple(records), time.perf_counter() - started)
            run.turns.append(turn)
            if stream:
                yield LLMEvent("turn", turn.to_dict())
            over_budget = [r for r in records if r.error_kind == "budget"]
            if over_budget:
                allowed = run.budget.max_tool_calls if run.budget else 0
                used = sum(1 for c in run.calls if c.error_kind != "budget")
                raise BudgetExceededError(
                    f"the run's max_tool_calls budget ({allowed}) would be exceeded:"
                    f" {used} tool calls made, the model asked for {len(records)} more",
                    result=run.result("budget"),
                    limit="max_tool_calls",
                    allowed=allowed or 0,
                    used=used,
                    needed=len(records),
                )
            if run.stopped is not None:
                run.output = run.stopped.output
                run.stop_reason = "stopped"
                break
        final = run.result()
        yield AgentEvent(
            "done",
            {
                "output": final.output,
                "stop_reason": final.stop_reason,
                "turns": final.turn_count,
                "usage": final.usage.to_dict(),
                "cost": final.cost,
            },
            result,
            final,
        )

    # --- budgets ------------------------------------------------------------------------------

    def _check_model_budget(self, run: _Run, call_params: Mapping[str, Any]) -> None:
        budget = run.budget
        if budget is None:
            return
        if budget.max_requests is not None and len(run.turns) + 1 > budget.max_requests:
            raise BudgetExceededError(
                f"the run's max_requests budget ({budget.max_requests}) would be exceeded by"
                f" turn {len(run.turns)}",
                result=run.result("budget"),
                limit="max_requests",
                allowed=budget.max_requests,
                used=len(run.turns),
                needed=1,
            )
        if budget.max_total_tokens is None and budget.max_cost is None:
            return
        profile = self.client.profile
        conversation: list[Any] = run.conversation
        instructions = call_params.get("instructions")
        if isinstance(instructions, str) and instructions:
            conversation = [{"role": "developer", "content": instructions}, *conversation]
        n_in = count_tokens(conversation, model=profile, tools=call_params.get("tools"))
        n_out = estimate_output_tokens(call_params, profile.max_output)
        if budget.max_total_tokens is not None:
            used = run.usage.total_tokens
            if used + n_in + n_out > budget.max_total_tokens:
                raise BudgetExceededError(
                    f"the run's max_total_tokens budget ({budget.max_total_tokens}) would be"
                    f" exceeded: {used} tokens used, the next model call may take"
                    f" {n_in + n_out} ({n_in} input + up to {n_out} output, estimated)",
                    result=run.result("budget"),
                    limit="max_total_tokens",
                    allowed=budget.max_total_tokens,
                    used=used,
                    needed=n_in + n_out,
                )
        if budget.max_cost is not None:
            estimate = price(
                Usage(input_tokens=n_in, output_tokens=n_out, total_tokens=n_in + n_out), profile
            ).total_cost
            spent = run.usage.total_cost
            if spent + estimate > budget.max_cost:
                raise BudgetExceededError(
                    f"the run's max_cost budget (${budget.max_cost:g}) would be exceeded:"
                    f" ${spent:.6f} spent, the next model call may cost ${estimate:.6f}"
                    " (estimated)",
                    result=run.result("budget"),
                    limit="max_cost",
                    allowed=budget.max_cost,
                    used=spent,
                    needed=estimate,
                )

    # --- transcript ---------------------------------------------------------------------------

    def _append_calls(self, run: _Run, result: LLMResult) -> None:
        calls = result.tool_calls
        if run.api == "chat":
            run.conversation.append(
                {
                    "role": "assistant",
                    "content": result.output or None,
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"] or ""},
                        }
                        for c in calls
                    ],
                }
            )
            return
        if result.output:
            run.conversation.append({"role": "assistant", "content": result.output})
        run.conversation.extend(
            {
                "type": "function_call",
                "call_id": c["id"],
                "name": c["name"],
                "arguments": c["arguments"] or "",
            }
            for c in calls
        )

    def _append_outputs(self, run: _Run, records: Sequence[ToolCallRecord]) -> None:
        if run.api == "chat":
            run.conversation.extend(
                {"role": "tool", "tool_call_id": r.id, "content": r.output} for r in records
            )
        else:
            run.conversation.extend(
                {"type": "function_call_output", "call_id": r.id, "output": r.output}
                for r in records
            )

    # --- tools --------------------------------------------------------------------------------

    async def _run_tools(
        self,
        run: _Run,
        turn: int,
        calls: Sequence[Mapping[str, Any]],
        records: list[ToolCallRecord],
        stream: bool,
    ) -> AsyncIterator[LLMEvent]:
        """Run one turn's calls concurrently; fill ``records`` in the model's order."""
        budget = run.budget
        if budget is not None and budget.max_tool_calls is not None:
            made = sum(1 for c in run.calls if c.error_kind != "budget")
            if made + len(calls) > budget.max_tool_calls:
                note = (
                    f"error: not run: the run's tool-call budget ({budget.max_tool_calls}) is"
                    " used up"
                )
                records.extend(
                    ToolCallRecord(
                        id=str(c.get("id")),
                        name=str(c.get("name")),
                        arguments=str(c.get("arguments") or ""),
                        turn=turn,
                        output=note,
                        error=note,
                        error_kind="budget",
                    )
                    for c in calls
                )
                if stream:
                    for record in records:
                        yield LLMEvent("tool_result", {"turn": turn, **record.to_dict()})
                return
        if stream:
            for c in calls:
                yield LLMEvent(
                    "tool_call_start",
                    {
                        "turn": turn,
                        "id": c.get("id"),
                        "name": c.get("name"),
                        "arguments": c.get("arguments"),
                    },
                )
        limit = self.max_parallel_tools
        gate = asyncio.Semaphore(limit) if limit is not None and limit < len(calls) else None
        aborting: list[bool] = [False]
        tasks = [
            asyncio.ensure_future(self._call_tool(run, turn, c, gate, aborting)) for c in calls
        ]
        try:
            if stream:
                for done in asyncio.as_completed(tasks):
                    record = await done
                    yield LLMEvent("tool_result", {"turn": turn, **record.to_dict()})
            else:
                await asyncio.gather(*tasks)
        except BaseException:
            aborting[0] = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        records.extend(task.result() for task in tasks)

    async def _call_tool(
        self,
        run: _Run,
        turn: int,
        call: Mapping[str, Any],
        gate: asyncio.Semaphore | None,
        aborting: list[bool],
    ) -> ToolCallRecord:
        if gate is None:
            return await self._execute(run, turn, call, aborting)
        async with gate:
            return await self._execute(run, turn, call, aborting)

    async def _execute(
        self, run: _Run, turn: int, call: Mapping[str, Any], aborting: list[bool]
    ) -> ToolCallRecord:
        started = time.perf_counter()
        call_id = str(call.get("id"))
        name = str(call.get("name"))
        raw = call.get("arguments") or ""
        raw = raw if isinstance(raw, str) else json.dumps(raw)

        def failed(
            kind: ErrorKind,
            message: str,
            parsed: Mapping[str, Any] | None = None,
            attempts: int = 0,
        ) -> ToolCallRecord:
            return ToolCallRecord(
                id=call_id,
                name=name,
                arguments=raw,
                turn=turn,
                output=f"error: {message}",
                parsed_arguments=parsed,
                error=message,
                error_kind=kind,
                duration=time.perf_counter() - started,
                attempts=attempts,
            )

        tool = self.tools.get(name)
        if tool is None:
            return failed(
                "unknown_tool", f"there is no tool named {name!r}; the tools are: {self._names}"
            )
        try:
            arguments = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            return failed(
                "invalid_arguments",
                f"the arguments of {name} are not valid JSON ({exc}); send them again as one"
                " JSON object that matches the tool's parameters",
            )
        if not isinstance(arguments, dict):
            return failed(
                "invalid_arguments",
                f"the arguments of {name} must be a JSON object, got {type(arguments).__name__}",
            )
        values, errors = tool.validate(arguments)
        if errors:
            listed = "\n".join(f"- {e}" for e in errors)
            return failed(
                "invalid_arguments",
                f"the arguments of {name} do not match its parameters:\n{listed}",
                arguments,
            )
        timeout = tool.timeout if tool.timeout is not None else self.tool_timeout
        attempts = 0
        while True:
            attempts += 1
            try:
                if timeout is None:
                    value = await tool.invoke(values)
                else:
                    value = await asyncio.wait_for(tool.invoke(values), timeout)
            except StopRun as stop:
                run.stopped = run.stopped or stop
                return ToolCallRecord(
                    id=call_id,
                    name=name,
                    arguments=raw,
                    turn=turn,
                    output=f"{name} ended the run: {stop.message}",
                    parsed_arguments=arguments,
                    result=stop.output,
                    error=stop.message,
                    error_kind="stopped",
                    duration=time.perf_counter() - started,
                    attempts=attempts,
                )
            except asyncio.TimeoutError as exc:
                if timeout is None:  # the tool's own TimeoutError: it raised
                    if attempts <= tool.retries:
                        continue
                    return failed(
                        "raised", f"{name} raised {type(exc).__name__}: {exc}", arguments, attempts
                    )
                if attempts <= tool.retries:
                    continue
                return failed(
                    "timeout",
                    f"{name} did not finish within {timeout:g} s"
                    + (f" ({attempts} attempts)" if attempts > 1 else ""),
                    arguments,
                    attempts,
                )
            except asyncio.CancelledError:
                if aborting[0]:
                    raise  # the run itself is being cancelled
                return failed("cancelled", f"the call to {name} was cancelled", arguments, attempts)
            except Exception as exc:
                if attempts <= tool.retries:
                    continue
                return failed(
                    "raised",
                    f"{name} raised {type(exc).__name__}: {exc}"
                    + (f" ({attempts} attempts)" if attempts > 1 else ""),
                    arguments,
                    attempts,
                )
            return ToolCallRecord(
                id=call_id,
                name=name,
                arguments=raw,
                turn=turn,
                output=_output_text(value),
                parsed_arguments=arguments,
                result=value,
                duration=time.perf_counter() - started,
                attempts=attempts,
            )


def _check_max_turns(max_turns: Any) -> None:
    if not isinstance(max_turns, int) or isinstance(max_turns, bool) or max_turns < 0:
        raise ConfigurationError(f"max_turns must be an integer >= 0, got {max_turns!r:.60}")


def _resolve_tool(item: Any, pm: pluggy.PluginManager | None) -> Tool:
    if isinstance(item, Tool):
        return item
    if isinstance(item, str):
        from .plugins import registered_tool

        found = registered_tool(item, plugin_manager=pm)
        return found if isinstance(found, Tool) else Tool.from_function(found)
    if callable(item):
        return Tool.from_function(item)
    raise ConfigurationError(
        "tools must be Tool objects, functions or names of registered tools,"
        f" got {type(item).__name__}"
    )
