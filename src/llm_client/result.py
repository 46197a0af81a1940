"""The outcome of one call: :class:`LLMResult`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._replace import fast_replace
from .exceptions import LLMClientError, error_for_status
from .usage import Usage

__all__ = ["LLMResult"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LLMResult:
    """A complete answer (or a failure) in one normalized shape for every API.

    ``output`` is the text for completions and a float vector (or a list of them) for
    embeddings. ``status`` is HTTP-like: 200 on success. ``error`` is ``"OK"`` on success and
    a message a person can act on otherwise.
    """

    params: Mapping[str, Any]
    output: Any = None
    usage: Usage = field(default_factory=Usage)
    status: int = 200
    error: str = "OK"
    identifier: str | None = None
    operation: str = "chat"
    model: str = ""
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    finish_reason: str | None = None
    response_id: str | None = None
    attempts: int = 1
    cached: bool = False
    cache_similarity: float | None = None
    #: Response headers worth keeping (rate-limit headers); never stored, never in to_dict().
    headers: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status < 400

    def replace(self, **changes: Any) -> LLMResult:
        return fast_replace(self, changes)

    def to_dict(self) -> dict[str, Any]:
        """The seed's result dict: ``params, output, usage, status, error, identifier`` and more."""
        return {
            "params": dict(self.params),
            "output": self.output,
            "usage": self.usage.to_dict(),
            "status": self.status,
            "error": self.error,
            "identifier": self.identifier,
            "operation": self.operation,
            "model": self.model,
            "tool_calls": [dict(t) for t in self.tool_calls],
            "finish_reason": self.finish_reason,
            "response_id": self.response_id,
            "attempts": self.attempts,
            "cached": self.cached,
            "cache_similarity": self.cache_similarity,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LLMResult:
        return cls(
            params=dict(data.get("params") or {}),
            output=data.get("output"),
            usage=Usage.from_dict(data.get("usage") or {}),
            status=int(data.get("status", 200)),
            error=str(data.get("error", "OK")),
            identifier=data.get("identifier"),
            operation=str(data.get("operation", "chat")),
            model=str(data.get("model", "")),
            tool_calls=tuple(data.get("tool_calls") or ()),
            finish_reason=data.get("finish_reason"),
            response_id=data.get("response_id"),
            attempts=int(data.get("attempts", 1)),
            cached=bool(data.get("cached", False)),
            cache_similarity=data.get("cache_similarity"),
        )

    @classmethod
    def from_error(
        cls,
        error: LLMClientError,
        *,
        params: Mapping[str, Any],
        operation: str,
        model: str,
        identifier: str | None = None,
    ) -> LLMResult:
        usage = error.usage if isinstance(error.usage, Usage) else Usage()
        return cls(
            params=params,
            output=None,
            usage=usage,
            status=error.status,
            error=f"{type(error).__name__}: {error.message}",
            identifier=identifier,
            operation=operation,
            model=model,
            attempts=error.attempts,
        )

    def raise_for_status(self) -> LLMResult:
        """Raise the matching :class:`LLMClientError` if this result is a failure."""
        if self.ok:
            return self
        err = error_for_status(self.status, self.error)
        err.usage = self.usage
        err.attempts = self.attempts
        raise err
