"""The engine: runs compiled workflows on a model stack, one run or many at once.

An `Engine` owns the model stack (and so the connection pool, the rate limiters and the response
cache) and a cache of execution plans; create one per process or per batch and share it across
runs. `CompiledWorkflow.run`/`run_sync`/`run_many`/`stream` are shortcuts onto one.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sized
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from pydantic import BaseModel, ValidationError

from ..errors import SchemaError
from ..graph._compiled import CompiledWorkflow
from ..models._backends import anthropic_model, simulated_model
from ..models._protocol import CacheTTL, Model, aclose_inner
from ..models._ratelimit import RUN_ORDER_LABEL
from ..models._simulate import SimulatedLatency
from ..models._tiers import TierTable
from ..results._results import EventSink, RunEvent, RunFinished, RunResult
from ..spec._schema import model_from_schema, validation_problems
from ..tracing._setup import default_tracing
from ..tracing._tracing import TracedModel, Tracing
from ._plan import Plan, build_plan
from ._scheduler import RunContext, WorkflowRun

Backend = Literal["anthropic", "simulate"]
DEFAULT_CONCURRENCY = 16


class Engine:
    """Runs workflows on a `Model`.

    ```python
    async with Engine.for_backend("simulate", workflow) as engine:
        result = await engine.run(workflow, {"ticket": "I was charged twice"})
    ```
    """

    def __init__(
        self,
        model: Model,
        *,
        tiers: TierTable | None = None,
        on_event: EventSink | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        # Model-call spans come from a wrapper: the scheduler never sees a model call.
        self.model = TracedModel(model, tracing) if tracing is not None else model
        self.tracing = tracing
        self.tiers = tiers or TierTable.load()
        self.on_event = on_event
        self._plans: dict[int, tuple[CompiledWorkflow, Plan, type[BaseModel] | None]] = {}
        self._run_ids = itertools.count(1)
        self._run_prefix = os.urandom(4).hex()
        self._runtime = RunContext(self.model, self.tiers, tracing, self._run_sub_workflow)

    @classmethod
    def for_backend(
        cls,
        backend: Backend,
        workflow: CompiledWorkflow | None = None,
        *,
        tiers: TierTable | None = None,
        cache_path: str | None = None,
        cache_ttl: CacheTTL = "5m",
        tracing: Tracing | Literal["default"] | None = "default",
        latency: SimulatedLatency | None = None,
    ) -> Engine:
        """An engine on the Anthropic API (key from the environment) or the simulated back-end
        (answering from `workflow`'s agents' examples), traced to the embedded store and
        whatever ``OTEL_*`` configures unless `tracing` is None."""
        tiers = tiers or TierTable.load()
        # The default tracing names its service after the workflow (when nothing else does).
        chosen = (
            default_tracing(workflow.name if workflow is not None else None)
            if tracing == "default"
            else tracing
        )
        if backend == "simulate":
            agents = workflow.agents if workflow is not None else []
            model = simulated_model(agents, tiers=tiers, latency=latency)
            return cls(model, tiers=tiers, tracing=chosen)
        model = anthropic_model(tiers=tiers, cache_path=cache_path, cache_ttl=cache_ttl)
        return cls(model, tiers=tiers, tracing=chosen)

    async def aclose(self) -> None:
        """Close the model stack (connection pools, cache database)."""
        await aclose_inner(self.model)

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _run_sub_workflow(
        self, workflow: CompiledWorkflow, run_input: Mapping[str, Any], labels: Mapping[str, str]
    ) -> RunResult:
        return await self.run(workflow, run_input, labels=labels)

    def plan(self, workflow: CompiledWorkflow) -> tuple[Plan, type[BaseModel] | None]:
        """The execution plan and input model of `workflow`, built on first use."""
        cached = self._plans.get(id(workflow))
        if cached is None or cached[0] is not workflow:
            try:
                input_model = model_from_schema(workflow.spec.input, f"{workflow.name} input")
            except SchemaError:
                input_model = None  # the compiler reported it; nothing to validate against
            cached = (workflow, build_plan(workflow), input_model)
            self._plans[id(workflow)] = cached
        return cached[1], cached[2]

    async def run(
        self,
        workflow: CompiledWorkflow,
        run_input: Mapping[str, Any],
        *,
        labels: Mapping[str, str] | None = None,
        on_event: EventSink | None = None,
        deltas: bool = False,
    ) -> RunResult:
        """Run `workflow` once on `run_input`. A failing node gives a failed result, not an
        exception; errors raised are bugs or cancellation. With `deltas`, agents stream their
        answers (when the model can) and `on_event` hears `OutputDelta`s."""
        plan, input_model = self.plan(workflow)
        started = next(self._run_ids)
        run_id = f"{self._run_prefix}-{started}"
        nested = labels is not None and "run" in labels  # a sub-workflow's run (not a batch's)
        if input_model is not None:
            try:
                input_model.model_validate(run_input)
            except ValidationError as exc:
                return _input_refused(workflow, run_id, run_input, exc)
        run = WorkflowRun(
            plan,
            run_input,
            runtime=self._runtime,
            run_id=run_id,
            # The rate limiter serves runs in start order; a sub-workflow keeps its parent's.
            labels={
                RUN_ORDER_LABEL: str(started),
                **(labels or {}),
                "run": run_id,
                "workflow": workflow.name,
            },
            on_event=_both(self.on_event, on_event),
            nested=nested,
            deltas=deltas,
        )
        return await run.execute()

    async def run_many(
        self,
        workflow: CompiledWorkflow,
        inputs: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> AsyncIterator[tuple[int, RunResult]]:
        """Run every input, `concurrency` at a time, yielding ``(index, result)`` as each
        finishes. Inputs are read lazily, so an endless or huge source is fine. To stop early,
        iterate inside `contextlib.aclosing(...)`: closing cancels the runs in flight."""
        send, receive = anyio.create_memory_object_stream[tuple[int, RunResult]](concurrency)
        async with _closable(), anyio.create_task_group() as group:
            group.start_soon(self._feed, workflow, inputs, concurrency, send)
            async with receive:
                async for item in receive:
                    yield item

    async def _feed(
        self,
        workflow: CompiledWorkflow,
        inputs: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
        concurrency: int,
        send: MemoryObjectSendStream[tuple[int, RunResult]],
    ) -> None:
        # `concurrency` workers pulling from one source, rather than a task per input: a task
        # per input cost more than the runs' own orchestration. Each worker holds one input at
        # a time, so at most `concurrency` are in memory.
        source = aiter(_aiter(inputs))
        taking = anyio.Lock()
        counter = itertools.count()
        exhausted = False

        async def take() -> tuple[int, Mapping[str, Any]] | None:
            nonlocal exhausted
            async with taking:  # one reader at a time: an async source may not be re-entrant
                if exhausted:
                    return None
                try:
                    item = await anext(source)
                except StopAsyncIteration:
                    exhausted = True
                    return None
                return next(counter), item

        async def worker(out: MemoryObjectSendStream[tuple[int, RunResult]]) -> None:
            async with out:
                while (taken := await take()) is not None:
                    index, item = taken
                    result = await self.run(workflow, item)
                    # Hand the result over before taking the next input: a slow consumer must
                    # slow the intake down, not let finished results pile up.
                    await out.send((index, result))

        workers = min(concurrency, len(inputs)) if isinstance(inputs, Sized) else concurrency
        async with send, anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(worker, send.clone())

    async def stream(
        self, workflow: CompiledWorkflow, run_input: Mapping[str, Any], *, deltas: bool = False
    ) -> AsyncIterator[RunEvent]:
        """Events of one run as they happen, ending with `RunFinished`; with `deltas`, also
        each agent's answer as it streams (`OutputDelta`), for showing progress at once."""
        # Unbounded: events are produced synchronously inside the run and must never block it.
        send, receive = anyio.create_memory_object_stream[RunEvent](math.inf)

        async def produce() -> None:
            async with send:
                result = await self.run(
                    workflow, run_input, on_event=send.send_nowait, deltas=deltas
                )
                await send.send(RunFinished(result))

        async with _closable(), anyio.create_task_group() as group:
            group.start_soon(produce)
            async with receive:
                async for event in receive:
                    yield event


