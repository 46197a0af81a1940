"""Signing against the vectors Pusher publishes, and its naming rules."""

from __future__ import annotations

import pytest
from llm_client_pusher.signing import (
    body_md5,
    check_channel,
    check_event_name,
    sign,
    signed_query,
    string_to_sign,
)

from llm_client.exceptions import ConfigurationError


def test_pusher_docs_worked_example() -> None:
    """The worked example of Pusher's HTTP API reference ("Worked authentication example"):
    app 3, key 278d425bdf160c739803, secret 7ad3773142a6692b25b8, timestamp 1353088179."""
    body = b'{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'
    assert body_md5(body) == "ec365a775a4cd0599faeb73354201b6f"
    query = signed_query(
        key="278d425bdf160c739803",
        secret="7ad3773142a6692b25b8",
        method="POST",
        path="/apps/3/events",
        body=body,
        timestamp=1353088179,
    )
    assert string_to_sign("POST", "/apps/3/events", query) == (
        "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179"
        "&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f"
    )
    assert query["auth_signature"] == (
        "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
    )


def test_pusher_http_python_post_vector() -> None:
    """pusher-http-python, pusher_tests/test_request.py::test_post_signature_generation:
    key 'key', secret 'secret', time 1000, POST /some/obscure/api with body '{"foo": "bar"}'."""
    query = signed_query(
        key="key",
        secret="secret",
        method="POST",
        path="/some/obscure/api",
        body=b'{"foo": "bar"}',
        timestamp=1000,
    )
    assert query == {
        "auth_key": "key",
        "auth_signature": "e05fa4cafee86311746ee3981d5581a5e4e87c27bbab0aeb1059e2df5c90258b",
        "auth_timestamp": "1000",
        "auth_version": "1.0",
        "body_md5": "94232c5b8fc9272f6f73a1e36eb68fcf",
    }


def test_pusher_http_python_get_vector() -> None:
    """pusher-http-python, test_get_signature_generation: a GET with ``foo=bar`` and the MD5 of
    an empty body in its query."""
    params = {
        "auth_key": "key",
        "auth_timestamp": "1000",
        "auth_version": "1.0",
        "body_md5": "d41d8cd98f00b204e9800998ecf8427e",
        "foo": "bar",
    }
    assert sign("secret", "GET", "/some/obscure/api", params) == (
        "5c49f04a95eedc9028b1e0e8de7c2c7ad63504a0e3b5c145d2accaef6c14dbac"
    )


def test_query_keys_are_lowercased_sorted_and_not_escaped() -> None:
    params = {"Name": "Something else", "auth_key": "foo", "auth_signature": "ignored"}
    assert string_to_sign("post", "/x", params) == "POST\n/x\nauth_key=foo&name=Something else"


@pytest.mark.parametrize("name", ["foo-bar_1234@=,.;", "private-chat", "presence-room", "a" * 164])
def test_good_channels(name: str) -> None:
    assert check_channel(name) == name


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("", "non-empty"),
        ("a" * 165, "at most 164"),
        ("with space", "only contain"),
        ("slash/no", "only contain"),
        ("private-encrypted-x", "encrypted"),
        (None, "non-empty string"),
    ],
)
def test_bad_channels(name: object, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        check_channel(name)


def test_event_names() -> None:
    assert check_event_name("text_delta") == "text_delta"
    with pytest.raises(ConfigurationError, match="at most 200"):
        check_event_name("e" * 201)
    with pytest.raises(ConfigurationError, match="reserved"):
        check_event_name("pusher:subscribe")
