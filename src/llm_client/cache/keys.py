"""Cache key derivation: which request parameters make up a key, and how they are spelt."""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .secrets import TRANSPORT_PARAMS, is_secret_name

if TYPE_CHECKING:
    from ..pipeline import Call


# --- key derivation ------------------------------------------------------------------------------

#: Bumped whenever the key material changes shape, so old entries are simply never found.
KEY_VERSION = 1


#: Fields the API records or routes by but that do not change the answer.
BOOKKEEPING_PARAMS: frozenset[str] = frozenset(
    {
        "user",
        "safety_identifier",
        "metadata",
        "prompt_cache_key",
        "prompt_cache_retention",
        "service_tier",
    }
)

#: Every request parameter that never enters a cache key. Anything else does (including
#: ``store``, ``extra_body`` and parameters this library has never heard of): when in doubt a
#: parameter is part of the key, because a needless miss costs money but a wrong hit returns
#: the wrong answer.
EXCLUDED_PARAMS: frozenset[str] = TRANSPORT_PARAMS | BOOKKEEPING_PARAMS

_MAX_DEPTH = 256


_PLAIN_TYPES = frozenset({str, int, float, bool, dict, list, type(None)})


def _omitted(value: Any) -> bool:
    """The SDK's "not given" sentinels (``openai.NOT_GIVEN``, ``openai.omit``)."""
    cls = type(value)
    if cls in _PLAIN_TYPES:
        return False
    return cls.__name__ in ("NotGiven", "Omit") and cls.__module__.startswith("openai")


