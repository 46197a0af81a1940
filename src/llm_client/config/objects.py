"""The configuration objects, one per concern: frozen, and checked when they are made."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import ConfigurationError
from .urls import postgres_dsn, qdrant_url, redis_url


def _number(name: str, value: Any, *, low: float = 0.0, inclusive: bool = False) -> None:
    """A finite real above ``low`` (or at it, with ``inclusive``); ``bool`` is not a number."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (low <= value if inclusive else low < value)
        or not value <= sys.float_info.max  # NaN, infinity, and ints too large for a float
    ):
        bound = f">= {low:g}" if inclusive else "positive"
        raise ConfigurationError(f"{name} must be a finite, {bound} number, got {value!r:.60}")


def _optional_str(name: str, value: Any) -> None:
    if value is not None and not (isinstance(value, str) and value):
        got = "''" if value == "" else type(value).__name__  # never echo a would-be secret
        raise ConfigurationError(f"{name} must be a non-empty string, got {got}")


def _options(name: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigurationError(f"{name} must be a mapping of option names to values")
    return MappingProxyType(dict(value))


#: What the cache step and the client call on a backend object (``llm_client.cache``).
BACKEND_METHODS = ("get", "put", "delete", "warm", "aclose")


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheConfig:
    """Which cache answers repeated calls, and where it keeps its entries.

    Connection strings left out are read from the environment when the backend is built
    (``PG_DSN``, ``REDIS_URL``, ``QDRANT_URL``, ``QDRANT_API_KEY``); a malformed one raises then.
    """

    backend: Any = None
    """``None`` (no cache step), a registered name (``"memory"``, ``"fs"``, ``"sqlite"``, or a
    plugin's: ``"redis"``, ``"postgres"``, ``"pg_redis"``, ``"qdrant"``) or a backend object."""
    dir: Any = None
    """Folder of the ``"fs"`` backend (one file per entry) and of ``"sqlite"``'s database."""
    collection: str | None = None
    """Namespace of the entries (a folder, table, key prefix or Qdrant collection)."""
    ttl: float | None = None
    """Seconds an entry stays valid; ``None`` keeps entries until removed."""
    pg_dsn: str | None = None
    """PostgreSQL DSN (``postgresql://...``) of ``"postgres"`` and ``"pg_redis"``."""
    redis_url: str | None = None
    """Redis URL (``redis://...``) of ``"redis"`` and of ``"pg_redis"``'s hot mirror."""
    qdrant_url: str | None = None
    """Qdrant server URL (``http://host:6333``) of ``"qdrant"``."""
    qdrant_api_key: str | None = field(default=None, repr=False)
    """Qdrant API key (never shown in ``repr``)."""
    semantic_threshold: float | None = None
    """With a semantic-capable backend, also serve a stored answer whose prompt embedding has
    at least this cosine similarity, in (0, 1]; ``None`` turns semantic lookup off."""
    semantic_model: Any = None
    """Embedding model profile (or key) for the semantic lookup; default
    ``text-embedding-3-small``."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Further options of the chosen backend (``redis_ttl_seconds``, ``fsync``,
    ``busy_timeout`` ...), checked against what its factory declares when it is built."""

    def __post_init__(self) -> None:
        backend = self.backend
        if isinstance(backend, str):
            if not backend:
                raise ConfigurationError("cache_backend must be a backend name, got ''")
            if backend.lower() == "none":
                object.__setattr__(self, "backend", None)
        elif backend is not None and not all(
            callable(getattr(backend, method, None)) for method in BACKEND_METHODS
        ):
            raise ConfigurationError(
                "cache_backend must be a backend name ('memory', 'fs', 'sqlite', or a plugin's:"
                " 'redis', 'postgres', 'pg_redis', 'qdrant'), None, or an object with the"
                f" CacheBackend methods ({', '.join(BACKEND_METHODS)}); got {backend!r:.60}"
            )
        if self.ttl is not None:
            _number("cache_ttl", self.ttl)
        _optional_str("cache_collection", self.collection)
        if self.dir is not None and not isinstance(self.dir, (str, os.PathLike)):
            raise ConfigurationError(f"cache_dir must be a path, got {self.dir!r:.60}")
        if self.pg_dsn is not None:
            postgres_dsn(self.pg_dsn)
        if self.redis_url is not None:
            redis_url(self.redis_url)
        if self.qdrant_url is not None:
            qdrant_url(self.qdrant_url)
        _optional_str("qdrant_api_key", self.qdrant_api_key)
        threshold = self.semantic_threshold
        if threshold is not None and not (
            isinstance(threshold, (int, float))
            and not isinstance(threshold, bool)
            and 0 < threshold <= 1
        ):
            raise ConfigurationError(
                "semantic_cache_threshold must be a cosine similarity in (0, 1],"
                f" got {threshold!r:.60}"
            )
        object.__setattr__(self, "options", _options("cache options", self.options))

    def backend_options(self) -> dict[str, Any]:
        """What the backend factory is called with: the given connection settings and
        :attr:`options` (settings left ``None`` are left out, so the factory's default or the
        environment applies)."""
        given = {
            "cache_dir": self.dir,
            "pg_dsn": self.pg_dsn,
            "redis_url": self.redis_url,
            "qdrant_url": self.qdrant_url,
            "qdrant_api_key": self.qdrant_api_key,
            "cache_collection": self.collection,
            "ttl": self.ttl,
        }
        return {**{k: v for k, v in given.items() if v is not None}, **self.options}


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitConfig:
    """How calls are paced to stay inside the account's OpenAI rate limits."""

    backend: str | None = "local"
    """``"local"`` (one process), a plugin's name (``"redis"``: shared by every process) or
    ``None`` for no limiter."""
    tokens_per_minute: float | None = None
    """Token budget per minute, and the ceiling for what the server's ``x-ratelimit-limit-*``
    headers may raise it to; default: start from the model profile's ``rate_limits`` and
    follow the headers."""
    requests_per_minute: float | None = None
    """Request budget per minute, likewise a ceiling; default: the profile's, then the
    server's."""
    burst_seconds: float | None = None
    """How many seconds of budget may be spent at once (the bucket's depth)."""
    redis_url: str | None = None
    """Redis URL of the ``"redis"`` limiter (else ``REDIS_URL``)."""
    limiter: Any = None
    """A ready limiter object to use instead of building one (overrides the fields above)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Further options of the limiter backend (``redis_max_connections`` ...), checked against
    what its factory declares."""

    def __post_init__(self) -> None:
        backend = self.backend
        if backend == "none":
            object.__setattr__(self, "backend", None)
        elif backend is not None and not (isinstance(backend, str) and backend):
            raise ConfigurationError(
                "rate_limit_backend must be 'local', a plugin's name ('redis') or None,"
                f" got {backend!r:.60}"
            )
        for name in ("tokens_per_minute", "requests_per_minute", "burst_seconds"):
            value = getattr(self, name)
            if value is not None:
                _number(name, value)
        if self.redis_url is not None:
            redis_url(self.redis_url)
        if self.limiter is not None and not callable(getattr(self.limiter, "limit", None)):
            raise ConfigurationError(
                "limiter must be a rate limiter with limit(tokens, requests)"
                f" (llm_client.rate_limit.Limiter), got {type(self.limiter).__name__}"
            )
        object.__setattr__(self, "options", _options("rate-limit options", self.options))


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """How often a failed attempt is tried again, and how long to wait in between."""

    attempts: int = 3
    """Attempts per call, the first included (1 means no retry)."""
    backoff: float = 0.5
    """Base of the exponential back-off, in seconds (the wait doubles per attempt, with jitter;
    a server's ``Retry-After`` takes precedence)."""

    def __post_init__(self) -> None:
        attempts = self.attempts
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise ConfigurationError(f"attempts must be an integer >= 1, got {attempts!r:.60}")
        _number("backoff", self.backoff, inclusive=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAIConfig:
    """How to reach OpenAI. Settings left ``None`` are read by the ``openai`` SDK from its own
    environment variables (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID``,
    ``OPENAI_PROJECT_ID``)."""

    api_key: str | None = field(default=None, repr=False)
    """The API key (never shown in ``repr``, and redacted from errors and logs)."""
    base_url: str | None = None
    """Another endpoint speaking OpenAI's API (a proxy, Azure-style gateway, the fake server)."""
    organization: str | None = None
    """OpenAI organization id, sent as the ``OpenAI-Organization`` header."""
    project: str | None = None
    """OpenAI project id, sent as the ``OpenAI-Project`` header."""
    http_client: Any = None
    """An ``httpx.AsyncClient`` (or the SDK's ``DefaultAioHttpClient``) to send requests with;
    it stays yours to close."""

    def __post_init__(self) -> None:
        for name in ("api_key", "organization", "project"):
            _optional_str(name, getattr(self, name))
        if self.base_url is not None:
            try:
                parts = urlsplit(str(self.base_url))
            except ValueError:
                parts = None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(
                    f"base_url must be an http:// or https:// URL, got {self.base_url!r:.60}"
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeoutConfig:
    """How long a call may take."""

    total: float | None = None
    """Deadline of a whole call in seconds, over every attempt, wait and cache lookup, and a
    stream up to its last event (shortcut ``timeout``); ``None``: no deadline."""
    stream_idle: float | None = None
    """For streams: the longest wait in seconds for the next piece, the first included
    (shortcut ``stream_idle_timeout``); ``None`` waits as long as :attr:`total` allows."""

    def __post_init__(self) -> None:
        if self.total is not None:
            _number("timeout", self.total)
        if self.stream_idle is not None:
            _number("stream_idle_timeout", self.stream_idle)
