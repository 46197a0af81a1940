"""llm-client plugin: the ``pusher`` sink, which publishes a streamed call to Pusher Channels.

Importing this module (as plugin discovery does) is cheap; :class:`PusherSink` and aiohttp
load when a sink is built::

    async with client.sink("pusher", channel="chat-42") as sink:
        result = await client.stream_to_sink(sink, messages)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llm_client.config import accepts
from llm_client.hookspecs import hookimpl

if TYPE_CHECKING:
    from .sink import PusherError, PusherSink

__all__ = ["PusherError", "PusherSink", "create_sink", "register_sinks"]


@accepts(
    "channel", "app_id", "key", "secret", "cluster", "auth_version", "base_url",
    "event_prefix", "flush_interval", "max_event_bytes", "attempts", "backoff",
    "request_timeout", "session",
)  # fmt: skip
def create_sink(**options: Any) -> PusherSink:
    """Build a :class:`PusherSink` (``channel=...`` and the options it documents)."""
    from .sink import PusherSink

    return PusherSink(**options)


@hookimpl
def register_sinks(register: Callable[[str, Callable[..., Any]], None]) -> None:
    register("pusher", create_sink)


def __getattr__(name: str) -> Any:
    if name in ("PusherSink", "PusherError"):
        from . import sink

        return getattr(sink, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
