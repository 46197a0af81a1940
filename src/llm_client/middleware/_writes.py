"""Background writes of the cache step: storing an answer never delays the call.

Each answer is written in its own task. Writes of one key run in order; until a write has
landed, calls with the same key are answered from it (so a call right after never misses).
At most ``limit`` writes wait at once; beyond that a write is dropped, counted and logged
once. :meth:`PendingWrites.flush` waits for what is left (``client.close()`` calls it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ._single_flight import Shared

__all__ = ["PendingWrites"]

log = logging.getLogger("llm_client.middleware.cache")


class PendingWrites:
    """The writes still running, by key.

    :param limit: writes that may wait at once; more are dropped.
    """

    __slots__ = ("_chain", "_serving", "_tasks", "_warned", "dropped", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: Writes dropped because ``limit`` were already waiting.
        self.dropped = 0
        self._tasks: set[asyncio.Task[None]] = set()  # every pending write, for flush()
        self._chain: dict[str, asyncio.Task[None]] = {}  # the latest write of each key
        self._serving: dict[str, Shared] = {}  # answers on their way into the backend
        self._warned = False

    def __len__(self) -> int:
        return len(self._tasks)

    def answer(self, key: str) -> Shared | None:
        """The answer being written under ``key``, if one is (and is served meanwhile)."""
        return self._serving.get(key)

    def forget(self, key: str) -> None:
        """Stop answering ``key`` from a pending write (the entry is being regenerated)."""
        self._serving.pop(key, None)

    def full(self) -> bool:
        """Whether a new write must be dropped; counts and logs (once) the drop."""
        if len(self._tasks) < self.limit:
            return False
        self.dropped += 1
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(
            level,
            "dropping a cache write: %d writes are already waiting for the cache backend",
            len(self._tasks),
        )
        return True

    def start(
        self, key: str, shared: Shared, write: Callable[[], Awaitable[object]], *, serve: bool
    ) -> None:
        """Run ``write()`` in the background after the previous write of ``key``; with
        ``serve``, answer ``key`` from ``shared`` until it is done."""
        if serve:
            self._serving[key] = shared
        task = asyncio.get_running_loop().create_task(self._after(self._chain.get(key), write))
        self._tasks.add(task)
        self._chain[key] = task

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            if self._chain.get(key) is task:
                del self._chain[key]
                if self._serving.get(key) is shared:
                    del self._serving[key]

        task.add_done_callback(done)

    @staticmethod
    async def _after(
        previous: asyncio.Task[None] | None, write: Callable[[], Awaitable[object]]
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait((previous,))
        await write()

    async def flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the pending writes, then cancel what is left."""
        if not self._tasks:
            return
        pending = set(self._tasks)
        _, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.warning("%d cache writes did not finish in time and were dropped", len(late))
