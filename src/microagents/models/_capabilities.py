"""What a model can do, as far as requests are concerned, and whether it is deprecated.

The API's own capability listing (`GET /v1/models`) needs a key and a network; a run must know
before its first call how to ask for structured output, so the table below is ours, keyed by
model id prefix (longest wins), and any entry can be overridden per model in the project file
(``[tool.microagents.models."<id>"]``) or per tier. Deprecation is read from the installed SDK's
own data, so that it is as current as the SDK that would warn about it.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any, get_args

from ..errors import MicroagentsError
from ..spec._agent_spec import Effort

EFFORT_LEVELS: tuple[Effort, ...] = get_args(Effort)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """The request features a model accepts."""

    structured_outputs: bool = True
    """JSON-schema output (`output_config.format`): answers valid by construction. Without
    it, the answer is a forced tool call with one repair turn."""
    forced_tool_choice: bool = True
    """`tool_choice` of type `any` or `tool`. Models that think by default refuse it."""
    effort: bool = False
    """`output_config.effort`."""
    min_cacheable_tokens: int = 1024
    """The shortest prompt prefix the model caches; a shorter marked prefix is not cached."""

    def with_settings(self, settings: Mapping[str, Any], where: str) -> Capabilities:
        """A copy with the project file's keys for this model applied."""
        known = set(Capabilities.__dataclass_fields__)
        unknown = set(settings) - known
        if unknown:
            raise MicroagentsError(f"{where}: unknown keys {sorted(unknown)}; use {sorted(known)}")
        changes: dict[str, Any] = {}
        for key, value in settings.items():
            expected = int if key == "min_cacheable_tokens" else bool
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise MicroagentsError(f"{where}: `{key}` must be {expected.__name__}")
            changes[key] = value
        return replace(self, **changes)


# Sources: Anthropic's model pages and "what's new" notes (structured outputs from the 4.5
# generation on; forced tool use refused by models that always think; effort from Opus 4.5;
# minimum cacheable prefixes as documented per model).
_BY_PREFIX: Mapping[str, Capabilities] = {
    "claude-3": Capabilities(structured_outputs=False, min_cacheable_tokens=2048),
    "claude-3-5-sonnet": Capabilities(structured_outputs=False),
    "claude-3-7-sonnet": Capabilities(structured_outputs=False),
    "claude-sonnet-4": Capabilities(structured_outputs=False),
    "claude-opus-4": Capabilities(structured_outputs=False),
    "claude-opus-4-1": Capabilities(),
    "claude-haiku-4-5": Capabilities(min_cacheable_tokens=4096),
    "claude-sonnet-4-5": Capabilities(),
    "claude-opus-4-5": Capabilities(effort=True, min_cacheable_tokens=4096),
    "claude-sonnet-4-6": Capabilities(effort=True),
    "claude-opus-4-6": Capabilities(effort=True, min_cacheable_tokens=4096),
    "claude-opus-4-7": Capabilities(effort=True, min_cacheable_tokens=2048),
    "claude-opus-4-8": Capabilities(effort=True),
    "claude-haiku-5": Capabilities(effort=True),
    "claude-sonnet-5": Capabilities(effort=True),
    "claude-sonnet-5-5": Capabilities(effort=True, forced_tool_choice=False),
    "claude-opus-5": Capabilities(effort=True, min_cacheable_tokens=512),
    "claude-opus-5-5": Capabilities(
        effort=True, forced_tool_choice=False, min_cacheable_tokens=512
    ),
    "claude-fable-5": Capabilities(effort=True, min_cacheable_tokens=512),
    "claude-fable-5-1": Capabilities(
        effort=True, forced_tool_choice=False, min_cacheable_tokens=512
    ),
    "claude-mythos-5": Capabilities(effort=True, min_cacheable_tokens=512),
}
UNKNOWN_MODEL = Capabilities()
"""An id we do not know (a newer model, a gateway's alias): the current API's defaults."""


def capabilities_of(model: str) -> Capabilities:
    """The capabilities of `model` by its longest known id prefix."""
    return _lookup(model)


@cache
def _lookup(model: str) -> Capabilities:
    matches = [prefix for prefix in _BY_PREFIX if model.startswith(prefix)]
    return _BY_PREFIX[max(matches, key=len)] if matches else UNKNOWN_MODEL


@dataclass(frozen=True, slots=True)
class Deprecation:
    """A model the installed SDK marks deprecated, and when it stops working."""

    model: str
    end_of_life: str


def deprecation_of(model: str) -> Deprecation | None:
    """Whether the installed `anthropic` SDK marks `model` deprecated."""
    end = sdk_deprecated_models().get(model)
    return Deprecation(model, end) if end is not None else None


@cache
def sdk_deprecated_models() -> Mapping[str, str]:
    """The SDK's own table of deprecated model ids and their end-of-life dates.

    Read from its data file as a literal, without importing the SDK (which takes most of a
    second), so that `validate` stays quick; through the import if the file ever changes shape.
    """
    spec = importlib.util.find_spec("anthropic")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "_data" / "deprecated_models.py"
        found = _literal_assignment(path, "DEPRECATED_MODELS")
        if isinstance(found, dict):
            return {str(k): str(v) for k, v in found.items()}
    try:
        from anthropic._data import DEPRECATED_MODELS
    except ImportError:
        return {}
    return dict(DEPRECATED_MODELS)


def _literal_assignment(path: Path, name: str) -> Any:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    for statement in tree.body:
        target = (
            statement.target
            if isinstance(statement, ast.AnnAssign)
            else statement.targets[0]
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1
            else None
        )
        value = getattr(statement, "value", None)
        if isinstance(target, ast.Name) and target.id == name and value is not None:
            try:
                return ast.literal_eval(value)
            except ValueError:
                return None
    return None
