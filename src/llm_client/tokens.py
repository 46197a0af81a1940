"""Token counting with tiktoken.

Chat messages are counted the way OpenAI's cookbook ("How to count tokens with tiktoken")
does for current models: 3 tokens of framing per message, 1 more when a message has a
``name``, and 3 to prime the assistant's reply. Tool definitions are counted with the
cookbook's per-function and per-property overheads.

Encoders are loaded once per encoding and cached. If an encoding cannot be loaded (no network
and no ``TIKTOKEN_CACHE_DIR``), counting falls back to an estimate of one token per 4 UTF-8
bytes (OpenAI's rule of thumb for English), with one warning; a call never fails because
of it.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .models import ModelProfile

__all__ = ["count_message_tokens", "count_text_tokens", "count_tokens", "get_encoder"]

log = logging.getLogger("llm_client.tokens")

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMER = 3
# Tool-definition overheads from the cookbook (o200k_base / cl100k_base models).
_FUNC_INIT, _PROP_INIT, _PROP_KEY, _ENUM_INIT, _ENUM_ITEM, _FUNC_END = 7, 3, 3, -3, 3, 12


class Encoder(Protocol):
    def encode(self, text: str, *, disallowed_special: Any = ...) -> list[int]: ...


class _EstimateEncoder:
    """Stand-in when tiktoken's data is unavailable: ceil(bytes / 4) pseudo-tokens."""

    def encode(self, text: str, *, disallowed_special: Any = ()) -> list[int]:
        n = len(text.encode("utf-8"))
        return [0] * ((n + 3) // 4)


_warned = False
_lock = threading.Lock()


@functools.lru_cache(maxsize=8)
def get_encoder(encoding: str = "o200k_base") -> Encoder:
    """The cached tiktoken encoder for ``encoding``, or the estimate if it cannot be loaded."""
    global _warned
    try:
        import tiktoken

        return tiktoken.get_encoding(encoding)
    except Exception as exc:  # offline, missing cache, unknown name
        with _lock:
            if not _warned:
                _warned = True
                log.warning(
                    "tiktoken encoding %r unavailable (%s); token counts are estimated as"
                    " UTF-8 bytes / 4. Set TIKTOKEN_CACHE_DIR to a folder holding the"
                    " encoding files to count exactly.",
                    encoding,
                    exc,
                )
        return _EstimateEncoder()


def _encoding_for(model: ModelProfile | str | None) -> str:
    if model is None:
        return "o200k_base"
    if isinstance(model, str):
        try:
            import tiktoken

            return tiktoken.encoding_name_for_model(model)
        except Exception:
            return "o200k_base"
    return model.encoding


def count_text_tokens(text: str, encoding: str = "o200k_base") -> int:
    return len(get_encoder(encoding).encode(text, disallowed_special=()))


def _content_text(content: Any) -> str:
    """Text of a message's content: a string, or a list of parts (text parts counted)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return str(content)


def count_message_tokens(
    messages: Sequence[Mapping[str, Any]],
    encoding: str = "o200k_base",
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """Tokens a chat request's messages (and tools) take, with the chat-format overhead."""
    enc = get_encoder(encoding)
    total = REPLY_PRIMER
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += len(enc.encode(_content_text(value), disallowed_special=()))
            elif key == "tool_calls" and value:
                total += len(enc.encode(json.dumps(value, default=str), disallowed_special=()))
            elif isinstance(value, str):
                total += len(enc.encode(value, disallowed_special=()))
                if key == "name":
                    total += TOKENS_PER_NAME
    if tools:
        total += count_tool_tokens(tools, encoding)
    return total


def count_tool_tokens(tools: Sequence[Mapping[str, Any]], encoding: str = "o200k_base") -> int:
    """Tokens that tool definitions add to a request (cookbook method)."""
    enc = get_encoder(encoding)

    def n(text: str) -> int:
        return len(enc.encode(text, disallowed_special=()))

    total = 0
    for tool in tools:
        fn = tool.get("function", tool)  # Chat nests under "function"; Responses is flat
        if not isinstance(fn, Mapping):
            continue
        total += _FUNC_INIT
        desc = str(fn.get("description", "")).rstrip(".")
        total += n(f"{fn.get('name', '')}:{desc}")
        props = (fn.get("parameters") or {}).get("properties") or {}
        if props:
            total += _PROP_INIT
            for key, spec in props.items():
                total += _PROP_KEY
                spec = spec if isinstance(spec, Mapping) else {}
                if "enum" in spec:
                    total += _ENUM_INIT
                    for item in spec["enum"]:
                        total += _ENUM_ITEM + n(str(item))
                pdesc = str(spec.get("description", "")).rstrip(".")
                total += n(f"{key}:{spec.get('type', '')}:{pdesc}")
    if total:
        total += _FUNC_END
    return total


def count_tokens(
    context: Any,
    *,
    model: ModelProfile | str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """Count tokens of a string, a message list, or embedding input.

    :param context: a string; a list of chat messages (dicts with ``role``/``content``); a list
        of strings (embedding input, summed); or a list of token-id lists.
    :param model: a profile or model name; picks the tiktoken encoding (``o200k_base`` if
        unknown).
    :param tools: tool definitions sent with the messages, counted too.
    """
    encoding = _encoding_for(model)
    if context is None:
        return 0
    if isinstance(context, str):
        return count_text_tokens(context, encoding)
    if isinstance(context, Mapping):
        return count_message_tokens([context], encoding, tools=tools)
    if isinstance(context, Sequence):
        items = list(context)
        if not items:
            return 0
        if all(isinstance(m, Mapping) for m in items):
            return count_message_tokens(items, encoding, tools=tools)
        if all(isinstance(s, str) for s in items):
            return sum(count_text_tokens(s, encoding) for s in items)
        if all(isinstance(t, int) for t in items):
            return len(items)
        if all(isinstance(t, Sequence) and not isinstance(t, str) for t in items):
            return sum(len(t) for t in items)
    raise TypeError(
        "count_tokens takes a string, a list of chat messages, a list of strings or token"
        f" ids; got {type(context).__name__}"
    )
