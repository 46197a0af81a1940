"""llm_client.config: typed configuration, strict options, one precedence rule (issue 9 §1)."""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
import typing
from pathlib import Path
from typing import Any, ClassVar

import pytest

from llm_client import ConfigurationError, GPT5Nano, OpenAIClient, Pipeline
from llm_client.cache import MemoryCache
from llm_client.config import (
    SHORTCUTS,
    CacheConfig,
    ClientConfig,
    ClientKeywords,
    OpenAIConfig,
    RateLimitConfig,
    RetryConfig,
    TimeoutConfig,
    accepts,
    env_flag,
    keyword_names,
    parse_bool,
    postgres_dsn,
    qdrant_url,
    redis_url,
    resolve,
)
from llm_client.hookspecs import hookimpl
from llm_client.middleware.retry import Retry
from llm_client.middleware.timeout import Timeout
from llm_client.plugins import new_plugin_manager
from llm_client.rate_limit import Limiter
from llm_client.testing import FakeOpenAI

KEY = "sk-test-config"


@pytest.fixture
async def server():
    async with FakeOpenAI() as s:
        yield s


def client(**kw: Any) -> OpenAIClient:
    return OpenAIClient(GPT5Nano, api_key=KEY, **kw)


# --- unknown keywords name the nearest valid one ------------------------------------------------


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("timout", "timeout"),
        ("cache_tll", "cache_ttl"),
        ("max_concurency", "max_concurrency"),
        ("redis_ur", "redis_url"),
        ("cache_backnd", "cache_backend"),
        ("atempts", "attempts"),
        ("base_ur", "base_url"),
    ],
)
def test_a_misspelt_client_option_raises_with_the_nearest_name(typo: str, meant: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        client(**{typo: 5})
    message = str(info.value)
    assert repr(typo) in message and f"did you mean `{meant}`?" in message


def test_a_misspelt_option_is_refused_beside_any_backend(tmp_path: Path) -> None:
    for backend in (None, "memory", "fs", "sqlite"):
        with pytest.raises(ConfigurationError, match="did you mean `timeout`"):
            client(cache_backend=backend, cache_dir=tmp_path, timout=5)


@pytest.mark.parametrize(
    ("backend", "typo", "meant"),
    [
        ("memory", "max_entires", "max_entries"),
        ("fs", "fsynk", "fsync"),
        ("sqlite", "busy_timout", "busy_timeout"),
    ],
)
def test_a_misspelt_backend_option_raises(tmp_path: Path, backend: str, typo: str, meant: str):
    with pytest.raises(ConfigurationError) as info:
        client(cache_backend=backend, cache_dir=tmp_path, **{typo: 1})
    assert repr(typo) in str(info.value) and f"`{meant}`" in str(info.value)


def test_a_backend_option_of_another_backend_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="redis_ttl_seconds"):
        client(cache_backend="fs", cache_dir=tmp_path, redis_ttl_seconds=60)


def test_backend_options_reach_the_backend(tmp_path: Path) -> None:
    c = client(cache_backend="memory", max_entries=7)
    assert isinstance(c.cache, MemoryCache) and c.cache.max_entries == 7
    lite = client(cache_backend="sqlite", cache_dir=tmp_path, busy_timeout=3.0)
    assert lite.cache is not None and lite.cache.busy_timeout == 3.0


def test_shared_settings_are_offered_not_forced(tmp_path: Path) -> None:
    # one set of settings serves whichever backend is chosen: memory ignores cache_dir
    c = client(cache_backend="memory", cache_dir=tmp_path, cache_collection="ns")
    assert isinstance(c.cache, MemoryCache)


# --- the objects ---------------------------------------------------------------------------------


