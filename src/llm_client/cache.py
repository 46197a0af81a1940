"""Response caching: the backend protocol, entries, key derivation and the built-in backends.

PROTOCOL SECTION (pinned by the lead; implementation below is owned by the cache engineer).

Below the protocol:

* key derivation: :func:`cache_key`, :func:`cache_identifier`, :func:`request_hash`,
  :func:`cache_scope` and :func:`prompt_text`. A key covers the operation, the model and every
  request parameter that can change the answer; secrets, transport options and bookkeeping
  fields that the model never sees are left out (:data:`EXCLUDED_PARAMS`).
* :func:`stored_params`: the request parameters an entry keeps (never credentials or
  transport options), and :func:`redact_text` for log lines.
* :func:`check_result_value`: the shape every entry read from a backend must have.
* the built-in backends :class:`MemoryCache` (``"memory"``), :class:`FileSystemCache`
  (``"fs"``) and :class:`SQLiteCache` (``"sqlite"``), registered through the same
  ``register_cache_backends`` hook a third-party plugin implements.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import enum
import hashlib
import json
import logging
import math
import operator
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from .exceptions import ConfigurationError
from .hookspecs import hookimpl
from .known_secrets import REDACTED, registered_secrets

if TYPE_CHECKING:
    from .pipeline import Call

__all__ = [
    "CacheBackend",
    "CacheEntry",
    "SemanticCacheBackend",
    "InvalidEntryError",
    "check_result_value",
    # key derivation
    "BOOKKEEPING_PARAMS",
    "EXCLUDED_PARAMS",
    "KEY_VERSION",
    "TRANSPORT_PARAMS",
    "cache_identifier",
    "cache_key",
    "cache_scope",
    "canonical_json",
    "namespaced_key",
    "prompt_text",
    "request_hash",
    # secrets
    "REDACTED",
    "is_secret_name",
    "redact_text",
    "stored_params",
    # backends
    "FileSystemCache",
    "MemoryCache",
    "SQLiteCache",
    "fs_backend",
    "memory_backend",
    "sqlite_backend",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheEntry:
    """One stored answer.

    :param key: the namespaced cache key.
    :param value: the stored result, ``LLMResult.to_dict()`` (JSON-able, no secrets).
    :param created_at: wall-clock epoch seconds when it was written.
    :param model: model name the answer came from.
    :param operation: ``"chat"``, ``"responses"`` or ``"embeddings"``.
    :param scope: hash of everything that changes the answer *except* the prompt text
        (operation, model, tools, generation parameters): a semantic hit must share it.
    :param prompt: the prompt text used for semantic similarity (only when semantic caching
        is on), else ``None``.
    """

    key: str
    value: Mapping[str, Any]
    created_at: float = field(default_factory=time.time)
    model: str = ""
    operation: str = ""
    scope: str = ""
    prompt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry as a JSON-able dict (what :meth:`to_json` encodes)."""
        return {
            "key": self.key,
            "value": self.value,
            "created_at": self.created_at,
            "model": self.model,
            "operation": self.operation,
            "scope": self.scope,
            "prompt": self.prompt,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> CacheEntry:
        return cls.from_dict(json.loads(data))

    @classmethod
    def from_dict(cls, raw: Any) -> CacheEntry:
        """Rebuild an entry from :meth:`to_dict` output; extra keys are ignored.

        :raises ValueError: ``raw`` is not an entry.
        """
        if not isinstance(raw, dict) or not isinstance(raw.get("value"), dict):
            raise ValueError("not a cache entry")
        if not isinstance(raw.get("key"), str):
            raise ValueError("not a cache entry: no key")
        return cls(
            key=str(raw["key"]),
            value=raw["value"],
            created_at=float(raw.get("created_at", 0.0)),
            model=str(raw.get("model", "")),
            operation=str(raw.get("operation", "")),
            scope=str(raw.get("scope", "")),
            prompt=raw.get("prompt"),
        )


@runtime_checkable
class CacheBackend(Protocol):
    """What every cache backend implements. All I/O is async.

    A backend may raise on failure (connection lost, disk full); the cache middleware logs it
    once per outage and carries on without the cache. ``ttl`` is seconds, ``None`` for no
    expiry; backends that cannot expire entries ignore it and say so in their docs.
    """

    name: str

    async def get(self, key: str) -> CacheEntry | None: ...

    async def put(self, entry: CacheEntry, *, ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def clear(self) -> int: ...

    async def stats(self) -> dict[str, Any]: ...

    def export(self) -> AsyncIterator[CacheEntry]: ...

    async def warm(self) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class SemanticCacheBackend(CacheBackend, Protocol):
    """A backend that can also find the nearest stored prompt (e.g. Qdrant)."""

    async def put_vector(
        self, entry: CacheEntry, vector: list[float], *, ttl: float | None = None
    ) -> None: ...

    async def search(
        self, vector: list[float], *, scope: str, threshold: float
    ) -> tuple[CacheEntry, float] | None: ...


# ================================================================================================
# Implementation (owned by the cache engineer): key derivation, secrets, built-in backends.
# ================================================================================================

log = logging.getLogger("llm_client.cache")

_T = TypeVar("_T")

# --- key derivation ------------------------------------------------------------------------------

#: Bumped whenever the key material changes shape, so old entries are simply never found.
KEY_VERSION = 1

#: Secrets and options of the HTTP layer: they never reach the model.
TRANSPORT_PARAMS: frozenset[str] = frozenset(
    {
        "api_key",
        "organization",
        "project",
        "base_url",
        "websocket_base_url",
        "default_headers",
        "default_query",
        "extra_headers",
        "extra_query",
        "http_client",
        "timeout",
        "max_retries",
        "stream",
        "stream_options",
    }
)

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
        return {
            (k if type(k) is str else str(k)): _canon(v, depth + 1)
            for k, v in value.items()
            if not _omitted(v)
        }
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


def canonical_json(value: Any) -> str:
    """One JSON text per meaning: sorted keys, no whitespace, ASCII only.

    Dict key order and the whitespace of whatever JSON the value came from do not matter;
    ``1.0`` and ``1`` are the same number. Raises :class:`TypeError` for values that have no
    deterministic JSON form.
    """
    return json.dumps(
        _canon(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


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
    model = params.pop("model", None) or call.profile.model_name
    return str(model), params


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


_SECRET_NAMES = frozenset(
    {
        "api_key",
        "apikey",
        "x_api_key",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "bearer_token",
        "session_token",
        "private_key",
    }
)
_SECRET_SUFFIXES = ("_api_key", "_apikey", "_secret", "_password", "_private_key")

_TOKEN = r"[A-Za-z0-9._~+/=\-]"


def _authorization(match: re.Match[str]) -> str:
    scheme = match.group(2)
    return match.group(1) + (f"{scheme} " if scheme else "") + REDACTED


_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # OpenAI-style keys: sk-..., sk-proj-..., sk-svcacct-... (long, with digits)
    (re.compile(r"\bsk-(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{16,}"), REDACTED),
    # an Authorization header written out: "Authorization: Bearer xyz", "authorization=..."
    (
        re.compile(
            r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)(?:(bearer|basic|token)\s+)?[^\s\"',;]+"
        ),
        _authorization,
    ),
    # a bare bearer token (long, with digits, so ordinary prose is left alone)
    (re.compile(r"\bBearer\s+(?=" + _TOKEN + r"*\d)" + _TOKEN + r"{16,}"), "Bearer " + REDACTED),
    # passwords in URLs / DSNs: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]*):[^\s/@]+@"), r"\1:" + REDACTED + "@"),
)
_SECRET_ENV = re.compile(
    r"(?i)(API_?KEY|SECRET|SECRET_KEY|ACCESS_KEY|PRIVATE_KEY|AUTH_KEY|TOKEN|PASSWORD|PASSWD)$"
)


def is_secret_name(name: str) -> bool:
    """Whether a mapping key names a credential (``api_key``, ``Authorization`` ...)."""
    norm = name.strip().lower().replace("-", "_")
    return norm in _SECRET_NAMES or norm.endswith(_SECRET_SUFFIXES)


def _log_secrets() -> list[str]:
    """What log lines are redacted of: registered keys and credential-named environment
    values of 8 characters or more (a log line can afford to lose a word)."""
    env = [v for name, v in os.environ.items() if len(v) >= 8 and _SECRET_ENV.search(name)]
    return [*registered_secrets(), *env]


def stored_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The request parameters a cache entry keeps: all but transport options and credentials
    (:data:`TRANSPORT_PARAMS`, names for which :func:`is_secret_name` holds). Keys, headers and
    URLs are not request content, so they never enter an entry in the first place."""
    return {
        name: value
        for name, value in params.items()
        if name not in TRANSPORT_PARAMS and not is_secret_name(name)
    }


def redact_text(text: str, *, known: list[str] | None = None) -> str:
    """``text`` for a log line, with secret-looking substrings replaced by :data:`REDACTED`
    (never applied to an answer or a cache entry): OpenAI-style keys,
    written-out ``Authorization`` headers, bearer tokens, URL passwords, and the values of
    environment variables named like credentials (``*_API_KEY``, ``*_SECRET``, ``*_TOKEN``,
    ``*_PASSWORD`` ...). The patterns ask for long, digit-bearing tokens so that ordinary prose
    ("basic idea", "sk-learn") stays as it was."""
    for secret in _log_secrets() if known is None else known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# --- validating what a backend hands back -------------------------------------------------------


class InvalidEntryError(ValueError):
    """A stored value is not a result this library wrote (see :func:`result_from_entry`)."""


_TEXT_OPERATIONS = frozenset({"chat", "responses"})
_OK_STATUS = range(200, 300)
_FAILED_STATUS = range(400, 600)
_NUMBER = (int, float)
_OPTIONAL_TEXT = ("identifier", "finish_reason", "response_id")


def _usage_fields() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from .usage import Usage

    numeric: list[str] = []
    other: list[str] = []
    for f in dataclasses.fields(Usage):
        default = f.default
        if isinstance(default, _NUMBER) and not isinstance(default, bool):
            numeric.append(f.name)
        else:
            other.append(f.name)
    return tuple(numeric), tuple(other)


_USAGE_NUMERIC, _USAGE_OTHER = _usage_fields()


def _bad(what: str) -> InvalidEntryError:
    return InvalidEntryError(what)


def _check_number(value: Any, what: str) -> None:
    kind = type(value)
    if kind is bool or not (kind is int or kind is float or isinstance(value, _NUMBER)):
        raise _bad(f"{what} is {type(value).__name__}, not a number")
    if not (0 <= value < math.inf):  # also false for NaN
        raise _bad(f"{what} is {value!r}, not a finite number >= 0")


_vector_adapter: Any = None


def _check_vector(value: Any, what: str) -> None:
    """A non-empty list of finite numbers (not booleans).

    The per-number loop runs in pydantic-core: about twice as fast as a Python loop on a
    1,536-float vector (20 us against 40 us); the rest of the check is faster by hand.
    """
    global _vector_adapter
    if type(value) is not list or not value:
        raise _bad(f"{what} is not a non-empty list of numbers")
    if _vector_adapter is None:
        from typing import Annotated

        import pydantic

        _vector_adapter = pydantic.TypeAdapter(
            list[Annotated[float, pydantic.Strict(), pydantic.AllowInfNan(False)]]
        )
    try:
        _vector_adapter.validate_python(value)
    except ValueError as exc:  # pydantic.ValidationError
        raise _bad(f"{what} is not a list of finite numbers") from exc


def _check_output(value: Mapping[str, Any], operation: str, ok: bool) -> None:
    output = value["output"]
    if operation == "embeddings":
        if output is None and not ok:
            return
        if type(output) is list and output and type(output[0]) is list:
            for i, vector in enumerate(output):
                _check_vector(vector, f"output[{i}]")
        else:
            _check_vector(output, "output")
        return
    if type(output) is str or isinstance(output, str):
        return
    if output is None and (not ok or value.get("tool_calls")):
        return  # a failure, or an answer that is only tool calls (content null)
    raise _bad(f"output of a {operation} result is {type(output).__name__}, not text")


def _check_tool_calls(tool_calls: Any) -> None:
    if type(tool_calls) is not list:
        raise _bad(f"tool_calls is {type(tool_calls).__name__}, not a list")
    for i, call in enumerate(tool_calls):
        if type(call) is not dict:
            raise _bad(f"tool_calls[{i}] is {type(call).__name__}, not an object")
        for name in ("id", "name"):
            item = call.get(name)
            if item is not None and type(item) is not str:
                raise _bad(f"tool_calls[{i}].{name} is {type(item).__name__}, not text")
        arguments = call.get("arguments", "")
        if arguments is not None and type(arguments) is not str:
            raise _bad(f"tool_calls[{i}].arguments is {type(arguments).__name__}, not text")


def check_result_value(value: Any, operation: str) -> None:
    """Raise :class:`InvalidEntryError` unless ``value`` has the shape of a stored
    :meth:`LLMResult.to_dict() <llm_client.result.LLMResult.to_dict>` of ``operation``.

    Checked: the value is an object with ``params``, ``output``, ``usage`` and ``status``; the
    status is an integer in 200-299 (an answer) or 400-599 (a stored failure); the operation
    matches; the output is text for chat and Responses (``None`` only for a failure or an
    answer made of tool calls) and a non-empty list of finite numbers (or a list of such
    lists) for embeddings; ``tool_calls`` is a list of objects with text ``id``, ``name``
    and ``arguments``; every token count and cost in ``usage`` is a finite number >= 0; and
    the remaining fields have their types. Unknown extra fields are ignored.
    """
    if type(value) is not dict and not isinstance(value, Mapping):
        raise _bad(f"the stored value is {type(value).__name__}, not an object")
    for name in ("params", "output", "usage", "status"):
        if name not in value:
            raise _bad(f"the stored value has no {name!r}")
    status = value["status"]
    if type(status) is not int or not (status in _OK_STATUS or status in _FAILED_STATUS):
        raise _bad(f"status {status!r} is not an HTTP status of an answer or a failure")
    stored_operation = value.get("operation", "chat")
    if stored_operation != operation:
        raise _bad(f"the entry is a {stored_operation!r} result, not {operation!r}")
    if not isinstance(value["params"], Mapping):
        raise _bad("params is not an object")
    usage = value["usage"]
    if not isinstance(usage, Mapping):
        raise _bad(f"usage is {type(usage).__name__}, not an object")
    for name in _USAGE_NUMERIC:
        if name in usage:
            _check_number(usage[name], f"usage.{name}")
    tool_calls = value.get("tool_calls")
    if tool_calls is not None:
        _check_tool_calls(tool_calls)
    _check_output(value, operation, status in _OK_STATUS)
    error = value.get("error", "OK")
    if type(error) is not str:
        raise _bad(f"error is {type(error).__name__}, not text")
    for name in _OPTIONAL_TEXT:
        item = value.get(name)
        if item is not None and type(item) is not str:
            raise _bad(f"{name} is {type(item).__name__}, not text")
    model = value.get("model", "")
    if type(model) is not str:
        raise _bad(f"model is {type(model).__name__}, not text")
    attempts = value.get("attempts", 1)
    if type(attempts) is not int or attempts < 0:
        raise _bad(f"attempts is {attempts!r}, not a count")
    similarity = value.get("cache_similarity")
    if similarity is not None:
        _check_number(similarity, "cache_similarity")


# --- shared helpers of the built-in backends ----------------------------------------------------


def _check_ttl(ttl: Any, what: str = "ttl") -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise ConfigurationError(
            f"{what} must be a positive number of seconds or None, got {ttl!r}"
        )
    return float(ttl)


def _expiry(now: float, ttl: float | None, default: float | None) -> float | None:
    seconds = _check_ttl(ttl) if ttl is not None else default
    return None if seconds is None else now + seconds


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


class _Counters:
    """Hits and misses of one backend instance (since it was created)."""

    __slots__ = ("hits", "misses")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    def count(self, entry: CacheEntry | None) -> CacheEntry | None:
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def as_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses}


# --- memory --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _MemoryItem:
    data: bytes
    expires_at: float | None
    scope: str
    vector: tuple[float, ...] | None = None


def _unit(vector: list[float] | tuple[float, ...]) -> tuple[float, ...] | None:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0 or not math.isfinite(norm):
        return None
    return tuple(x / norm for x in vector)


class MemoryCache:
    """A per-process dict with LRU eviction and optional expiry; also a semantic backend.

    Entries are kept serialized, so a caller mutating a returned value never changes the
    cache, and a value that is not JSON fails at ``put`` exactly as with the other backends.
    ``search`` is a brute-force cosine scan over the entries of one scope: fine for tests and
    small caches, not for millions of vectors.

    :param max_entries: evict the least recently used entry beyond this many (``None``: no
        limit).
    :param ttl: default expiry in seconds for entries put without one.
    :param collection: informational (an instance is its own namespace).
    :param clock: monotonic seconds, injectable for tests.
    """

    name = "memory"

    def __init__(
        self,
        *,
        max_entries: int | None = 10_000,
        ttl: float | None = None,
        collection: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries is not None and (
            isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1
        ):
            raise ConfigurationError(f"max_entries must be an integer >= 1, got {max_entries!r}")
        self.max_entries = max_entries
        self.ttl = _check_ttl(ttl)
        self.collection = collection
        self._clock = clock
        self._items: OrderedDict[str, _MemoryItem] = OrderedDict()
        self._by_scope: dict[str, set[str]] = {}  # keys that have a vector, per scope
        self._counters = _Counters()
        self._evictions = 0

    def __repr__(self) -> str:
        return f"MemoryCache(entries={len(self._items)}, max_entries={self.max_entries})"

    def _drop(self, key: str) -> _MemoryItem | None:
        item = self._items.pop(key, None)
        if item is not None and item.vector is not None:
            keys = self._by_scope.get(item.scope)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_scope[item.scope]
        return item

    def _live(self, key: str) -> _MemoryItem | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item.expires_at is not None and item.expires_at <= self._clock():
            self._drop(key)
            return None
        return item

    async def get(self, key: str) -> CacheEntry | None:
        item = self._live(key)
        if item is None:
            return self._counters.count(None)
        self._items.move_to_end(key)
        return self._counters.count(CacheEntry.from_json(item.data))

    def _store(self, entry: CacheEntry, ttl: float | None, vector: list[float] | None) -> None:
        item = _MemoryItem(
            data=entry.to_json(),
            expires_at=_expiry(self._clock(), ttl, self.ttl),
            scope=entry.scope,
            vector=_unit(vector) if vector is not None else None,
        )
        self._drop(entry.key)
        self._items[entry.key] = item
        if item.vector is not None:
            self._by_scope.setdefault(item.scope, set()).add(entry.key)
        while self.max_entries is not None and len(self._items) > self.max_entries:
            self._drop(next(iter(self._items)))
            self._evictions += 1

    async def put(self, entry: CacheEntry, *, ttl: float | None = None) -> None:
        self._store(entry, ttl, None)

    async def put_vector(
        self, entry: CacheEntry, vector: list[float], *, ttl: float | None = None
    ) -> None:
        self._store(entry, ttl, vector)

    async def search(
        self, vector: list[float], *, scope: str, threshold: float
    ) -> tuple[CacheEntry, float] | None:
        query = _unit(vector)
        if query is None:
            return None
        best: tuple[str, float] | None = None
        now = self._clock()
        for key in list(self._by_scope.get(scope, ())):
            item = self._items[key]
            if item.vector is None or len(item.vector) != len(query):
                continue
            if item.expires_at is not None and item.expires_at <= now:
                self._drop(key)
                continue
            similarity = sum(map(operator.mul, query, item.vector))
            if similarity >= threshold and (best is None or similarity > best[1]):
                best = (key, similarity)
        if best is None:
            return None
        self._items.move_to_end(best[0])
        return CacheEntry.from_json(self._items[best[0]].data), min(1.0, best[1])

    async def delete(self, key: str) -> bool:
        return self._drop(key) is not None

    async def clear(self) -> int:
        count = len(self._items)
        self._items.clear()
        self._by_scope.clear()
        return count

    async def stats(self) -> dict[str, Any]:
        now = self._clock()
        live = [i for i in self._items.values() if i.expires_at is None or i.expires_at > now]
        return {
            "backend": self.name,
            "entries": len(live),
            "size_bytes": sum(len(i.data) for i in live),
            "max_entries": self.max_entries,
            "evictions": self._evictions,
            **self._counters.as_dict(),
        }

    async def export(self) -> AsyncIterator[CacheEntry]:
        for key in list(self._items):
            item = self._live(key)
            if item is not None:
                yield CacheEntry.from_json(item.data)

    async def purge_expired(self) -> int:
        """Drop expired entries now; returns how many."""
        now = self._clock()
        dead = [
            k for k, i in self._items.items() if i.expires_at is not None and i.expires_at <= now
        ]
        for key in dead:
            self._drop(key)
        return len(dead)

    async def warm(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


# --- filesystem ----------------------------------------------------------------------------------

_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9\-][A-Za-z0-9._\-]{0,127}")
_MAX_SEGMENTS = 8
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 3600.0


def _safe_segments(name: str) -> list[str] | None:
    """``name`` split on ``/`` if every part is a plain, portable file name, else ``None``."""
    parts = name.split("/")
    if not 1 <= len(parts) <= _MAX_SEGMENTS:
        return None
    for i, part in enumerate(parts):
        if not _SAFE_SEGMENT.fullmatch(part):
            return None
        if i < len(parts) - 1 and part.endswith(".json"):  # a folder must not shadow a file
            return None
    return parts


class FileSystemCache:
    """One JSON file per entry under ``cache_dir`` (``cache_dir/<collection>/`` with one).

    A key made of plain name parts (letters, digits, ``.``, ``_``, ``-``; ``/`` separates
    folders) is stored as ``<key>.json``, as in the seed; any other key (path separators,
    ``..``, non-ASCII, very long) is stored as ``_<sha256 of key>.json``, so no key can reach
    outside the folder. Each file also holds its key, and a file whose key differs is a miss.

    Writes go to a temporary file in the same folder and are renamed over the target with
    ``os.replace``, so a reader sees the old or the new entry, never half of one, even with
    several processes writing or one crashing mid-write. A corrupt or unreadable file is
    logged and treated as a miss; the next ``put`` replaces it. File I/O runs in threads.

    :param cache_dir: the root folder (created on first write or by :meth:`warm`).
    :param collection: a sub-folder (plain name parts as above).
    :param ttl: default expiry in seconds; expiry is stored in the file and checked on read.
    :param fsync: flush each file (and its folder) to disk before the rename: survive power
        loss, at the cost of speed. Without it a crash of the machine can leave an empty file,
        which reads as a miss.
    :param clock: wall-clock seconds, injectable for tests.
    """

    name = "fs"

    def __init__(
        self,
        cache_dir: str | os.PathLike[str],
        *,
        collection: str | None = None,
        ttl: float | None = None,
        fsync: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.collection = collection or None
        if self.collection is not None and _safe_segments(self.collection) is None:
            raise ConfigurationError(
                f"cache collection {self.collection!r} is not a plain folder name for the 'fs'"
                " cache: use letters, digits, '.', '_' and '-'"
            )
        self.root = self.cache_dir / self.collection if self.collection else self.cache_dir
        self.ttl = _check_ttl(ttl)
        self.fsync = fsync
        self._clock = clock
        self._counters = _Counters()

    def __repr__(self) -> str:
        return f"FileSystemCache({str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        """The file that holds ``key``."""
        parts = _safe_segments(key)
        if parts is None:
            return (
                self.root
                / f"_{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()}.json"
            )
        return self.root.joinpath(*parts[:-1], parts[-1] + ".json")

    # sync parts, run in threads

    @staticmethod
    def _parse(data: bytes) -> tuple[CacheEntry, float | None]:
        """(entry, expires_at) of one file's bytes; ValueError/TypeError if it is not one."""
        raw = json.loads(data)
        entry = CacheEntry.from_dict(raw)
        expires_at = raw.get("expires_at")
        if expires_at is not None and (
            isinstance(expires_at, bool) or not isinstance(expires_at, (int, float))
        ):
            raise ValueError("bad expires_at")
        return entry, expires_at

    def _read(self, path: Path, key: str) -> CacheEntry | None:
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (PermissionError, IsADirectoryError) as exc:
            log.warning("cache file %s is unreadable (%s); treating it as a miss", path, exc)
            return None
        try:
            entry, expires_at = self._parse(data)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning(
                "cache file %s is corrupt (%s); treating it as a miss, the next write replaces it",
                path,
                exc,
            )
            return None
        if entry.key != key:
            log.debug("cache file %s holds key %r, not %r: a miss", path, entry.key, key)
            return None
        if expires_at is not None and expires_at <= self._clock():
            return None
        return entry

    def _write(self, path: Path, data: bytes) -> None:
        folder = path.parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self.fsync and hasattr(os, "O_DIRECTORY"):
            dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def _unlink(self, path: Path) -> bool:
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def _walk(self) -> Iterator[Path]:
        """Every entry file under the root (temporary and hidden files excluded), sorted."""
        if not self.root.is_dir():
            return
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.endswith(".json") and not name.startswith("."):
                    yield Path(folder, name)

    def _remove_stale_tmp(self, min_age: float) -> int:
        removed = 0
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - min_age
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                if name.startswith(_TMP_PREFIX) and name.endswith(".tmp"):
                    path = Path(folder, name)
                    with contextlib.suppress(OSError):
                        if path.stat().st_mtime < cutoff:
                            path.unlink()
                            removed += 1
        return removed

    def _clear(self) -> int:
        removed = sum(1 for path in list(self._walk()) if self._unlink(path))
        self._remove_stale_tmp(_STALE_TMP_SECONDS)
        return removed

    def _stats(self) -> dict[str, Any]:
        entries = size = 0
        for path in self._walk():
            with contextlib.suppress(OSError):
                size += path.stat().st_size
                entries += 1
        return {"entries": entries, "size_bytes": size}

    def _read_file(self, path: Path) -> CacheEntry | None:
        try:
            entry, expires_at = self._parse(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("skipping cache file %s: %s", path, exc)
            return None
        if expires_at is not None and expires_at <= self._clock():
            return None
        return entry

    def _read_files(self, paths: list[Path]) -> list[CacheEntry | None]:
        return [self._read_file(p) for p in paths]

    def _purge(self) -> int:
        removed = 0
        now = self._clock()
        for path in list(self._walk()):
            try:
                _, expires_at = self._parse(path.read_bytes())
            except (OSError, ValueError, TypeError, KeyError):
                continue
            if expires_at is not None and expires_at <= now and self._unlink(path):
                removed += 1
        return removed

    # the protocol

    async def get(self, key: str) -> CacheEntry | None:
        entry = await asyncio.to_thread(self._read, self.path_for(key), key)
        return self._counters.count(entry)

    async def put(self, entry: CacheEntry, *, ttl: float | None = None) -> None:
        record = entry.to_dict()
        record["expires_at"] = _expiry(self._clock(), ttl, self.ttl)
        data = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        await asyncio.to_thread(self._write, self.path_for(entry.key), data)

    async def delete(self, key: str) -> bool:
        return await asyncio.to_thread(self._unlink, self.path_for(key))

    async def clear(self) -> int:
        """Remove every entry under the root (collection sub-folders included)."""
        return await asyncio.to_thread(self._clear)

    async def stats(self) -> dict[str, Any]:
        found = await asyncio.to_thread(self._stats)
        return {
            "backend": self.name,
            **found,
            "path": str(self.root),
            **self._counters.as_dict(),
        }

    async def export(self) -> AsyncIterator[CacheEntry]:
        paths = await asyncio.to_thread(lambda: list(self._walk()))
        for start in range(0, len(paths), 64):
            batch = paths[start : start + 64]
            entries = await asyncio.to_thread(self._read_files, batch)
            for entry in entries:
                if entry is not None:
                    yield entry

    async def purge_expired(self) -> int:
        """Delete expired entry files now (reads every file); returns how many."""
        return await asyncio.to_thread(self._purge)

    async def warm(self) -> None:
        """Create the folder and remove temporary files left behind by crashed writers."""

        def work() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._remove_stale_tmp(_STALE_TMP_SECONDS)

        await asyncio.to_thread(work)

    async def aclose(self) -> None:
        return None


# --- sqlite --------------------------------------------------------------------------------------

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_cache (
    collection TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    model TEXT NOT NULL DEFAULT '',
    operation TEXT NOT NULL DEFAULT '',
    scope TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (collection, key)
);
CREATE INDEX IF NOT EXISTS llm_cache_expires_at ON llm_cache (expires_at)
    WHERE expires_at IS NOT NULL;
"""
_SQLITE_FILE = "llm_cache.sqlite3"
_PURGE_EVERY = 512
_EXPORT_PAGE = 256


class SQLiteCache:
    """Entries in one SQLite database file: the embedded default for a persistent cache.

    WAL mode lets readers run while one writer writes, ``busy_timeout`` makes writers from
    other threads or processes wait for the lock instead of failing, and every operation is a
    single autocommit statement, so several processes can share one file. Calls run on a
    small thread pool, each thread with its own connection; :meth:`aclose` closes them all.
    Expiry is an ``expires_at`` column: expired rows are never returned and are purged
    periodically and by :meth:`purge_expired`. A file that is not a usable database (garbage,
    or corrupt) is renamed to ``<path>.unusable-<UTC time>-<pid>-<n>`` (kept, for a look
    later), a WARNING says so, and a fresh cache starts in its place.

    :param path: the database file (``":memory:"`` for a private in-memory database).
    :param collection: rows are namespaced by this value (``""`` without one).
    :param ttl: default expiry in seconds for entries put without one.
    :param busy_timeout: seconds to wait for another writer's lock.
    :param max_workers: threads (and connections) used by this instance.
    :param clock: wall-clock seconds, injectable for tests.
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        collection: str | None = None,
        ttl: float | None = None,
        busy_timeout: float = 30.0,
        max_workers: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self.collection = collection or None
        self.ttl = _check_ttl(ttl)
        if (
            isinstance(busy_timeout, bool)
            or not isinstance(busy_timeout, (int, float))
            or (busy_timeout < 0)
        ):
            raise ConfigurationError(f"busy_timeout must be seconds >= 0, got {busy_timeout!r}")
        self.busy_timeout = float(busy_timeout)
        self._in_memory = self.path == ":memory:" or self.path.startswith("file::memory:")
        self._max_workers = 1 if self._in_memory else max(1, int(max_workers))
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._puts = 0
        self._generation = 0  # bumped each time an unusable file is moved aside
        self._counters = _Counters()

    def __repr__(self) -> str:
        return f"SQLiteCache({self.path!r}, collection={self.collection!r})"

    @property
    def _ns(self) -> str:
        return self.collection or ""

    # threads and connections

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            if getattr(self._local, "generation", 0) == self._generation:
                return conn
            self._local.conn = None  # the file it reads was moved aside: open the new one
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)
            conn.close()
        if not self._in_memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._initialize(conn)
        except BaseException:
            conn.close()
            raise
        with self._lock:
            self._conns.append(conn)
        self._local.conn = conn
        self._local.generation = self._generation
        return conn

    def _move_aside(self, generation: int, exc: sqlite3.DatabaseError) -> None:
        """The file is not a usable database (garbage, or corrupt): keep it under a new name
        and start a fresh cache in its place. Once per bad file, whichever thread sees it."""
        with self._lock:
            if generation != self._generation:
                return  # another thread already did it
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            aside = f"{self.path}.unusable-{stamp}-{os.getpid()}-{generation}"
            moved = False
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(self.path + suffix, aside + suffix)
                    moved = moved or suffix == ""
            self._generation += 1
        log.warning(
            "sqlite cache file %s is not a usable database (%s); %s and started a fresh cache",
            self.path,
            exc,
            f"kept it as {aside}" if moved else "it is gone",
        )

    def _initialize(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        deadline = time.monotonic() + self.busy_timeout
        while True:  # switching to WAL takes a lock; another process may be holding it
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchone()
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.executescript(_SQLITE_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _pool(self) -> ThreadPoolExecutor:
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="llm-cache-sqlite"
            )
        return self._executor

    def _with_conn(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        generation = self._generation
        try:
            return fn(self._connect())
        except sqlite3.DatabaseError as exc:
            # Exactly DatabaseError: "file is not a database", "database disk image is
            # malformed". Its subclasses (locked, constraint, misuse) are not about the file.
            if type(exc) is not sqlite3.DatabaseError or self._in_memory:
                raise
            self._move_aside(generation, exc)
        return fn(self._connect())

    async def _run(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), self._with_conn, fn)

    # statements

    def _purge_sync(self, conn: sqlite3.Connection) -> int:
        cur = conn.execute(
            "DELETE FROM llm_cache WHERE expires_at IS NOT NULL AND expires_at <= ?",
            (self._clock(),),
        )
        return cur.rowcount

    async def get(self, key: str) -> CacheEntry | None:
        ns = self._ns

        def op(conn: sqlite3.Connection) -> CacheEntry | None:
            row = conn.execute(
                "SELECT value, expires_at FROM llm_cache WHERE collection = ? AND key = ?",
                (ns, key),
            ).fetchone()
            if row is None:
                return None
            value, expires_at = row
            if expires_at is not None and expires_at <= self._clock():
                conn.execute(
                    "DELETE FROM llm_cache WHERE collection = ? AND key = ? AND expires_at = ?",
                    (ns, key, expires_at),
                )
                return None
            try:
                return CacheEntry.from_json(bytes(value))
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("sqlite cache row %r is corrupt (%s); treating it as a miss", key, exc)
                return None

        return self._counters.count(await self._run(op))

    async def put(self, entry: CacheEntry, *, ttl: float | None = None) -> None:
        ns = self._ns
        data = entry.to_json()
        expires_at = _expiry(self._clock(), ttl, self.ttl)
        self._puts += 1
        purge = self._puts % _PURGE_EVERY == 0

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO llm_cache"
                " (collection, key, value, created_at, expires_at, model, operation, scope)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ns,
                    entry.key,
                    data,
                    entry.created_at,
                    expires_at,
                    entry.model,
                    entry.operation,
                    entry.scope,
                ),
            )
            if purge:
                self._purge_sync(conn)

        await self._run(op)

    async def delete(self, key: str) -> bool:
        ns = self._ns

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM llm_cache WHERE collection = ? AND key = ?", (ns, key))
            return cur.rowcount > 0

        return await self._run(op)

    async def clear(self) -> int:
        ns = self._ns

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM llm_cache WHERE collection = ?", (ns,)).rowcount

        return await self._run(op)

    async def stats(self) -> dict[str, Any]:
        ns = self._ns

        def op(conn: sqlite3.Connection) -> tuple[int, int]:
            row = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM llm_cache"
                " WHERE collection = ? AND (expires_at IS NULL OR expires_at > ?)",
                (ns, self._clock()),
            ).fetchone()
            return int(row[0]), int(row[1])

        entries, size = await self._run(op)
        file_bytes = 0
        if not self._in_memory:
            for suffix in ("", "-wal"):
                with contextlib.suppress(OSError):
                    file_bytes += os.stat(self.path + suffix).st_size
        return {
            "backend": self.name,
            "entries": entries,
            "size_bytes": size,
            "file_bytes": file_bytes,
            "path": self.path,
            "collection": self.collection,
            **self._counters.as_dict(),
        }

    async def export(self) -> AsyncIterator[CacheEntry]:
        ns = self._ns
        after = ""
        first = True
        while True:

            def op(conn: sqlite3.Connection, after: str = after, first: bool = first) -> list[Any]:
                return conn.execute(
                    "SELECT key, value FROM llm_cache WHERE collection = ? AND (key > ? OR ?)"
                    " AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?",
                    (ns, after, first, self._clock(), _EXPORT_PAGE),
                ).fetchall()

            rows = await self._run(op)
            for key, value in rows:
                try:
                    yield CacheEntry.from_json(bytes(value))
                except (ValueError, TypeError, KeyError) as exc:
                    log.warning("skipping corrupt sqlite cache row %r: %s", key, exc)
            if len(rows) < _EXPORT_PAGE:
                return
            after, first = rows[-1][0], False

    async def purge_expired(self) -> int:
        """Delete expired rows (of every collection) now; returns how many."""
        return await self._run(self._purge_sync)

    async def warm(self) -> None:
        """Create the file, switch it to WAL and create the table now."""
        await self._run(lambda conn: None)

    async def aclose(self) -> None:
        """Wait for running statements, then close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, True)
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()


# --- registration --------------------------------------------------------------------------------


def memory_backend(
    *,
    ttl: float | None = None,
    cache_ttl: float | None = None,
    max_entries: int | None = None,
    cache_max_entries: int | None = None,
    cache_collection: str | None = None,
    **_: Any,
) -> MemoryCache:
    """Factory of ``"memory"``: options ``ttl``, ``max_entries`` (default 10 000)."""
    return MemoryCache(
        max_entries=_first(max_entries, cache_max_entries, 10_000),
        ttl=_first(ttl, cache_ttl),
        collection=cache_collection,
    )


def fs_backend(
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_collection: str | None = None,
    ttl: float | None = None,
    cache_ttl: float | None = None,
    fsync: bool = False,
    **_: Any,
) -> FileSystemCache:
    """Factory of ``"fs"``: requires ``cache_dir``; options ``cache_collection``, ``ttl``,
    ``fsync``."""
    if cache_dir is None or str(cache_dir) == "":
        raise ConfigurationError(
            "the 'fs' cache backend needs cache_dir=...: the folder where it writes one JSON"
            " file per cached answer"
        )
    return FileSystemCache(
        cache_dir, collection=cache_collection, ttl=_first(ttl, cache_ttl), fsync=bool(fsync)
    )


def sqlite_backend(
    *,
    cache_path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_collection: str | None = None,
    ttl: float | None = None,
    cache_ttl: float | None = None,
    busy_timeout: float = 30.0,
    **_: Any,
) -> SQLiteCache:
    """Factory of ``"sqlite"``: ``cache_path`` (the database file) or ``cache_dir`` (then the
    file is ``cache_dir/llm_cache.sqlite3``); options ``cache_collection``, ``ttl``,
    ``busy_timeout``."""
    if cache_path is not None and str(cache_path) != "":
        path: str | os.PathLike[str] = cache_path
    elif cache_dir is not None and str(cache_dir) != "":
        path = Path(cache_dir) / _SQLITE_FILE
    else:
        raise ConfigurationError(
            "the 'sqlite' cache backend needs cache_dir=... (the file is then"
            f" <cache_dir>/{_SQLITE_FILE}) or cache_path=... (the database file itself)"
        )
    return SQLiteCache(
        path, collection=cache_collection, ttl=_first(ttl, cache_ttl), busy_timeout=busy_timeout
    )


@hookimpl
def register_cache_backends(register: Callable[[str, Callable[..., Any]], None]) -> None:
    """The built-in backends, registered like any plugin's."""
    register("memory", memory_backend)
    register("fs", fs_backend)
    register("sqlite", sqlite_backend)
