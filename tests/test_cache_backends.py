"""The built-in cache backends: the shared contract, plus what is specific to each."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_client.cache import (
    CacheBackend,
    CacheEntry,
    FileSystemCache,
    MemoryCache,
    SemanticCacheBackend,
    SQLiteCache,
)
from llm_client.cache.base import loads
from llm_client.exceptions import ConfigurationError, UnknownBackendError
from llm_client.middleware.cache import CacheMiddleware
from llm_client.plugins import cache_backend, new_plugin_manager
from llm_client.testing.cache_contract import (
    CacheBackendContract,
    SemanticCacheBackendContract,
    make_entry,
)

# --- the contract, for every built-in backend -----------------------------------------------------


class TestMemoryContract(SemanticCacheBackendContract):
    @pytest.fixture
    def make_backend(self) -> Callable[[], CacheBackend]:
        return lambda: MemoryCache()


class TestFileSystemContract(CacheBackendContract):
    persistent = True

    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> Callable[[], CacheBackend]:
        return lambda: FileSystemCache(tmp_path / "cache")


class TestFileSystemCollectionContract(CacheBackendContract):
    persistent = True
    large_value_chars = 10_000

    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> Callable[[], CacheBackend]:
        return lambda: FileSystemCache(tmp_path / "cache", collection="team-a", fsync=True)


class TestSQLiteContract(CacheBackendContract):
    persistent = True

    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> Callable[[], CacheBackend]:
        return lambda: SQLiteCache(tmp_path / "cache.sqlite3")


class TestSQLiteCollectionContract(CacheBackendContract):
    persistent = True
    large_value_chars = 10_000

    @pytest.fixture
    def make_backend(self, tmp_path: Path) -> Callable[[], CacheBackend]:
        return lambda: SQLiteCache(tmp_path / "cache.sqlite3", collection="team-a", max_workers=1)


# --- registration --------------------------------------------------------------------------------


@pytest.fixture
def pm():  # type: ignore[no-untyped-def]
    return new_plugin_manager(autoload=False)


async def test_builtins_are_registered_through_the_hook(pm, tmp_path: Path) -> None:
    memory = cache_backend("memory", plugin_manager=pm, cache_dir=tmp_path, ttl=5)
    assert isinstance(memory, MemoryCache) and memory.ttl == 5
    # an option no backend declares is refused, not dropped (issue 9)
    with pytest.raises(ConfigurationError, match=r"'memory'.*no option 'unrelated_option'"):
        cache_backend("memory", plugin_manager=pm, unrelated_option=1, ttl=5)
    fs = cache_backend(
        "fs", plugin_manager=pm, cache_dir=tmp_path, cache_collection="c", pg_dsn="x"
    )
    assert isinstance(fs, FileSystemCache) and fs.root == tmp_path / "c"
    lite = cache_backend("sqlite", plugin_manager=pm, cache_dir=tmp_path, redis_url="redis://")
    assert isinstance(lite, SQLiteCache)
    assert lite.path == str(tmp_path / "llm_cache.sqlite3")
    path = cache_backend("sqlite", plugin_manager=pm, cache_path=tmp_path / "x.db", cache_ttl=9)
    assert path.path == str(tmp_path / "x.db") and path.ttl == 9
    for backend in (memory, fs, lite, path):
        assert isinstance(backend, CacheBackend)
        await backend.aclose()
    assert isinstance(memory, SemanticCacheBackend)
    assert not isinstance(fs, SemanticCacheBackend)


def test_fs_without_cache_dir_names_the_problem(pm) -> None:
    with pytest.raises(ConfigurationError, match="'fs' cache backend needs cache_dir"):
        cache_backend("fs", plugin_manager=pm)


def test_sqlite_without_a_location_names_both_options(pm) -> None:
    with pytest.raises(ConfigurationError, match=r"cache_dir=.*cache_path="):
        cache_backend("sqlite", plugin_manager=pm)


def test_unknown_backend_lists_the_builtins(pm) -> None:
    with pytest.raises(UnknownBackendError, match="'fs', 'memory', 'sqlite'"):
        cache_backend("nope", plugin_manager=pm)


@pytest.mark.parametrize("ttl", [0, -1, "10", True])
def test_bad_ttl_is_a_configuration_error(ttl: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        FileSystemCache(tmp_path, ttl=ttl)  # type: ignore[arg-type]


# --- memory --------------------------------------------------------------------------------------


async def test_memory_evicts_least_recently_used() -> None:
    cache = MemoryCache(max_entries=2)
    await cache.put(make_entry("a"))
    await cache.put(make_entry("b"))
    assert await cache.get("a") is not None  # a is now more recent than b
    await cache.put(make_entry("c"))
    assert await cache.get("b") is None
    assert await cache.get("a") is not None and await cache.get("c") is not None
    stats = await cache.stats()
    assert stats["entries"] == 2 and stats["evictions"] == 1


async def test_memory_ttl_with_injected_clock() -> None:
    now = [100.0]
    cache = MemoryCache(ttl=10, clock=lambda: now[0])
    await cache.put(make_entry("default"))
    await cache.put(make_entry("short"), ttl=1)
    now[0] += 5
    assert await cache.get("short") is None
    assert await cache.get("default") is not None
    now[0] += 6
    assert await cache.purge_expired() == 1
    assert (await cache.stats())["entries"] == 0


async def test_memory_returns_copies() -> None:
    cache = MemoryCache()
    await cache.put(make_entry("k", {"list": [1, 2]}))
    got = await cache.get("k")
    assert got is not None
    got.value["list"].append(3)  # type: ignore[index]
    again = await cache.get("k")
    assert again is not None and again.value == {"list": [1, 2]}


async def test_memory_rejects_non_json_values_at_put() -> None:
    cache = MemoryCache()
    with pytest.raises(TypeError):
        await cache.put(make_entry("k", {"x": object()}))


async def test_memory_counts_hits_and_misses() -> None:
    cache = MemoryCache()
    await cache.get("a")
    await cache.put(make_entry("a"))
    await cache.get("a")
    stats = await cache.stats()
    assert (stats["hits"], stats["misses"]) == (1, 1)


# --- filesystem ----------------------------------------------------------------------------------


async def test_fs_writes_identifier_json_like_the_seed(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path)
    await cache.put(make_entry("abc123"))
    await cache.put(make_entry("reports/2024/q1"))
    assert (tmp_path / "abc123.json").is_file()
    assert (tmp_path / "reports" / "2024" / "q1.json").is_file()
    data = json.loads((tmp_path / "abc123.json").read_text("utf-8"))
    assert data["key"] == "abc123" and data["expires_at"] is None


async def test_fs_collection_is_a_subfolder(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path, collection="mine")
    await cache.put(make_entry("k"))
    assert (tmp_path / "mine" / "k.json").is_file()


@pytest.mark.parametrize("collection", ["../up", "/abs", "a/../b", ".hidden", "x y"])
def test_fs_rejects_unsafe_collections(tmp_path: Path, collection: str) -> None:
    with pytest.raises(ConfigurationError, match="collection"):
        FileSystemCache(tmp_path, collection=collection)


@pytest.mark.parametrize(
    "key",
    [
        "../outside",
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../b",
        "a/./b",
        "..",
        "a\\..\\b",
        "a//b",
        "a/",
        "x.json/y",
        "ü",
        "a" * 200,
        "a/b/c/d/e/f/g/h/i",
    ],
)
async def test_fs_hostile_keys_stay_inside_the_folder(tmp_path: Path, key: str) -> None:
    root = tmp_path / "root"
    cache = FileSystemCache(root)
    path = cache.path_for(key)
    assert path.parent == root, path
    assert path.name.startswith("_") and path.name.endswith(".json")
    await cache.put(make_entry(key))
    assert sorted(os.listdir(tmp_path)) == ["root"]
    got = await cache.get(key)
    assert got is not None and got.key == key


async def test_fs_corrupt_file_is_a_logged_miss_and_gets_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = FileSystemCache(tmp_path)
    good = make_entry("k", {"v": 1}).to_json()
    (tmp_path / "k.json").write_bytes(good[: len(good) // 2])  # a torn write
    with caplog.at_level(logging.WARNING, logger="llm_client.cache"):
        assert await cache.get("k") is None
    assert any("corrupt" in r.message for r in caplog.records)
    await cache.put(make_entry("k", {"v": 2}))
    got = await cache.get("k")
    assert got is not None and got.value == {"v": 2}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe not utf-8",
        b"[]",
        b'{"key": "k"}',
        b'{"key": 1, "value": {}}',
        b'{"key": "k", "value": {}, "expires_at": "soon"}',
        b"null",
    ],
)
async def test_fs_garbage_files_are_misses(tmp_path: Path, content: bytes) -> None:
    cache = FileSystemCache(tmp_path)
    (tmp_path / "k.json").write_bytes(content)
    assert await cache.get("k") is None
    assert [e async for e in cache.export()] == []


async def test_fs_file_with_another_key_is_a_miss(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path)
    (tmp_path / "k.json").write_bytes(make_entry("other").to_json())
    assert await cache.get("k") is None


async def test_fs_failed_write_keeps_the_old_entry_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FileSystemCache(tmp_path)
    await cache.put(make_entry("k", {"v": "old"}))

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        await cache.put(make_entry("k", {"v": "new"}))
    monkeypatch.undo()
    got = await cache.get("k")
    assert got is not None and got.value == {"v": "old"}
    assert sorted(os.listdir(tmp_path)) == ["k.json"]


_CRASH_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, sys
    from llm_client.cache import CacheEntry, FileSystemCache

    def crash(src, dst):  # the process dies after writing the temp file, before the rename
        os._exit(3)

    async def main():
        cache = FileSystemCache(sys.argv[1])
        os.replace = crash
        await cache.put(CacheEntry(key="k", value={"v": "new" * 100000}))

    asyncio.run(main())
    """
)


