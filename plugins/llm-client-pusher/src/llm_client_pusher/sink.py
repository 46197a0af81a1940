"""``PusherSink``: a streamed call's events, published to a Pusher Channels channel.

Each :class:`~llm_client.streaming.LLMEvent` becomes a Pusher event named after its type
(``meta``, ``text_delta``, ``tool_call_delta``, ``usage``, ``done``, ``error``; with an optional
prefix) whose data is the JSON of :func:`llm_client.sinks.wire_data` plus a ``seq`` number that
counts up from 0 on the sink, so a subscriber can put pieces in order and notice a gap.

Limits it keeps (Pusher's HTTP API reference):

- *message rate*: a request starts at least ``flush_interval`` (default 0.1 s) after the
  previous one ended; consecutive
  ``text_delta`` events of a batch are merged into one, so a fast stream becomes a few messages
  a second instead of one per token. Under :meth:`~llm_client.OpenAIClient.stream_to_sink`
  the events that arrive while the sink waits go out together in the next batch;
- *event size*: every event's ``data`` stays within ``max_event_bytes`` (default 10,000 UTF-8
  bytes, under Pusher's 10 KB): long ``text`` and tool-call ``arguments`` are split, in order,
  across consecutive events;
- *batch size*: at most 10 events per ``/batch_events`` request;
- *errors*: 429 and 5xx answers and connection failures are retried with exponential back-off
  (``Retry-After`` honoured); other 4xx raise :class:`PusherError` at once.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import aiohttp

from llm_client.exceptions import ConfigurationError
from llm_client.sinks import BaseSink, wire_data
from llm_client.streaming import LLMEvent

from .signing import AUTH_VERSION, check_channel, check_event_name, signed_query

__all__ = ["MAX_BATCH", "MAX_EVENT_BYTES", "PusherError", "PusherSink"]

#: Pusher's limit on an event's data, in bytes (HTTP API reference: "limited to 10KB").
MAX_EVENT_BYTES = 10 * 1024
#: Pusher's limit on events per ``/batch_events`` request.
MAX_BATCH = 10
#: The environment variables read for each credential (the seed README's names).
ENV = {
    "app_id": "PUSHER_APP_ID",
    "key": "PUSHER_AUTH_KEY",
    "secret": "PUSHER_AUTH_SECRET",
    "cluster": "PUSHER_APP_CLUSTER",
    "auth_version": "PUSHER_AUTH_VERSION",
}
#: Fields that may be split across events when an event is too large, by event type.
_SPLITTABLE = {"text_delta": "text", "tool_call_delta": "arguments"}


class PusherError(Exception):
    """Pusher refused a request (or kept failing): ``status`` is its HTTP status (0 for a
    connection failure) and the message is Pusher's explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Pusher answered {status}: {message}" if status else message)
        self.status = status


def _credential(name: str, value: str | None, *, required: bool = True) -> str | None:
    if value is None:
        value = os.environ.get(ENV[name]) or None
    if value is None:
        if required:
            raise ConfigurationError(
                f"PusherSink needs {name}: pass {name}=... or set {ENV[name]}"
            )
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"PusherSink {name} must be a non-empty string ({ENV[name]})")
    return value.strip()


