"""Appending a turn's tool calls and their outputs to the conversation, in the API's format."""

from __future__ import annotations

from collections.abc import Sequence

from ..result import LLMResult
from .records import ToolCallRecord, _Run


def append_calls(run: _Run, result: LLMResult) -> None:
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


def append_outputs(run: _Run, records: Sequence[ToolCallRecord]) -> None:
    if run.api == "chat":
        run.conversation.extend(
            {"role": "tool", "tool_call_id": r.id, "content": r.output} for r in records
        )
    else:
        run.conversation.extend(
            {"type": "function_call_output", "call_id": r.id, "output": r.output} for r in records
        )
