"""The Qdrant collections of one cache: their names, their creation and the vector ones' upkeep.

Per base name (say ``llm_cache``) there is the exact-lookup collection ``llm_cache``, without
vectors, and one collection ``llm_cache__vec<N>`` per embedding size ``N`` (cosine distance).
A collection is created on first use, with a keyword payload index on ``scope`` on a server
(embedded mode has no payload indexes); the ones known to exist are remembered so that
creation is checked once, and forgotten when one turns out to have been dropped. A deleted
entry's point goes from all of them; a rewritten one's from the vector ones it no longer uses.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from llm_client.exceptions import ConfigurationError

__all__ = ["DEFAULT_COLLECTION", "Collections", "collection_name"]

DEFAULT_COLLECTION = "llm_cache"
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


def collection_name(cache_collection: str | None) -> str:
    """The base collection name for option ``cache_collection`` (checked; default ``llm_cache``)."""
    collection = DEFAULT_COLLECTION if cache_collection is None else cache_collection
    if not _COLLECTION_NAME.fullmatch(collection):
        raise ConfigurationError(
            f"cache_collection={collection!r} cannot be a Qdrant collection name: use 1-200"
            " letters, digits, '_' or '-'"
        )
    return collection


class Collections:
    """The exact-lookup collection ``base`` and its vector collections ``base__vec<N>``.

    :param base: the checked base name (see :func:`collection_name`).
    :param local: embedded local mode, where payload indexes are not made.
    """

    def __init__(self, base: str, *, local: bool) -> None:
        self.base = base
        self.local = local
        self._known: set[str] = set()
        self._create_lock = asyncio.Lock()

    def vector(self, size: int) -> str:
        """Name of the collection holding the prompt embeddings of dimension ``size``."""
        return f"{self.base}__vec{size}"

    def forget(self) -> None:
        """Check every collection again before using it (one was dropped, or the client closed)."""
        self._known.clear()

    async def ensure(self, client: AsyncQdrantClient, name: str, size: int | None) -> None:
        """Create collection ``name`` (vectorless if ``size`` is None) unless it exists."""
        if name in self._known:
            return
        async with self._create_lock:
            if name in self._known:
                return
            if not await client.collection_exists(name):
                vectors: Any = (
                    {}
                    if size is None
                    else models.VectorParams(size=size, distance=models.Distance.COSINE)
                )
                try:
                    await client.create_collection(name, vectors_config=vectors)
                except (UnexpectedResponse, ValueError):
                    if not await client.collection_exists(name):  # not a lost race: real error
                        raise
                if not self.local:  # payload indexes are a no-op (with a warning) locally
                    await client.create_payload_index(
                        name, "scope", field_schema=models.PayloadSchemaType.KEYWORD
                    )
            self._known.add(name)

    async def exists(self, client: AsyncQdrantClient, name: str) -> bool:
        """True if collection ``name`` exists (without creating it)."""
        if name not in self._known:
            if not await client.collection_exists(name):
                return False
            self._known.add(name)
        return True

    async def vector_names(self, client: AsyncQdrantClient) -> list[str]:
        """The names of the vector collections that exist now, of any size."""
        prefix = f"{self.base}__vec"
        response = await client.get_collections()
        return [
            c.name
            for c in response.collections
            if c.name.startswith(prefix) and c.name[len(prefix) :].isdigit()
        ]

    async def drop_vectors(
        self, client: AsyncQdrantClient, pid: str, *, keep: str | None = None
    ) -> None:
        """Remove point ``pid`` from every vector collection except ``keep``."""
        selector = models.PointIdsList(points=[pid])
        for name in await self.vector_names(client):
            if name != keep:
                await client.delete(name, points_selector=selector)

    async def delete_point(self, client: AsyncQdrantClient, pid: str) -> bool:
        """Remove point ``pid`` from every collection; True if the exact-lookup one had it."""
        await self.ensure(client, self.base, None)
        found = await client.retrieve(self.base, ids=[pid], with_payload=False)
        await client.delete(self.base, points_selector=models.PointIdsList(points=[pid]))
        await self.drop_vectors(client, pid)
        return bool(found)
