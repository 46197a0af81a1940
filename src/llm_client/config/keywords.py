"""The client's keywords: :data:`SHORTCUTS` (the seed's flat keywords, each filling one field
of one configuration object), :class:`ClientKeywords` (their types) and :class:`ClientConfig`,
built from them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypedDict

from ..exceptions import ConfigurationError
from .objects import (
    CacheConfig,
    OpenAIConfig,
    RateLimitConfig,
    RetryConfig,
    TimeoutConfig,
    _options,
)
from .options import did_you_mean

if TYPE_CHECKING:
    from ..cache.base import CacheBackend
    from ..models import ModelProfile
    from ..rate_limit import RateLimiter

#: The seed's flat keywords: each fills one field of one configuration object.
SHORTCUTS: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        "cache_backend": (("caching", "backend"),),
        "cache_dir": (("caching", "dir"),),
        "cache_collection": (("caching", "collection"),),
        "cache_ttl": (("caching", "ttl"),),
        "pg_dsn": (("caching", "pg_dsn"),),
        "redis_url": (("caching", "redis_url"), ("rate_limit", "redis_url")),
        "qdrant_url": (("caching", "qdrant_url"),),
        "qdrant_api_key": (("caching", "qdrant_api_key"),),
        "semantic_cache_threshold": (("caching", "semantic_threshold"),),
        "semantic_cache_model": (("caching", "semantic_model"),),
        "rate_limit_backend": (("rate_limit", "backend"),),
        "tokens_per_minute": (("rate_limit", "tokens_per_minute"),),
        "requests_per_minute": (("rate_limit", "requests_per_minute"),),
        "burst_seconds": (("rate_limit", "burst_seconds"),),
        "limiter": (("rate_limit", "limiter"),),
        "timeout": (("timeouts", "total"),),
        "stream_idle_timeout": (("timeouts", "stream_idle"),),
        "attempts": (("retry", "attempts"),),
        "backoff": (("retry", "backoff"),),
        "api_key": (("connection", "api_key"),),
        "base_url": (("connection", "base_url"),),
        "organization": (("connection", "organization"),),
        "project": (("connection", "project"),),
        "http_client": (("connection", "http_client"),),
    }
)


class ClientKeywords(TypedDict, total=False):
    """The flat keywords of :class:`~llm_client.OpenAIClient` that travel in its ``**options``
    (``OpenAIClient(model, cache_backend="fs", attempts=5)``), typed for IDEs and type
    checkers: one entry per shortcut of :data:`SHORTCUTS` except ``timeout`` and
    ``stream_idle_timeout``, which are named parameters of the client. ``None`` leaves a
    setting unset, except ``rate_limit_backend``, where it means no limiter.

    The options of a cache or limiter backend, or of a plugin's middleware
    (``redis_ttl_seconds``, ``fsync`` ...), cannot be listed here, since the core does not know
    them: they are checked at run time, when the client is made, against what the chosen
    backends and the registered middleware declare, and any other keyword raises
    :class:`~llm_client.exceptions.ConfigurationError` naming the nearest valid one. A
    TypedDict cannot tell mypy "and any other key", so ``OpenAIClient.__init__`` has a
    second overload taking any keyword: a call with a backend option type-checks, and a
    misspelt flat keyword is caught at run time rather than by the type checker. Functions
    of your own that forward the flat keywords can use this type
    (``**options: Unpack[ClientKeywords]``), checked in full.
    """

    cache_backend: str | CacheBackend | None
    """A registered cache backend name, or a backend object (``CacheConfig.backend``)."""
    cache_dir: str | os.PathLike[str] | None
    """Folder of the ``"fs"`` and ``"sqlite"`` backends (``CacheConfig.dir``)."""
    cache_collection: str | None
    """Namespace of the cache entries (``CacheConfig.collection``)."""
    cache_ttl: float | None
    """Seconds an entry stays valid (``CacheConfig.ttl``)."""
    pg_dsn: str | None
    """PostgreSQL DSN of ``"postgres"`` and ``"pg_redis"`` (``CacheConfig.pg_dsn``)."""
    redis_url: str | None
    """Redis URL of the cache and of the limiter (``CacheConfig.redis_url`` and
    ``RateLimitConfig.redis_url``)."""
    qdrant_url: str | None
    """Qdrant server URL (``CacheConfig.qdrant_url``)."""
    qdrant_api_key: str | None
    """Qdrant API key (``CacheConfig.qdrant_api_key``)."""
    semantic_cache_threshold: float | None
    """Cosine similarity of a semantic hit, in (0, 1] (``CacheConfig.semantic_threshold``)."""
    semantic_cache_model: ModelProfile | str | None
    """Embedding model of the semantic lookup (``CacheConfig.semantic_model``)."""
    rate_limit_backend: str | None
    """``"local"``, a plugin's limiter (``"redis"``) or ``None`` for no limiter
    (``RateLimitConfig.backend``)."""
    tokens_per_minute: float | None
    """Token budget (``RateLimitConfig.tokens_per_minute``)."""
    requests_per_minute: float | None
    """Request budget (``RateLimitConfig.requests_per_minute``)."""
    burst_seconds: float | None
    """Seconds of budget that may be spent at once (``RateLimitConfig.burst_seconds``)."""
    limiter: RateLimiter | None
    """A ready limiter object (``RateLimitConfig.limiter``)."""
    attempts: int | None
    """Attempts per call, the first included (``RetryConfig.attempts``)."""
    backoff: float | None
    """Base of the exponential back-off, in seconds (``RetryConfig.backoff``)."""
    api_key: str | None
    """OpenAI API key (``OpenAIConfig.api_key``)."""
    base_url: str | None
    """Base URL of the API (``OpenAIConfig.base_url``)."""
    organization: str | None
    """OpenAI organization (``OpenAIConfig.organization``)."""
    project: str | None
    """OpenAI project (``OpenAIConfig.project``)."""
    http_client: Any
    """The SDK's HTTP client: an ``httpx``-compatible async client
    (``OpenAIConfig.http_client``)."""


#: Keywords of :class:`ClientConfig` itself.
_OWN = ("api", "caching", "rate_limit", "retry", "timeouts", "connection", "max_concurrency")

#: Options only the default chain uses: refused beside ``pipeline=``.
DEFAULT_CHAIN_ONLY = (
    "caching",
    "rate_limit",
    "retry",
    "timeouts",
    *(name for name, targets in SHORTCUTS.items() if targets[0][0] != "connection"),
)

_TYPES: dict[str, Any] = {
    "caching": CacheConfig,
    "rate_limit": RateLimitConfig,
    "retry": RetryConfig,
    "timeouts": TimeoutConfig,
    "connection": OpenAIConfig,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """Everything an :class:`~llm_client.OpenAIClient` is configured with, by concern."""

    api: str = "chat"
    """``"chat"`` (Chat Completions) or ``"responses"``; embeddings models always use the
    embeddings API."""
    caching: CacheConfig = field(default_factory=CacheConfig)
    """The cache (default: none)."""
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    """The rate limiter (default: local, with the model's budgets)."""
    retry: RetryConfig = field(default_factory=RetryConfig)
    """Retries (default: 3 attempts, 0.5 s back-off base)."""
    timeouts: TimeoutConfig = field(default_factory=TimeoutConfig)
    """Deadlines (default: none)."""
    connection: OpenAIConfig = field(default_factory=OpenAIConfig)
    """How to reach OpenAI."""
    max_concurrency: int = 64
    """How many calls ``run_batch``/``iter_batch`` run at once."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Flat keywords that are not the client's own: options of the chosen cache or limiter
    backend (or of a plugin's middleware), checked against their factories when the chain is
    built."""

    def __post_init__(self) -> None:
        if self.api not in ("chat", "responses"):
            raise ConfigurationError(f"api must be 'chat' or 'responses', got {self.api!r:.60}")
        for name, kind in _TYPES.items():
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise ConfigurationError(
                    f"{name} must be a llm_client.config.{kind.__name__},"
                    f" got {type(value).__name__}"
                )
        mc = self.max_concurrency
        if not isinstance(mc, int) or isinstance(mc, bool) or mc < 1:
            raise ConfigurationError(f"max_concurrency must be an integer >= 1, got {mc!r:.60}")
        object.__setattr__(self, "extra", _options("options", self.extra))

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> ClientConfig:
        """Build from the client's keywords: the objects, then the flat shortcuts on top of
        them (a shortcut replaces the same field of an object passed beside it).

        Keywords that are neither the client's own nor shortcuts are kept in :attr:`extra`
        for the backends; :meth:`check_extra` refuses the ones no backend declares.
        """
        own: dict[str, Any] = {k: v for k, v in keywords.items() if k in _OWN and v is not None}
        changes: dict[str, dict[str, Any]] = {name: {} for name in _TYPES}
        extra: dict[str, Any] = {}
        for key, value in keywords.items():
            if key in _OWN:
                continue
            targets = SHORTCUTS.get(key)
            if targets is None:
                extra[key] = value
                continue
            for concern, field_name in targets:
                if key == "rate_limit_backend" or value is not None:
                    changes[concern][field_name] = value
        for concern, kind in _TYPES.items():
            base = own.get(concern)
            if base is not None and not isinstance(base, kind):
                raise ConfigurationError(
                    f"{concern} must be a llm_client.config.{kind.__name__},"
                    f" got {type(base).__name__}"
                )
            if changes[concern]:
                own[concern] = (
                    dataclasses.replace(base, **changes[concern])
                    if base is not None
                    else kind(**changes[concern])
                )
        return cls(**own, extra=extra)

    def unknown_extra(self, accepted: Iterable[str], takers: Iterable[str] = ()) -> None:
        """Raise for the first :attr:`extra` keyword that is not in ``accepted`` (the options
        the chosen backends and plugin middleware declare), naming the nearest valid one;
        ``takers`` names what was asked (``"the 'fs' cache backend"``)."""
        accepted = set(accepted)
        for key in self.extra:
            if key not in accepted:
                valid = {*keyword_names(), *accepted}
                takers = list(takers)
                asked = (
                    f"neither a client option nor {' nor '.join(takers)}"
                    if takers
                    else "not a client option"
                )
                raise ConfigurationError(
                    f"OpenAIClient got an unknown option {key!r}{did_you_mean(key, valid)}:"
                    f" it is {asked}. The options are listed in docs/api.md"
                    " (llm_client.config)"
                )


def keyword_names() -> frozenset[str]:
    """Every keyword ``OpenAIClient`` takes besides backend options (for suggestions)."""
    return frozenset({*_OWN, *SHORTCUTS, "pipeline", "plugin_manager", "clock", "sdk"})
