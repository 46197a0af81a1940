"""The cache step's guarded backend call: each operation bounded in time, none failing a call.

Every backend operation runs through a :class:`~llm_client.health.BackendGuard` within a limit:
``backend_timeout``, and at most ``deadline_share`` of the time the call has left. A failure,
including not answering in time, is recorded (one WARNING per outage) and the caller gets a
fallback value instead of an exception.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..clock import Clock
from ..health import BackendGuard

__all__ = ["GuardedOps"]


class GuardedOps:
    """Backend operations of one cache step, run through its guard."""

    __slots__ = ("_clock", "_guard", "backend_timeout", "deadline_share")

    def __init__(
        self,
        guard: BackendGuard,
        clock: Clock,
        backend_timeout: float | None,
        deadline_share: float,
    ) -> None:
        self._guard = guard
        self._clock = clock
        self.backend_timeout = backend_timeout
        self.deadline_share = deadline_share

    def limit(self, deadline: float | None) -> float | None:
        """Seconds one backend operation may take: ``backend_timeout``, and at most
        ``deadline_share`` of the time the call has left (``<= 0``: no time for it)."""
        if deadline is None:
            return self.backend_timeout
        share = (deadline - self._clock.now()) * self.deadline_share
        return share if self.backend_timeout is None else min(self.backend_timeout, share)

    def run(
        self,
        what: str,
        op: Callable[[], Awaitable[Any]],
        deadline: float | None,
        *,
        failed: Any = None,
    ) -> Awaitable[Any]:
        """Run one backend operation within :meth:`limit`, through the guard: on any failure,
        including not answering in time, it is recorded and ``failed`` is returned; a store
        (``put``, ``put_vector``) that succeeds gives ``True``.

        The guard's own coroutine is handed back, not wrapped in another: every call's cache
        read runs through here."""
        if what in ("put", "put_vector"):
            op = _true_after(op)
        return self._guard.call(what, op, limit=self.limit(deadline), failed=failed)


def _true_after(op: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[bool]]:
    async def stored() -> bool:
        await op()
        return True

    return stored
