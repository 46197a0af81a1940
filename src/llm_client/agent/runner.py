"""The runner: :class:`AgentRunner` calls the model, runs the tools it asks for (see
``execution``) and repeats until it answers, as one awaited run or one streamed run."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..exceptions import ConfigurationError
from ..middleware.tokens import estimate_output_tokens
from ..result import LLMResult
from ..streaming import LLMEvent
from ..tokens import count_tokens
from ..usage import Usage, price
from .errors import AgentError, BudgetExceededError, MaxTurnsExceededError
from .execution import _ToolCalls
from .records import AgentEvent, AgentResult, Api, RunBudget, ToolCallRecord, TurnRecord, _Run
from .tools import Tool, resolve_tool
from .transcript import append_calls, append_outputs

if TYPE_CHECKING:
    import pluggy

    from ..client import OpenAIClient


class AgentRunner(_ToolCalls):
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
            tool = resolve_tool(item, pm)
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
            append_calls(run, result)
            records: list[ToolCallRecord] = []
            async for event in self._run_tools(run, index, calls, records, stream):
                yield event
            run.calls.extend(records)
            append_outputs(run, records)
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


def _check_max_turns(max_turns: Any) -> None:
    if not isinstance(max_turns, int) or isinstance(max_turns, bool) or max_turns < 0:
        raise ConfigurationError(f"max_turns must be an integer >= 0, got {max_turns!r:.60}")
