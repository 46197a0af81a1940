"""Configuration: one frozen, validated object per concern, and the rules that read them.

``OpenAIClient`` is configured by five objects, each checked when it is made (in the manner of
httpx's ``Timeout`` and ``Limits``), so a bad value fails where it is written rather than on
the first call:

* :class:`CacheConfig`: which cache backend, where it lives, its namespace and expiry;
* :class:`RateLimitConfig`: the limiter and its budgets;
* :class:`RetryConfig`: attempts and back-off;
* :class:`TimeoutConfig`: the deadline of a call and the idle limit of a stream;
* :class:`OpenAIConfig`: how to reach OpenAI (key, base URL, organization, project, HTTP client).

The seed's flat keywords (``cache_backend="fs"``, ``cache_dir=...``, ``redis_url=...``,
``attempts=...``) are shortcuts that fill these objects: :data:`SHORTCUTS` maps each one to its
object and field, and is the only list of them (:class:`ClientKeywords` types them for IDEs and
type checkers; a test keeps the two equal). An unknown keyword raises
:class:`~llm_client.exceptions.ConfigurationError` naming the nearest valid one.

Precedence is decided here and nowhere else: an explicit argument wins, then the environment
variable (``.env`` is loaded on import), then the default (:func:`resolve`). Backends read
their connection strings through it, and flags in the environment are parsed by
:func:`parse_bool`.

The package: ``objects`` (the configuration objects), ``keywords`` (the flat shortcuts, their
types and :class:`ClientConfig`), ``precedence`` (:func:`resolve`, :func:`parse_bool`),
``urls`` (connection strings) and ``options`` (the options backend factories declare).
"""

from __future__ import annotations

# DEFAULT_CHAIN_ONLY, keyword_names and BACKEND_METHODS are outside __all__: re-exported with "as".
from .keywords import DEFAULT_CHAIN_ONLY as DEFAULT_CHAIN_ONLY
from .keywords import (
    SHORTCUTS,
    ClientConfig,
    ClientKeywords,
)
from .keywords import keyword_names as keyword_names
from .objects import BACKEND_METHODS as BACKEND_METHODS
from .objects import (
    CacheConfig,
    OpenAIConfig,
    RateLimitConfig,
    RetryConfig,
    TimeoutConfig,
)
from .options import (
    SHARED_CACHE_SETTINGS,
    accepts,
    check_factory_options,
    declared_options,
    did_you_mean,
    offered,
)
from .precedence import env_flag, parse_bool, resolve
from .urls import connection_string, postgres_dsn, qdrant_url, redis_url

__all__ = [
    "SHARED_CACHE_SETTINGS",
    "SHORTCUTS",
    "CacheConfig",
    "ClientConfig",
    "ClientKeywords",
    "OpenAIConfig",
    "RateLimitConfig",
    "RetryConfig",
    "TimeoutConfig",
    "accepts",
    "check_factory_options",
    "connection_string",
    "declared_options",
    "did_you_mean",
    "env_flag",
    "parse_bool",
    "postgres_dsn",
    "qdrant_url",
    "redis_url",
    "offered",
    "resolve",
]