async def test_fs_crash_mid_write_leaves_the_old_entry(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path)
    await cache.put(make_entry("k", {"v": "old"}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CRASH_SCRIPT, str(tmp_path), stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 3, err.decode()
    leftovers = [n for n in os.listdir(tmp_path) if n != "k.json"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-")
    got = await cache.get("k")
    assert got is not None and got.value == {"v": "old"}
    assert [e.key async for e in cache.export()] == ["k"]
    assert (await cache.stats())["entries"] == 1
    stale = tmp_path / leftovers[0]
    os.utime(stale, (1, 1))  # pretend it is old
    await cache.warm()
    assert not stale.exists()


async def test_fs_expired_files_are_misses_and_purged(tmp_path: Path) -> None:
    now = [1000.0]
    cache = FileSystemCache(tmp_path, ttl=10, clock=lambda: now[0])
    await cache.put(make_entry("a"))
    await cache.put(make_entry("b"), ttl=100)
    now[0] += 50
    assert await cache.get("a") is None
    assert await cache.get("b") is not None
    assert await cache.purge_expired() == 1
    assert not (tmp_path / "a.json").exists()


async def test_fs_unreadable_file_is_a_miss(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path)
    (tmp_path / "k.json").mkdir()  # reading a folder fails
    assert await cache.get("k") is None


async def test_fs_clear_leaves_unrelated_files(tmp_path: Path) -> None:
    cache = FileSystemCache(tmp_path)
    await cache.put(make_entry("k"))
    (tmp_path / "notes.txt").write_text("mine")
    assert await cache.clear() == 1
    assert (tmp_path / "notes.txt").exists()


# --- sqlite --------------------------------------------------------------------------------------


async def test_sqlite_uses_wal_and_the_default_file_name(tmp_path: Path, pm) -> None:
    cache = cache_backend("sqlite", plugin_manager=pm, cache_dir=tmp_path / "sub")
    await cache.warm()
    await cache.aclose()
    path = tmp_path / "sub" / "llm_cache.sqlite3"
    assert path.is_file()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_sqlite_collections_are_isolated(tmp_path: Path) -> None:
    a = SQLiteCache(tmp_path / "c.db", collection="a")
    b = SQLiteCache(tmp_path / "c.db", collection="b")
    try:
        await a.put(make_entry("k", {"from": "a"}))
        await b.put(make_entry("k", {"from": "b"}))
        got_a, got_b = await a.get("k"), await b.get("k")
        assert got_a is not None and got_a.value == {"from": "a"}
        assert got_b is not None and got_b.value == {"from": "b"}
        assert await a.clear() == 1
        assert await b.get("k") is not None
    finally:
        await a.aclose()
        await b.aclose()


async def test_sqlite_ttl_with_injected_clock(tmp_path: Path) -> None:
    now = [1000.0]
    cache = SQLiteCache(tmp_path / "c.db", ttl=10, clock=lambda: now[0])
    try:
        await cache.put(make_entry("a"))
        await cache.put(make_entry("b"), ttl=100)
        now[0] += 50
        assert await cache.get("a") is None
        assert (await cache.stats())["entries"] == 1
        await cache.put(make_entry("c"), ttl=1)
        now[0] += 10
        assert await cache.purge_expired() == 1
        assert [e.key async for e in cache.export()] == ["b"]
    finally:
        await cache.aclose()


async def test_sqlite_export_pages_through_many_rows(tmp_path: Path) -> None:
    cache = SQLiteCache(tmp_path / "c.db")
    try:
        for i in range(600):
            await cache.put(make_entry(f"k{i:04d}", {"i": i}))
        keys = [e.key async for e in cache.export()]
        assert keys == [f"k{i:04d}" for i in range(600)]
    finally:
        await cache.aclose()


async def test_sqlite_corrupt_row_is_a_miss(tmp_path: Path) -> None:
    cache = SQLiteCache(tmp_path / "c.db")
    try:
        await cache.put(make_entry("k"))
        conn = sqlite3.connect(tmp_path / "c.db")
        try:
            conn.execute("UPDATE llm_cache SET value = x'7b7b' WHERE key = 'k'")
            conn.commit()
        finally:
            conn.close()
        assert await cache.get("k") is None
    finally:
        await cache.aclose()


GARBAGE = b"this is not a database\n" * 200


async def test_sqlite_garbage_file_is_moved_aside_and_a_fresh_cache_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.db"
    path.write_bytes(GARBAGE)
    cache = SQLiteCache(path)
    try:
        with caplog.at_level(logging.WARNING, logger="llm_client.cache"):
            # many threads meet the bad file at once: it is moved aside once
            found = await asyncio.gather(*(cache.get(f"k{i}") for i in range(16)))
            assert found == [None] * 16
            await cache.put(make_entry("k"))
            assert (await cache.get("k")) is not None
        [kept] = [p for p in os.listdir(tmp_path) if p.startswith("c.db.unusable-")]
        with open(tmp_path / kept, "rb") as f:  # noqa: ASYNC230 - a test's look at a file
            assert f.read() == GARBAGE  # kept as it was, for a look later
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and str(kept) in warnings[0], warnings
    finally:
        await cache.aclose()
    reopened = SQLiteCache(path)
    try:
        assert (await reopened.get("k")) is not None
    finally:
        await reopened.aclose()


async def test_sqlite_garbage_file_through_the_client(tmp_path: Path) -> None:
    from llm_client import GPT5Nano, OpenAIClient
    from llm_client.testing import FakeOpenAI

    (tmp_path / "llm_cache.sqlite3").write_bytes(GARBAGE)
    msgs = [{"role": "user", "content": "cached despite a bad file?"}]
    async with FakeOpenAI() as server:
        async with OpenAIClient(
            GPT5Nano,
            cache_backend="sqlite",
            cache_dir=tmp_path,
            base_url=server.base_url,
            api_key="sk-test",
            rate_limit_backend=None,
        ) as client:
            first = await client.get_response(messages=msgs)
            await client.pipeline.find(CacheMiddleware).flush()
            second = await client.get_response(messages=msgs)
            assert first["cached"] is False and second["cached"] is True
            assert client.stats()["cache"]["backend_errors"] == 0
        assert server.count("chat") == 1


async def test_sqlite_closed_backend_raises(tmp_path: Path) -> None:
    cache = SQLiteCache(tmp_path / "c.db")
    await cache.put(make_entry("k"))
    await cache.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await cache.get("k")


async def test_sqlite_in_memory(tmp_path: Path) -> None:
    cache = SQLiteCache(":memory:")
    try:
        await cache.put(make_entry("k"))
        assert await cache.get("k") is not None
    finally:
        await cache.aclose()


# --- several processes on one store --------------------------------------------------------------

_WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from llm_client.cache import CacheEntry, FileSystemCache, SQLiteCache

    kind, path, wid = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def pad(w):
        return f"{w:02d}" * (3000 + 500 * w)

    async def main():
        cache = SQLiteCache(path) if kind == "sqlite" else FileSystemCache(path)
        try:
            for i in range(30):
                shared = CacheEntry(key=f"shared-{i % 5}", value={"w": wid, "pad": pad(wid)})
                await cache.put(shared)
                await cache.put(CacheEntry(key=f"own-{wid}-{i}", value={"w": wid, "i": i}))
                got = await cache.get(f"shared-{(i + 1) % 5}")
                if got is not None and got.value["pad"] != pad(got.value["w"]):
                    sys.exit("torn entry")
        finally:
            await cache.aclose()

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("kind", ["sqlite", "fs"])
async def test_several_processes_share_one_store(tmp_path: Path, kind: str) -> None:
    path = str(tmp_path / ("c.sqlite3" if kind == "sqlite" else "cache"))
    workers = 3
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WORKER_SCRIPT, kind, path, str(w), stderr=asyncio.subprocess.PIPE
        )
        for w in range(workers)
    ]
    for proc in procs:
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
    cache: CacheBackend = SQLiteCache(path) if kind == "sqlite" else FileSystemCache(path)
    try:
        for w in range(workers):
            for i in range(30):
                got = await cache.get(f"own-{w}-{i}")
                assert got is not None and got.value == {"w": w, "i": i}
        for s in range(5):
            got = await cache.get(f"shared-{s}")
            assert got is not None
            assert got.value["pad"] == f"{got.value['w']:02d}" * (3000 + 500 * got.value["w"])
        assert (await cache.stats())["entries"] == workers * 30 + 5
    finally:
        await cache.aclose()


def test_entry_json_round_trip() -> None:
    entry = CacheEntry(key="k", value={"a": "ü"}, created_at=1.5, prompt="p")
    assert CacheEntry.from_json(entry.to_json()) == entry
    assert CacheEntry.from_dict({**entry.to_dict(), "extra": 1}) == entry
    with pytest.raises(ValueError):
        CacheEntry.from_dict({"key": "k"})


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_entry_decoding_reads_what_json_reads(value: object) -> None:
    """The fast decoder of stored entries gives exactly ``json.loads``'s value."""
    for text in (
        json.dumps(value, ensure_ascii=False),
        json.dumps(value),
        json.dumps(value, indent=1),
    ):
        assert repr(loads(text.encode("utf-8"))) == repr(json.loads(text))
        assert repr(loads(text)) == repr(json.loads(text))


def test_entry_decoding_falls_back_to_the_standard_library() -> None:
    assert loads(b'"\\ud800"') == "\ud800"  # a lone surrogate: jiter refuses it, json does not
    assert loads(b'{"a": NaN}')["a"] != loads(b'{"a": NaN}')["a"]
    with pytest.raises(json.JSONDecodeError):
        loads(b'{"a": ')
    with pytest.raises(ValueError):
        CacheEntry.from_json(b"[1, 2]")