def _canon(value: Any, depth: int = 0) -> Any:
    """``value`` as plain JSON data with one spelling per meaning.

    Mappings become dicts with string keys (ordered later by ``sort_keys``), tuples become
    lists, integral floats become ints (``1.0`` and ``1`` ask the same thing), sets are sorted,
    pydantic models and dataclasses are dumped, a pydantic *class* (``response_format=MyModel``)
    becomes its JSON schema. Anything else raises :class:`TypeError`: a value we cannot spell
    deterministically must not produce a key.
    """
    if depth > _MAX_DEPTH:
        raise TypeError("request parameters are nested too deeply to derive a cache key")
    # Fast paths for the exact builtin types that make up nearly every request (messages are
    # dicts of strings); subclasses and everything else take the general route below.
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return value
    if kind is dict:
        out = {}
        shallow = depth < _MAX_DEPTH  # else _canon(v) raises, scalar or not
        for k, v in value.items():
            item = type(v)
            if shallow and (item is str or item is int or item is bool or v is None):
                # what _canon(v) returns, without the call: messages are dicts of strings
                out[k if type(k) is str else str(k)] = v
            elif not _omitted(v):
                out[k if type(k) is str else str(k)] = _canon(v, depth + 1)
        return out
    if kind is list:
        return [_canon(v, depth + 1) for v in value]
    if isinstance(value, (bool, str)):
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return {"$float": repr(value)}
        return int(value) if value.is_integer() else value
    if isinstance(value, enum.Enum):
        return _canon(value.value, depth + 1)
    if isinstance(value, Mapping):
        return {str(k): _canon(v, depth + 1) for k, v in value.items() if not _omitted(v)}
    if isinstance(value, (list, tuple)):
        return [_canon(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_canon(v, depth + 1) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, type):
        schema = getattr(value, "model_json_schema", None)
        if callable(schema):
            return {
                "$schema_of": f"{value.__module__}.{value.__qualname__}",
                "schema": _canon(schema(), depth + 1),
            }
        raise TypeError(f"cannot derive a cache key from the class {value.__qualname__}")
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _canon(dump(mode="json"), depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _canon(dataclasses.asdict(value), depth + 1)
    raise TypeError(f"cannot derive a cache key from a {type(value).__name__} value")


#: The one encoder of canonical JSON (json.dumps with options builds a new one per call).
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
)


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# ``_ENCODER.encode`` builds its C encoder anew on every call; one built once encodes the
# same text (what _canon returns is a fresh tree, so no cycle check is needed) in 2/3 the time.
_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE: Any = (
    None
    if _make_encoder is None
    else _make_encoder(
        None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", True, False, False
    )
)


def canonical_json(value: Any) -> str:
    """One JSON text per meaning: sorted keys, no whitespace, ASCII only.

    Dict key order and the whitespace of whatever JSON the value came from do not matter;
    ``1.0`` and ``1`` are the same number. Raises :class:`TypeError` for values that have no
    deterministic JSON form.
    """
    canon = _canon(value)
    if _C_ENCODE is None or type(canon) is not dict:  # pragma: no cover - no C accelerator
        return _ENCODER.encode(canon)
    return "".join(_C_ENCODE(canon, 0))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _key_params(call: Call) -> tuple[str, dict[str, Any]]:
    """(model name, the request parameters that can change the answer)."""
    params: dict[str, Any] = {}
    for name, value in call.params.items():
        if name in EXCLUDED_PARAMS or is_secret_name(name):
            continue
        if value is None or _omitted(value):  # "not set": the API default applies
            continue
        params[name] = value
    params.pop("model", None)
    return call.model, params


def request_hash(call: Call) -> str:
    """The derived key of ``call``: sha256 (hex) of the canonical JSON of the operation, the
    model and every answer-changing parameter. Independent of the cache options and of
    ``call.stream`` (a streamed and a plain call share entries)."""
    model, params = _key_params(call)
    material = {"v": KEY_VERSION, "operation": call.operation, "model": model, "params": params}
    return _sha256(canonical_json(material))


def cache_identifier(call: Call) -> str | None:
    """The un-namespaced key of ``call``, or ``None`` if it must not be cached.

    An explicit ``call.cache.identifier`` wins; otherwise the derived :func:`request_hash`
    when ``hash_as_identifier`` is on; otherwise ``None`` (no read, no write).
    """
    identifier = call.cache.identifier
    if identifier is not None and str(identifier) != "":
        return str(identifier)
    if call.cache.hash_as_identifier:
        return request_hash(call)
    return None


def namespaced_key(identifier: str, collection: str | None = None) -> str:
    """``"<collection>/<identifier>"``, or the identifier alone without a collection."""
    return f"{collection}/{identifier}" if collection else identifier


def cache_key(call: Call, *, collection: str | None = None) -> str:
    """The namespaced cache key of ``call``.

    :raises ValueError: the call is not cacheable (``hash_as_identifier=False`` and no
        ``identifier``); check with :func:`cache_identifier` first.
    """
    identifier = cache_identifier(call)
    if identifier is None:
        raise ValueError(
            "this call has no cache key: it has no identifier and hash_as_identifier is off"
        )
    return namespaced_key(identifier, collection)


# The prompt/scope split used by semantic lookups: the prompt is the text of the last user
# turn; everything else (system prompt, earlier turns, images of the last turn, tools and all
# generation parameters) is the scope, which must match exactly.

_PROMPT_MARK = "\x00prompt\x00"
_TEXT_PARTS = ("text", "input_text")


def _content_split(content: Any) -> tuple[str, Any]:
    if isinstance(content, str):
        return content, _PROMPT_MARK
    if isinstance(content, (list, tuple)):
        texts: list[str] = []
        rest: list[Any] = []
        for part in content:
            if (
                isinstance(part, Mapping)
                and part.get("type") in _TEXT_PARTS
                and isinstance(part.get("text"), str)
            ):
                texts.append(part["text"])
                rest.append({**part, "text": _PROMPT_MARK})
            else:
                rest.append(part)
        return "\n".join(texts), rest
    return "", content


def _split_prompt(call: Call, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    field_name = "messages" if "messages" in params else "input"
    items = params.get(field_name)
    if isinstance(items, str):
        return items, {**params, field_name: _PROMPT_MARK}
    if call.operation == "embeddings" and isinstance(items, (list, tuple)):
        if all(isinstance(i, str) for i in items):
            return "\n".join(items), {**params, field_name: _PROMPT_MARK}
        return "", params
    if isinstance(items, (list, tuple)):
        for i in range(len(items) - 1, -1, -1):
            item = items[i]
            if isinstance(item, Mapping) and item.get("role") == "user":
                text, rest = _content_split(item.get("content"))
                replaced = [*items[:i], {**item, "content": rest}, *items[i + 1 :]]
                return text, {**params, field_name: replaced}
    return "", params


def prompt_text(call: Call) -> str:
    """The text a semantic lookup embeds: the last user turn (a plain ``input`` string as is).

    ``""`` when the request has no user text (then semantic lookup is skipped).
    """
    _, params = _key_params(call)
    return _split_prompt(call, params)[0]


def cache_scope(call: Call, *, collection: str | None = None) -> str:
    """Hash of everything that changes the answer except the prompt text (see
    :func:`prompt_text`), plus the collection: a semantic hit must share it exactly."""
    model, params = _key_params(call)
    _, rest = _split_prompt(call, params)
    material = {
        "v": KEY_VERSION,
        "scope": True,
        "collection": collection or "",
        "operation": call.operation,
        "model": model,
        "params": rest,
    }
    return _sha256(canonical_json(material))


# --- secrets -------------------------------------------------------------------------------------
