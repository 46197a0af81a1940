"""Scripted tool conversations for the fake server, and OpenAI's checks on tool transcripts.

A script lists, turn by turn, the tool calls the fake model makes; when its turns run out (or
the request disables tools) the model answers in text. The turn is counted from the request
itself: the number of assistant tool-call turns after the last user message. The same request
therefore always gets the same answer, whatever was asked before, so retries, caches and a
transcript sent again all see one conversation.

A script reaches the server in one of two ways:

- in the request: the last user message contains :meth:`ToolScript.directive`'s text,
  ``<fake-tools>{...json...}</fake-tools>`` (build it with :func:`tool_script`);
- on the server: ``server.tool_script = ToolScript.of(...)`` applies to every request that
  carries no directive of its own.

Each call's ``arguments`` is a dict (sent as JSON), a string (sent verbatim: malformed JSON
included) or ``None`` (an example value built from the tool's JSON schema). A call may name a
tool the request did not offer, as a confused model might.

Transcript checks follow OpenAI (HTTP 400, ``invalid_request_error``):

- Chat Completions: an assistant message with ``tool_calls`` must be followed by one ``tool``
  message per call id ("An assistant message with 'tool_calls' must be followed by tool
  messages responding to each 'tool_call_id'. The following tool_call_ids did not have
  response messages: ..."), and a ``tool`` message must answer such an assistant message
  ("Invalid parameter: messages with role 'tool' must be a response to a preceeding message
  with 'tool_calls'." — OpenAI's spelling);
- Responses: every ``function_call`` item needs a ``function_call_output`` with its
  ``call_id`` ("No tool output found for function call <call_id>.") and every output needs its
  call ("No tool call found for function call output with call_id <call_id>.").

(Message texts as reported verbatim in e.g. agno-agi/agno#3105, BerriAI/litellm#10083,
microsoft/vscode#320060 and smallmain/vscode-unify-chat-provider#40.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ScriptedCall",
    "ToolScript",
    "Turn",
    "model_turn",
    "script_in",
    "tool_script",
    "transcript_error",
    "turn_calls",
]

_DIRECTIVE_RE = re.compile(r"<fake-tools>(.*?)</fake-tools>", re.DOTALL)

Api = Literal["chat", "responses"]


@dataclass(frozen=True, slots=True)
class ScriptedCall:
    """One tool call of a scripted turn.

    ``arguments``: a dict or list (sent as JSON), a string (sent as is, so it may be malformed
    JSON) or ``None`` (an example built from the tool's schema, ``{}`` for an unknown tool).
    """

    name: str
    arguments: Any = None

    def wire_arguments(self) -> str | None:
        if self.arguments is None or isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


CallSpec = ScriptedCall | str | tuple[str, Any] | Mapping[str, Any]


def _call(spec: CallSpec) -> ScriptedCall:
    if isinstance(spec, ScriptedCall):
        return spec
    if isinstance(spec, str):
        return ScriptedCall(spec)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        return ScriptedCall(spec[0], spec[1])
    if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        return ScriptedCall(spec["name"], spec.get("arguments"))
    raise ValueError(
        "a scripted tool call is a tool name, a (name, arguments) pair, a dict"
        f" {{'name': ..., 'arguments': ...}} or a ScriptedCall; got {spec!r:.80}"
    )


@dataclass(frozen=True, slots=True)
class ToolScript:
    """Tool calls by turn (turn 0 answers the user's message), then a text answer.

    ``final`` replaces the default final text (``"Fake answer using tool result: ..."``).
    """

    turns: tuple[tuple[ScriptedCall, ...], ...]
    final: str | None = None

    @classmethod
    def of(cls, *turns: Iterable[CallSpec], final: str | None = None) -> ToolScript:
        """``ToolScript.of(["get_time", ("add", {"a": 1})], [("add", '{"a": ')])``."""
        built = tuple(tuple(_call(spec) for spec in turn) for turn in turns)
        if any(not turn for turn in built):
            raise ValueError("every scripted turn needs at least one tool call")
        return cls(built, final)

    def to_json(self) -> str:
        payload: dict[str, Any] = {
            "turns": [
                [{"name": c.name, "arguments": c.arguments} for c in turn] for turn in self.turns
            ]
        }
        if self.final is not None:
            payload["final"] = self.final
        return json.dumps(payload, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ToolScript:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("turns"), list):
            raise ValueError('a tool script is a JSON object {"turns": [[...], ...]}')
        final = data.get("final")
        return cls.of(*data["turns"], final=final if isinstance(final, str) else None)

    def directive(self) -> str:
        """The text to put in a user message to run this script."""
        return f"<fake-tools>{self.to_json()}</fake-tools>"


def tool_script(*turns: Iterable[CallSpec], final: str | None = None) -> str:
    """The directive text for a script: ``f"What time is it? {tool_script(['get_time'])}"``."""
    return ToolScript.of(*turns, final=final).directive()


# --- reading a conversation ---------------------------------------------------------------------


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p["text"] if isinstance(p, dict) and isinstance(p.get("text"), str) else ""
            for p in content
        )
    return ""


def _is_user(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and item.get("role") == "user"
        and item.get("type", "message") == "message"
    )


def _since_last_user(conversation: Sequence[Any]) -> tuple[Any, Sequence[Any]]:
    for i in range(len(conversation) - 1, -1, -1):
        if _is_user(conversation[i]):
            return conversation[i], conversation[i + 1 :]
    return None, conversation


def script_in(conversation: str | Sequence[Any]) -> ToolScript | None:
    """The script named in the last user message, if any (malformed directives raise
    ``ValueError``)."""
    if isinstance(conversation, str):
        text = conversation
    else:
        user, _ = _since_last_user(conversation)
        if user is None:
            return None
        text = _text(user.get("content"))
    found = _DIRECTIVE_RE.search(text)
    if found is None:
        return None
    return ToolScript.from_json(found.group(1))


def model_turn(conversation: str | Sequence[Any]) -> int:
    """How many tool-call turns the model took since the last user message.

    Chat: assistant messages with ``tool_calls``. Responses: runs of consecutive
    ``function_call`` items (a turn's parallel calls come out together).
    """
    if isinstance(conversation, str):
        return 0
    _, after = _since_last_user(conversation)
    turns = 0
    previous_was_call = False
    for item in after:
        if not isinstance(item, dict):
            continue
        if item.get("role") == "assistant" and item.get("tool_calls"):
            turns += 1
        is_call = item.get("type") == "function_call"
        if is_call and not previous_was_call:
            turns += 1
        previous_was_call = is_call
    return turns


@dataclass(frozen=True, slots=True)
class Turn:
    """What a script makes the model do on this request: ``calls`` (name, wire arguments or
    None), or, when ``calls`` is empty, answer in text (``final`` if the script sets one)."""

    calls: tuple[tuple[str, str | None], ...]
    final: str | None


def turn_calls(
    conversation: str | Sequence[Any],
    *,
    default: ToolScript | None,
    tools_offered: bool,
    tool_choice: Any,
    parallel: bool,
) -> Turn | None:
    """The scripted answer to a request, or None when no script applies."""
    script = script_in(conversation) or default
    if script is None:
        return None
    turn = model_turn(conversation)
    if turn >= len(script.turns) or not tools_offered or tool_choice == "none":
        return Turn((), script.final)
    calls = tuple((c.name, c.wire_arguments()) for c in script.turns[turn])
    return Turn(calls if parallel else calls[:1], script.final)


# --- OpenAI's transcript checks -----------------------------------------------------------------


def transcript_error(conversation: Any, api: Api) -> tuple[str, str] | None:
    """(message, param) of the 400 OpenAI answers for a broken tool transcript, or None."""
    if not isinstance(conversation, list):
        return None
    return _chat_error(conversation) if api == "chat" else _responses_error(conversation)


def _chat_error(messages: list[Any]) -> tuple[str, str] | None:
    i = 0
    while i < len(messages):
        message = messages[i]
        if not isinstance(message, dict):
            i += 1
            continue
        role = message.get("role")
        if role == "tool":
            return (
                "Invalid parameter: messages with role 'tool' must be a response to a"
                " preceeding message with 'tool_calls'.",
                f"messages.[{i}].role",
            )
        calls = message.get("tool_calls") if role == "assistant" else None
        i += 1
        if not calls:
            continue
        pending = [c.get("id") for c in calls if isinstance(c, dict)]
        while (
            i < len(messages)
            and isinstance(messages[i], dict)
            and messages[i].get("role") == "tool"
        ):
            answered = messages[i].get("tool_call_id")
            if answered not in pending:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a"
                    " preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            pending.remove(answered)
            i += 1
        if pending:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages"
                " responding to each 'tool_call_id'. The following tool_call_ids did not have"
                f" response messages: {', '.join(map(str, pending))}",
                f"messages.[{i}].role",
            )
    return None


def _responses_error(items: list[Any]) -> tuple[str, str] | None:
    calls = [
        i.get("call_id") for i in items if isinstance(i, dict) and i.get("type") == "function_call"
    ]
    outputs = [
        i.get("call_id")
        for i in items
        if isinstance(i, dict) and i.get("type") == "function_call_output"
    ]
    answered = set(outputs)
    for call_id in calls:
        if call_id not in answered:
            return f"No tool output found for function call {call_id}.", "input"
    known = set(calls)
    for call_id in outputs:
        if call_id not in known:
            return (
                f"No tool call found for function call output with call_id {call_id}.",
                "input",
            )
    return None
