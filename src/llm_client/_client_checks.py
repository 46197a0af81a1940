"""Checks :class:`~llm_client.OpenAIClient` makes on what it is constructed with, before it
builds anything: the objects it is handed, and the options a custom chain would ignore."""

from __future__ import annotations

from typing import Any

import pluggy

from .config import DEFAULT_CHAIN_ONLY, SHORTCUTS, did_you_mean, keyword_names
from .exceptions import ConfigurationError
from .pipeline import Pipeline


def _refuse_beside_pipeline(given: dict[str, Any]) -> None:
    """``pipeline=`` replaces the default chain, so its options would be silently ignored."""
    for name, value in given.items():
        if name in ("api", "connection", "max_concurrency") or (
            name in SHORTCUTS and (SHORTCUTS[name][0][0] == "connection")
        ):
            continue
        if name in DEFAULT_CHAIN_ONLY and value is None:
            continue
        if name not in DEFAULT_CHAIN_ONLY and name not in SHORTCUTS:
            valid = keyword_names()
            raise ConfigurationError(
                f"OpenAIClient got an unknown option {name!r}{did_you_mean(name, valid)}."
                " The options are listed in docs/api.md (llm_client.config)"
            )
        raise ConfigurationError(
            f"{name}= configures the default chain, which pipeline= replaces, so it would be"
            " ignored. Configure the steps of your own chain instead: build it with"
            " Pipeline.default(model, ...) and change it (insert_before, replace, remove), or"
            " construct the step itself (e.g. Retry(attempts), RateLimit(Limiter(...)),"
            " CacheMiddleware(backend)) and pass the result as pipeline="
        )


def _check_types(*, pipeline: Any, plugin_manager: Any, clock: Any) -> None:
    """Objects the client is handed must be what it will use, or it fails later and bare."""
    if pipeline is not None and not isinstance(pipeline, Pipeline):
        raise ConfigurationError(
            f"pipeline must be a llm_client.Pipeline, got {type(pipeline).__name__}"
        )
    if plugin_manager is not None and not isinstance(plugin_manager, pluggy.PluginManager):
        raise ConfigurationError(
            "plugin_manager must be a pluggy.PluginManager (llm_client.plugins."
            f"new_plugin_manager()), got {type(plugin_manager).__name__}"
        )
    if clock is not None and not (
        callable(getattr(clock, "now", None)) and callable(getattr(clock, "sleep", None))
    ):
        raise ConfigurationError(
            "clock must have now() and async sleep(seconds) (llm_client.clock.Clock),"
            f" got {type(clock).__name__}"
        )
