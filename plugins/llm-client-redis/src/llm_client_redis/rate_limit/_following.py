"""How a :class:`~llm_client_redis.rate_limit.RedisLimiter` learns from the server's
responses: ``limit-*`` headers become the budget in force for every process sharing the key
(and are stored in Redis for them), ``remaining-*`` lowers the shared levels and a 429 pauses
the exhausted budget for everyone, both written to Redis in the background; a fresh process
reads the limits another one stored before its first call. A mixin of ``RedisLimiter``, as
:class:`llm_client.rate_limit.following.HeaderFollowing` is of the local limiter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from llm_client.rate_limit import RateLimitHeaders

from ._layout import reply_float
from ._link import RedisLink, Unavailable

__all__ = ["HeaderFollowing"]


class HeaderFollowing:
    """The header-following part of ``RedisLimiter`` (its state is set up by
    ``RedisLimiter.__init__``)."""

    # Declared for the type checker; RedisLimiter.__init__ sets every one of them.
    _tpm: float
    _rpm: float
    _configured_tpm: float
    _configured_rpm: float
    _largest_t: float
    _largest_r: float
    _server_limits: tuple[float | None, float | None]
    _limits_loaded: bool
    _throttle_events: int
    _level_tokens: float
    _level_requests: float
    _link: RedisLink

    if TYPE_CHECKING:  # RedisLimiter's own

        def _cap_t(self) -> float: ...

        def _cap_r(self) -> float: ...

        def _shape(self) -> list[str]: ...

        def _now_arg(self) -> str: ...

    def update_from_headers(self, headers: Mapping[str, str], *, status: int | None = None) -> None:
        """Apply a response's rate-limit headers to the shared budget (see the local Limiter).

        ``limit-*`` becomes the budget in force, up or down (never above the ceiling), and is
        stored in Redis for every process sharing the key; ``remaining-*`` and a 429's pause
        (at most :data:`~llm_client.rate_limit.MAX_HEADER_PAUSE_SECONDS`) are written to
        Redis in the background.
        """
        info = RateLimitHeaders.parse(headers)
        limit_t = info.limit_tokens if info.limit_tokens else None
        limit_r = info.limit_requests if info.limit_requests else None
        new_t = limit_t if limit_t is not None and limit_t != self._server_limits[0] else None
        new_r = limit_r if limit_r is not None and limit_r != self._server_limits[1] else None
        if new_t is not None or new_r is not None:
            self._adopt(limit_t, limit_r)
        pause_t = pause_r = ""
        if status == 429:
            self._throttle_events += 1
            tokens_out, requests_out = info.exhausted()
            if tokens_out:
                pause_t = repr(info.pause_seconds(tokens=True) * 1e6)
            if requests_out:
                pause_r = repr(info.pause_seconds(tokens=False) * 1e6)
        if self._link.fallback is not None:
            self._link.fallback.update_from_headers(headers, status=status)
        # A remaining count at or above the burst cannot lower the level: no round trip.
        rt, rr = info.remaining_tokens, info.remaining_requests
        rem_t = repr(rt) if rt is not None and rt < self._cap_t() else ""
        rem_r = repr(rr) if rr is not None and rr < self._cap_r() else ""
        if pause_t or pause_r or rem_t or rem_r or new_t is not None or new_r is not None:
            args = [self._now_arg(), pause_t, pause_r, rem_t, rem_r, *self._shape()]
            args += ["" if new_t is None else repr(new_t), "" if new_r is None else repr(new_r)]
            self._link.spawn(self._sync(args))

    def _adopt(self, limit_t: float | None, limit_r: float | None) -> None:
        """Take the server's limits (either may be None: unchanged) as the budget in force."""
        known_t, known_r = self._server_limits
        if limit_t is not None and limit_t > 0:
            known_t = limit_t
            self._tpm = self._largest_t = min(self._configured_tpm, limit_t)
        if limit_r is not None and limit_r > 0:
            known_r = limit_r
            self._rpm = self._largest_r = min(self._configured_rpm, limit_r)
        self._server_limits = (known_t, known_r)

    async def _load_limits(self) -> None:
        """Adopt the server's limits another process stored (once, before the first call)."""
        try:
            reply = await self._link.run("peek", [self._now_arg(), *self._shape()])
        except Unavailable:
            return  # the fallback (or the next call) copes; try again next time
        self._limits_loaded = True
        stored = [reply_float(v) if v not in (b"", "") else None for v in reply[4:6]]
        if self._server_limits == (None, None):
            self._adopt(stored[0], stored[1])

    async def _sync(self, args: list[str]) -> None:
        try:
            reply = await self._link.run("sync", args)
        except Unavailable:
            return
        self._level_tokens, self._level_requests = reply_float(reply[0]), reply_float(reply[1])
