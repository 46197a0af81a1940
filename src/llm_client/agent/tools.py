"""Tools: :class:`Tool`, its schema from a function's signature and docstring, and the
lookup of the tools a runner is given (objects, functions or registered names)."""

from __future__ import annotations

import asyncio
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pydantic

from ..exceptions import ConfigurationError
from .records import Api

if TYPE_CHECKING:
    import pluggy

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _empty_schema() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


_SECTION_END = frozenset(
    {"returns:", "return:", "raises:", "yields:", "examples:", "example:", "notes:", "note:"}
)
_GOOGLE_ARGS = frozenset({"args:", "arguments:", "parameters:", "params:"})
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_GOOGLE_PARAM = re.compile(r"^(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {parameter: description}) from a Google- or Sphinx-style docstring."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    indent = 0
    for line in lines:
        stripped = line.strip()
        lowered = stripped.lower()
        sphinx = _SPHINX_PARAM.match(stripped)
        if sphinx:
            section, current = "sphinx", sphinx.group(1)
            params[current] = sphinx.group(2).strip()
            continue
        if stripped.startswith(":"):  # :returns:, :raises ...:
            section, current = "sphinx", None
            continue
        if lowered in _GOOGLE_ARGS:
            section, current, indent = "google", None, -1
            continue
        if lowered in _SECTION_END:
            section, current = "other", None
            continue
        if section is None:
            summary.append(line)
            continue
        if not stripped:
            continue
        if section == "google":
            depth = len(line) - len(line.lstrip())
            google = _GOOGLE_PARAM.match(stripped)
            if google and (indent < 0 or depth <= indent):
                indent = depth
                current = google.group(1)
                params[current] = google.group(2).strip()
                continue
        if current is not None and section in ("google", "sphinx"):
            params[current] = f"{params[current]} {stripped}".strip()
    paragraphs = re.split(r"\n\s*\n", "\n".join(summary).strip())
    description = "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    return description, params


def _strip_titles(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic's schema without the ``title`` of the object and of each property."""
    schema.pop("title", None)
    for prop in (schema.get("properties") or {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    return schema


@dataclass(frozen=True, eq=False)  # compared and hashed by identity
class Tool:
    """A function the model may call.

    :param name: 1 to 64 letters, digits, ``_`` or ``-`` (OpenAI's rule).
    :param description: what the tool does, for the model.
    :param parameters: the JSON schema of the arguments (an ``object`` schema).
    :param func: the function, sync (run in a thread) or async; called with the arguments as
        keywords. Raise :class:`StopRun` in it to end the run.
    :param timeout: seconds a call may take (default: the runner's ``tool_timeout``).
    :param retries: extra attempts when the function raises or times out, before the failure
        goes back to the model (invalid arguments are never retried: the model must fix them).

    Arguments are validated before ``func`` runs: with :meth:`from_function` by a pydantic
    model built from the signature; otherwise they must be a JSON object holding the schema's
    ``required`` properties (a tool that needs more checks raises, and the model sees it).
    """

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=_empty_schema)
    func: Callable[..., Any] | None = None
    timeout: float | None = None
    retries: int = 0
    #: The pydantic model that validates the arguments (set by :meth:`from_function`).
    arguments_model: type[pydantic.BaseModel] | None = field(
        default=None, repr=False, compare=False
    )
    _positional: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ConfigurationError(
                f"Tool name must be 1 to 64 letters, digits, '_' or '-', got {self.name!r:.60}"
            )
        if not isinstance(self.description, str):
            raise ConfigurationError(
                f"Tool {self.name!r}: description must be a string,"
                f" got {type(self.description).__name__}"
            )
        if not isinstance(self.parameters, Mapping) or self.parameters.get("type") != "object":
            raise ConfigurationError(
                f"Tool {self.name!r}: parameters must be a JSON schema of type 'object'"
                f" (a dict like {{'type': 'object', 'properties': {{...}}}}),"
                f" got {self.parameters!r:.80}"
            )
        if self.func is None or not callable(self.func):
            raise ConfigurationError(
                f"Tool {self.name!r}: func must be a function (sync or async),"
                f" got {self.func!r:.60}"
            )
        if self.timeout is not None and not (
            isinstance(self.timeout, (int, float))
            and not isinstance(self.timeout, bool)
            and 0 < self.timeout < float("inf")
        ):
            raise ConfigurationError(
                f"Tool {self.name!r}: timeout must be a positive number of seconds or None,"
                f" got {self.timeout!r}"
            )
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise ConfigurationError(
                f"Tool {self.name!r}: retries must be an integer >= 0, got {self.retries!r}"
            )

    @classmethod
    def from_function(
        cls,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        retries: int = 0,
    ) -> Tool:
        """A tool from a (sync or async) function's type hints and docstring.

        The description is the docstring's text before its sections; each parameter's
        description comes from its ``Args:`` (Google) or ``:param x:`` (Sphinx) entry. The
        schema and the validation of arguments come from a pydantic model of the signature
        (unknown arguments are refused); parameters without a hint accept any JSON value.
        """
        if not callable(func):
            raise ConfigurationError(f"Tool.from_function needs a function, got {func!r:.60}")
        tool_name: str = name or str(getattr(func, "__name__", ""))
        try:
            signature = inspect.signature(func)
            hints = typing.get_type_hints(func, include_extras=True)
        except (TypeError, ValueError, NameError) as exc:
            raise ConfigurationError(
                f"Tool.from_function({tool_name!r}): cannot read the signature: {exc}"
            ) from exc
        summary, documented = _parse_docstring(func.__doc__)
        fields: dict[str, Any] = {}
        positional: list[str] = []
        for param in signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigurationError(
                    f"Tool.from_function({tool_name!r}): *{param.name} / **{param.name} cannot"
                    " be described by a JSON schema; name every parameter"
                )
            if param.kind is param.POSITIONAL_ONLY:
                positional.append(param.name)
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (
                hints.get(param.name, Any),
                pydantic.Field(default, description=documented.get(param.name)),
            )
        try:
            model = pydantic.create_model(
                f"{tool_name or 'tool'}_arguments",
                __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True),
                **fields,
            )
            schema = _strip_titles(model.model_json_schema())
        except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError) as exc:
            raise ConfigurationError(
                f"Tool.from_function({tool_name!r}): a parameter type has no JSON schema: {exc}"
            ) from exc
        schema.setdefault("properties", {})
        return cls(
            name=tool_name,
            description=summary if description is None else description,
            parameters=schema,
            func=func,
            timeout=timeout,
            retries=retries,
            arguments_model=model,
            _positional=tuple(positional),
        )

    def spec(self, api: Api = "chat") -> dict[str, Any]:
        """The tool's definition as the API takes it (Chat nests it under ``function``)."""
        function = {
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }
        if api == "responses":
            return {"type": "function", **function}
        return {"type": "function", "function": function}

    def validate(self, arguments: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """(arguments to call with, validation errors); errors read ``"<field>: <problem>"``."""
        model = self.arguments_model
        if model is not None:
            try:
                parsed = model.model_validate(arguments)
            except pydantic.ValidationError as exc:
                return {}, [
                    f"{'.'.join(str(p) for p in err['loc']) or '(arguments)'}: {err['msg']}"
                    for err in exc.errors()
                ]
            return {name: getattr(parsed, name) for name in type(parsed).model_fields}, []
        required = self.parameters.get("required") or ()
        missing = [f"{key}: Field required" for key in required if key not in arguments]
        return dict(arguments), missing

    async def invoke(self, arguments: Mapping[str, Any]) -> Any:
        """Call the function with validated ``arguments`` (a sync function runs in a thread)."""
        func = self.func
        assert func is not None
        args = [arguments[n] for n in self._positional if n in arguments]
        kwargs = {k: v for k, v in arguments.items() if k not in self._positional}
        if inspect.iscoroutinefunction(func):
            value = await func(*args, **kwargs)
        else:
            value = await asyncio.to_thread(func, *args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
        return value


def resolve_tool(item: Any, pm: pluggy.PluginManager | None) -> Tool:
    if isinstance(item, Tool):
        return item
    if isinstance(item, str):
        from ..plugins import registered_tool

        found = registered_tool(item, plugin_manager=pm)
        return found if isinstance(found, Tool) else Tool.from_function(found)
    if callable(item):
        return Tool.from_function(item)
    raise ConfigurationError(
        "tools must be Tool objects, functions or names of registered tools,"
        f" got {type(item).__name__}"
    )
