"""Reaching and starting the servers a backend's tests need: PostgreSQL, Redis, any TCP service.

For the tests of a backend that talks to a server (ours or a third party's):

* :func:`reachable` asks whether something accepts TCP connections at a URL's host and port;
* :func:`require_service` (and :func:`require_redis`, :func:`require_postgres`) skip the
  test when the server is not there, or fail it when ``LLM_CLIENT_REQUIRE_SERVICES=1`` says
  the services must be there (in CI, so a missing server cannot pass as a green run);
* :func:`free_port` gives a port where nothing listens: a real "server down" for outage tests,
  or a port for a server the test starts;
* :class:`RedisServer` is a private ``redis-server`` on a free port that a test may stop and
  start again (the ``redis_server`` fixture of :mod:`llm_client.testing.pytest_plugin`).

Nothing here imports a database client; pytest is imported only by the functions that skip or
fail a test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from types import TracebackType
from typing import NoReturn
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_PG_DSN",
    "DEFAULT_REDIS_URL",
    "REQUIRE_SERVICES_ENV",
    "RedisServer",
    "free_port",
    "reachable",
    "require_postgres",
    "require_redis",
    "require_service",
    "services_required",
    "unavailable",
]

#: The environment variable that turns "service missing: skip" into "service missing: fail".
REQUIRE_SERVICES_ENV = "LLM_CLIENT_REQUIRE_SERVICES"
#: Where :func:`require_redis` looks without ``REDIS_URL``.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Where :func:`require_postgres` looks without ``PG_DSN``.
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port of ``host`` on which nothing listens right now.

    Connecting to it is refused at once, which makes it a real outage for tests of how a
    backend behaves when its server is down (another process could take the port later, so
    use it right away).
    """
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def reachable(url: str, default_port: int, *, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``url``'s host and port
    (``default_port`` when the URL names none; host ``127.0.0.1`` when it names none)."""
    parts = urlsplit(url)
    try:
        port = parts.port or default_port
    except ValueError:  # a port that is not a number
        return False
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout):
            return True
    except OSError:
        return False


def services_required() -> bool:
    """Whether ``LLM_CLIENT_REQUIRE_SERVICES=1``: a missing service fails the test."""
    return os.environ.get(REQUIRE_SERVICES_ENV) == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the running test for ``reason``, or fail it when :func:`services_required`."""
    import pytest

    if services_required():
        pytest.fail(f"{reason} ({REQUIRE_SERVICES_ENV}=1)")
    pytest.skip(reason)


def require_service(url: str, default_port: int, what: str) -> str:
    """``url`` if :func:`reachable`, else :func:`unavailable` (``what`` names the service,
    e.g. ``"Redis"``, in the message)."""
    if not reachable(url, default_port):
        unavailable(f"{what} is not reachable at {url}")
    return url


def require_redis(url: str | None = None) -> str:
    """The Redis URL to test against (``url``, else ``REDIS_URL``, else
    :data:`DEFAULT_REDIS_URL`), after :func:`require_service`."""
    return require_service(url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL, 6379, "Redis")


def require_postgres(dsn: str | None = None) -> str:
    """The PostgreSQL DSN to test against (``dsn``, else ``PG_DSN``, else
    :data:`DEFAULT_PG_DSN`), after :func:`require_service`."""
    return require_service(dsn or os.environ.get("PG_DSN") or DEFAULT_PG_DSN, 5432, "PostgreSQL")


class RedisServer:
    """A private ``redis-server`` on a free port of 127.0.0.1, without persistence.

    A test may :meth:`stop` it (a real outage: connections are refused) and :meth:`start` it
    again (a real recovery, empty). Use it as a context manager, or through the
    ``redis_server`` fixture, which skips (or fails, see :func:`unavailable`) when
    ``redis-server`` is not installed.

    :param executable: the server binary to run.
    :param start_timeout: seconds :meth:`start` waits for the server to accept connections.
    """

    def __init__(self, executable: str = "redis-server", *, start_timeout: float = 10.0) -> None:
        self.executable = executable
        self.start_timeout = start_timeout
        self.port = free_port()
        #: ``redis://127.0.0.1:<port>/0``
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def installed(executable: str = "redis-server") -> bool:
        """Whether ``executable`` is on ``PATH``."""
        return shutil.which(executable) is not None

    @property
    def running(self) -> bool:
        return self.proc is not None

    def start(self) -> None:
        """Start the server (on the same port every time) and wait until it accepts
        connections; :class:`RuntimeError` if it does not within ``start_timeout``."""
        if self.proc is not None:
            return
        self.proc = subprocess.Popen(
            [
                self.executable,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.start_timeout
        while not reachable(self.url, self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.executable} did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (connections to it are refused from now on). Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RedisServer({self.url!r}, running={self.running})"
