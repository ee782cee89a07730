"""Calling a tool: arguments validated against its schema, a timeout, errors as values.

A failing tool never crashes an agent: the failure goes back to the model as an ``is_error``
tool result, so that it can correct its arguments or work around the failure.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
from pydantic import ValidationError

from ..graph._tools import Tool
from ..results._results import jsonable
from ..spec._schema import validation_problems
from ._journal import CURRENT_RUN, journaled_tool_call

DEFAULT_TOOL_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What a tool returned (or why it failed), ready to send back to a model."""

    value: Any
    error: str | None = None

    @property
    def content(self) -> str:
        if self.error is not None:
            return self.error
        if isinstance(self.value, str):
            return self.value
        return json.dumps(jsonable(self.value), ensure_ascii=False, default=str)


async def call_tool(
    tool: Tool,
    arguments: Mapping[str, Any],
    *,
    time_limit: float = DEFAULT_TOOL_TIMEOUT,
    step: str = "",
    node: str = "",
) -> ToolOutcome:
    """Validate `arguments`, call `tool` (sync ones in a thread), stop after `time_limit` s.
    In a journaled run the call is a step (under `step`), replayed on resume."""
    run = CURRENT_RUN.get()
    if run is not None:
        return await journaled_tool_call(
            run, step, node, tool, arguments, partial(_call_tool, tool, arguments, time_limit)
        )
    return await _call_tool(tool, arguments, time_limit)


async def _call_tool(tool: Tool, arguments: Mapping[str, Any], time_limit: float) -> ToolOutcome:
    try:
        parsed = tool.input_model.model_validate(dict(arguments))
    except ValidationError as exc:
        problems = validation_problems(exc, "arguments")
        return ToolOutcome(None, f"invalid arguments for {tool.name}: {problems}")
    kwargs = {name: getattr(parsed, name) for name in type(parsed).model_fields}
    try:
        with anyio.fail_after(time_limit):
            if tool.is_async:
                value = await tool.function(**kwargs)
            else:
                # Sync tools may block (files, HTTP): never on the event loop.
                # A thread cannot be interrupted: on timeout we stop waiting for it (its
                # result is discarded) rather than block the run until it returns.
                value = await anyio.to_thread.run_sync(
                    partial(tool.function, **kwargs), abandon_on_cancel=True
                )
    except TimeoutError:
        return ToolOutcome(None, f"{tool.name} timed out after {time_limit:g} s")
    except Exception as exc:  # a tool's failure is information for the model, not a crash
        return ToolOutcome(None, f"{tool.name} failed: {type(exc).__name__}: {exc}")
    return ToolOutcome(value)
