"""Pusher Channels HTTP API request signing, and Pusher's naming rules.

The algorithm is the one Pusher documents in its HTTP API reference ("Generating
authentication signatures", https://pusher.com/docs/channels/library_auth_reference/rest-api/)
and its server libraries implement (pusher-http-python ``pusher/http.py``, pusher-http-node
``lib/requests.js``):

- a POST with a body adds ``body_md5``: the MD5 hex digest of the exact body bytes;
- the query parameters (``auth_key``, ``auth_timestamp``, ``auth_version``, ``body_md5`` and any
  others, never ``auth_signature``) are sorted by lower-cased key and joined as
  ``key=value&...`` *without* URL-escaping;
- the string to sign is ``METHOD + "\\n" + path + "\\n" + that query``;
- ``auth_signature`` is its HMAC-SHA256 hex digest keyed with the app secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping

from llm_client.exceptions import ConfigurationError

__all__ = [
    "AUTH_VERSION",
    "MAX_CHANNEL_LENGTH",
    "MAX_EVENT_NAME_LENGTH",
    "body_md5",
    "check_channel",
    "check_event_name",
    "sign",
    "signed_query",
    "string_to_sign",
]

#: The only authentication version Pusher has defined.
AUTH_VERSION = "1.0"
#: Channel names: at most 164 characters of letters, digits and ``_ - = @ , . ;``
#: (Pusher docs, "Channel Naming Conventions").
MAX_CHANNEL_LENGTH = 164
_CHANNEL_RE = re.compile(r"[A-Za-z0-9_\-=@,.;]+")
#: Event names: at most 200 characters; the ``pusher:`` prefix is Pusher's own.
MAX_EVENT_NAME_LENGTH = 200


def body_md5(body: bytes) -> str:
    """The ``body_md5`` parameter: MD5 hex digest of the exact request body."""
    return hashlib.md5(body).hexdigest()


def string_to_sign(method: str, path: str, params: Mapping[str, str]) -> str:
    """``METHOD\\npath\\nquery``, the query sorted by lower-cased key, not URL-escaped, and
    without ``auth_signature``."""
    pairs = sorted(
        (key.lower(), str(value)) for key, value in params.items() if key != "auth_signature"
    )
    query = "&".join(f"{key}={value}" for key, value in pairs)
    return f"{method.upper()}\n{path}\n{query}"


def sign(secret: str, method: str, path: str, params: Mapping[str, str]) -> str:
    """The ``auth_signature`` for a request: HMAC-SHA256 hex of :func:`string_to_sign`."""
    message = string_to_sign(method, path, params).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_query(
    *,
    key: str,
    secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    timestamp: int | None = None,
    auth_version: str = AUTH_VERSION,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every query parameter of a signed request, ``auth_signature`` included."""
    params: dict[str, str] = dict(extra or {})
    params["auth_key"] = key
    params["auth_timestamp"] = str(int(time.time()) if timestamp is None else timestamp)
    params["auth_version"] = auth_version
    if body:
        params["body_md5"] = body_md5(body)
    params["auth_signature"] = sign(secret, method, path, params)
    return params


def check_channel(name: object) -> str:
    """``name`` if it is a channel Pusher accepts, else :class:`ConfigurationError`."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"channel must be a non-empty string, got {name!r:.80}")
    if len(name) > MAX_CHANNEL_LENGTH:
        raise ConfigurationError(
            f"channel must be at most {MAX_CHANNEL_LENGTH} characters, got {len(name)}"
        )
    if not _CHANNEL_RE.fullmatch(name):
        raise ConfigurationError(
            "channel may only contain letters, digits and _ - = @ , . ;"
            f" (Pusher's naming rules), got {name!r:.80}"
        )
    if name.startswith("private-encrypted-"):
        raise ConfigurationError(
            f"channel {name!r:.80} is an end-to-end encrypted channel, which this sink does"
            " not encrypt for; use a public, private- or presence- channel"
        )
    return name


def check_event_name(name: object, what: str = "event name") -> str:
    """``name`` if Pusher accepts it as an event name, else :class:`ConfigurationError`."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{what} must be a non-empty string, got {name!r:.80}")
    if len(name) > MAX_EVENT_NAME_LENGTH:
        raise ConfigurationError(
            f"{what} must be at most {MAX_EVENT_NAME_LENGTH} characters, got {len(name)}"
        )
    if name.startswith("pusher:"):
        raise ConfigurationError(f"{what} {name!r:.80}: the 'pusher:' prefix is reserved")
    return name