@contextlib.asynccontextmanager
async def _closable() -> AsyncIterator[None]:
    """Let an async generator that yields inside a task group be closed early: the task
    group reports the close (GeneratorExit) inside an exception group, and a generator must
    raise it bare."""
    try:
        yield
    except BaseExceptionGroup as group:
        closing, rest = group.split((GeneratorExit, anyio.get_cancelled_exc_class()))
        if rest is None and closing is not None and closing.subgroup(GeneratorExit) is not None:
            raise GeneratorExit from None
        raise


def _both(first: EventSink | None, second: EventSink | None) -> EventSink | None:
    """The engine's listener and a run's own, both called (or whichever there is)."""
    if first is None or second is None:
        return first or second
    engine_sink, run_sink = first, second

    def both(event: RunEvent) -> None:
        engine_sink(event)
        run_sink(event)

    return both


async def _aiter(
    source: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
) -> AsyncIterator[Mapping[str, Any]]:
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for item in source:
            yield item


def _input_refused(
    workflow: CompiledWorkflow, run_id: str, run_input: Mapping[str, Any], exc: ValidationError
) -> RunResult:
    from ..models._protocol import Usage

    problems = validation_problems(exc, "input")
    return RunResult(
        run_id=run_id,
        workflow=workflow.name,
        status="failed",
        output=None,
        error=f"input does not match the workflow's input schema: {problems}",
        failed_node=None,
        nodes=(),
        escalations=(),
        usage=Usage(),
        cost_usd=0.0,
        latency=0.0,
        input=run_input,
    )
