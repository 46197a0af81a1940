"""SDK failures as our :class:`~llm_client.exceptions.LLMClientError` hierarchy, and the response
headers a result keeps."""

from __future__ import annotations

import json
from collections.abc import Mapping

import openai

from ..exceptions import (
    APIConnectionError,
    APITimeoutError,
    LLMClientError,
    ResponseDecodeError,
    error_for_status,
)
from ..headers import parse_retry_after

__all__ = ["translate"]

#: Headers kept on results for the rate limiter (never stored, never logged).
_KEPT_HEADERS = ("retry-after", "retry-after-ms", "x-request-id")


def _kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        k.lower(): v
        for k, v in headers.items()
        if k.lower().startswith("x-ratelimit-") or k.lower() in _KEPT_HEADERS
    }


def _error_message(body: object, fallback: str) -> str:
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
    return fallback


def translate(exc: BaseException) -> LLMClientError:
    """Map an SDK (or decode) exception to our hierarchy."""
    if isinstance(exc, LLMClientError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        headers = exc.response.headers
        err: LLMClientError = error_for_status(
            exc.status_code,
            _error_message(exc.body, exc.message),
            retry_after=parse_retry_after(headers),
        )
        err.headers = _kept_headers(headers)
        return err
    if isinstance(exc, openai.APITimeoutError):
        return APITimeoutError("the request to the API timed out")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return APIConnectionError(f"could not reach the API: {cause!s}".rstrip(": "))
    if isinstance(exc, json.JSONDecodeError):
        return ResponseDecodeError(f"the API sent malformed JSON: {exc}")
    if isinstance(exc, openai.APIResponseValidationError):
        return ResponseDecodeError(f"the API sent an unexpected body: {exc.message}")
    if isinstance(exc, openai.APIError):  # an error event inside a stream
        return error_for_status(500, f"the API reported an error in the stream: {exc.message}")
    if isinstance(exc, openai.OpenAIError):
        return APIConnectionError(f"{type(exc).__name__}: {exc}")
    raise exc
