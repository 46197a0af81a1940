"""``RedisSink``: a streamed call's events, appended to a Redis Stream (and optionally
published on a pub/sub channel) for other services to consume.

Each event becomes one stream entry with two fields, ``type`` and ``data`` (the JSON of
:func:`llm_client.sinks.wire_data`), added with ``XADD key MAXLEN ~ maxlen`` so the stream
stays bounded; the key's TTL is renewed with every batch so an abandoned stream disappears.
With ``pubsub_channel`` each event is also ``PUBLISH``-ed as ``{"type": ..., "data": ...}``.
A batch is one pipelined round trip. Read it with ``XRANGE``/``XREAD`` (consumers can resume
from the last entry id they saw) or ``SUBSCRIBE``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from llm_client.exceptions import ConfigurationError
from llm_client.sinks import BaseSink, wire_data
from llm_client.streaming import LLMEvent

from ._connect import connect

__all__ = ["RedisSink"]


def _positive(name: str, value: Any, *, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not (value > 0 and math.isfinite(value)):
        kind = "an integer >= 1" if integer else "a positive number of seconds"
        raise ConfigurationError(f"RedisSink {name} must be {kind}, got {value!r:.60}")
    return value


class RedisSink(BaseSink):
    """Append a stream's events to the Redis Stream ``stream``.

    :param stream: the stream's key (e.g. ``"llm:events:<request id>"``).
    :param redis_url: default ``REDIS_URL``, else ``redis://127.0.0.1:6379/0``.
    :param maxlen: keep about this many entries (``MAXLEN ~``; Redis trims whole nodes, so a
        few more may stay).
    :param ttl: seconds the key lives after the last batch; ``None`` keeps it.
    :param pubsub_channel: also ``PUBLISH`` every event on this channel.
    :param connect_timeout, command_timeout: seconds, so a dead Redis fails fast.
    :param client: a ``redis.asyncio.Redis`` to use instead (not closed by the sink).
    """

    def __init__(
        self,
        stream: str,
        *,
        redis_url: str | None = None,
        maxlen: int = 10_000,
        ttl: float | None = 3600.0,
        pubsub_channel: str | None = None,
        connect_timeout: float = 2.0,
        command_timeout: float = 2.0,
        client: aioredis.Redis | None = None,
    ) -> None:
        if not isinstance(stream, str) or not stream:
            raise ConfigurationError(
                f"RedisSink stream must be a non-empty key, got {stream!r:.80}"
            )
        if pubsub_channel is not None and (
            not isinstance(pubsub_channel, str) or not pubsub_channel
        ):
            raise ConfigurationError(
                f"RedisSink pubsub_channel must be a non-empty string or None,"
                f" got {pubsub_channel!r:.80}"
            )
        self.stream = stream
        self.maxlen: int = _positive("maxlen", maxlen, integer=True)
        self.ttl: float | None = None if ttl is None else float(_positive("ttl", ttl))
        self.pubsub_channel = pubsub_channel
        self.url = redis_url or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(
                "RedisSink redis_url must be a redis://, rediss:// or unix:// URL"
            )
        self._connect_timeout = float(_positive("connect_timeout", connect_timeout))
        self._command_timeout = float(_positive("command_timeout", command_timeout))
        self._client = client
        self._own_client = client is None

    def __repr__(self) -> str:
        return f"RedisSink(stream={self.stream!r}, pubsub_channel={self.pubsub_channel!r})"

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            self._client = connect(
                self.url,
                connect_timeout=self._connect_timeout,
                command_timeout=self._command_timeout,
            )
        return self._client

    async def send(self, events: Sequence[LLMEvent]) -> None:
        """Append ``events`` (and publish them) in one pipelined round trip."""
        if not events:
            return
        pipe = self._redis().pipeline(transaction=False)
        for event in events:
            data = json.dumps(wire_data(event), separators=(",", ":"), default=str)
            pipe.xadd(
                self.stream,
                {"type": event.type, "data": data},
                maxlen=self.maxlen,
                approximate=True,
            )
            if self.pubsub_channel is not None:
                message = json.dumps({"type": event.type, "data": json.loads(data)})
                pipe.publish(self.pubsub_channel, message)
        if self.ttl is not None:
            pipe.pexpire(self.stream, max(1, int(self.ttl * 1000)))
        await pipe.execute()

    async def aclose(self) -> None:
        """Close the connection pool the sink opened (a client passed in stays open)."""
        if self._own_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
