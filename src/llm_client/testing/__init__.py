"""Test helpers: a fake OpenAI server speaking the real wire format, and its pytest fixture.

``FakeOpenAI`` is a real aiohttp HTTP server; point the official SDK (or this library) at
``server.base_url``. The names below are loaded lazily so that importing this package (which
pytest does for every session through the ``fake_openai`` plugin) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm_client.testing.quotas import Quota
    from llm_client.testing.server import (
        DEFAULT_RATE_LIMIT_HEADERS,
        AnswerRecord,
        FakeOpenAI,
        Fault,
        FaultDraw,
        FaultKind,
        RecordedRequest,
        count_tokens,
        embed_text,
        expected_text,
        format_duration,
        prompt_tokens,
    )
    from llm_client.testing.tools_script import ScriptedCall, ToolScript, tool_script

__all__ = [
    "DEFAULT_RATE_LIMIT_HEADERS",
    "AnswerRecord",
    "FakeOpenAI",
    "Fault",
    "FaultDraw",
    "FaultKind",
    "RecordedRequest",
    "ScriptedCall",
    "ToolScript",
    "count_tokens",
    "embed_text",
    "expected_text",
    "format_duration",
    "Quota",
    "prompt_tokens",
    "tool_script",
]

_SCRIPT_NAMES = frozenset({"ScriptedCall", "ToolScript", "tool_script"})


def __getattr__(name: str) -> Any:
    if name in __all__:
        from llm_client.testing import server, tools_script

        value = getattr(tools_script if name in _SCRIPT_NAMES else server, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
