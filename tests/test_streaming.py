"""llm_client.streaming: LLMEvent and draining a stream to its final result."""

from __future__ import annotations

from collections.abc import AsyncIterator

from llm_client.result import LLMResult
from llm_client.streaming import LLMEvent, collect


async def _events(*events: LLMEvent) -> AsyncIterator[LLMEvent]:
    for event in events:
        yield event


def test_to_dict_has_type_and_data_but_not_the_result() -> None:
    final = LLMResult(params={}, output="hi")
    event = LLMEvent("done", {"output": "hi"}, final)
    assert event.to_dict() == {"type": "done", "data": {"output": "hi"}}
    assert event == LLMEvent("done", {"output": "hi"})  # the result is not compared


async def test_collect_returns_the_final_result_of_done_or_error() -> None:
    done = LLMResult(params={}, output="hello")
    stream = _events(
        LLMEvent("meta", {"model": "m"}),
        LLMEvent("text_delta", {"text": "hel"}),
        LLMEvent("text_delta", {"text": "lo"}),
        LLMEvent("done", {}, done),
    )
    assert await collect(stream) is done
    failed = LLMResult(params={}, status=502, error="cut")
    assert await collect(_events(LLMEvent("error", {"status": 502}, failed))) is failed
    assert await collect(_events(LLMEvent("meta", {}))) is None
