"""The client's own per-call options: :class:`CallOptions`, checked and never sent to OpenAI."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, fields
from typing import Any

from .base import (
    APIS,
    Api,
    _fail,
    _is_number,
    _show,
)

_FLOAT_MAX = sys.float_info.max
_FLAGS = ("hash_as_identifier", "cache_response", "cache_errors", "rewrite_cache", "regen_cache")


def check_call_options(
    *,
    identifier: Any = None,
    attempts: Any = None,
    backoff: Any = None,
    timeout: Any = None,
    api: Any = None,
    **flags: Any,
) -> None:
    """Check the client's own per-call options (not sent to OpenAI)."""
    if identifier is not None and not (isinstance(identifier, str) and identifier):
        _fail(f"identifier must be a non-empty string (a cache key), got {_show(identifier)}")
    for name, value in flags.items():
        if type(value) is not bool:
            _fail(f"{name} must be True or False, got {_show(value)}")
    if attempts is not None and (
        not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1
    ):
        _fail(f"attempts must be an integer >= 1, got {_show(attempts)}")
    # Seconds end up as floats (asyncio's clock, the SDK's httpx timeout): an int too large for
    # one (10**400) is refused here, where it would otherwise raise OverflowError mid-call.
    if backoff is not None and not (_is_number(backoff) and 0 <= backoff <= _FLOAT_MAX):
        _fail(f"backoff must be a finite number of seconds >= 0, got {_show(backoff)}")
    if timeout is not None and not (_is_number(timeout) and 0 < timeout <= _FLOAT_MAX):
        _fail(f"timeout must be a finite, positive number of seconds, got {_show(timeout)}")
    if api is not None and api not in APIS:
        _fail(f"api must be 'chat' or 'responses', got {_show(api)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CallOptions:
    """The client's own per-call options, shared by ``invoke``, ``get_response`` and
    ``stream`` (which also take them as flat keywords). Checked on construction; none of them
    is sent to OpenAI."""

    identifier: str | None = None
    """Explicit cache key; overrides the one derived from the request."""
    hash_as_identifier: bool = True
    """Derive the cache key from the request when no identifier is given; with ``False`` and
    no identifier the call neither reads nor writes the cache."""
    cache_response: bool = True
    """Store the answer in the cache (successes only, unless :attr:`cache_errors`)."""
    cache_errors: bool = False
    """Also store failed results."""
    rewrite_cache: bool = False
    """Skip the read, call the API and overwrite the entry on success."""
    regen_cache: bool = False
    """Delete the entry first, call the API and store the new answer."""
    attempts: int | None = None
    """Attempts for this call (default: the client's :class:`~llm_client.config.RetryConfig`)."""
    backoff: float | None = None
    """Back-off base in seconds for this call (default: the client's)."""
    timeout: float | None = None
    """Deadline of this call in seconds, over every attempt and wait (default: the client's)."""
    api: Api | None = None
    """``"chat"`` or ``"responses"`` for this call (default: the client's ``api``)."""
    stream_idle_timeout: float | None = None
    """For :meth:`~llm_client.OpenAIClient.stream` only: the longest wait in seconds for the
    next piece of this stream (default: the client's)."""

    def __post_init__(self) -> None:
        if not (  # the defaults need no checking: the common case stays cheap
            self.identifier is None
            and self.attempts is None
            and self.backoff is None
            and self.timeout is None
            and self.api is None
            and self.hash_as_identifier is True
            and self.cache_response is True
            and self.cache_errors is False
            and self.rewrite_cache is False
            and self.regen_cache is False
            and self.stream_idle_timeout is None
        ):
            check_call_options(
                identifier=self.identifier,
                attempts=self.attempts,
                backoff=self.backoff,
                timeout=self.timeout,
                api=self.api,
                hash_as_identifier=self.hash_as_identifier,
                cache_response=self.cache_response,
                cache_errors=self.cache_errors,
                rewrite_cache=self.rewrite_cache,
                regen_cache=self.regen_cache,
            )
            idle = self.stream_idle_timeout
            if idle is not None and not (_is_number(idle) and 0 < idle < math.inf):
                _fail(
                    "stream_idle_timeout must be a finite, positive number of seconds,"
                    f" got {_show(idle)}"
                )

    @classmethod
    def take(cls, keywords: dict[str, Any], base: CallOptions | None = None) -> CallOptions:
        """Move the per-call options out of ``keywords`` (what is left are request
        parameters) into a :class:`CallOptions`, on top of ``base``."""
        base = _DEFAULT_OPTIONS if base is None else base
        if not isinstance(base, CallOptions):
            _fail(f"options must be a llm_client.CallOptions, got {type(base).__name__}")
        if not keywords or CALL_OPTIONS.isdisjoint(keywords):
            return base
        given = {name: keywords.pop(name) for name in CALL_OPTIONS if name in keywords}
        values = {f: getattr(base, f) for f in CALL_OPTIONS}
        values.update(given)
        return cls(**values)


#: The names of :class:`CallOptions`' fields.
CALL_OPTIONS = frozenset(f.name for f in fields(CallOptions))
#: Names a per-call keyword is compared with when it is not an API parameter.
_OWN_NAMES = sorted({*CALL_OPTIONS, "messages", "input", "raise_on_error", "options"})


_DEFAULT_OPTIONS = CallOptions()
