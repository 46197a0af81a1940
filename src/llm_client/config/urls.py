"""Connection strings: the form of Redis URLs, PostgreSQL DSNs and Qdrant URLs, checked before
anything connects, and a backend's connection string found by the precedence rule."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import ConfigurationError
from .precedence import resolve

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
