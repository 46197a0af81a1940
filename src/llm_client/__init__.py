"""llm-client: an asynchronous OpenAI client built as a chain of middleware.

Importing the package loads the nearest ``.env`` file (python-dotenv), never overriding
variables that are already set.

The package logs through the standard ``logging`` module under the ``llm_client`` logger and,
as a library should, adds only a ``NullHandler``: configure logging (``logging.basicConfig()``)
to see its warnings (for example that a model is about to be shut down).
"""

from __future__ import annotations

import logging as _logging
import os as _os

from ._env import load_env as _load_env

if _os.environ.get("LLM_CLIENT_NO_DOTENV", "") not in ("1", "true"):
    _load_env()

from .agent import (
    AgentError,
    AgentEvent,
    AgentResult,
    AgentRunner,
    BudgetExceededError,
    MaxTurnsExceededError,
    RunBudget,
    StopRun,
    Tool,
    ToolCallRecord,
    TurnRecord,
)
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
    GPT5Point4,
    GPT5Point4Mini,
    GPT5Point4Nano,
    GPT5Point5,
    GPT5Point6Luna,
    GPT5Point6Sol,
    GPT5Point6Terra,
    LongContextPricing,
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

_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "GPT5",
    "APIConnectionError",
    "APIError",
    "AgentError",
    "AgentEvent",
    "AgentResult",
    "AgentRunner",
    "BudgetExceededError",
    "CacheOptions",
    "Call",
    "ConfigurationError",
    "ContextLengthExceededError",
    "DeadlineExceededError",
    "GPT5Mini",
    "GPT5Nano",
    "GPT5Point1",
    "GPT5Point2",
    "GPT5Point4",
    "GPT5Point4Mini",
    "GPT5Point4Nano",
    "GPT5Point5",
    "GPT5Point6Luna",
    "GPT5Point6Sol",
    "GPT5Point6Terra",
    "InvalidRequestError",
    "LLMClientError",
    "LLMEvent",
    "LLMResult",
    "LongContextPricing",
    "MaxTurnsExceededError",
    "Middleware",
    "ModelProfile",
    "Next",
    "OpenAIClient",
    "Pipeline",
    "RateLimitError",
    "RateLimits",
    "Reply",
    "RunBudget",
    "StopRun",
    "TextEmbedding3Large",
    "TextEmbedding3Small",
    "Tool",
    "ToolCallRecord",
    "TurnRecord",
    "UnknownBackendError",
    "UnknownModelError",
    "Usage",
    "UsageCosts",
    "count_tokens",
    "parse_usage",
]
