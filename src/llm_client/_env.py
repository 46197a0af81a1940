"""Load the nearest ``.env`` (explicit environment variables always win)."""

from __future__ import annotations


def load_env() -> bool:
    """Load the ``.env`` nearest the working directory, without overriding set variables."""
    from dotenv import find_dotenv, load_dotenv

    path = find_dotenv(usecwd=True)
    return bool(path) and load_dotenv(path, override=False)
