"""Timeout: one deadline over the whole call.

Why here: outside cache, retry and the limiter, so the ``timeout`` a user gives bounds
everything the call does — limiter waits, every attempt and the back-off between them —
rather than each attempt alone. The absolute deadline is put on the :class:`Call`, so the
transport passes the time left as the SDK's per-request timeout and retry never sleeps past it.
"""

from __future__ import annotations

import asyncio
import sys
import time

from ..exceptions import ConfigurationError, DeadlineExceededError
from ..pipeline import Call, Next, Reply

__all__ = ["Timeout"]


class Timeout:
    """Bound a call by ``call.timeout`` (or this step's ``default``) seconds."""

    def __init__(self, default: float | None = None) -> None:
        if default is not None and default <= 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, got {default}")
        self.default = default

    async def __call__(self, call: Call, next: Next, /) -> Reply:
        seconds = call.timeout if call.timeout is not None else self.default
        if seconds is None:
            return await next(call)
        deadline = time.monotonic() + seconds
        if call.deadline is not None:
            deadline = min(deadline, call.deadline)
        call = call.replace(deadline=deadline)
        try:
            if sys.version_info >= (3, 11):
                async with asyncio.timeout_at(
                    asyncio.get_running_loop().time() + (deadline - time.monotonic())
                ):
                    return await next(call)
            return await asyncio.wait_for(next(call), deadline - time.monotonic())
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise DeadlineExceededError(
                f"the call did not finish within its timeout of {seconds:g}s"
                " (over all attempts and waits)"
            ) from exc
