"""Rate limiting: the innermost step before the transport.

Why here: inside retry, so every attempt takes budget again; inside the cache, so a hit never
spends budget or waits for it; right next to the transport, so it reads every response's
``x-ratelimit-*`` headers and a 429's ``Retry-After`` and can pause before the next attempt.
It reserves the call's input tokens plus the output it may produce, and reconciles with the
real usage when the reply (or the stream) ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..exceptions import LLMClientError
from ..pipeline import Call, Next, Reply
from ..result import LLMResult
from ..streaming import LLMEvent
from ..usage import Usage
from ._stream import aclose

__all__ = ["RateLimit"]


class RateLimit:
    """Hold each attempt until the limiter admits it.

    :param limiter: a :class:`~llm_client.rate_limit.RateLimiter` (local or Redis-backed).
    """

    def __init__(self, limiter: Any) -> None:
        self.limiter = limiter

    async def __call__(self, call: Call, next: Next, /) -> Reply:
        reserve = call.context.get("reserve_tokens")
        tokens = reserve if isinstance(reserve, int) else 0
        lease_cm = self.limiter.limit(tokens, 1)
        lease = await lease_cm.__aenter__()
        try:
            reply = await next(call)
        except LLMClientError as exc:
            if exc.headers:
                self.limiter.update_from_headers(exc.headers, status=exc.status)
            if isinstance(exc.usage, Usage):
                lease.record(exc.usage.total_tokens)
            await lease_cm.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        except BaseException as exc:
            await lease_cm.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        if isinstance(reply, LLMResult):
            if reply.headers:
                self.limiter.update_from_headers(reply.headers, status=reply.status)
            lease.record(reply.usage.total_tokens)
            await lease_cm.__aexit__(None, None, None)
            return reply
        return self._wrap(reply, lease, lease_cm)

    async def _wrap(
        self, stream: AsyncIterator[LLMEvent], lease: Any, lease_cm: Any
    ) -> AsyncIterator[LLMEvent]:
        """Hold the lease until the stream ends; charge its real usage then."""
        exc_info: tuple[Any, Any, Any] = (None, None, None)
        try:
            async for event in stream:
                if event.result is not None:
                    result = event.result
                    if result.headers:
                        self.limiter.update_from_headers(result.headers, status=result.status)
                    lease.record(result.usage.total_tokens)
                yield event
        except BaseException as exc:
            exc_info = (type(exc), exc, exc.__traceback__)
            raise
        finally:
            try:
                await aclose(stream)  # the consumer stopped: close the response below now
            finally:
                try:
                    await lease_cm.__aexit__(*exc_info)
                finally:
                    exc_info = (None, None, None)  # its traceback holds this frame: a cycle
