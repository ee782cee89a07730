"""Python tools: typed functions that agents may call and workflows may run as nodes.

``@tool`` turns a function (sync or async) into a `Tool` whose JSON Schema comes from its
signature, compiled once. Tools are collected explicitly — a `Tools` set is passed to whatever
needs it; nothing registers itself globally at import time.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, TypeAdapter, create_model

from ..errors import Problem, SpecError, ToolDefinitionError, suggest
from ..spec._schema import JsonSchema

TOOL_NAME_PATTERN = r"^[a-zA-Z][a-zA-Z0-9_.-]*$"


@dataclass(frozen=True, slots=True)
class Tool:
    """A callable the framework can validate arguments for and describe to a model."""

    name: str
    description: str
    function: Callable[..., Any]
    input_model: type[BaseModel]
    output_schema: JsonSchema | None
    server: str | None = None
    """The MCP server the tool is called on (``None`` for a Python tool)."""
    idempotent: bool = False
    """Calling it twice with the same arguments is harmless (a lookup, a read-only query): a
    resumed run may call it again when a crash lost its result. A tool that is not idempotent
    and had started stops the resume for a person to decide."""
    input_schema: JsonSchema = field(init=False)
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        # Frozen: compute the derived fields once, here, never per call.
        object.__setattr__(self, "input_schema", self.input_model.model_json_schema())
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.function))


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, idempotent: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a tool from a typed function; its parameters become the tool's input schema.

    ```python
    @tool(name="orders.lookup")
    async def lookup_order(order_id: str) -> dict[str, str]:
        "Find an order by its id."
        ...
    ```

    `idempotent=True` says a second call with the same arguments is harmless, so that a run
    resumed after a crash in the middle of the call may simply call it again.
    """

    def wrap(fn: Callable[..., Any]) -> Tool:
        return _make_tool(fn, name or fn.__name__, description, idempotent)

    return wrap(function) if function is not None else wrap


def _make_tool(
    fn: Callable[..., Any], name: str, description: str | None, idempotent: bool = False
) -> Tool:
    if not re.fullmatch(TOOL_NAME_PATTERN, name):
        raise ToolDefinitionError(
            f"tool name {name!r}: use letters, digits, '_', '.' and '-', starting with a letter"
        )
    signature = inspect.signature(fn)
    fields: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"tool {name}: *args and **kwargs cannot be described to a model"
            )
        annotation = Any if parameter.annotation is parameter.empty else parameter.annotation
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    model_name = "".join(
        part.capitalize() for part in name.replace("-", ".").replace("_", ".").split(".")
    )
    input_model: type[BaseModel] = create_model(
        f"{model_name}Input", __config__=ConfigDict(extra="forbid"), **fields
    )
    returns = signature.return_annotation
    output_schema = (
        None if returns in (signature.empty, Any, None) else TypeAdapter(returns).json_schema()
    )
    doc = description or inspect.getdoc(fn) or ""
    summary = doc.split("\n\n", 1)[0].strip()
    return Tool(name, summary, fn, input_model, output_schema, idempotent=idempotent)


class Tools(Mapping[str, Tool]):
    """A set of tools by name, built explicitly and passed to whatever needs it."""

    def __init__(self, tools: Iterable[Tool] = (), *, notes: Mapping[str, str] = {}) -> None:
        # What a failed lookup should add, by name prefix: where an MCP server's list of
        # tools came from, or why it has none.
        self.notes = dict(notes)
        self._tools: dict[str, Tool] = {}
        for item in tools:
            if item.name in self._tools and self._tools[item.name] is not item:
                raise SpecError(
                    [Problem("MA150", f"two different tools are named '{item.name}'; rename one")]
                )
            self._tools[item.name] = item

    @classmethod
    def from_module(cls, module: ModuleType) -> Tools:
        """Every `Tool` defined at the top level of `module`."""
        return cls(value for value in vars(module).values() if isinstance(value, Tool))

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def suggest(self, name: str) -> str:
        """A hint for an unknown tool name: the closest match, or the names that exist (and,
        for ``SERVER.TOOL``, where that server's list of tools came from)."""
        hint = suggest(name, list(self._tools), "tools")
        note = self.notes.get(name.split(".", 1)[0]) if "." in name else None
        return f"{hint}; {note}" if note else hint
