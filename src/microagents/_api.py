"""Running a workflow in one call: the shortcuts above the `Engine`, as `httpx.get` sits above
`httpx.Client`. Each makes an engine for the back-end, runs, and closes it; to run many inputs
or workflows, share one `Engine` (or pass it as `engine=`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from functools import partial
from typing import Any

from .graph._compiled import CompiledWorkflow
from .results._results import RunEvent, RunResult
from .runtime._engine import DEFAULT_CONCURRENCY, Backend, Engine


async def run(
    workflow: CompiledWorkflow,
    run_input: Mapping[str, Any],
    *,
    engine: Engine | None = None,
    backend: Backend = "anthropic",
) -> RunResult:
    """Run `workflow` once on `run_input`.

    ```python
    result = await ma.run(workflow, {"ticket": "I was charged twice"}, backend="simulate")
    ```
    """
    if engine is not None:
        return await engine.run(workflow, run_input)
    async with Engine.for_backend(backend, workflow) as made:
        return await made.run(workflow, run_input)


def run_sync(
    workflow: CompiledWorkflow,
    run_input: Mapping[str, Any],
    *,
    engine: Engine | None = None,
    backend: Backend = "anthropic",
) -> RunResult:
    """`run` for synchronous code (it starts an event loop: not from async code)."""
    import anyio

    return anyio.run(partial(run, workflow, run_input, engine=engine, backend=backend))


async def run_many(
    workflow: CompiledWorkflow,
    inputs: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    engine: Engine | None = None,
    backend: Backend = "anthropic",
) -> AsyncIterator[tuple[int, RunResult]]:
    """Run every input, `concurrency` at a time; yield ``(index, result)`` as each ends.
    To stop early, iterate inside `contextlib.aclosing(...)`."""
    made = contextlib.nullcontext(engine) if engine else Engine.for_backend(backend, workflow)
    async with made as used:
        async for item in used.run_many(workflow, inputs, concurrency=concurrency):
            yield item


async def stream(
    workflow: CompiledWorkflow,
    run_input: Mapping[str, Any],
    *,
    engine: Engine | None = None,
    backend: Backend = "anthropic",
    deltas: bool = False,
) -> AsyncIterator[RunEvent]:
    """The events of one run as they happen (node started/finished, escalation, tool call),
    ending with `RunFinished`; with `deltas`, agents' answers as they stream."""
    made = contextlib.nullcontext(engine) if engine else Engine.for_backend(backend, workflow)
    async with made as used:
        async for event in used.stream(workflow, run_input, deltas=deltas):
            yield event