def test_configuration_objects_are_frozen_and_checked() -> None:
    config = RetryConfig(attempts=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.attempts = 5  # type: ignore[misc]
    for bad, named in [
        (lambda: RetryConfig(attempts=0), "attempts"),
        (lambda: RetryConfig(backoff=-1), "backoff"),
        (lambda: RetryConfig(attempts=True), "attempts"),
        (lambda: CacheConfig(ttl=0), "cache_ttl"),
        (lambda: CacheConfig(backend=42), "cache_backend"),
        (lambda: CacheConfig(semantic_threshold=2), "semantic_cache_threshold"),
        (lambda: RateLimitConfig(tokens_per_minute=-1), "tokens_per_minute"),
        (lambda: RateLimitConfig(backend=3), "rate_limit_backend"),  # type: ignore[arg-type]
        (lambda: RateLimitConfig(limiter=object()), "limiter"),
        (lambda: OpenAIConfig(base_url="localhost"), "base_url"),
        (lambda: OpenAIConfig(project=""), "project"),
        (lambda: TimeoutConfig(total=-2), "timeout"),
        (lambda: TimeoutConfig(stream_idle=math.nan), "stream_idle_timeout"),
        (lambda: ClientConfig(api="completions"), "api"),
        (lambda: ClientConfig(retry=3), "retry"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(ConfigurationError, match=named):
            bad()


def test_secrets_stay_out_of_repr() -> None:
    assert "sk-hidden" not in repr(OpenAIConfig(api_key="sk-hidden"))
    assert "qd-hidden" not in repr(CacheConfig(qdrant_api_key="qd-hidden"))


def test_objects_and_shortcuts_fill_the_same_fields(tmp_path: Path) -> None:
    by_object = client(
        caching=CacheConfig(backend="fs", dir=tmp_path, ttl=60),
        retry=RetryConfig(attempts=5, backoff=0.1),
        rate_limit=RateLimitConfig(tokens_per_minute=1000),
        timeouts=TimeoutConfig(total=9, stream_idle=2),
    )
    by_keyword = client(
        cache_backend="fs",
        cache_dir=tmp_path,
        cache_ttl=60,
        attempts=5,
        backoff=0.1,
        tokens_per_minute=1000,
        timeout=9,
        stream_idle_timeout=2,
    )
    assert by_object.config == by_keyword.config
    retry = by_object.pipeline.find(Retry)
    assert retry is not None and retry.attempts == 5
    timeout = by_keyword.pipeline.find(Timeout)
    assert timeout is not None and timeout.stream_idle_timeout == 2


def test_client_keywords_are_exactly_the_flat_keywords() -> None:
    # The TypedDict of the client's **options and the keywords the configuration accepts
    # cannot drift apart: with the client's named parameters, they are every keyword it takes.
    named = {
        name
        for name, p in inspect.signature(OpenAIClient).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    typed = ClientKeywords.__optional_keys__
    assert not ClientKeywords.__required_keys__
    assert typed == set(ClientKeywords.__annotations__)
    assert typed.isdisjoint(named)
    assert typed == set(SHORTCUTS) - named
    assert typed | named == keyword_names()
    forwarded: ClientKeywords = {"cache_backend": "memory", "attempts": 2}
    assert client(**forwarded).config.retry.attempts == 2


def test_the_client_s_typed_signatures_are_its_own() -> None:
    # The overloads type checkers see (flat keywords typed, then any backend option) take the
    # same named parameters as the constructor that runs.
    if sys.version_info < (3, 11):
        pytest.skip("typing.get_overloads is 3.11+")
    typed, open_ = typing.get_overloads(OpenAIClient.__init__)
    runs = list(inspect.signature(OpenAIClient.__init__).parameters.values())
    for overload in (typed, open_):
        params = list(inspect.signature(overload).parameters.values())
        assert params[:-1] == runs[:-1]
        assert params[-1].name == runs[-1].name and params[-1].kind is runs[-1].kind
    assert inspect.signature(typed).parameters["options"].annotation == "Unpack[ClientKeywords]"
    assert inspect.signature(open_).parameters["options"].annotation == "Any"
    assert runs[-1].annotation == "Any"


def test_a_shortcut_replaces_that_field_of_an_object_beside_it(tmp_path: Path) -> None:
    c = client(caching=CacheConfig(backend="memory", ttl=60), cache_ttl=5)
    assert c.config.caching.backend == "memory" and c.config.caching.ttl == 5


def test_connection_settings_reach_the_sdk(server: FakeOpenAI) -> None:
    c = OpenAIClient(
        GPT5Nano,
        connection=OpenAIConfig(
            api_key=KEY, base_url=server.base_url, organization="org-1", project="proj-1"
        ),
    )
    sdk = c._transport.sdk
    assert (sdk.api_key, sdk.organization, sdk.project) == (KEY, "org-1", "proj-1")
    assert str(sdk.base_url).rstrip("/") == server.base_url.rstrip("/")


def test_a_ready_sdk_client_is_not_configured_twice(server: FakeOpenAI) -> None:
    import openai

    sdk = openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
    assert OpenAIClient(GPT5Nano, sdk=sdk)._transport.sdk is sdk
    with pytest.raises(ConfigurationError, match="sdk="):
        OpenAIClient(GPT5Nano, sdk=sdk, base_url=server.base_url)


# --- connection strings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cache_backend": "redis", "redis_url": "nonsense"},
        {"cache_backend": "pg_redis", "pg_dsn": "nonsense"},
        {"cache_backend": "postgres", "pg_dsn": "mysql://u@h/db"},
        {"cache_backend": "qdrant", "qdrant_url": ":memory:"},
        {"cache_backend": "qdrant", "qdrant_url": "ftp://host:6333"},
        {"rate_limit_backend": "redis", "redis_url": "http://localhost:6379"},
        {"redis_url": "redis://localhost:port/0"},
    ],
)
def test_malformed_urls_and_dsns_raise_at_construction(kwargs: dict[str, Any]) -> None:
    name = next(k for k in kwargs if k.endswith(("_url", "_dsn")))
    with pytest.raises(ConfigurationError, match=name):
        client(**kwargs)


def test_a_malformed_url_from_the_environment_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", "nonsense")
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        client(cache_backend="redis")
    monkeypatch.setenv("PG_DSN", "host=localhost dbname=x")
    with pytest.raises(ConfigurationError, match="PG_DSN"):
        client(cache_backend="postgres")


def test_errors_about_connection_settings_never_show_a_password() -> None:
    for bad in ("redis://:hunter2secret@host:6379/abc", "http://u:hunter2secret@host:6379"):
        with pytest.raises(ConfigurationError) as info:
            client(redis_url=bad)
        assert "hunter2secret" not in str(info.value) and "***" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        client(pg_dsn="mysql://u:hunter2secret@h/db")
    assert "hunter2secret" not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        OpenAIConfig(api_key=b"sk-hunter2secret")  # type: ignore[arg-type]
    assert "hunter2secret" not in str(info.value)


def test_accepted_forms() -> None:
    assert redis_url("redis://:pw@localhost:6379/2") == "redis://:pw@localhost:6379/2"
    assert redis_url("rediss://example.com") and redis_url("unix:///tmp/redis.sock")
    assert postgres_dsn("postgres://u:p@h:5432/db") and postgres_dsn("postgresql:///db")
    # qdrant-client takes http(s) URLs and a bare host:port (AsyncQdrantRemote.__init__)
    for url in ("http://localhost:6333", "https://q.example.com", "localhost:6333"):
        assert qdrant_url(url) == url
    with pytest.raises(ConfigurationError, match="qdrant_location"):
        qdrant_url(":memory:")


async def test_a_well_formed_url_of_a_server_that_is_down_still_degrades(server: FakeOpenAI):
    c = OpenAIClient(
        GPT5Nano,
        api_key=KEY,
        base_url=server.base_url,
        cache_backend="redis",
        redis_url="redis://127.0.0.1:1/0",
        connect_timeout=0.2,
    )
    try:
        result = await c.get_response(messages=[{"role": "user", "content": "still here"}])
        assert result["status"] == 200 and result["output"]
    finally:
        await c.close()


# --- pipeline= -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cache_backend": "memory"},
        {"attempts": 2},
        {"timeout": 5},
        {"stream_idle_timeout": 5},
        {"timeouts": TimeoutConfig(total=3)},
        {"rate_limit_backend": "local"},
        {"tokens_per_minute": 100},
        {"retry": RetryConfig()},
        {"caching": CacheConfig(backend="memory")},
    ],
)
def test_pipeline_beside_default_chain_options_raises(kwargs: dict[str, Any]) -> None:
    pipeline = Pipeline.default(GPT5Nano, rate_limit_backend=None)
    with pytest.raises(ConfigurationError) as info:
        client(pipeline=pipeline, **kwargs)
    message = str(info.value)
    assert next(iter(kwargs)) in message and "Pipeline.default" in message


