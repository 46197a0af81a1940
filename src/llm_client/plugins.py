"""The plugin manager and the registries that hooks fill.

Built-ins in :data:`BUILTIN_PLUGINS` register first, through the same hooks a third-party
plugin uses; then plugins installed under the ``llm_client`` entry-point group load, unless
``LLM_CLIENT_DISABLE_PLUGIN_AUTOLOAD=1``. Hooks run once per plugin manager, when its registry
is first needed; nothing here runs per request.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs
from .config import SHARED_CACHE_SETTINGS, check_factory_options, env_flag, offered
from .exceptions import PluginError, UnknownBackendError

__all__ = [
    "BUILTIN_PLUGINS",
    "KNOWN_PLUGINS",
    "Registration",
    "Registry",
    "cache_backend",
    "event_buffer",
    "get_plugin_manager",
    "get_registry",
    "lookup",
    "new_plugin_manager",
    "rate_limiter",
    "registered_tool",
]

BUILTIN_PLUGINS: tuple[str, ...] = ("llm_client.cache", "llm_client.sinks")

#: Names provided by our separately installed plugin distributions, for error messages.
KNOWN_PLUGINS: dict[str, str] = {
    "pg_redis": "llm-client-postgres",
    "postgres": "llm-client-postgres",
    "redis": "llm-client-redis",
    "qdrant": "llm-client-qdrant",
    "pusher": "llm-client-pusher",
}

AUTOLOAD_ENV = "LLM_CLIENT_DISABLE_PLUGIN_AUTOLOAD"


@dataclass(frozen=True, slots=True)
class Registration:
    name: str
    factory: Any
    plugin: str
    before: str | None = None
    after: str | None = None


@dataclass
class Registry:
    """What the hooks registered, by kind and name."""

    cache_backends: dict[str, Registration] = field(default_factory=dict)
    rate_limiters: dict[str, Registration] = field(default_factory=dict)
    sinks: dict[str, Registration] = field(default_factory=dict)
    tools: dict[str, Registration] = field(default_factory=dict)
    middleware: dict[str, Registration] = field(default_factory=dict)
    event_buffers: dict[str, Registration] = field(default_factory=dict)


def new_plugin_manager(*, autoload: bool | None = None) -> pluggy.PluginManager:
    """A fresh manager with the built-ins registered, and entry points loaded if ``autoload``.

    ``autoload=None`` follows ``LLM_CLIENT_DISABLE_PLUGIN_AUTOLOAD``.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for dotted in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(dotted), name=dotted)
    if autoload is None:
        autoload = not env_flag(AUTOLOAD_ENV)
    if autoload:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    return pm


_default_pm: pluggy.PluginManager | None = None
_lock = threading.Lock()
_registries: dict[int, tuple[pluggy.PluginManager, Registry]] = {}


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, built lazily once."""
    global _default_pm
    with _lock:
        if _default_pm is None:
            _default_pm = new_plugin_manager()
        return _default_pm


def _plugin_name(pm: pluggy.PluginManager, impl: Any) -> str:
    return str(pm.get_name(impl.plugin) or getattr(impl.plugin, "__name__", repr(impl.plugin)))


def _collect(
    pm: pluggy.PluginManager, hook_name: str, table: dict[str, Registration], kind: str
) -> None:
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():  # registration order: built-ins first
        plugin = _plugin_name(pm, impl)

        def register(
            name: Any,
            factory: Any = None,
            *,
            before: str | None = None,
            after: str | None = None,
            _plugin: str = plugin,
        ) -> None:
            if kind == "tool":  # register(tool): a Tool, or a function (named by __name__)
                factory = name
                name = getattr(name, "name", None) or getattr(name, "__name__", None)
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {_plugin!r} registered a {kind} without a name")
            if factory is None or (not callable(factory) and kind != "tool"):
                raise PluginError(
                    f"plugin {_plugin!r} registered {kind} {name!r} without a factory"
                )
            if name in table:
                raise PluginError(
                    f"{kind} {name!r} is registered twice: by plugin {table[name].plugin!r}"
                    f" and by plugin {_plugin!r}"
                )
            table[name] = Registration(name, factory, _plugin, before, after)

        impl.function(register=register)


def get_registry(pm: pluggy.PluginManager | None = None) -> Registry:
    """The registry of ``pm`` (default: the process-wide manager), built once per manager."""
    pm = pm or get_plugin_manager()
    with _lock:
        cached = _registries.get(id(pm))
        if cached is not None and cached[0] is pm:
            return cached[1]
    reg = Registry()
    _collect(pm, "register_cache_backends", reg.cache_backends, "cache backend")
    _collect(pm, "register_rate_limiters", reg.rate_limiters, "rate-limit backend")
    _collect(pm, "register_sinks", reg.sinks, "sink")
    _collect(pm, "register_tools", reg.tools, "tool")
    _collect(pm, "register_middleware", reg.middleware, "middleware")
    _collect(pm, "register_event_buffers", reg.event_buffers, "event buffer")
    with _lock:
        _registries[id(pm)] = (pm, reg)
    return reg


def lookup(table: dict[str, Registration], kind: str, name: str) -> Registration:
    """The registration of ``name`` in ``table``; an unknown name lists what is installed."""
    found = table.get(name)
    if found is None:
        package = KNOWN_PLUGINS.get(name)
        hint = f"install the {package!r} package to get it" if package else ""
        raise UnknownBackendError(kind, name, table, hint)
    return found


def cache_backend(
    name: str, /, *, plugin_manager: pluggy.PluginManager | None = None, **options: Any
) -> Any:
    """Build the cache backend registered as ``name`` with ``options``.

    The client's shared cache settings (:data:`~llm_client.config.SHARED_CACHE_SETTINGS`:
    ``cache_dir``, ``pg_dsn``, ``redis_url`` ...) reach the backend only if it declares them;
    every other option must be one it declares.

    :raises ConfigurationError: an option its factory does not declare, naming the nearest.
    """
    reg = lookup(get_registry(plugin_manager).cache_backends, "cache backend", name)
    factory: Callable[..., Any] = reg.factory
    options = offered(factory, options, SHARED_CACHE_SETTINGS)
    check_factory_options("cache backend", name, factory, options)
    return factory(**options)


def rate_limiter(
    name: str, /, *, plugin_manager: pluggy.PluginManager | None = None, **options: Any
) -> Any:
    """Build the rate-limit backend registered as ``name`` with ``options``.

    :raises ConfigurationError: an option its factory does not declare, naming the nearest.
    """
    reg = lookup(get_registry(plugin_manager).rate_limiters, "rate-limit backend", name)
    factory: Callable[..., Any] = reg.factory
    check_factory_options("rate-limit backend", name, factory, options)
    return factory(**options)


def registered_tool(name: str, /, *, plugin_manager: pluggy.PluginManager | None = None) -> Any:
    """The tool (a :class:`~llm_client.agent.Tool` or a function) a plugin registered as
    ``name`` through the ``register_tools`` hook."""
    return lookup(get_registry(plugin_manager).tools, "tool", name).factory


def event_buffer(
    name: str, /, *, plugin_manager: pluggy.PluginManager | None = None, **options: Any
) -> Any:
    """Build the event buffer (for resumable SSE streams) registered as ``name``."""
    reg = lookup(get_registry(plugin_manager).event_buffers, "event buffer", name)
    factory: Callable[..., Any] = reg.factory
    check_factory_options("event buffer", name, factory, options)
    return factory(**options)
