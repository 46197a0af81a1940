"""Property: however a delta is made up, the events PusherSink makes of it each fit the size
limit in UTF-8 bytes, keep their order and join back to the original."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from llm_client_pusher import PusherSink

from llm_client.streaming import LLMEvent

CREDS = {"app_id": "1", "key": "k", "secret": "s", "cluster": "mt1"}


@settings(max_examples=150, deadline=None)
@given(
    pieces=st.lists(st.text(min_size=0, max_size=3000), min_size=1, max_size=6),
    limit=st.integers(min_value=256, max_value=10_240),
    arguments=st.text(max_size=4000),
)
def test_split_events_fit_and_join_back(pieces: list[str], limit: int, arguments: str) -> None:
    sink = PusherSink("chat", max_event_bytes=limit, **CREDS)
    events = [LLMEvent("text_delta", {"text": p}) for p in pieces]
    events.append(LLMEvent("tool_call_delta", {"index": 0, "id": "call_1", "arguments": arguments}))
    messages = sink.messages(events)
    assert all(len(data.encode()) <= limit for _, data in messages)
    decoded = [(name, json.loads(data)) for name, data in messages]
    assert [d["seq"] for _, d in decoded] == list(range(len(decoded)))
    text = "".join(d["text"] for name, d in decoded if name == "text_delta")
    assert text == "".join(pieces)
    args = "".join(d["arguments"] for name, d in decoded if name == "tool_call_delta")
    assert args == arguments
