"""Plugins: discovery, registration by name, clear errors."""

from __future__ import annotations

from typing import ClassVar

import pytest

from llm_client import GPT5Nano, OpenAIClient, Pipeline
from llm_client.cache import MemoryCache
from llm_client.exceptions import PluginError, UnknownBackendError
from llm_client.hookspecs import hookimpl
from llm_client.middleware.cache import CacheMiddleware
from llm_client.plugins import BUILTIN_PLUGINS, get_registry, new_plugin_manager
from llm_client.testing import FakeOpenAI


class TinyCache(MemoryCache):
    """A third party's backend: counts what it is asked."""

    instances: ClassVar[list[TinyCache]] = []

    def __init__(self, **options):
        super().__init__()
        self.options = options
        self.gets = 0
        TinyCache.instances.append(self)

    async def get(self, key):
        self.gets += 1
        return await super().get(key)


class TinyPlugin:
    @hookimpl
    def register_cache_backends(self, register):
        register("tiny", lambda **options: TinyCache(**options))


class Tag:
    async def __call__(self, call, next):
        return await next(call.replace(context={**call.context, "tagged": True}))


class MiddlewarePlugin:
    @hookimpl
    def register_middleware(self, register):
        register("tag", lambda profile, **_: Tag(), before="retry")


@pytest.fixture
async def server():
    async with FakeOpenAI() as s:
        yield s


def test_builtins_register_through_hooks():
    pm = new_plugin_manager(autoload=False)
    assert set(BUILTIN_PLUGINS) <= {name for name, _ in pm.list_name_plugin()}
    assert {"memory", "fs", "sqlite"} <= set(get_registry(pm).cache_backends)


async def test_registered_plugin_backend_used_by_name(server):
    pm = new_plugin_manager(autoload=False)
    pm.register(TinyPlugin(), name="tiny-plugin")
    client = OpenAIClient(
        GPT5Nano,
        cache_backend="tiny",
        cache_collection="ns",
        plugin_manager=pm,
        base_url=server.base_url,
        api_key="k",
    )
    msg = [{"role": "user", "content": "plugin cache"}]
    a = await client.get_response(messages=msg)
    await client.pipeline.find(CacheMiddleware).flush()  # the write is in the backend now
    b = await client.get_response(messages=msg)
    await client.close()
    backend = TinyCache.instances[-1]
    assert backend.options["cache_collection"] == "ns"
    assert backend.gets >= 2 and not a["cached"] and b["cached"]
    assert server.count("chat") == 1


def test_unknown_backend_lists_installed_and_names_package():
    pm = new_plugin_manager(autoload=False)
    with pytest.raises(UnknownBackendError) as info:
        OpenAIClient(GPT5Nano, cache_backend="nosuch", plugin_manager=pm, api_key="k")
    assert "'memory'" in str(info.value) and "'sqlite'" in str(info.value)
    with pytest.raises(UnknownBackendError, match="llm-client-postgres"):
        OpenAIClient(GPT5Nano, cache_backend="pg_redis", plugin_manager=pm, api_key="k")


def test_duplicate_names_name_both_plugins():
    class Again:
        @hookimpl
        def register_cache_backends(self, register):
            register("memory", lambda **_: MemoryCache())

    pm = new_plugin_manager(autoload=False)
    pm.register(Again(), name="copycat")
    with pytest.raises(PluginError, match=r"'llm_client.cache'.*'copycat'"):
        get_registry(pm)


def test_plugin_middleware_is_placed_and_removable():
    pm = new_plugin_manager(autoload=False)
    pm.register(MiddlewarePlugin(), name="mw")
    p = Pipeline.default(GPT5Nano, plugin_manager=pm, rate_limit_backend=None)
    assert p.names() == ["cost", "timeout", "tokens", "tag", "retry"]
    p.remove("tag")
    assert "tag" not in p


def test_autoload_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("LLM_CLIENT_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = new_plugin_manager()
    names = {name for name, _ in pm.list_name_plugin()}
    assert names == set(BUILTIN_PLUGINS)
