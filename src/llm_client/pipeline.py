"""The whole middleware interface: :class:`Call`, :data:`Reply`, :data:`Next`,
:class:`Middleware` and :class:`Pipeline`.

A user's request becomes one frozen :class:`Call`. It flows through an ordered list of
middleware, outermost first, and ends at the transport. A middleware is any object with
``async def __call__(self, call, next) -> Reply``; it may answer itself, call ``next`` zero,
one or many times, pass a changed copy (``call.replace(...)``) and look at the reply on the
way back. The chain is compiled once (a reversed fold) when a client is built.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, runtime_checkable

from ._replace import fast_replace
from .exceptions import ConfigurationError
from .models import ModelProfile
from .result import LLMResult

if TYPE_CHECKING:
    from .streaming import LLMEvent

__all__ = [
    "Call",
    "CacheOptions",
    "EventStream",
    "Middleware",
    "Next",
    "Operation",
    "Pipeline",
    "Reply",
]

Operation: TypeAlias = Literal["chat", "responses", "embeddings"]
EventStream: TypeAlias = AsyncIterator["LLMEvent"]
Reply: TypeAlias = "LLMResult | EventStream"
Next: TypeAlias = Callable[["Call"], Awaitable[Reply]]


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheOptions:
    """Per-call cache behaviour (the seed's ``get_response`` options).

    :param identifier: explicit cache key; overrides the derived one.
    :param hash_as_identifier: derive the key from the request when no identifier is given.
        With ``False`` and no identifier the call is neither read from nor written to the cache.
    :param cache_response: store the answer (successes only, unless ``cache_errors``).
    :param cache_errors: also store failed results.
    :param rewrite_cache: skip the read, call the API, overwrite the entry on success; the old
        entry stays readable by other calls until the new one is written.
    :param regen_cache: delete the entry first, call the API, store the new answer.
    """

    identifier: str | None = None
    hash_as_identifier: bool = True
    cache_response: bool = True
    cache_errors: bool = False
    rewrite_cache: bool = False
    regen_cache: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """What is asked: immutable; middleware passes changed copies made with :meth:`replace`.

    ``params`` holds generation parameters only (model name, messages/input, tools,
    temperature, ...), never keys or transport options. ``deadline`` is absolute time on the
    client's clock. ``context`` is for annotations between middleware (never secrets).
    """

    profile: ModelProfile
    operation: Operation
    params: Mapping[str, Any]
    stream: bool = False
    cache: CacheOptions = field(default_factory=CacheOptions)
    deadline: float | None = None
    timeout: float | None = None
    #: For streams: the longest wait for the next bytes (seconds), before the first included.
    stream_idle_timeout: float | None = None
    attempts: int | None = None
    backoff: float | None = None
    context: dict[str, object] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """The model name this call asks for: ``params["model"]`` (a step may route the call
        to another model), else the profile's ``model_name``. The one place it is derived."""
        model = self.params.get("model")
        return str(model) if model else self.profile.model_name

    def replace(self, **changes: Any) -> Call:
        return fast_replace(self, changes)


@runtime_checkable
class Middleware(Protocol):
    """One step of the chain."""

    async def __call__(self, call: Call, next: Next, /) -> Reply: ...


def _bind(step: Middleware, inner: Next) -> Next:
    # A plain function handing on the step's coroutine: one coroutine frame per step, not two
    # (every call, hits included, goes through every outer step).
    def handler(call: Call) -> Awaitable[Reply]:
        return step(call, inner)

    return handler


class Pipeline:
    """An ordered list of named middleware; the first is outermost.

    Edit it freely (``insert_before``, ``insert_after``, ``replace``, ``remove``), then hand it
    to ``OpenAIClient(..., pipeline=p)``; the client copies and compiles it once.
    """

    __slots__ = ("_steps",)

    def __init__(self, steps: Iterable[tuple[str, Middleware]] = ()) -> None:
        self._steps: list[tuple[str, Middleware]] = []
        for name, step in steps:
            self.append(name, step)

    @classmethod
    def default(cls, profile: ModelProfile | str, **options: Any) -> Pipeline:
        """The default chain for ``profile``; the same function the client uses.

        Takes the client's keyword options (cache backend, limits, retry settings ...).
        """
        from .defaults import default_pipeline

        return default_pipeline(ModelProfile.get(profile), **options)

    def names(self) -> list[str]:
        return [name for name, _ in self._steps]

    def __iter__(self) -> Iterator[tuple[str, Middleware]]:
        return iter(list(self._steps))

    def __len__(self) -> int:
        return len(self._steps)

    def __contains__(self, name: object) -> bool:
        return any(n == name for n, _ in self._steps)

    def __getitem__(self, name: str) -> Middleware:
        return self._steps[self._index(name)][1]

    def get(self, name: str) -> Middleware | None:
        for n, step in self._steps:
            if n == name:
                return step
        return None

    def _index(self, name: str) -> int:
        for i, (n, _) in enumerate(self._steps):
            if n == name:
                return i
        raise KeyError(f"no middleware named {name!r}; the pipeline has {self.names()}")

    def _check_new(self, name: str, step: Middleware) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("a middleware needs a non-empty string name")
        if name in self:
            raise ConfigurationError(f"the pipeline already has a middleware named {name!r}")
        if not callable(step):
            raise ConfigurationError(
                f"middleware {name!r} must be callable as `await step(call, next)`"
            )

    def append(self, name: str, step: Middleware) -> None:
        self._check_new(name, step)
        self._steps.append((name, step))

    def prepend(self, name: str, step: Middleware) -> None:
        self._check_new(name, step)
        self._steps.insert(0, (name, step))

    def insert_before(self, anchor: str, name: str, step: Middleware) -> None:
        i = self._index(anchor)
        self._check_new(name, step)
        self._steps.insert(i, (name, step))

    def insert_after(self, anchor: str, name: str, step: Middleware) -> None:
        i = self._index(anchor)
        self._check_new(name, step)
        self._steps.insert(i + 1, (name, step))

    def replace(self, name: str, step: Middleware) -> None:
        i = self._index(name)
        self._steps[i] = (name, step)

    def remove(self, name: str) -> Middleware:
        return self._steps.pop(self._index(name))[1]

    def copy(self) -> Pipeline:
        return Pipeline(self._steps)

    def build(self, terminal: Next) -> Next:
        """Compile the chain around ``terminal`` once (reversed fold)."""
        handler = terminal
        for _, step in reversed(self._steps):
            handler = _bind(step, handler)
        return handler

    def __repr__(self) -> str:
        return f"Pipeline({' -> '.join(self.names())})"

    def find(self, kind: type[Any]) -> Any | None:
        """The first step that is an instance of ``kind`` (e.g. the client's cache step)."""
        for _, step in self._steps:
            if isinstance(step, kind):
                return step
        return None