def test_pipeline_takes_connection_options(server: FakeOpenAI) -> None:
    pipeline = Pipeline.default(GPT5Nano, rate_limit_backend=None)
    c = OpenAIClient(
        GPT5Nano, pipeline=pipeline, api_key=KEY, base_url=server.base_url, api="responses"
    )
    assert c.pipeline.names() == pipeline.names()
    with pytest.raises(ConfigurationError, match="did you mean `base_url`"):
        OpenAIClient(GPT5Nano, pipeline=pipeline, api_key=KEY, base_ulr="http://x")


# --- precedence ------------------------------------------------------------------------------


def test_argument_beats_environment_beats_default(monkeypatch) -> None:
    monkeypatch.delenv("LLM_TEST_SETTING", raising=False)
    assert resolve(None, "LLM_TEST_SETTING", "default") == "default"
    monkeypatch.setenv("LLM_TEST_SETTING", "  from-env ")
    assert resolve(None, "LLM_TEST_SETTING", "default") == "from-env"
    assert resolve("argument", "LLM_TEST_SETTING", "default") == "argument"
    assert resolve("", "LLM_TEST_SETTING", "default") == "from-env"  # empty is not given
    monkeypatch.setenv("LLM_TEST_SETTING", "   ")
    assert resolve(None, "LLM_TEST_SETTING", "default") == "default"


