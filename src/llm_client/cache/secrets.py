"""What never reaches a cache entry or a log line: credential names, entry params, redaction."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..known_secrets import REDACTED, is_credential_variable, registered_secrets

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


@functools.lru_cache(maxsize=4096)  # the same few names, on every call
def is_secret_name(name: str) -> bool:
    """Whether a mapping key names a credential (``api_key``, ``Authorization`` ...)."""
    norm = name.strip().lower().replace("-", "_")
    return norm in _SECRET_NAMES or norm.endswith(_SECRET_SUFFIXES)


def _log_secrets() -> list[str]:
    """What log lines are redacted of: registered keys and credential-named environment
    values of 8 characters or more (a log line can afford to lose a word)."""
    env = [v for name, v in os.environ.items() if len(v) >= 8 and is_credential_variable(name)]
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
