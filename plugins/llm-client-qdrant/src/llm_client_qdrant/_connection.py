"""Where Qdrant is and how it is called: the target, the client, and health-checked calls.

:func:`resolve_target` turns the options (``qdrant_url`` / ``$QDRANT_URL``, ``qdrant_path``,
``qdrant_location``) into the keyword arguments of ``AsyncQdrantClient``. A
:class:`QdrantConnection` makes that client on first use and runs every operation through a
:class:`~llm_client.health.ServiceHealth`: an unreachable server is an outage (logged once,
retried at most every ``reconnect_interval`` seconds) reported as
:class:`~llm_client.exceptions.CacheUnavailableError`, and an operation that meets a
collection dropped behind the cache's back is retried once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from qdrant_client import AsyncQdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from llm_client.clock import Clock
from llm_client.config import connection_string, resolve
from llm_client.config import qdrant_url as check_qdrant_url
from llm_client.exceptions import CacheUnavailableError, ConfigurationError
from llm_client.health import ServiceDown, ServiceHealth

__all__ = ["QdrantConnection", "Target", "resolve_target"]

logger = logging.getLogger("llm_client_qdrant")

T = TypeVar("T")

try:  # httpx comes with qdrant-client; its errors mean "server unreachable"
    from httpx import HTTPError as _HTTPError
except ImportError:  # pragma: no cover
    _HTTPError = OSError  # type: ignore[misc,assignment]

_FAILURES: tuple[type[BaseException], ...] = (
    ResponseHandlingException,
    UnexpectedResponse,
    _HTTPError,
    OSError,
    asyncio.TimeoutError,
)
_FAILURES_OR_MISSING: tuple[type[BaseException], ...] = (*_FAILURES, ValueError)


def _is_missing_collection(exc: BaseException) -> bool:
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code == 404
    return isinstance(exc, ValueError) and "not found" in str(exc).lower()


@dataclass(frozen=True)
class Target:
    """Where Qdrant is.

    :param mode: ``"server"``, ``"path"`` (embedded, in a folder), ``"memory"`` (embedded,
        ``":memory:"``) or ``"location"`` (another ``location=``).
    :param client_kwargs: the keyword arguments of ``AsyncQdrantClient``.
    :param name: the URL, folder or location, as logged on an outage.
    """

    mode: str
    client_kwargs: dict[str, Any]
    name: str


def resolve_target(
    *,
    qdrant_url: str | None,
    qdrant_api_key: str | None,
    qdrant_path: str | os.PathLike[str] | None,
    qdrant_location: str | None,
    qdrant_timeout: float,
    prefer_grpc: bool,
) -> Target:
    """The one place the options name (explicit arguments before ``$QDRANT_URL``)."""
    explicit = [
        name
        for name, value in (
            ("qdrant_url", qdrant_url),
            ("qdrant_path", qdrant_path),
            ("qdrant_location", qdrant_location),
        )
        if value
    ]
    if len(explicit) > 1:
        raise ConfigurationError(
            f"the 'qdrant' cache backend takes one of qdrant_url, qdrant_path or"
            f" qdrant_location, got {' and '.join(explicit)}"
        )
    if qdrant_location:
        mode = "memory" if qdrant_location == ":memory:" else "location"
        return Target(mode, {"location": qdrant_location}, qdrant_location)
    if qdrant_path:
        return Target("path", {"path": os.fspath(qdrant_path)}, os.fspath(qdrant_path))
    if resolve(qdrant_url, "QDRANT_URL") is None:
        raise ConfigurationError(
            "the 'qdrant' cache backend needs a server: pass qdrant_url=... or set the"
            " QDRANT_URL environment variable (or use qdrant_path=... /"
            " qdrant_location=':memory:' for embedded local mode)"
        )
    url = connection_string(
        qdrant_url,
        "QDRANT_URL",
        check_qdrant_url,
        name="qdrant_url",
        backend="qdrant",
        what="cache backend",
    )
    api_key = resolve(qdrant_api_key, "QDRANT_API_KEY")
    client_kwargs = {
        "url": url,
        "api_key": api_key,
        "timeout": max(1, math.ceil(qdrant_timeout)),
        "prefer_grpc": prefer_grpc,
        "check_compatibility": False,  # it would block and warn at construction
    }
    return Target("server", client_kwargs, url)


class QdrantConnection:
    """The client of one :class:`Target`, made on first use, and its health.

    :param on_missing_collection: called when an operation met a collection that no longer
        exists, before the operation is retried (the cache forgets which ones it created).
    """

    def __init__(
        self,
        target: Target,
        *,
        reconnect_interval: float,
        clock: Clock | None,
        on_missing_collection: Callable[[], None],
    ) -> None:
        self.target = target
        self.health = ServiceHealth(
            "Qdrant", target.name, logger=logger, reconnect_interval=reconnect_interval, clock=clock
        )
        self._on_missing_collection = on_missing_collection
        self._client: AsyncQdrantClient | None = None

    def client(self) -> AsyncQdrantClient:
        """The client, made on first use."""
        if self._client is None:
            self._client = AsyncQdrantClient(**self.target.client_kwargs)
        return self._client

    async def call(self, what: str, op: Callable[[AsyncQdrantClient], Awaitable[T]]) -> T:
        """Run ``op``, tracking the service's health; one retry if a collection vanished.

        Raises :class:`CacheUnavailableError` (``cannot <what>: ...``) while Qdrant is down.
        """

        async def attempts() -> T:
            for attempt in (1, 2):
                try:
                    return await op(self.client())
                except _FAILURES_OR_MISSING as exc:
                    if _is_missing_collection(exc) and attempt == 1:
                        self._on_missing_collection()  # dropped behind our back: recreate, retry
                        continue
                    raise
            raise AssertionError("unreachable")  # pragma: no cover

        try:
            return await self.health.call(attempts, outages=_FAILURES, passthrough=(ValueError,))
        except ServiceDown as down:
            raise CacheUnavailableError(f"cannot {what}: {down}") from down.__cause__

    async def aclose(self) -> None:
        """Close the client, if made (and release a local ``qdrant_path``). Safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
