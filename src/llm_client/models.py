"""Model profiles: what a model is called, what it costs and what it can take.

Profiles are data. The built-ins come from one table, ``data/models.json`` (which names the
source and date of its prices); users register their own with :meth:`ModelProfile.register`
(a fine-tune, or a model served by an OpenAI-compatible server).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
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
    "PRICES_SOURCE",
    "RETIREMENT_NOTICE_DAYS",
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
    "LongContextPricing",
    "ModelProfile",
    "RateLimits",
    "TextEmbedding3Large",
    "TextEmbedding3Small",
    "UsageCosts",
    "builtin_profiles",
    "retirement_warning",
    "warn_if_retiring",
]

Category = Literal["completions", "embeddings"]
Status = Literal["active", "deprecated", "retiring", "shut down"]
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")
#: A client built this many days (or fewer) before its model's shutdown date logs a warning.
RETIREMENT_NOTICE_DAYS = 30
#: Where OpenAI lists shutdown dates and replacements.
DEPRECATIONS_URL = "https://developers.openai.com/api/docs/deprecations"

log = logging.getLogger("llm_client.models")


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
    """Prices in USD per 1M tokens.

    ``cache_write`` is the price of input tokens written to the prompt cache (usage reports
    them as ``cache_write_tokens``); ``None`` bills them as ordinary input, which is how
    OpenAI prices cache writes on models before gpt-5.6.
    """

    input: float
    cached_input: float
    output: float
    cache_write: float | None = None

    def __post_init__(self) -> None:
        for name in ("input", "cached_input", "output", "cache_write"):
            value = getattr(self, name)
            if value is None and name == "cache_write":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(
                    f"price {name} must be a number >= 0 (USD per 1M tokens), got {value!r}"
                )

    def per_token(self) -> tuple[float, float, float]:
        """(input, cached input, output) in USD per single token."""
        return (self.input / 1e6, self.cached_input / 1e6, self.output / 1e6)


@dataclass(frozen=True, slots=True)
class LongContextPricing:
    """A surcharge for long prompts: when a request carries more than ``above_input_tokens``
    input tokens, every input rate is multiplied by ``input_multiplier`` and the output rate
    by ``output_multiplier``, for the whole request."""

    above_input_tokens: int
    input_multiplier: float
    output_multiplier: float

    def __post_init__(self) -> None:
        if isinstance(self.above_input_tokens, bool) or not isinstance(
            self.above_input_tokens, int
        ) or self.above_input_tokens < 0:
            raise ConfigurationError(
                "long-context above_input_tokens must be an integer >= 0,"
                f" got {self.above_input_tokens!r}"
            )
        for name in ("input_multiplier", "output_multiplier"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(
                    f"long-context {name} must be a positive number, got {value!r}"
                )


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
    :param long_context: the long-prompt surcharge, if the model has one.
    :param shutdown_date: the day OpenAI stops serving the model, or ``None`` if none is
        announced.
    :param replacement: key of the profile OpenAI suggests instead, once a shutdown is
        announced.
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
    long_context: LongContextPricing | None = None
    shutdown_date: _dt.date | None = None
    replacement: str | None = None

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
        if self.shutdown_date is not None and not isinstance(self.shutdown_date, _dt.date):
            raise ConfigurationError(
                "shutdown_date must be a datetime.date or None,"
                f" got {type(self.shutdown_date).__name__}"
            )

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

    def days_until_shutdown(self, today: _dt.date | None = None) -> int | None:
        """Days from ``today`` (UTC by default) to the shutdown date: negative once it has
        passed, ``None`` when no shutdown is announced."""
        if self.shutdown_date is None:
            return None
        return (self.shutdown_date - (today or _utc_today())).days

    def status(self, today: _dt.date | None = None) -> Status:
        """``"active"``, ``"retiring"`` (shuts down within :data:`RETIREMENT_NOTICE_DAYS`),
        ``"deprecated"`` (a later shutdown is announced) or ``"shut down"``."""
        days = self.days_until_shutdown(today)
        if days is None:
            return "active"
        if days <= 0:
            return "shut down"
        return "retiring" if days <= RETIREMENT_NOTICE_DAYS else "deprecated"

    def count_tokens(self, context: Any) -> int:
        """Count the tokens of a string, a message list or embedding input for this model."""
        from .tokens import count_tokens

        return count_tokens(context, model=self)

    def parse_usage(self, usage: Any, *, batch: bool = False) -> Usage:
        """Normalize a Chat, Responses or Embeddings usage object into :class:`Usage`."""
        from .usage import parse_usage

        return parse_usage(usage, self, batch=batch)


def _utc_today() -> _dt.date:
    return _dt.datetime.now(_dt.timezone.utc).date()


def _display_name(key: str) -> str:
    """``"gpt-5.6-luna (GPT5Point6Luna)"`` for a built-in key, the key alone otherwise."""
    names = {p.key: n for n, p in globals().items() if isinstance(p, ModelProfile)}
    name = names.get(key)
    return f"{key} ({name})" if name else key


def retirement_warning(profile: ModelProfile, today: _dt.date | None = None) -> str | None:
    """The warning for a model that is shut down or shuts down within
    :data:`RETIREMENT_NOTICE_DAYS` days of ``today`` (UTC by default); ``None`` otherwise."""
    days = profile.days_until_shutdown(today)
    if days is None or days > RETIREMENT_NOTICE_DAYS:
        return None
    when = profile.shutdown_date
    if days <= 0:
        head = f"model {profile.model_name!r} was shut down by OpenAI on {when}; requests fail"
    else:
        plural = "s" if days != 1 else ""
        head = f"model {profile.model_name!r} shuts down on {when} (in {days} day{plural})"
    if profile.replacement:
        tail = f"; OpenAI suggests {_display_name(profile.replacement)} instead"
    else:
        tail = f"; see {DEPRECATIONS_URL} for a replacement"
    return head + tail


def warn_if_retiring(profile: ModelProfile, today: _dt.date | None = None) -> bool:
    """Log one warning (logger ``llm_client.models``) if ``profile`` is shut down or about to
    be; return whether it did. :class:`~llm_client.OpenAIClient` calls this once when built."""
    message = retirement_warning(profile, today)
    if message is None:
        return False
    log.warning("%s", message)
    return True


def _load_table() -> tuple[str, float, dict[str, ModelProfile]]:
    raw = json.loads(resources.files(__package__).joinpath("data/models.json").read_text("utf-8"))
    rules = {
        name: LongContextPricing(
            above_input_tokens=rule["above_input_tokens"],
            input_multiplier=rule["input_multiplier"],
            output_multiplier=rule["output_multiplier"],
        )
        for name, rule in raw.get("long_context_rules", {}).items()
    }
    out: dict[str, ModelProfile] = {}
    for row in raw["models"]:
        shutdown = row.get("shutdown_date")
        profile = ModelProfile(
            key=row["key"],
            model_name=row["model_name"],
            category=row["category"],
            context_window=row["context_window"],
            max_input=row["max_input"],
            max_output=row["max_output"],
            output_dimensions=row.get("output_dimensions"),
            rate_limits=RateLimits(row["tkn_per_min"], row["req_per_min"]),
            usage_costs=UsageCosts(
                row["input"], row["cached_input"], row["output"], row.get("cache_write")
            ),
            encoding=row.get("encoding", "o200k_base"),
            aliases=tuple(row.get("aliases", ())),
            long_context=rules[row["long_context"]] if row.get("long_context") else None,
            shutdown_date=_dt.date.fromisoformat(shutdown) if shutdown else None,
            replacement=row.get("replacement"),
        )
        out[profile.key] = ModelProfile.register(profile)
    return raw["source"], float(raw["batch_discount"]), out


PRICES_SOURCE, BATCH_DISCOUNT, _BUILTIN = _load_table()


def builtin_profiles() -> list[ModelProfile]:
    """The profiles of the bundled table (``data/models.json``), in its order."""
    return list(_BUILTIN.values())


GPT5 = _BUILTIN["gpt-5"]
GPT5Mini = _BUILTIN["gpt-5-mini"]
GPT5Nano = _BUILTIN["gpt-5-nano"]
GPT5Point1 = _BUILTIN["gpt-5.1"]
GPT5Point2 = _BUILTIN["gpt-5.2"]
GPT5Point4 = _BUILTIN["gpt-5.4"]
GPT5Point4Mini = _BUILTIN["gpt-5.4-mini"]
GPT5Point4Nano = _BUILTIN["gpt-5.4-nano"]
GPT5Point5 = _BUILTIN["gpt-5.5"]
GPT5Point6Sol = _BUILTIN["gpt-5.6-sol"]
GPT5Point6Terra = _BUILTIN["gpt-5.6-terra"]
GPT5Point6Luna = _BUILTIN["gpt-5.6-luna"]
TextEmbedding3Small = _BUILTIN["text-embedding-3-small"]
TextEmbedding3Large = _BUILTIN["text-embedding-3-large"]
