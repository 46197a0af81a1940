"""The complete third-party cache backend shown in docs/plugins.md, built and tested as shown.

The three code blocks of the section "A complete backend, on the public API only" (the
package's ``__init__``, its ``cache`` module and its test module) are taken from the page as
they are: the two package modules become the importable package ``llm_client_hashcache``,
and the tests of the third block are collected here. If the page's example breaks, this
module fails.
"""

from __future__ import annotations

import importlib.machinery
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
_BLOCK = re.compile(r"```python\n# (?P<path>[^\n]+)\n(?P<code>.*?)```", re.S)


def _blocks() -> dict[str, str]:
    return {m["path"]: m["code"] for m in _BLOCK.finditer(PAGE.read_text(encoding="utf-8"))}


def _load_package(blocks: dict[str, str]) -> None:
    """``llm_client_hashcache`` and its ``cache`` module, from the page, in ``sys.modules``."""
    package = types.ModuleType("llm_client_hashcache")
    package.__spec__ = importlib.machinery.ModuleSpec("llm_client_hashcache", None, is_package=True)
    package.__path__ = []
    package.__package__ = "llm_client_hashcache"
    package.__file__ = f"{PAGE}:src/llm_client_hashcache/__init__.py"
    sys.modules["llm_client_hashcache"] = package
    exec(compile(blocks["src/llm_client_hashcache/__init__.py"], package.__file__, "exec"),
         package.__dict__)  # fmt: skip
    cache = types.ModuleType("llm_client_hashcache.cache")
    cache.__file__ = f"{PAGE}:src/llm_client_hashcache/cache.py"
    cache.__spec__ = importlib.machinery.ModuleSpec("llm_client_hashcache.cache", None)
    cache.__package__ = "llm_client_hashcache"
    sys.modules["llm_client_hashcache.cache"] = cache
    exec(compile(blocks["src/llm_client_hashcache/cache.py"], cache.__file__, "exec"),
         cache.__dict__)  # fmt: skip
    package.cache = cache  # type: ignore[attr-defined]


_EXAMPLE = _blocks()
_load_package(_EXAMPLE)
# The example's tests, collected as tests of this module.
exec(compile(_EXAMPLE["tests/test_hashcache.py"], f"{PAGE}:tests/test_hashcache.py", "exec"))

pytestmark = pytest.mark.redis


def test_the_page_has_the_three_blocks() -> None:
    assert set(_EXAMPLE) >= {
        "src/llm_client_hashcache/__init__.py",
        "src/llm_client_hashcache/cache.py",
        "tests/test_hashcache.py",
    }


def test_the_example_uses_only_public_names() -> None:
    """Every ``llm_client`` import of the example names a public module and a public name."""
    code = "".join(_EXAMPLE.values())
    for module, names in re.findall(r"from (llm_client[\w.]*) import ([^\n]+)", code):
        if module.startswith("llm_client_hashcache"):
            continue
        assert not any(part.startswith("_") for part in module.split(".")), module
        for name in names.split(","):
            assert not name.strip().startswith("_"), (module, name)


def test_the_entry_module_does_not_import_redis() -> None:
    """pluggy imports a plugin's entry module on every discovery: it must stay cheap."""
    init_only = (
        "import sys, types\n"
        "m = types.ModuleType('llm_client_hashcache'); m.__path__ = []\n"
        "sys.modules['llm_client_hashcache'] = m\n"
        f"exec({_EXAMPLE['src/llm_client_hashcache/__init__.py']!r}, m.__dict__)\n"
        "assert 'redis' not in sys.modules, 'the entry module imported redis'\n"
    )
    subprocess.run([sys.executable, "-c", init_only], check=True, timeout=60)
