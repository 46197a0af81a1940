"""Shared test set-up: tiktoken's offline cache and an isolated plugin manager."""

from __future__ import annotations

import os
from pathlib import Path

_TIKTOKEN = Path(__file__).resolve().parents[1].parent / "shared" / "tiktoken-cache"
if "TIKTOKEN_CACHE_DIR" not in os.environ and _TIKTOKEN.is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(_TIKTOKEN)
os.environ.setdefault("LLM_CLIENT_NO_DOTENV", "1")
