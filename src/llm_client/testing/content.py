"""What the fake model says: its tokenizer, its answer text, and how answers are cut into deltas.

Answers are deterministic functions of the request: :func:`expected_text` is the text answer,
:func:`count_tokens` the fake tokenizer and :func:`prompt_tokens` the prompt tokens reported in
usage. Chat messages and Responses input items are first reduced to (role, text) pairs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["count_tokens", "expected_text", "prompt_tokens"]

_SNIPPET_CHARS = 80
_WORDS_PER_CHUNK = 3
_ARGUMENT_PIECE_CHARS = 12
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
_PIECE_SPLIT_RE = re.compile(r"(?<=\s)(?=\S)")
_JSON_SEPARATORS = (",", ":")


def count_tokens(text: str) -> int:
    """The fake tokenizer: one token per run of word characters and per punctuation mark."""
    return len(_TOKEN_RE.findall(text))


def _cut_tokens(text: str, limit: int) -> str:
    """The prefix of ``text`` holding its first ``limit`` fake tokens."""
    if limit <= 0:
        return ""
    for i, match in enumerate(_TOKEN_RE.finditer(text), start=1):
        if i == limit:
            return text[: match.end()]
    return text


def _content_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the text parts of a part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "\n".join(texts)
    return ""


@dataclass(frozen=True, slots=True)
class _Msg:
    role: str
    text: str


def _normalize(conversation: str | Sequence[Any], instructions: str | None = None) -> list[_Msg]:
    """Chat messages or Responses input items as (role, text) pairs.

    Chat ``tool`` messages and Responses ``function_call_output`` items become role ``tool``;
    assistant tool calls / ``function_call`` items contribute their names and arguments.
    """
    msgs: list[_Msg] = []
    if instructions:
        msgs.append(_Msg("system", instructions))
    if isinstance(conversation, str):
        msgs.append(_Msg("user", conversation))
        return msgs
    for item in conversation:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "function_call_output":
            msgs.append(_Msg("tool", _content_text(item.get("output"))))
        elif kind == "function_call":
            msgs.append(_Msg("assistant", f"{item.get('name', '')} {item.get('arguments', '')}"))
        elif "role" in item:
            text = _content_text(item.get("content"))
            for call in item.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    text += f" {function.get('name', '')} {function.get('arguments', '')}"
            msgs.append(_Msg(str(item["role"]), text))
    return msgs


def _snippet(text: str) -> str:
    return " ".join(text.split())[:_SNIPPET_CHARS].rstrip()


def _last_user_text(msgs: Sequence[_Msg]) -> str:
    for msg in reversed(msgs):
        if msg.role == "user":
            return msg.text
    return ""


def _answer_for(msgs: Sequence[_Msg]) -> str:
    if msgs and msgs[-1].role == "tool":
        return f"Fake answer using tool result: {_snippet(msgs[-1].text)}"
    return f"Fake answer to: {_snippet(_last_user_text(msgs))}"


def expected_text(conversation: str | Sequence[Any], *, instructions: str | None = None) -> str:
    """The plain-text answer the server gives for chat ``messages`` or Responses ``input``.

    ``"Fake answer to: <last user text>"``, or ``"Fake answer using tool result: <text>"``
    when the conversation ends with a tool result; the quoted text is whitespace-collapsed and
    cut to 80 characters. (``stop``, ``max_tokens`` and response formats change it further.)
    """
    return _answer_for(_normalize(conversation, instructions))


def prompt_tokens(conversation: str | Sequence[Any], *, instructions: str | None = None) -> int:
    """Prompt/input tokens the server reports: per message ``count_tokens(text) + 3``, plus 3."""
    return _prompt_tokens(_normalize(conversation, instructions))


def _prompt_tokens(msgs: Sequence[_Msg]) -> int:
    return sum(count_tokens(m.text) + 3 for m in msgs) + 3


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=_JSON_SEPARATORS).encode()


def _pieces(text: str) -> list[str]:
    """``text`` split into stream deltas of a few words each; they join back to ``text``."""
    words = _PIECE_SPLIT_RE.split(text)
    return [
        "".join(words[i : i + _WORDS_PER_CHUNK]) for i in range(0, len(words), _WORDS_PER_CHUNK)
    ]


def _argument_pieces(arguments: str) -> list[str]:
    return [
        arguments[i : i + _ARGUMENT_PIECE_CHARS]
        for i in range(0, len(arguments), _ARGUMENT_PIECE_CHARS)
    ] or [""]


def _short_hash(*parts: object) -> str:
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=12).hexdigest()
