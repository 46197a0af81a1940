"""Building the :class:`~llm_client.pipeline.Call` of one call from its public arguments, with
the API-specific renames."""

from __future__ import annotations

from typing import Any

from ..models import ModelProfile
from ..pipeline import CacheOptions, Call, Operation
from .base import (
    Api,
    _fail,
)
from .embeddings import embedding_input
from .messages import (
    chat_messages,
)
from .options import (
    CallOptions,
)
from .params import (
    _MAX_OUTPUT_TOKENS,
    _MAX_TOKENS,
    _check_params,
)
from .responses import responses_input
from .tools import (
    responses_tools,
)

#: Keys that are transport options or secrets: never accepted as generation parameters.
FORBIDDEN_PARAMS = frozenset(
    {
        "api_key",
        "organization",
        "base_url",
        "extra_headers",
        "extra_query",
        "extra_body",
        "http_client",
        "max_retries",
    }
)


_SHARED_CACHE_OPTIONS: dict[tuple[bool, bool, bool, bool, bool], CacheOptions] = {}


def _cache_options(opts: CallOptions) -> CacheOptions:
    """The call's :class:`CacheOptions`. Without an ``identifier`` only five flags vary, so
    those are made once and shared (the options are frozen): every call needs them."""
    flags = (
        opts.hash_as_identifier,
        opts.cache_response,
        opts.cache_errors,
        opts.rewrite_cache,
        opts.regen_cache,
    )
    if opts.identifier is None:
        shared = _SHARED_CACHE_OPTIONS.get(flags)
        if shared is not None:
            return shared
    made = CacheOptions(
        identifier=opts.identifier,
        hash_as_identifier=flags[0],
        cache_response=flags[1],
        cache_errors=flags[2],
        rewrite_cache=flags[3],
        regen_cache=flags[4],
    )
    if opts.identifier is None and all(type(flag) is bool for flag in flags):
        _SHARED_CACHE_OPTIONS[flags] = made
    return made


def build_call(
    profile: ModelProfile,
    default_api: Api,
    messages: Any,
    input: Any,
    params: dict[str, Any],
    *,
    stream: bool,
    options: CallOptions | None = None,
) -> Call:
    """Check one call's arguments and build its :class:`Call`.

    ``params`` are the caller's extra keywords: the per-call options among them (the fields
    of :class:`CallOptions`, applied on top of ``options``) are taken out, and the rest are
    generation parameters. The dict is consumed.

    :raises InvalidRequestError: anything malformed, naming the parameter and what it takes;
        a keyword that is a near miss of one of our own option names (``timout=``) too.
    """
    opts = CallOptions.take(params, options)
    api = opts.api
    if opts.stream_idle_timeout is not None and not stream:
        _fail("stream_idle_timeout applies to streams: use client.stream(...), or timeout=...")
    if params:
        bad = FORBIDDEN_PARAMS.intersection(params)
        if bad:
            _fail(
                f"{', '.join(sorted(bad))} is a client or transport option, not a request"
                " parameter: pass it to OpenAIClient(...)"
            )
        if "stream" in params:
            _fail("use client.stream(...) for streaming, not stream=True")
        if "model" in params:
            _fail("model is chosen when the client is made: OpenAIClient(model, ...)")
    operation: Operation = "embeddings" if profile.is_embeddings else (api or default_api)
    body: dict[str, Any] = {"model": profile.model_name}
    if operation == "embeddings":
        if messages is not None:
            _fail(f"{profile.key} is an embeddings model: pass input=..., not messages")
        body["input"] = embedding_input(input)
    elif operation == "chat":
        if messages is None:
            if input is None:
                _fail("pass messages=[...] (or input='...')")
            name = "input"
            messages = [{"role": "user", "content": input}] if isinstance(input, str) else input
        else:
            name = "messages"
        body["messages"] = chat_messages(messages, name)
        if "max_tokens" in params:
            _MAX_TOKENS("max_tokens", params["max_tokens"])
            if "max_completion_tokens" not in params:
                params["max_completion_tokens"] = params.pop("max_tokens")
    else:
        if input is None:
            if messages is None:
                _fail("pass input='...' or messages=[...]")
            if isinstance(messages, str):
                _fail("messages must be a list of messages; pass a plain string as input='...'")
            body["input"] = responses_input(messages, "messages")
        else:
            body["input"] = responses_input(input)
        for old in ("max_tokens", "max_completion_tokens"):
            if old in params and "max_output_tokens" not in params:
                value = params.pop(old)
                _MAX_OUTPUT_TOKENS(f"{old} (sent as max_output_tokens)", value)
                params["max_output_tokens"] = value
        if "tools" in params:
            params["tools"] = responses_tools("tools", params["tools"])
    if params:
        _check_params(operation, params)
        body.update(params)
    return Call(
        profile=profile,
        operation=operation,
        params=body,
        stream=stream,
        cache=_cache_options(opts),
        timeout=opts.timeout,
        stream_idle_timeout=(
            None if opts.stream_idle_timeout is None else float(opts.stream_idle_timeout)
        ),
        attempts=opts.attempts,
        backoff=opts.backoff,
    )
