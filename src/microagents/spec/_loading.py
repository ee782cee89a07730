"""Reading spec files into validated spec models, with every error pointing at file:line:col."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..errors import Location, Problem, SpecError, suggest
from ._agent_spec import AgentSpec
from ._workflow_spec import WorkflowSpec
from ._yaml import FieldPath, SourceMap, format_path, load_yaml_file

SpecT = TypeVar("SpecT", bound=BaseModel)
SpecKind = Literal["agent", "workflow"]


@dataclass(frozen=True, slots=True)
class Source:
    """Where a spec came from, so that later checks can point back into the file."""

    file: Path | None = None
    source_map: SourceMap | None = None

    def locate(self, *path: str | int) -> Location:
        if self.source_map is None:
            return Location(self.file)
        return self.source_map.locate(path)

    @property
    def folder(self) -> Path:
        return self.file.parent if self.file is not None else Path.cwd()


@dataclass(frozen=True, slots=True)
class Sourced(typing.Generic[SpecT]):
    """A validated spec together with its `Source`."""

    spec: SpecT
    source: Source


def load_agent_spec(path: Path) -> Sourced[AgentSpec]:
    """Load and validate one agent YAML file."""
    return _load(path, AgentSpec)


def load_workflow_spec(path: Path) -> Sourced[WorkflowSpec]:
    """Load and validate one workflow YAML file."""
    return _load(path, WorkflowSpec)


def detect_kind(path: Path, data: Any) -> SpecKind:
    """Agent or workflow: by the fields the document has, else by the nearest folder named
    `agents` or `workflows`, else agent."""
    if isinstance(data, dict):
        if "nodes" in data or "edges" in data:
            return "workflow"
        if "prompt" in data:
            return "agent"
    for parent in path.resolve().parents:
        if parent.name in ("agents", "workflows"):
            return "workflow" if parent.name == "workflows" else "agent"
    return "agent"


def load_any_spec(path: Path) -> tuple[SpecKind, Sourced[Any]]:
    """Load a file that may hold either kind of spec (for `microagents validate`)."""
    loaded = load_yaml_file(path)
    kind = detect_kind(path, loaded.data)
    model: type[BaseModel] = WorkflowSpec if kind == "workflow" else AgentSpec
    return kind, _validate(loaded.data, model, Source(path, loaded.source_map))


def _load(path: Path, model: type[SpecT]) -> Sourced[SpecT]:
    loaded = load_yaml_file(path)
    return _validate(loaded.data, model, Source(path, loaded.source_map))


def _validate(data: Any, model: type[SpecT], source: Source) -> Sourced[SpecT]:
    kind = "workflow" if model is WorkflowSpec else "agent"
    if not isinstance(data, dict):
        found = type(data).__name__ if data is not None else "nothing"
        raise SpecError(
            [
                Problem(
                    "MA111",
                    f"an {kind} spec must be a YAML mapping of fields, found {found}",
                    source.locate(),
                )
            ]
        )
    try:
        return Sourced(model.model_validate(data), source)
    except ValidationError as exc:
        raise SpecError(problems_from_validation(exc, model, source)) from None


def problems_from_validation(
    exc: ValidationError, model: type[BaseModel], source: Source
) -> list[Problem]:
    """Turn pydantic's errors into `Problem`s with locations, paths and advice."""
    problems: list[Problem] = []
    seen: set[tuple[FieldPath, str]] = set()
    for error in exc.errors(include_url=False):
        path: FieldPath = tuple(p for p in error["loc"] if p != "[key]")
        code, message = describe_error(error, model)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        problems.append(Problem(code, message, source.locate(*path), format_path(path)))
    return problems


_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}


def describe_error(error: ErrorDetails, model: type[BaseModel] | None = None) -> tuple[str, str]:
    """A pydantic error as (code, message) in our words, with advice where we have some;
    `model` (the root spec model) lets an unknown field get a 'did you mean' suggestion."""
    path: FieldPath = tuple(p for p in error["loc"] if p != "[key]")
    kind = error["type"]
    value = error.get("input")
    if kind == "missing":
        return "MA201", f"missing required field '{path[-1]}'; add it"
    if kind == "extra_forbidden":
        allowed = _fields_at(model, path[:-1]) if model is not None else []
        hint = suggest(str(path[-1]), allowed, "fields") if allowed else "remove it"
        return "MA202", f"unknown field '{path[-1]}'; {hint}"
    if kind in _TYPE_NAMES:
        return "MA203", f"expected {_TYPE_NAMES[kind]}, found {_shown(value)}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return "MA204", f"{_shown(value)} is not allowed; use one of {expected}"
    if kind == "string_pattern_mismatch":
        return "MA204", f"{_shown(value)} is not a valid name: {_pattern_advice(path)}"
    if kind in ("too_short", "string_too_short"):
        return "MA204", "must not be empty; add at least one"
    if kind == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
        return "MA205", message
    text = error["msg"]
    # pydantic says "Input should be ..."; here "input" is also a spec field, so say "must".
    if text.startswith("Input should"):
        text = "must" + text[len("Input should") :]
    return "MA204", f"{text[:1].lower()}{text[1:]} (found {_shown(value)})"


def _pattern_advice(path: FieldPath) -> str:
    if path and path[0] == "nodes":
        return (
            "node ids are identifiers: letters, digits and underscores, not starting with a digit"
        )
    return "use lower-case letters, digits and underscores, optionally namespaced as team/name"


def _shown(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fields_at(model: type[BaseModel], path: FieldPath) -> list[str]:
    """The field names allowed at `path` inside `model`, following nested models."""
    current: Any = model
    for part in path:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next(
                (info for name, info in current.model_fields.items() if part in (name, info.alias)),
                None,
            )
            if field is None:
                return []
            current = field.annotation
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [
            info.alias or name
            for name, info in current.model_fields.items()
            if not name.endswith("_model")
        ]
    return []


def _unwrap(annotation: Any) -> Any:
    """`X | None` → `X`; `Annotated[X, ...]` → `X`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(options[0]) if len(options) == 1 else annotation
    return annotation