def test_backends_follow_the_same_rule(monkeypatch) -> None:
    from llm_client_redis.cache import RedisCache
    from llm_client_redis.rate_limit import RedisLimiter

    monkeypatch.setenv("REDIS_URL", "redis://from-env:6379/3")
    assert RedisCache().url == "redis://from-env:6379/3"
    assert RedisCache("redis://argument:6379/1").url == "redis://argument:6379/1"
    limiter = RedisLimiter(tokens_per_minute=10, requests_per_minute=1)
    assert limiter.url == "redis://from-env:6379/3"
    # the limiter used to fall back to localhost silently while the cache raised; both raise
    monkeypatch.delenv("REDIS_URL")
    for build in (RedisCache, lambda: RedisLimiter(tokens_per_minute=10, requests_per_minute=1)):
        with pytest.raises(ConfigurationError, match=r"redis_url=.*REDIS_URL"):
            build()


def test_flags_parse_one_way(monkeypatch) -> None:
    for text in ("1", "true", "TRUE", " yes ", "on"):
        assert parse_bool(text, "x") is True
    for text in ("", "0", "false", "No", "off"):
        assert parse_bool(text, "x") is False
    with pytest.raises(ConfigurationError, match="LLM_TEST_FLAG"):
        parse_bool("maybe", "LLM_TEST_FLAG")
    monkeypatch.setenv("LLM_TEST_FLAG", "yes")
    assert env_flag("LLM_TEST_FLAG") is True
    monkeypatch.delenv("LLM_TEST_FLAG")
    assert env_flag("LLM_TEST_FLAG") is False


# --- plugins declare their options -----------------------------------------------------------


