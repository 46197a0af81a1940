"""Token counting (tiktoken, cookbook chat overhead) and its offline fallback."""

from __future__ import annotations

import logging

import pytest

from llm_client import GPT5Nano, TextEmbedding3Small, count_tokens
from llm_client import tokens as tokens_mod

# The example conversation from OpenAI's cookbook "How to count tokens with tiktoken".
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate"
        " jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities"
        " for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client"
        " deliverable.",
    },
]


def test_cookbook_example_counts_124_on_o200k():
    assert count_tokens(COOKBOOK, model=GPT5Nano) == 124
    assert GPT5Nano.count_tokens(COOKBOOK) == 124


def test_strings_and_embedding_input():
    assert count_tokens("hello world", model="gpt-5") == 2
    assert count_tokens(["hello world", "hello"], model=TextEmbedding3Small) == 3
    assert count_tokens([[1, 2, 3], [4]]) == 4
    assert count_tokens("") == 0


def test_names_and_tools_add_tokens():
    plain = [{"role": "user", "content": "hi"}]
    named = [{"role": "user", "content": "hi", "name": "bob"}]
    assert count_tokens(named) == count_tokens(plain) + 1 + count_tokens("bob")
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": "City"}},
                },
            },
        }
    ]
    assert count_tokens(plain, tools=tools) > count_tokens(plain) + 10


def test_content_parts_are_counted():
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello world"}]}]
    assert count_tokens(parts) == count_tokens([{"role": "user", "content": "hello world"}])


def test_bad_context_type():
    with pytest.raises(TypeError, match="count_tokens"):
        count_tokens(3.5)


def test_offline_fallback_estimates_with_one_warning(caplog):
    tokens_mod.get_encoder.cache_clear()
    tokens_mod._warned = False
    try:
        with caplog.at_level(logging.WARNING, logger="llm_client.tokens"):
            enc1 = tokens_mod.get_encoder("no_such_encoding")
            enc2 = tokens_mod.get_encoder("another_missing")
        assert len(enc1.encode("abcdefgh")) == 2  # 8 bytes / 4
        assert len(enc2.encode("abc")) == 1
        assert sum("unavailable" in r.message for r in caplog.records) == 1
    finally:
        tokens_mod.get_encoder.cache_clear()
        tokens_mod._warned = False
