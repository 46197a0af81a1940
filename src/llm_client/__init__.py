"""llm-client: an asynchronous OpenAI client built as a chain of middleware.

Importing the package loads the nearest ``.env`` file (python-dotenv), never overriding
variables that are already set.
"""

from __future__ import annotations

import os as _os

from ._env import load_env as _load_env

if _os.environ.get("LLM_CLIENT_NO_DOTENV", "") not in ("1", "true"):
    _load_env()

from .client import OpenAIClient
from .exceptions import (
    APIConnectionError,
    APIError,
    ConfigurationError,
    ContextLengthExceededError,
    DeadlineExceededError,
    InvalidRequestError,
    LLMClientError,
    RateLimitError,
    UnknownBackendError,
    UnknownModelError,
)
from .models import (
    GPT5,
    GPT5Mini,
    GPT5Nano,
    GPT5Point1,
    GPT5Point2,
    ModelProfile,
    RateLimits,
    TextEmbedding3Large,
    TextEmbedding3Small,
    UsageCosts,
)
from .pipeline import CacheOptions, Call, Middleware, Next, Pipeline, Reply
from .result import LLMResult
from .streaming import LLMEvent
from .tokens import count_tokens
from .usage import Usage, parse_usage

__version__ = "0.1.0"

__all__ = [
    "GPT5",
    "APIConnectionError",
    "APIError",
    "CacheOptions",
    "Call",
    "ConfigurationError",
    "ContextLengthExceededError",
    "DeadlineExceededError",
    "GPT5Mini",
    "GPT5Nano",
    "GPT5Point1",
    "GPT5Point2",
    "InvalidRequestError",
    "LLMClientError",
    "LLMEvent",
    "LLMResult",
    "Middleware",
    "ModelProfile",
    "Next",
    "OpenAIClient",
    "Pipeline",
    "RateLimitError",
    "RateLimits",
    "Reply",
    "TextEmbedding3Large",
    "TextEmbedding3Small",
    "UnknownBackendError",
    "UnknownModelError",
    "Usage",
    "UsageCosts",
    "count_tokens",
    "parse_usage",
]
