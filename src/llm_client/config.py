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
object and field, and is the only list of them. An unknown keyword raises
:class:`~llm_client.exceptions.ConfigurationError` naming the nearest valid one.

Precedence is decided here and nowhere else: an explicit argument wins, then the environment
variable (``.env`` is loaded on import), then the default (:func:`resolve`). Backends read
their connection strings through it, and flags in the environment are parsed by
:func:`parse_bool`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .exceptions import ConfigurationError

__all__ = [
    "SHARED_CACHE_SETTINGS",
    "SHORTCUTS",
    "CacheConfig",
    "ClientConfig",
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

# --- precedence: argument > environment > default -------------------------------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def parse_bool(value: Any, name: str) -> bool:
    """``True``/``False`` from a flag given as text (``"1"``, ``"true"``, ``"yes"``, ``"on"``
    and their opposites, any case); anything else raises naming ``name``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(
        f"{name}={value!r} is not a yes/no value: use one of 1, true, yes, on, 0, false, no, off"
    )


def env_flag(variable: str) -> bool:
    """Whether the environment variable ``variable`` is set to a true value (unset: false)."""
    return parse_bool(os.environ.get(variable, ""), variable)


def resolve(argument: Any, variable: str | None = None, default: Any = None) -> Any:
    """The one precedence rule: ``argument`` if given (not ``None`` and not ``""``), else the
    non-empty value of the environment variable ``variable``, else ``default``."""
    if argument is not None and argument != "":
        return argument
    if variable is not None:
        from_env = os.environ.get(variable, "").strip()
        if from_env:
            return from_env
    return default


# --- connection strings ----------------------------------------------------------------------

_REDIS_SCHEMES = ("redis", "rediss", "unix")
_PASSWORD = re.compile(r"(//[^/@:]*:)[^/@]*@")


def _shown(value: str) -> str:
    """``value`` for an error message: at most 80 characters, any password replaced."""
    return repr(_PASSWORD.sub(r"\1***@", value)[:80])


def redis_url(value: Any, name: str = "redis_url", *, variable: str | None = None) -> str:
    """``value`` if it is a URL redis-py can connect with (``redis://``, ``rediss://`` or
    ``unix://``; redis-py's ``from_url`` takes these three), else :class:`ConfigurationError`.

    Only the form is checked: a well-formed URL of a server that is down is accepted, and the
    backend degrades as usual when it cannot reach it.
    """
    where = f"{name} ({variable})" if variable else name
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{where} must be a Redis URL string, got {type(value).__name__}")
    text = value.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ConfigurationError(
            f"{where}={_shown(text)} is not a valid Redis URL: {exc}"
        ) from None
    if parts.scheme not in _REDIS_SCHEMES:
        raise ConfigurationError(
            f"{where}={_shown(text)} is not a Redis URL: it must start with redis://, rediss://"
            " or unix:// (e.g. redis://localhost:6379/0)"
        )
    path = parts.path.lstrip("/")
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigurationError(f"{where}={_shown(text)} names no socket path")
    elif path and not path.isdigit():  # redis-py reads the path as the database number
        raise ConfigurationError(
            f"{where}={_shown(text)}: the path must be a database number (/0), got /{path}"
        )
    return text


def postgres_dsn(value: Any, name: str = "pg_dsn", *, variable: str | None = None) -> str:
    """``value`` if it is a DSN asyncpg accepts, else :class:`ConfigurationError`.

    asyncpg parses a URI whose scheme is ``postgresql`` or ``postgres``
    (``asyncpg.connect_utils._parse_connect_dsn_and_args``); libpq's ``key=value`` form is not
    accepted by it.
    """
    where = f"{name} ({variable})" if variable else name
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"{where} must be a PostgreSQL DSN string, got {type(value).__name__}"
        )
    text = value.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ConfigurationError(f"{where} is not a valid PostgreSQL DSN: {exc}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"{where} is not a PostgreSQL DSN: it must start with postgresql:// or"
            " postgres:// (e.g. postgresql://user:password@localhost:5432/dbname)"
        )
    return text


def qdrant_url(value: Any, name: str = "qdrant_url", *, variable: str | None = None) -> str:
    """``value`` if qdrant-client can use it as ``url=``, else :class:`ConfigurationError`.

    qdrant-client (``AsyncQdrantRemote.__init__``) takes ``http://`` or ``https://`` URLs and a
    bare ``host:port``; anything else is refused or misread. Embedded modes are separate
    options: ``qdrant_location=":memory:"`` or ``qdrant_path=...``.
    """
    where = f"{name} ({variable})" if variable else name
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{where} must be a Qdrant URL string, got {type(value).__name__}")
    text = value.strip()
    embedded = " (for embedded local mode use qdrant_location=':memory:' or qdrant_path=...)"
    try:
        parts = urlsplit(text if "://" in text else f"//{text}")
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ConfigurationError(
            f"{where}={_shown(text)} is not a valid URL: {exc}{embedded}"
        ) from None
    if "://" in text and parts.scheme not in ("http", "https"):
        raise ConfigurationError(
            f"{where}={_shown(text)} must be an http:// or https:// URL{embedded}"
        )
    if not parts.hostname:
        raise ConfigurationError(
            f"{where}={_shown(text)} names no host: use e.g. http://localhost:6333{embedded}"
        )
    return text


def connection_string(
    argument: Any,
    variable: str,
    check: Callable[..., str],
    *,
    name: str,
    backend: str,
    what: str,
) -> str:
    """A backend's connection string by the one precedence rule (argument > ``variable`` >
    error), checked for form with ``check`` (:func:`redis_url`, :func:`postgres_dsn`,
    :func:`qdrant_url`); an error names the keyword or the variable it came from.

    There is deliberately no default host: a backend without a server to talk to raises
    rather than guessing ``localhost``.
    """
    value = resolve(argument, variable)
    if value is None:
        raise ConfigurationError(
            f"the {backend!r} {what} needs a connection string: pass {name}=... or set the"
            f" {variable} environment variable"
        )
    from_env = argument is None or argument == ""
    return check(value, name, variable=variable if from_env else None)


# --- suggestions and declared options --------------------------------------------------------


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """``" (did you mean `timeout`?)"`` for the nearest of ``valid``, or ``""``."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def declared_options(factory: Callable[..., Any]) -> frozenset[str] | None:
    """The keyword options ``factory`` declares, or ``None`` if it takes ``**kwargs``.

    A factory declares its options through its signature; one that still takes ``**kwargs``
    receives everything and cannot be checked.
    """
    explicit = getattr(factory, "options", None)
    if isinstance(explicit, (frozenset, set, tuple, list)):
        return frozenset(explicit)
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    names: set[str] = set()
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.add(p.name)
    return frozenset(names)


_F = TypeVar("_F", bound=Callable[..., Any])


def accepts(*names: str) -> Callable[[_F], _F]:
    """Declare the keyword options a backend factory takes, for a factory that forwards
    ``**options`` (so that its module can stay cheap to import)::

        @accepts("redis_url", "cache_collection", "ttl")
        def create_cache(**options): ...

    The options are then known to the client before the factory runs, and a call with any
    other option raises :class:`ConfigurationError` naming the nearest declared one.
    """
    allowed = frozenset(names)

    def wrap(factory: _F) -> _F:
        @functools.wraps(factory)
        def checked(*args: Any, **options: Any) -> Any:
            check_factory_options("factory", factory.__name__, checked, options)
            return factory(*args, **options)

        checked.options = allowed  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return wrap


#: The client's cache settings, offered to every cache backend: each takes those its factory
#: declares (``"fs"`` takes ``cache_dir``, ``"redis"`` takes ``redis_url`` ...), so one set of
#: settings can serve whichever backend is chosen. Any other option must be declared.
SHARED_CACHE_SETTINGS = frozenset(
    {
        "cache_dir",
        "cache_collection",
        "ttl",
        "cache_ttl",
        "pg_dsn",
        "redis_url",
        "qdrant_url",
        "qdrant_api_key",
    }
)


def offered(
    factory: Callable[..., Any], options: Mapping[str, Any], shared: Iterable[str]
) -> dict[str, Any]:
    """``options`` without the ``shared`` settings that ``factory`` does not declare."""
    accepted = declared_options(factory)
    if accepted is None:
        return dict(options)
    shared = frozenset(shared)
    return {k: v for k, v in options.items() if k in accepted or k not in shared}


def check_factory_options(
    kind: str, name: str, factory: Callable[..., Any], options: Mapping[str, Any]
) -> None:
    """Raise :class:`ConfigurationError` for any option ``factory`` does not declare."""
    accepted = declared_options(factory)
    if accepted is None:
        return
    unknown = sorted(set(options) - accepted)
    if unknown:
        bad = unknown[0]
        raise ConfigurationError(
            f"the {name!r} {kind} has no option {bad!r}{did_you_mean(bad, accepted)};"
            f" it takes: {', '.join(sorted(accepted)) or '(none)'}"
        )


# --- the configuration objects -----------------------------------------------------------------


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
