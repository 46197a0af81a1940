"""Backend options: what a factory declares it takes (its signature or :func:`accepts`), the
shared cache settings offered to every backend, and "did you mean" suggestions."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ..exceptions import ConfigurationError


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """``" (did you mean `timeout`?)"`` for the nearest of ``valid``, or ``""``."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def declared_options(factory: Callable[..., Any]) -> frozenset[str] | None:
    """The keyword options ``factory`` declares, or ``None`` if it takes ``**kwargs``.

    A factory declares its options through its signature; one that still takes ``**kwargs``
    receives everything and cannot be checked.
    """
    explicit = getattr(factory, "options", None)
    if isinstance(explicit, (frozenset, set, tuple, list)):
        return frozenset(explicit)
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    names: set[str] = set()
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.add(p.name)
    return frozenset(names)


_F = TypeVar("_F", bound=Callable[..., Any])


def accepts(*names: str) -> Callable[[_F], _F]:
    """Declare the keyword options a backend factory takes, for a factory that forwards
    ``**options`` (so that its module can stay cheap to import)::

        @accepts("redis_url", "cache_collection", "ttl")
        def create_cache(**options): ...

    The options are then known to the client before the factory runs, and a call with any
    other option raises :class:`ConfigurationError` naming the nearest declared one.
    """
    allowed = frozenset(names)

    def wrap(factory: _F) -> _F:
        @functools.wraps(factory)
        def checked(*args: Any, **options: Any) -> Any:
            check_factory_options("factory", factory.__name__, checked, options)
            return factory(*args, **options)

        checked.options = allowed  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return wrap


#: The client's cache settings, offered to every cache backend: each takes those its factory
#: declares (``"fs"`` takes ``cache_dir``, ``"redis"`` takes ``redis_url`` ...), so one set of
#: settings can serve whichever backend is chosen. Any other option must be declared.
SHARED_CACHE_SETTINGS = frozenset(
    {
        "cache_dir",
        "cache_collection",
        "ttl",
        "cache_ttl",
        "pg_dsn",
        "redis_url",
        "qdrant_url",
        "qdrant_api_key",
    }
)


def offered(
    factory: Callable[..., Any], options: Mapping[str, Any], shared: Iterable[str]
) -> dict[str, Any]:
    """``options`` without the ``shared`` settings that ``factory`` does not declare."""
    accepted = declared_options(factory)
    if accepted is None:
        return dict(options)
    shared = frozenset(shared)
    return {k: v for k, v in options.items() if k in accepted or k not in shared}


def check_factory_options(
    kind: str, name: str, factory: Callable[..., Any], options: Mapping[str, Any]
) -> None:
    """Raise :class:`ConfigurationError` for any option ``factory`` does not declare."""
    accepted = declared_options(factory)
    if accepted is None:
        return
    unknown = sorted(set(options) - accepted)
    if unknown:
        bad = unknown[0]
        raise ConfigurationError(
            f"the {name!r} {kind} has no option {bad!r}{did_you_mean(bad, accepted)};"
            f" it takes: {', '.join(sorted(accepted)) or '(none)'}"
        )
