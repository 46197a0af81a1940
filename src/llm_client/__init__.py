"""llm-client: an asynchronous OpenAI client built as a chain of middleware.

Importing the package loads the nearest ``.env`` file (python-dotenv), never overriding
variables that are already set.

The package logs through the standard ``logging`` module under the ``llm_client`` logger and,
as a library should, adds only a ``NullHandler``: configure logging (``logging.basicConfig()``)
to see its warnings (for example that a model is about to be shut down).
"""

from __future__ import annotations

import logging as _logging
from typing import TYPE_CHECKING

from ._env import load_env as _load_env
from .config import env_flag as _env_flag

if not _env_flag("LLM_CLIENT_NO_DOTENV"):
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
from .config import CacheConfig, OpenAIConfig, RateLimitConfig, RetryConfig, TimeoutConfig
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
from .request import CallOptions
from .result import LLMResult
from .streaming import LLMEvent
from .tokens import count_tokens
from .usage import Usage, parse_usage

_logging.getLogger(__name__).addHandler(_logging.NullHandler())


if TYPE_CHECKING:  # type checkers see the real class, not a catch-all ``__getattr__``
    from llm_client_pusher import PusherSink as PusherSink
else:

    def __getattr__(name: str) -> object:
        """``from llm_client import PusherSink`` (the seed's spelling), served by the separately
        installed ``llm-client-pusher`` package."""
        if name == "PusherSink":
            try:
                from llm_client_pusher import PusherSink
            except ImportError as exc:
                raise ImportError(
                    "PusherSink comes with the 'llm-client-pusher' package: pip install"
                    " llm-client-pusher (or -e plugins/llm-client-pusher)"
                ) from exc
            return PusherSink
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "CacheConfig",
    "CacheOptions",
    "Call",
    "CallOptions",
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
    "OpenAIConfig",
    "Pipeline",
    "RateLimitConfig",
    "RateLimitError",
    "RateLimits",
    "Reply",
    "RetryConfig",
    "RunBudget",
    "StopRun",
    "TextEmbedding3Large",
    "TextEmbedding3Small",
    "TimeoutConfig",
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