def _number(name: str, value: Any, *, minimum: float, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not value >= minimum:
        kind = "an integer" if integer else "a number"
        raise ConfigurationError(f"{name} must be {kind} >= {minimum:g}, got {value!r:.60}")
    return value


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def _size(text: str) -> int:
    return len(text.encode())


class PusherSink(BaseSink):
    """Publish a stream's events to one Pusher Channels ``channel``.

    Credentials come from the arguments or else from ``PUSHER_APP_ID``, ``PUSHER_AUTH_KEY``,
    ``PUSHER_AUTH_SECRET``, ``PUSHER_APP_CLUSTER`` (not needed with ``base_url``) and
    ``PUSHER_AUTH_VERSION`` (default ``"1.0"``, the only version Pusher defines); a missing
    one raises :class:`~llm_client.ConfigurationError` naming its variable.

    :param channel: the channel (Pusher's naming rules are checked here).
    :param base_url: the API root, default ``https://api-{cluster}.pusher.com`` (for tests:
        :class:`llm_client_pusher.testing.PusherServer`'s ``base_url``).
    :param event_prefix: put in front of every event name (``"llm-"`` gives ``llm-done``).
    :param flush_interval: the least time, in seconds, from the end of one request to the
        start of the next.
    :param max_event_bytes: the largest ``data`` of one event, in UTF-8 bytes (<= 10 KB).
    :param attempts, backoff: tries per request for 429/5xx/connection errors, and the first
        back-off in seconds (doubling).
    :param request_timeout: seconds per HTTP request.
    :param session: an ``aiohttp.ClientSession`` to use (not closed by the sink).
    """

    def __init__(
        self,
        channel: str,
        *,
        app_id: str | None = None,
        key: str | None = None,
        secret: str | None = None,
        cluster: str | None = None,
        auth_version: str | None = None,
        base_url: str | None = None,
        event_prefix: str = "",
        flush_interval: float = 0.1,
        max_event_bytes: int = 10_000,
        attempts: int = 4,
        backoff: float = 0.25,
        request_timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.channel = check_channel(channel)
        self.app_id = _credential("app_id", app_id)
        self.key = _credential("key", key)
        self._secret = _credential("secret", secret)
        self.auth_version: str = (
            _credential("auth_version", auth_version, required=False) or AUTH_VERSION
        )
        if self.auth_version != AUTH_VERSION:
            raise ConfigurationError(
                f"PusherSink auth_version must be {AUTH_VERSION!r} (PUSHER_AUTH_VERSION),"
                f" got {self.auth_version!r:.40}"
            )
        if base_url is None:
            self.cluster = _credential("cluster", cluster)
            base_url = f"https://api-{self.cluster}.pusher.com"
        else:
            self.cluster = _credential("cluster", cluster, required=False)
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"base_url must be an http(s) URL, got {base_url!r:.80}")
        self.base_url = base_url.rstrip("/")
        if not isinstance(event_prefix, str):
            raise ConfigurationError(f"event_prefix must be a string, got {event_prefix!r:.60}")
        if event_prefix:
            check_event_name(event_prefix + "done", "event_prefix + event type")
        self.event_prefix = event_prefix
        self.flush_interval = float(_number("flush_interval", flush_interval, minimum=0))
        self.max_event_bytes: int = _number(
            "max_event_bytes", max_event_bytes, minimum=256, integer=True
        )
        if self.max_event_bytes > MAX_EVENT_BYTES:
            raise ConfigurationError(
                f"max_event_bytes must be at most {MAX_EVENT_BYTES} (Pusher's 10 KB limit),"
                f" got {max_event_bytes}"
            )
        self.attempts: int = _number("attempts", attempts, minimum=1, integer=True)
        self.backoff = float(_number("backoff", backoff, minimum=0))
        self.request_timeout = float(_number("request_timeout", request_timeout, minimum=0.001))
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError(
                f"session must be an aiohttp.ClientSession, got {type(session).__name__}"
            )
        self._session = session
        self._own_session = session is None
        self._seq = 0
        self._last_post: float | None = None
        self._lock: asyncio.Lock | None = None
        #: Requests made, events published and retries, for stats and benchmarks.
        self.requests = 0
        self.published = 0
        self.retries = 0

    def __repr__(self) -> str:  # never the secret
        return (
            f"PusherSink(channel={self.channel!r}, app_id={self.app_id!r},"
            f" url={self.base_url!r})"
        )

    # --- turning events into Pusher events ----------------------------------------------------

    def _coalesce(self, events: Sequence[LLMEvent]) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(type, payload)`` pairs, consecutive ``text_delta`` events merged."""
        text: list[str] = []
        for event in events:
            if event.type == "text_delta" and set(event.data) == {"text"}:
                text.append(str(event.data["text"]))
                continue
            if text:
                yield "text_delta", {"text": "".join(text)}
                text = []
            yield event.type, wire_data(event)
        if text:
            yield "text_delta", {"text": "".join(text)}

    def _pieces(self, kind: str, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """``payload`` as one or more payloads whose data (with ``seq``) fits the limit."""
        probe = {"seq": 10**15, **payload}
        if _size(_dumps(probe)) <= self.max_event_bytes:
            yield payload
            return
        field = _SPLITTABLE.get(kind)
        if kind == "done" and "tool_calls" in payload:  # the calls already went out as deltas
            yield from self._pieces(kind, {k: v for k, v in payload.items() if k != "tool_calls"})
            return
        if field is None or not isinstance(payload.get(field), str):
            raise PusherError(
                413, f"a {kind!r} event is larger than {self.max_event_bytes} bytes"
            )
        rest = {**probe, field: ""}
        budget = self.max_event_bytes - _size(_dumps(rest))
        if budget < 8:
            raise PusherError(413, f"a {kind!r} event's fields leave no room for its {field}")
        chunk: list[str] = []
        used = 0
        for ch in payload[field]:
            cost = _size(_dumps(ch)) - 2  # the character as JSON writes it, without quotes
            if used + cost > budget:
                yield {**payload, field: "".join(chunk)}
                chunk, used = [], 0
            chunk.append(ch)
            used += cost
        if chunk:
            yield {**payload, field: "".join(chunk)}

    def messages(self, events: Sequence[LLMEvent]) -> list[tuple[str, str]]:
        """The ``(event name, data)`` pairs ``events`` become, in order (numbers them)."""
        out: list[tuple[str, str]] = []
        for kind, payload in self._coalesce(events):
            for piece in self._pieces(kind, payload):
                data = _dumps({"seq": self._seq, **piece})
                self._seq += 1
                out.append((self.event_prefix + kind, data))
        return out

    # --- sending ------------------------------------------------------------------------------

    async def send(self, events: Sequence[LLMEvent]) -> None:
        """Publish ``events``: merged, split to size, at most 10 per request, one request per
        ``flush_interval`` at most."""
        messages = self.messages(events)
        if not messages:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            for i in range(0, len(messages), MAX_BATCH):
                await self._publish(messages[i : i + MAX_BATCH])

    async def _publish(self, chunk: list[tuple[str, str]]) -> None:
        if len(chunk) == 1:
            name, data = chunk[0]
            path = f"/apps/{self.app_id}/events"
            body: dict[str, Any] = {"name": name, "channels": [self.channel], "data": data}
        else:
            path = f"/apps/{self.app_id}/batch_events"
            body = {
                "batch": [{"channel": self.channel, "name": n, "data": d} for n, d in chunk]
            }
        await self._post(path, _dumps(body).encode())
        self.published += len(chunk)

    async def _wait_turn(self) -> None:
        """Wait until ``flush_interval`` has passed since the last request *ended*, so two
        requests never reach Pusher closer together than that."""
        if self._last_post is not None and self.flush_interval > 0:
            wait = self._last_post + self.flush_interval - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)

    async def _post(self, path: str, body: bytes) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = self.base_url + path
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                self.retries += 1
            await self._wait_turn()
            query = signed_query(
                key=str(self.key),
                secret=str(self._secret),
                method="POST",
                path=path,
                body=body,
                auth_version=self.auth_version,
            )
            retry_after: float | None = None
            self.requests += 1
            try:
                async with self._session.post(
                    url,
                    params=query,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=timeout,
                ) as response:
                    if response.status < 300:
                        await response.read()
                        return
                    text = (await response.text())[:300]
                    if response.status != 429 and response.status < 500:
                        raise PusherError(response.status, text)
                    problem = f"Pusher answered {response.status}: {text}"
                    retry_after = _retry_after(response.headers)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                problem = f"could not reach Pusher: {type(exc).__name__}: {exc}"
            finally:
                self._last_post = asyncio.get_running_loop().time()
            if attempt + 1 < self.attempts:
                delay = self.backoff * 2**attempt
                await asyncio.sleep(max(delay, retry_after or 0.0))
        raise PusherError(0, f"{problem} (after {self.attempts} attempts)")

    async def aclose(self) -> None:
        """Close the HTTP session the sink opened (a session passed in stays open)."""
        if self._own_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        value = float(headers.get("Retry-After", ""))
    except ValueError:
        return None
    return min(value, 60.0) if value >= 0 else None
