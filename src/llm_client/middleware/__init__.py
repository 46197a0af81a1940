"""The built-in middleware, one module per step (outermost first in the default chain)."""

from __future__ import annotations

from .cache import CacheMiddleware
from .cost import CostAccounting
from .limit import RateLimit
from .retry import ExponentialBackoff, Retry, RetryPolicy
from .timeout import Timeout
from .tokens import TokenCounting

__all__ = [
    "CacheMiddleware",
    "CostAccounting",
    "ExponentialBackoff",
    "RateLimit",
    "Retry",
    "RetryPolicy",
    "Timeout",
    "TokenCounting",
]