class Tagger:
    def __init__(self, mode: str) -> None:
        self.mode = mode

    async def __call__(self, call, next):  # type: ignore[no-untyped-def]
        return await next(call)


class OptionsPlugin:
    @hookimpl
    def register_middleware(self, register):  # type: ignore[no-untyped-def]
        def factory(profile: Any, *, pii_mode: str = "off") -> Tagger:
            return Tagger(pii_mode)

        register("pii", factory, before="retry")

    @hookimpl
    def register_cache_backends(self, register):  # type: ignore[no-untyped-def]
        @accepts("cache_collection", "shelf")
        def create(**options: Any) -> MemoryCache:
            return MemoryCache(collection=options.get("cache_collection"))

        register("shelved", create)


def test_plugin_options_are_declared_and_checked() -> None:
    pm = new_plugin_manager(autoload=False)
    pm.register(OptionsPlugin(), name="options-plugin")
    c = client(plugin_manager=pm, pii_mode="mask", rate_limit_backend=None)
    step = c.pipeline["pii"]
    assert isinstance(step, Tagger) and step.mode == "mask"
    with pytest.raises(ConfigurationError, match="did you mean `pii_mode`"):
        client(plugin_manager=pm, pii_mod="mask")
    assert isinstance(
        client(plugin_manager=pm, cache_backend="shelved", shelf=1).cache, MemoryCache
    )
    with pytest.raises(ConfigurationError, match=r"did you mean `shelf`.*'shelved' cache backend"):
        client(plugin_manager=pm, cache_backend="shelved", shelff=1)


def test_a_misspelt_rate_limit_backend_option_raises() -> None:
    with pytest.raises(ConfigurationError, match="did you mean `redis_max_connections`"):
        client(
            rate_limit_backend="redis",
            redis_url="redis://127.0.0.1:6379/0",
            redis_max_conections=3,
        )
    with pytest.raises(ConfigurationError, match=r"'local'.*no option 'fallback_share'"):
        client(rate_limit=RateLimitConfig(options={"fallback_share": 0.5}))


def test_a_limiter_object_is_used_as_given() -> None:
    limiter = Limiter(100, 10)
    assert client(limiter=limiter).limiter is limiter


class LimiterPlugin:
    """Two third-party limiters: one declares its options, one takes anything."""

    seen: ClassVar[dict[str, dict[str, Any]]] = {}

    @hookimpl
    def register_rate_limiters(self, register):  # type: ignore[no-untyped-def]
        def declared(
            *, tokens_per_minute: float, requests_per_minute: float, burst_seconds=None, key=""
        ) -> Limiter:
            LimiterPlugin.seen["declared"] = {"tpm": tokens_per_minute, "key": key}
            return Limiter(tokens_per_minute, requests_per_minute)

        def anything(**options: Any) -> Limiter:
            LimiterPlugin.seen["anything"] = options
            return Limiter(options["tokens_per_minute"], options["requests_per_minute"])

        register("declared", declared)
        register("anything", anything)


def test_limiter_factories_get_what_they_declare() -> None:
    pm = new_plugin_manager(autoload=False)
    pm.register(LimiterPlugin(), name="limiter-plugin")
    # redis_url and the header ceilings are offered, not forced on a factory that lacks them
    client(plugin_manager=pm, rate_limit_backend="declared", redis_url="redis://h:6379/0")
    assert LimiterPlugin.seen["declared"]["key"].startswith("llm_client:ratelimit:")
    client(plugin_manager=pm, rate_limit_backend="anything", tokens_per_minute=500)
    got = LimiterPlugin.seen["anything"]
    assert got["tokens_per_minute"] == 500 and got["max_tokens_per_minute"] == 500
    with pytest.raises(ConfigurationError, match="did you mean `burst_seconds`"):
        client(
            plugin_manager=pm,
            rate_limit=RateLimitConfig(backend="declared", options={"burst_second": 2}),
        )
