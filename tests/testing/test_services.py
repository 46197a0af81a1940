"""llm_client.testing.services: reaching, requiring and starting the servers tests need."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from llm_client.testing.services import (
    RedisServer,
    free_port,
    reachable,
    require_redis,
    require_service,
    unavailable,
)


def test_free_port_refuses_connections() -> None:
    port = free_port()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 1):
        pass
    assert not reachable(f"redis://127.0.0.1:{port}/0", 6379)


def test_reachable_sees_a_listening_socket_and_uses_the_default_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert reachable(f"postgresql://user:pw@127.0.0.1:{port}/db", 5432)
        assert reachable("tcp://127.0.0.1", port)  # no port in the URL: the default
    assert not reachable("redis://127.0.0.1:notaport/0", 6379)


def test_missing_service_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.delenv("LLM_CLIENT_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"Redis is not reachable at {url}"):
        require_service(url, 6379, "Redis")
    monkeypatch.setenv("LLM_CLIENT_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="LLM_CLIENT_REQUIRE_SERVICES=1"):
        require_redis(url)
    with pytest.raises(pytest.fail.Exception, match="redis-server is not installed"):
        unavailable("redis-server is not installed")


def test_require_redis_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"redis://127.0.0.1:{free_port()}/3"
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.delenv("LLM_CLIENT_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match=url):
        require_redis()


def test_redis_server_stops_and_starts_on_the_same_port(redis_server: RedisServer) -> None:
    assert redis_server.running and reachable(redis_server.url, 6379)
    url = redis_server.url
    redis_server.stop()
    assert not redis_server.running and not reachable(url, 6379)
    redis_server.stop()  # idempotent
    redis_server.start()
    assert redis_server.url == url and reachable(url, 6379)


def test_redis_server_that_cannot_start_says_so(tmp_path: Path) -> None:
    fake = tmp_path / "not-a-redis-server"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    server = RedisServer(str(fake), start_timeout=5.0)
    with pytest.raises(RuntimeError, match="did not start"):
        server.start()
    assert not server.running
