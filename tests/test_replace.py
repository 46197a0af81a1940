"""The field-wise copy behind Call.replace, LLMResult.replace and Usage pricing."""

from __future__ import annotations

import dataclasses

import pytest

from llm_client import GPT5Nano
from llm_client.pipeline import Call
from llm_client.result import LLMResult
from llm_client.usage import Usage


def test_replace_matches_dataclasses_replace():
    r = LLMResult(params={"a": 1}, output="x", usage=Usage(input_tokens=3))
    assert r.replace(cached=True, attempts=0) == dataclasses.replace(r, cached=True, attempts=0)
    call = Call(profile=GPT5Nano, operation="chat", params={"m": 1})
    changed = call.replace(stream=True, context={"k": 1})
    assert changed == dataclasses.replace(call, stream=True, context={"k": 1})
    assert call.stream is False and call.context == {}  # the original is untouched


def test_replace_rejects_unknown_fields_and_stays_frozen():
    r = LLMResult(params={})
    with pytest.raises(TypeError, match="no field"):
        r.replace(nope=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.replace(output="y").output = "z"  # type: ignore[misc]
