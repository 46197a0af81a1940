"""``RedisEventBuffer``: the events of resumable SSE streams in Redis Streams.

Registered as the ``"redis"`` event buffer (``client.stream_sse(..., buffer="redis")``), so a
browser that reconnects to *another* server process still finds its stream. Each stream is
one Redis Stream, ``<prefix><key>``, with entry ids ``0-<seq>`` (so ``Last-Event-ID`` maps
straight to a stream position), trimmed to about ``max_events`` entries (``XADD ... MAXLEN
~``) and expiring ``ttl`` seconds after its last write. A second key, ``<prefix><key>:state``,
holds ``running`` or ``finished``; ``SET NX`` on it is the claim that makes one process the
producer. The end of a stream is an entry of type ``__end__``, which also wakes readers
blocked in ``XREAD``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from llm_client.config import connection_string
from llm_client.config import redis_url as check_redis_url
from llm_client.exceptions import ConfigurationError
from llm_client.streaming import BufferedEvent

__all__ = ["RedisEventBuffer"]

_END = "__end__"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisEventBuffer:
    """An :class:`~llm_client.streaming.EventBuffer` on Redis Streams.

    :param redis_url: default ``REDIS_URL``; one of the two is required (like the cache's).
    :param ttl: seconds a stream is kept after its last write (default 300).
    :param max_events: about how many events a stream keeps (``MAXLEN ~``).
    :param prefix: key prefix.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        ttl: float = 300.0,
        max_events: int = 10_000,
        prefix: str = "llm_client:events:",
        connect_timeout: float = 2.0,
        client: aioredis.Redis | None = None,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl < math.inf:
            raise ConfigurationError(f"ttl must be a positive number of seconds, got {ttl!r}")
        if isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 1:
            raise ConfigurationError(f"max_events must be an integer >= 1, got {max_events!r}")
        url = None
        if client is None:
            url = connection_string(
                redis_url,
                "REDIS_URL",
                check_redis_url,
                name="redis_url",
                backend="redis",
                what="event buffer",
            )
        self.ttl_ms = max(1, int(ttl * 1000))
        self.max_events = max_events
        self.prefix = prefix
        # no socket timeout: a reader blocks in XREAD for up to its heartbeat interval
        self._redis = client or aioredis.Redis.from_url(
            str(url), socket_connect_timeout=connect_timeout
        )
        self._owns = client is None

    def _keys(self, key: str) -> tuple[str, str]:
        return self.prefix + key, self.prefix + key + ":state"

    async def claim(self, key: str) -> bool:
        _, state = self._keys(key)
        return bool(await self._redis.set(state, "running", nx=True, px=self.ttl_ms))

    async def append(self, key: str, events: Sequence[BufferedEvent]) -> None:
        stream, state = self._keys(key)
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(
                    stream,
                    {"offset": event.offset, "type": event.type, "data": event.data},
                    id=f"0-{event.seq}",
                    maxlen=self.max_events,
                    approximate=True,
                )
            pipe.pexpire(stream, self.ttl_ms)
            pipe.pexpire(state, self.ttl_ms)
            await pipe.execute()

    async def finish(self, key: str) -> None:
        stream, state = self._keys(key)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(stream, {"type": _END})  # id "*": after every 0-<seq>
            pipe.set(state, "finished", px=self.ttl_ms)
            pipe.pexpire(stream, self.ttl_ms)
            await pipe.execute()

    @staticmethod
    def _decode(entries: Any) -> tuple[list[BufferedEvent], bool]:
        events: list[BufferedEvent] = []
        finished = False
        for entry_id, fields in entries or ():
            kind = _text(fields.get(b"type", b""))
            if kind == _END:
                finished = True
                continue
            seq = int(_text(entry_id).partition("-")[2])
            events.append(
                BufferedEvent(
                    seq, int(_text(fields[b"offset"])), kind, _text(fields.get(b"data", b""))
                )
            )
        return events, finished

    async def read(
        self, key: str, after: int, wait: float
    ) -> tuple[list[BufferedEvent], bool] | None:
        stream, state = self._keys(key)
        status = await self._redis.get(state)
        if status is None:
            return None
        events, finished = self._decode(await self._redis.xrange(stream, f"(0-{after}", "+"))
        if events or finished:
            return events, finished
        got: Any = await self._redis.xread({stream: f"0-{after}"}, block=max(1, int(wait * 1000)))
        if not got:
            return [], False
        return self._decode(got[0][1])

    async def aclose(self) -> None:
        if self._owns:
            await self._redis.aclose()
