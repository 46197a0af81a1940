"""A local Pusher-compatible HTTP API server that checks requests the way Pusher does.

:class:`PusherServer` serves ``POST /apps/{app_id}/events`` and ``/apps/{app_id}/batch_events``
on 127.0.0.1. For every request it recomputes what Pusher's server checks and answers with
Pusher's status codes:

- ``auth_key``, ``auth_timestamp``, ``auth_version`` and ``auth_signature`` must be in the
  query; the key must be the app's and the version ``1.0`` (else 401);
- the timestamp must be within 600 seconds of the server's clock (else 401);
- a non-empty body needs a ``body_md5`` equal to the MD5 of the bytes received (else 401);
- the signature must equal the HMAC-SHA256 of ``POST\\n{path}\\n{sorted query}`` keyed with the
  app secret (else 401, with the string the server signed, as Pusher does);
- an unknown app is 404; a body that is not UTF-8 JSON, a bad channel or event name, more than
  100 channels or more than 10 events in a batch is 400; an event whose data is over 10 KB
  (UTF-8 bytes) is 413.

Accepted events land in :attr:`PusherServer.events`, in order. ``fail_next(status)`` makes the
next requests fail before any check (to test retries)::

    async with PusherServer() as pusher:
        sink = PusherSink("chat", base_url=pusher.base_url, **pusher.credentials)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from llm_client.exceptions import ConfigurationError

from .signing import AUTH_VERSION, check_channel, check_event_name, string_to_sign

__all__ = ["PublishedEvent", "PusherServer"]

#: Pusher's published limits.
MAX_DATA_BYTES = 10 * 1024
MAX_BATCH_EVENTS = 10
MAX_CHANNELS = 100
TIMESTAMP_WINDOW = 600


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    """One event the server accepted."""

    channel: str
    name: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A request the server refused: its status and Pusher's explanation."""

    status: int
    reason: str


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class PusherServer:
    """A Pusher Channels HTTP API stand-in that verifies every request (see the module)."""

    def __init__(
        self,
        *,
        app_id: str = "1234",
        key: str = "test-key",
        secret: str = "test-secret",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = app_id
        self.key = key
        self.secret = secret
        self.host = host
        self._port = port
        self.clock = clock
        self.events: list[PublishedEvent] = []
        self.rejections: list[Rejection] = []
        #: Every request's path and the status answered, in order.
        self.requests: list[tuple[str, int]] = []
        #: When each request arrived (``time.monotonic()``), in order.
        self.arrivals: list[float] = []
        self._faults: list[int] = []
        self._runner: web.AppRunner | None = None

    @property
    def credentials(self) -> dict[str, str]:
        """``app_id``, ``key`` and ``secret``, as :class:`PusherSink` takes them."""
        return {"app_id": self.app_id, "key": self.key, "secret": self.secret}

    @property
    def base_url(self) -> str:
        if self._runner is None:
            raise ConfigurationError("the PusherServer is not running")
        return f"http://{self.host}:{self._port}"

    def fail_next(self, status: int = 500, *, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` (before any check)."""
        self._faults.extend([status] * times)

    def channel_events(self, channel: str) -> list[PublishedEvent]:
        return [e for e in self.events if e.channel == channel]

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> PusherServer:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/apps/{app_id}/events", self._events)
        app.router.add_post("/apps/{app_id}/batch_events", self._batch_events)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> PusherServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # --- checks -------------------------------------------------------------------------------

    async def _verified_body(self, request: web.Request) -> Any:
        if request.match_info["app_id"] != self.app_id:
            raise _Refused(404, f"Unknown app_id {request.match_info['app_id']!r}")
        body = await request.read()
        query = dict(request.query)
        for name in ("auth_key", "auth_timestamp", "auth_version", "auth_signature"):
            if name not in query:
                raise _Refused(401, f"Missing required parameter: {name}")
        if query["auth_key"] != self.key:
            raise _Refused(401, f"Unknown auth_key {query['auth_key']!r}")
        if query["auth_version"] != AUTH_VERSION:
            raise _Refused(401, f"Unsupported auth_version {query['auth_version']!r}")
        try:
            timestamp = int(query["auth_timestamp"])
        except ValueError:
            raise _Refused(401, "auth_timestamp must be an integer") from None
        now = self.clock()
        if abs(now - timestamp) > TIMESTAMP_WINDOW:
            raise _Refused(
                401,
                f"Timestamp expired: Given timestamp ({timestamp}) not within"
                f" {TIMESTAMP_WINDOW}s of server time ({int(now)})",
            )
        if body:
            expected_md5 = hashlib.md5(body).hexdigest()
            if "body_md5" not in query:
                raise _Refused(401, "Missing required parameter: body_md5")
            if query["body_md5"] != expected_md5:
                raise _Refused(401, "body_md5 does not match the body received")
        to_sign = string_to_sign(request.method, request.path, query)
        expected = hmac.new(self.secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, query["auth_signature"]):
            raise _Refused(
                401,
                "Invalid signature: you should have sent HmacSHA256Hex("
                f"{to_sign!r}, your_secret_key), but you sent {query['auth_signature']!r}",
            )
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _Refused(400, "the body must be UTF-8 encoded JSON") from None

    def _event(self, item: Any, *, batch: bool) -> list[PublishedEvent]:
        if not isinstance(item, dict):
            raise _Refused(400, "an event must be a JSON object")
        name, data = item.get("name"), item.get("data")
        try:
            check_event_name(name)
        except ConfigurationError as exc:
            raise _Refused(400, str(exc)) from None
        if not isinstance(data, str):
            raise _Refused(400, "data must be a string")
        if len(data.encode()) > MAX_DATA_BYTES:
            raise _Refused(413, f"Event data is over {MAX_DATA_BYTES} bytes")
        single = [item.get("channel")]
        channels = single if batch else item.get("channels") or single
        if not isinstance(channels, list) or len(channels) > MAX_CHANNELS:
            raise _Refused(400, f"channels must be a list of at most {MAX_CHANNELS} names")
        for channel in channels:
            try:
                check_channel(channel)
            except ConfigurationError as exc:
                raise _Refused(400, str(exc)) from None
        return [PublishedEvent(str(c), str(name), data) for c in channels]

    async def _handle(self, request: web.Request, batch: bool) -> web.Response:
        status = 200
        self.arrivals.append(time.monotonic())
        try:
            if self._faults:
                status = self._faults.pop(0)
                return web.json_response({"error": "injected fault"}, status=status)
            body = await self._verified_body(request)
            if batch:
                items = body.get("batch") if isinstance(body, dict) else None
                if not isinstance(items, list) or not items:
                    raise _Refused(400, "batch must be a non-empty list of events")
                if len(items) > MAX_BATCH_EVENTS:
                    raise _Refused(
                        400, f"Batch too large: {len(items)} events, at most {MAX_BATCH_EVENTS}"
                    )
                accepted = [e for item in items for e in self._event(item, batch=True)]
                self.events.extend(accepted)
                return web.json_response({"batch": [{} for _ in items]})
            self.events.extend(self._event(body, batch=False))
            return web.json_response({})
        except _Refused as refused:
            status = refused.status
            self.rejections.append(Rejection(refused.status, refused.reason))
            return web.Response(status=refused.status, text=refused.reason)
        finally:
            self.requests.append((request.path, status))

    async def _events(self, request: web.Request) -> web.Response:
        return await self._handle(request, batch=False)

    async def _batch_events(self, request: web.Request) -> web.Response:
        return await self._handle(request, batch=True)
