"""One exception hierarchy for everything llm-client raises.

Every error carries an HTTP-like ``status`` (what ``get_response`` puts in its result dict)
and, when the server said so, ``retry_after`` in seconds. ``retryable`` tells the retry policy
whether another attempt could succeed; which statuses are transient is said once, by
:data:`RETRYABLE_STATUSES` and :func:`is_transient_status` (used by the retry policy, by
:func:`error_for_status` and by the cache, which never stores a transient failure).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .known_secrets import redact_registered

__all__ = [
    "RETRYABLE_STATUSES",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CacheUnavailableError",
    "ConfigurationError",
    "ConflictError",
    "ContextLengthExceededError",
    "DeadlineExceededError",
    "IncompleteResponseError",
    "InvalidRequestError",
    "LLMClientError",
    "NotFoundError",
    "PermissionDeniedError",
    "PluginError",
    "RateLimitError",
    "RequestTooLargeError",
    "ResponseDecodeError",
    "ServerError",
    "StreamInterruptedError",
    "UnknownBackendError",
    "UnknownModelError",
    "UnprocessableEntityError",
    "error_for_status",
    "is_transient_status",
]

#: The client-error statuses worth another attempt, as the official SDK retries them
#: (``openai._base_client.BaseClient._should_retry``): a timeout (408), a conflict (409) and a
#: rate limit (429). Every 5xx is transient too (:func:`is_transient_status`). Never
#: 400/401/403/404/422: the same request would fail the same way.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def is_transient_status(status: int) -> bool:
    """Whether ``status`` says something about this moment rather than about the request:
    one of :data:`RETRYABLE_STATUSES` or a server error (>= 500). Such failures are retried
    and never cached."""
    return status >= 500 or status in RETRYABLE_STATUSES


class LLMClientError(Exception):
    """Base of every error raised by llm-client.

    :param message: what went wrong, written for the person reading the log.
    :param status: HTTP-like status code; defaults to the class's ``default_status``.
    :param retry_after: seconds the server asked us to wait, if it said.
    """

    default_status: int = 500
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        # Error text may come from a server that echoes the key it refused: never keep it.
        message = redact_registered(message)
        super().__init__(message)
        self.message = message
        self.status = self.default_status if status is None else status
        self.retry_after = retry_after
        #: Response headers of the failed attempt (rate-limit headers), if any.
        self.headers: Mapping[str, str] = {}
        #: Usage reported before the failure (a :class:`~llm_client.usage.Usage`), if any.
        self.usage: object | None = None
        #: How many attempts the call made before giving up.
        self.attempts = 1

    def __str__(self) -> str:
        return self.message


# --- bad input: raised at once, before anything is sent -------------------------------------


class ConfigurationError(LLMClientError, ValueError):
    """An argument to the client or a component is invalid (raised at construction)."""

    default_status = 400


def _choices(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(repr(n) for n in listed) if listed else "(none)"


class UnknownModelError(ConfigurationError, KeyError):
    """No model profile is registered under the given key."""

    def __init__(self, key: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown model {key!r}; registered model keys: {_choices(known)}")
        self.key = key

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message


class UnknownBackendError(ConfigurationError, KeyError):
    """No plugin registered a backend under the given name."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = "") -> None:
        msg = f"unknown {kind} {name!r}; installed: {_choices(known)}"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)
        self.name = name

    def __str__(self) -> str:
        return self.message


class PluginError(ConfigurationError):
    """A plugin is broken or two plugins claim the same name."""


class InvalidRequestError(LLMClientError, ValueError):
    """The request itself is malformed (messages, input, parameters)."""

    default_status = 400


class ContextLengthExceededError(InvalidRequestError):
    """The counted input is larger than the model's input limit."""

    default_status = 400


class RequestTooLargeError(InvalidRequestError):
    """A request asks for more rate-limit budget than a whole minute holds: it can never run."""

    default_status = 413


# --- failures of a call ------------------------------------------------------------------------


class DeadlineExceededError(LLMClientError):
    """The call's overall ``timeout`` ran out (over all attempts, waits and back-off)."""

    default_status = 408


class APIError(LLMClientError):
    """The API answered with an error status."""

    retryable = False


class BadRequestError(APIError):
    default_status = 400


class AuthenticationError(APIError):
    default_status = 401


class PermissionDeniedError(APIError):
    default_status = 403


class NotFoundError(APIError):
    default_status = 404


class ConflictError(APIError):
    default_status = 409
    retryable = True


class UnprocessableEntityError(APIError):
    default_status = 422


class RateLimitError(APIError):
    default_status = 429
    retryable = True


class ServerError(APIError):
    default_status = 500
    retryable = True


class ResponseDecodeError(APIError):
    """The server's body or a stream chunk was not valid JSON / not the expected shape."""

    default_status = 502
    retryable = True


class IncompleteResponseError(APIError):
    """The model stopped before finishing (e.g. ``response.incomplete``), and says why."""

    default_status = 502
    retryable = False


class CacheUnavailableError(LLMClientError):
    """A cache server did not answer; the cache middleware goes on without the cache."""

    default_status = 503


class APIConnectionError(LLMClientError):
    """The request never got a complete answer: connection refused, reset or dropped."""

    default_status = 503
    retryable = True


class APITimeoutError(APIConnectionError):
    """One attempt timed out at the HTTP layer."""

    default_status = 408


class StreamInterruptedError(APIConnectionError):
    """A stream ended before its finish marker: the answer is truncated."""

    default_status = 502


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_for_status(status: int, message: str, *, retry_after: float | None = None) -> APIError:
    """Build the right :class:`APIError` subclass for an HTTP status."""
    cls: type[APIError]
    if status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif is_transient_status(status):
        cls = ServerError  # a 5xx, or a 408 (request timeout at the server): retried alike
    else:
        cls = APIError
    return cls(message, status=status, retry_after=retry_after)
