"""Model profiles: what a model is called, what it costs and what it can take.

Profiles are data. The built-ins come from one table, ``data/models.json`` (which names the
source and date of its prices); users register their own with :meth:`ModelProfile.register`
(a fine-tune, or a model served by an OpenAI-compatible server).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .exceptions import ConfigurationError, UnknownModelError

if TYPE_CHECKING:
    from .usage import Usage

__all__ = [
    "BATCH_DISCOUNT",
    "GPT5",
    "GPT5Mini",
    "GPT5Nano",
    "GPT5Point1",
    "GPT5Point2",
    "PRICES_SOURCE",
    "ModelProfile",
    "RateLimits",
    "TextEmbedding3Large",
    "TextEmbedding3Small",
    "UsageCosts",
]

Category = Literal["completions", "embeddings"]
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Per-minute budgets: tokens (prompt + output) and requests."""

    tkn_per_min: int
    req_per_min: int

    def __post_init__(self) -> None:
        for name in ("tkn_per_min", "req_per_min"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(
                    f"rate limit {name} must be a positive number, got {value!r}"
                )


@dataclass(frozen=True, slots=True)
class UsageCosts:
    """Prices in USD per 1M tokens."""

    input: float
    cached_input: float
    output: float

    def per_token(self) -> tuple[float, float, float]:
        """(input, cached input, output) in USD per single token."""
        return (self.input / 1e6, self.cached_input / 1e6, self.output / 1e6)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelProfile:
    """Everything the client needs to know about one model.

    :param key: short registry key (``"gpt-5-nano"``).
    :param model_name: the name sent to the API.
    :param category: ``"completions"`` or ``"embeddings"``.
    :param context_window: total tokens (input + output) the model holds.
    :param max_input: the most input tokens a request may carry.
    :param max_output: the most output tokens the model produces.
    :param output_dimensions: vector size, embeddings only.
    :param rate_limits: default per-minute budgets for the limiter.
    :param usage_costs: prices per 1M tokens.
    :param encoding: tiktoken encoding used to count tokens.
    :param aliases: further names that resolve to this profile.
    """

    key: str
    model_name: str
    category: Category
    context_window: int
    max_input: int
    max_output: int
    rate_limits: RateLimits
    usage_costs: UsageCosts
    output_dimensions: int | None = None
    encoding: str = "o200k_base"
    aliases: tuple[str, ...] = field(default=())

    _registry: ClassVar[dict[str, ModelProfile]] = {}

    def __post_init__(self) -> None:
        if not self.key or not self.model_name:
            raise ConfigurationError("a model profile needs a non-empty key and model_name")
        if self.category not in ("completions", "embeddings"):
            raise ConfigurationError(
                f"model category must be 'completions' or 'embeddings', got {self.category!r}"
            )
        if self.max_input <= 0 or self.context_window <= 0:
            raise ConfigurationError("context_window and max_input must be positive")

    # --- registry ------------------------------------------------------------------------------

    @classmethod
    def register(cls, profile: ModelProfile, *, replace: bool = False) -> ModelProfile:
        """Make ``profile`` resolvable by its key, its model name and its aliases."""
        names = {profile.key, profile.model_name, *profile.aliases}
        if not replace:
            for name in names:
                other = cls._registry.get(name)
                if other is not None and other != profile:
                    raise ConfigurationError(
                        f"model name {name!r} is already registered by profile {other.key!r};"
                        " pass replace=True to override it"
                    )
        for name in names:
            cls._registry[name] = profile
        return profile

    @classmethod
    def get(cls, key: str | ModelProfile) -> ModelProfile:
        """Resolve a key, model name, alias or dated snapshot name (``gpt-5-2025-08-07``)."""
        if isinstance(key, ModelProfile):
            return key
        if not isinstance(key, str):
            raise ConfigurationError(
                f"a model must be a ModelProfile or a registered key, got {type(key).__name__}"
            )
        found = cls._registry.get(key)
        if found is None:
            base = _SNAPSHOT.sub("", key)
            family = cls._registry.get(base)
            if family is not None:
                return dataclasses.replace(family, model_name=key, aliases=())
            raise UnknownModelError(key, {p.key for p in cls._registry.values()})
        return found

    @classmethod
    def all(cls) -> list[ModelProfile]:
        """Every registered profile once, in registration order."""
        seen: dict[str, ModelProfile] = {}
        for profile in cls._registry.values():
            seen.setdefault(profile.key, profile)
        return list(seen.values())

    # --- helpers -------------------------------------------------------------------------------

    @property
    def is_embeddings(self) -> bool:
        return self.category == "embeddings"

    def count_tokens(self, context: Any) -> int:
        """Count the tokens of a string, a message list or embedding input for this model."""
        from .tokens import count_tokens

        return count_tokens(context, model=self)

    def parse_usage(self, usage: Any, *, batch: bool = False) -> Usage:
        """Normalize a Chat, Responses or Embeddings usage object into :class:`Usage`."""
        from .usage import parse_usage

        return parse_usage(usage, self, batch=batch)


def _load_table() -> tuple[str, float, dict[str, ModelProfile]]:
    raw = json.loads(resources.files(__package__).joinpath("data/models.json").read_text("utf-8"))
    out: dict[str, ModelProfile] = {}
    for row in raw["models"]:
        profile = ModelProfile(
            key=row["key"],
            model_name=row["model_name"],
            category=row["category"],
            context_window=row["context_window"],
            max_input=row["max_input"],
            max_output=row["max_output"],
            output_dimensions=row.get("output_dimensions"),
            rate_limits=RateLimits(row["tkn_per_min"], row["req_per_min"]),
            usage_costs=UsageCosts(row["input"], row["cached_input"], row["output"]),
            encoding=row.get("encoding", "o200k_base"),
        )
        out[profile.key] = ModelProfile.register(profile)
    return raw["source"], float(raw["batch_discount"]), out


PRICES_SOURCE, BATCH_DISCOUNT, _BUILTIN = _load_table()

GPT5 = _BUILTIN["gpt-5"]
GPT5Mini = _BUILTIN["gpt-5-mini"]
GPT5Nano = _BUILTIN["gpt-5-nano"]
GPT5Point1 = _BUILTIN["gpt-5.1"]
GPT5Point2 = _BUILTIN["gpt-5.2"]
TextEmbedding3Small = _BUILTIN["text-embedding-3-small"]
TextEmbedding3Large = _BUILTIN["text-embedding-3-large"]
