"""Credential values this process knows about, so they can be kept out of what it writes.

Two sources:

* **registered values**: each client's API key, registered when its transport is built
  (:func:`remember_secret`). Error text a server sends back passes through
  :func:`redact_registered` when it becomes an :class:`~llm_client.exceptions.LLMClientError`
  (some proxies echo the key they refused), so the key never reaches a result, a log line or
  an event.
* **the environment**: values of variables named like credentials (``*_API_KEY``,
  ``*_SECRET``, ``*_TOKEN``, ``*_PASSWORD`` ...) at least :data:`MIN_ENV_SECRET` characters long
  (:func:`environment_secrets`). Shorter values are too likely to be ordinary words
  (``POSTGRES_PASSWORD=postgres``) to be treated as secrets.

The cache uses :func:`find_secret` to refuse storing an entry that holds one of these values;
it never rewrites an answer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "MIN_ENV_SECRET",
    "MIN_REGISTERED_SECRET",
    "REDACTED",
    "environment_secrets",
    "find_secret",
    "is_credential_variable",
    "redact_registered",
    "registered_secrets",
    "remember_secret",
]

REDACTED = "[REDACTED]"

#: Shortest registered value that is redacted (shorter "keys" are test placeholders, and
#: replacing them would garble ordinary text).
MIN_REGISTERED_SECRET = 8
#: Shortest environment value treated as a secret.
MIN_ENV_SECRET = 12

_SECRET_ENV = re.compile(
    r"(?i)(API_?KEY|SECRET|SECRET_KEY|ACCESS_KEY|PRIVATE_KEY|AUTH_KEY|TOKEN|PASSWORD|PASSWD)$"
)

# registered values (a dict, for insertion order)
_registered: dict[str, None] = {}


def remember_secret(value: object) -> None:
    """Register a credential value (e.g. an API key); ignored unless it is text of at least
    :data:`MIN_REGISTERED_SECRET` characters."""
    if isinstance(value, str) and len(value) >= MIN_REGISTERED_SECRET:
        _registered[value] = None


def registered_secrets() -> tuple[str, ...]:
    """The registered values, longest first."""
    return tuple(sorted(_registered, key=len, reverse=True))


def redact_registered(text: str) -> str:
    """``text`` with every registered value replaced by :data:`REDACTED`."""
    if not _registered:
        return text
    for secret in registered_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


# (the environment as last scanned, the secrets found in it): every store of the cache asks,
# and a scan of a 35-variable environment took 40 µs, while comparing the raw environment
# with the one last scanned takes well under one
_env_scanned: tuple[dict[Any, Any], list[str]] | None = None


def is_credential_variable(name: str) -> bool:
    """Whether an environment variable is named like a credential (``*_API_KEY``,
    ``*_SECRET``, ``*_TOKEN``, ``*_PASSWORD`` ...)."""
    return _SECRET_ENV.search(name) is not None


def environment_secrets() -> list[str]:
    """Values of environment variables named like credentials, long enough to be secrets.

    Always as of now: the environment is scanned again whenever it differs from the one last
    scanned (compared through ``os.environ``'s underlying mapping where it has one).
    """
    global _env_scanned
    raw = getattr(os.environ, "_data", None)  # CPython's os._Environ: the encoded variables
    scanned = _env_scanned
    if raw is not None and scanned is not None and scanned[0] == raw:
        return list(scanned[1])
    found = [
        value
        for name, value in os.environ.items()
        if len(value) >= MIN_ENV_SECRET and is_credential_variable(name)
    ]
    if isinstance(raw, dict):
        _env_scanned = (dict(raw), found)
    return list(found)


def _describe(secret: str, env: list[str]) -> str:
    if secret in _registered:
        return "a client's API key"
    for name, value in os.environ.items():
        if value == secret and value in env:
            return f"the value of ${name}"
    return "a known secret"


def find_secret(value: Any, *, max_depth: int = 256) -> str | None:
    """Where ``value`` (nested dicts, lists and strings) holds a registered or environment
    secret, a short description of which (never the secret itself); else ``None``.

    A value nested deeper than ``max_depth`` cannot be checked and is reported as such.
    """
    env = environment_secrets()
    secrets = [*_registered, *env]
    if not secrets:
        return None
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            for secret in secrets:
                if secret in item:
                    return _describe(secret, env)
        elif depth >= max_depth:
            return "a value nested too deeply to check"
        elif isinstance(item, Mapping):
            for key, inner in item.items():
                stack.append((key, depth + 1))
                stack.append((inner, depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((inner, depth + 1) for inner in item)
    return None
