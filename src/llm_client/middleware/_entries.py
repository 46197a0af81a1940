"""What the cache step stores, and what it makes of a stored entry.

:func:`entry_for` builds the entry for an answer (the request parameters reduced to request
content, a known secret refused); :func:`exact_hit` turns a stored value into the hit a call
receives; :func:`deterministic_failure` says which failures ``cache_errors`` may store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..cache import CacheEntry, cache_scope, stored_params
from ..exceptions import is_transient_status
from ..known_secrets import find_secret
from ..result import LLMResult
from ..usage import USAGE_FIELDS, Usage
from ._semantic import CallState

__all__ = ["deterministic_failure", "entry_for", "exact_hit"]


def deterministic_failure(status: int) -> bool:
    """A failure worth storing with ``cache_errors``: a 4xx about the request itself, not a
    transient one (:func:`~llm_client.exceptions.is_transient_status`)."""
    return 400 <= status < 500 and not is_transient_status(status)


def exact_hit(value: Mapping[str, Any], identifier: str) -> LLMResult:
    """What :meth:`CacheMiddleware._deliver` makes of ``LLMResult.from_dict(value)`` for an
    exact hit (``cached``, no attempts, the usage reported as saved as by
    :meth:`Usage.as_saved() <llm_client.usage.Usage.as_saved>`, ``identifier``), built in one
    go rather than as a result and then a copy of it: this runs on every hit.

    ``value`` has passed :func:`~llm_client.cache.checks.check_result_value`, so its fields
    have their types already; only what ``from_dict`` defaults or copies is done here.
    """
    counts = dict(value.get("usage") or {})
    counts.pop("total_cost", None)  # written by Usage.to_dict, not a field
    get = counts.get
    counts["saved_cost"] = (
        (get("input_cost", 0.0) + get("cached_input_cost", 0.0))
        + get("output_cost", 0.0)
        + get("saved_cost", 0.0)
    )
    counts["input_cost"] = counts["cached_input_cost"] = counts["output_cost"] = 0.0
    if "estimated" in counts:
        counts["estimated"] = counts["estimated"] is True
    try:
        usage = Usage(**counts)
    except TypeError:  # a field this version does not know (from a newer writer)
        usage = Usage(**{k: v for k, v in counts.items() if k in USAGE_FIELDS})
    tool_calls = value.get("tool_calls")
    return LLMResult(
        params=dict(value["params"]),
        output=value.get("output"),
        usage=usage,
        status=value["status"],
        error=value.get("error", "OK"),
        identifier=identifier,
        operation=value.get("operation", "chat"),
        model=value.get("model", ""),
        tool_calls=tuple(tool_calls) if tool_calls else (),
        finish_reason=value.get("finish_reason"),
        response_id=value.get("response_id"),
        attempts=0,
        cached=True,
    )


def entry_for(
    ctx: CallState, result: LLMResult, semantic: bool, collection: str | None
) -> tuple[CacheEntry | None, str | None]:
    """The entry to store for ``result``, or ``(None, what)`` if the request or the answer
    holds a known secret (``what`` names it).

    The answer is stored exactly as it came; the request parameters lose only what is
    not request content (credentials, transport options: :func:`stored_params`).
    """
    call = ctx.call
    value = result.replace(
        params=stored_params(result.params),
        identifier=ctx.identifier,
        cached=False,
        cache_similarity=None,
    ).to_dict()
    if ctx.scope is None:
        try:
            ctx.scope = cache_scope(call, collection=collection)
        except TypeError:
            ctx.scope = ""
    prompt = ctx.prompt if semantic and ctx.prompt else None
    found = find_secret((value, prompt))
    if found is not None:
        return None, found
    entry = CacheEntry(
        key=ctx.key,
        value=value,
        model=result.model or call.model,
        operation=call.operation,
        scope=ctx.scope,
        prompt=prompt,
    )
    return entry, None
