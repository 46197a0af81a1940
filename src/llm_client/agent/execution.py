"""Running one turn's tool calls: concurrently, each validated, timed out, retried, and
turned into a :class:`ToolCallRecord` whose output goes back to the model."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from ..streaming import LLMEvent
from .errors import StopRun
from .records import ErrorKind, ToolCallRecord, _Run
from .tools import Tool


def _output_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


class _ToolCalls:
    """The runner's tool execution (a base class of :class:`AgentRunner`)."""

    tools: dict[str, Tool]
    max_parallel_tools: int | None
    tool_timeout: float | None
    _names: str

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
