"""Test helpers: a fake OpenAI server speaking the real wire format, and its pytest fixture.

``FakeOpenAI`` is a real aiohttp HTTP server; point the official SDK (or this library) at
``server.base_url``. The names below are loaded lazily so that importing this package (which
pytest does for every session through the ``fake_openai`` plugin) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

__all__ = [
    "DEFAULT_RATE_LIMIT_HEADERS",
    "AnswerRecord",
    "FakeOpenAI",
    "Fault",
    "FaultDraw",
    "FaultKind",
    "RecordedRequest",
    "count_tokens",
    "embed_text",
    "expected_text",
    "format_duration",
    "prompt_tokens",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from llm_client.testing import server

        value = getattr(server, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
