"""Content parts (text, images, audio, files, refusals) of Chat messages and Responses items."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .base import (
    _Check,
    _fail,
    _got,
    _object,
    _show,
)


def _part_fields(*required: str, optional: tuple[str, ...] = ()) -> Callable[[str, Any], None]:
    def check(where: str, part: Any) -> None:
        _object(where, part, shape="{'type': ...}", required=required, optional=optional)

    return check


def _nested(field: str, shape: str, *required: str, optional: tuple[str, ...] = ()) -> _Check:
    """A part whose payload is a dict under ``field`` (``image_url``, ``input_audio``, ...)."""

    def check(where: str, part: Any) -> None:
        _object(where, part, shape=shape, skip=(field,))
        if field not in part:
            _fail(f"{where} needs '{field}': a dict like {shape}")
        _object(f"{where}.{field}", part[field], shape=shape, required=required, optional=optional)

    return check


def _input_image(where: str, part: Any) -> None:
    _object(
        where,
        part,
        shape="{'type': 'input_image', 'image_url': '...'}",
        optional=("detail",),
        nullable=("image_url", "file_id"),
    )
    if part.get("image_url") is None and part.get("file_id") is None:
        _fail(f"{where} needs 'image_url' (a URL or data URL) or 'file_id'")


#: Content parts by type, after ChatCompletionRequestMessageContentPart* (Chat) and
#: InputContent / OutputMessageContent (Responses) in OpenAI's OpenAPI description.
_PART_CHECKS: dict[str, _Check] = {
    # Chat Completions
    "text": _part_fields("text"),
    "image_url": _nested("image_url", "{'url': 'https://...'}", "url", optional=("detail",)),
    "input_audio": _nested(
        "input_audio", "{'data': '<base64>', 'format': 'wav'}", "data", "format"
    ),
    "file": _nested("file", "{'file_id': '...'}", optional=("file_id", "file_data", "filename")),
    "refusal": _part_fields("refusal"),
    # Responses
    "input_text": _part_fields("text"),
    "output_text": _part_fields("text"),
    "input_image": _input_image,
    "input_file": _part_fields(optional=("file_id", "file_data", "file_url", "filename")),
}

_TEXT_PART = frozenset({"text"})
_USER_PARTS = frozenset({"text", "image_url", "input_audio", "file"})
_ASSISTANT_PARTS = frozenset({"text", "refusal"})
_RESPONSES_PARTS = frozenset(
    {"input_text", "input_image", "input_file", "input_audio", "output_text", "refusal"}
)
_OUTPUT_PARTS = frozenset({"input_text", "input_image", "input_file"})


def _part(where: str, part: Any, allowed: frozenset[str]) -> None:
    if not isinstance(part, Mapping):
        _fail(
            f"{where} must be a content part like {{'type': 'text', 'text': '...'}},"
            f" got {_show(part)}"
        )
    kind = part.get("type")
    if not isinstance(kind, str) or kind not in allowed:
        _fail(f"{where}.type must be one of {', '.join(sorted(allowed))}; {_got(part, 'type')}")
    _PART_CHECKS[kind](where, part)


def _content(
    where: str,
    message: Mapping[str, Any],
    allowed: frozenset[str],
    *,
    required: bool = True,
    nullable: bool = False,
) -> None:
    if "content" not in message:
        if required:
            _fail(f"{where} needs 'content': a string or a list of content parts")
        return
    content = message["content"]
    if isinstance(content, str) or (content is None and nullable):
        return
    if not isinstance(content, (list, tuple)):
        _fail(
            f"{where}.content must be a string or a list of content parts"
            f" ({', '.join(sorted(allowed))}), got {_show(content)}"
        )
    if not content:  # minItems: 1 for every message's list of parts
        _fail(f"{where}.content must not be an empty list: use a string or at least one part")
    for j, part in enumerate(content):
        _part(f"{where}.content[{j}]", part, allowed)
