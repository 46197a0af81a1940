"""llm_client.cache_cli: the ``llm-client cache`` commands (stats, export, clear), options."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from llm_client.cache import CacheEntry
from llm_client.cache_cli import add_cache_parser, parse_options, run_cache_command
from llm_client.plugins import cache_backend, new_plugin_manager
from llm_client.testing.cache_contract import make_entry


@pytest.fixture
def pm():  # type: ignore[no-untyped-def]
    return new_plugin_manager(autoload=False)


def _cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="llm-client")
    add_cache_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


async def _cli(pm, *argv: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    out, err = io.StringIO(), io.StringIO()
    code = await run_cache_command(_cli_args(*argv), plugin_manager=pm, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("backend", ["fs", "sqlite"])
async def test_cli_stats_export_clear(pm, tmp_path: Path, backend: str) -> None:
    seeded = cache_backend(backend, plugin_manager=pm, cache_dir=tmp_path, cache_collection="c")
    for key in ("a", "b/ü"):
        await seeded.put(make_entry(key, {"k": key}))
    await seeded.aclose()
    where = ("--backend", backend, "--cache-dir", str(tmp_path), "--collection", "c")

    code, out, err = await _cli(pm, "cache", "stats", *where)
    assert code == 0, err
    assert json.loads(out)["entries"] == 2

    code, out, err = await _cli(pm, "cache", "export", *where)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert sorted(line["key"] for line in lines) == ["a", "b/ü"]
    assert all(CacheEntry.from_dict(line).value == {"k": line["key"]} for line in lines)

    code, out, _ = await _cli(pm, "cache", "clear", *where)
    assert code == 0 and json.loads(out) == {"removed": 2}
    code, out, _ = await _cli(pm, "cache", "stats", *where)
    assert json.loads(out)["entries"] == 0


async def test_cli_options_and_environment(
    pm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_CLIENT_CACHE_BACKEND", "sqlite")
    db = tmp_path / "x.db"
    code, out, err = await _cli(pm, "cache", "stats", "-o", f"cache_path={db}", "-o", "ttl=60")
    assert code == 0, err
    assert json.loads(out)["path"] == str(db)
    assert parse_options(["a=1", "b=true", "c=text", 'd={"x": [1]}', "e="]) == {
        "a": 1,
        "b": True,
        "c": "text",
        "d": {"x": [1]},
        "e": "",
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("cache", "stats", "--backend", "fs"), "needs cache_dir"),
        (("cache", "stats", "--backend", "nope"), "unknown cache backend 'nope'"),
        (("cache", "stats", "--backend", "pg_redis"), "llm-client-postgres"),
        (("cache", "stats", "--backend", "memory", "-o", "novalue"), "KEY=VALUE"),
    ],
)
async def test_cli_configuration_errors_exit_2(pm, argv: tuple[str, ...], message: str) -> None:
    code, out, err = await _cli(pm, *argv)
    assert code == 2 and out == "" and message in err


async def test_cli_backend_failure_exits_1(pm, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    code, _, err = await _cli(
        pm,
        "cache",
        "stats",
        "--backend",
        "sqlite",
        "-o",
        f"cache_path={tmp_path / 'file' / 'x.db'}",
    )
    assert code == 1 and "'sqlite' backend failed" in err


def test_cli_requires_a_command() -> None:
    with pytest.raises(SystemExit):
        _cli_args("cache")
