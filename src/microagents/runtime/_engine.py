"""The engine: runs compiled workflows on a model stack, one run or many at once.

An `Engine` owns the model stack (and so the connection pool, the rate limiters and the response
cache) and a cache of execution plans; create one per process or per batch and share it across
runs. `CompiledWorkflow.run`/`run_sync`/`run_many`/`stream` are shortcuts onto one.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sized
from dataclasses import replace
from typing import Any, Literal

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from pydantic import BaseModel, ValidationError

from ..errors import AnswerRefused, JournalError, MicroagentsError, RunNotFound, SchemaError
from ..graph._compiled import CompiledWorkflow
from ..models._anthropic import AnthropicModel
from ..models._backends import anthropic_model, simulated_model
from ..models._cache import CachedModel
from ..models._protocol import CacheTTL, Model, aclose_inner
from ..models._ratelimit import RUN_ORDER_LABEL
from ..models._simulate import SimulatedLatency
from ..models._tiers import TierTable
from ..results._results import EventSink, RunEvent, RunFinished, RunResult
from ..spec._schema import model_from_schema, validation_problems
from ..tracing._setup import default_tracing
from ..tracing._tracing import TracedModel, Tracing
from ._journal import CURRENT_RUN, JournaledModel, RunJournal
from ._journal_store import JournalStore, RunRecord, SQLiteJournal
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
        journal: JournalStore | None = None,
        origin: Mapping[str, Any] | None = None,
    ) -> None:
        # Journaling and model-call spans are layers: the scheduler never sees a model call.
        # The journal sits under the span, so that a replayed call still shows, marked so.
        if journal is not None:
            model = JournaledModel(model)
        self.model = TracedModel(model, tracing) if tracing is not None else model
        self.tracing = tracing
        self.journal = journal
        """Where runs are recorded step by step, to resume (None: runs are not durable)."""
        self.origin = dict(origin or {})
        """How this engine's runs were started (a workflow file, a back-end, options),
        recorded with each run so that `microagents runs resume` can start it again."""
        self.tiers = tiers or TierTable.load()
        self.on_event = on_event
        self._plans: dict[int, tuple[CompiledWorkflow, Plan, type[BaseModel] | None]] = {}
        self._workflows: dict[str, CompiledWorkflow] = {}
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
        journal: JournalStore | Literal["default"] | None = "default",
        origin: Mapping[str, Any] | None = None,
        batch_api: bool = False,
    ) -> Engine:
        """An engine on the Anthropic API (key from the environment) or the simulated back-end
        (answering from `workflow`'s agents' examples), traced to the embedded store and
        whatever ``OTEL_*`` configures unless `tracing` is None, and journaled (durable:
        resumable, able to wait for a person) to ``MICROAGENTS_HOME`` unless `journal` is
        None. With `batch_api`, calls go to Message Batches (at batch prices, in rounds: see
        `run_batch(..., batch_api=True)`)."""
        store = SQLiteJournal() if journal == "default" else journal
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
            return cls(model, tiers=tiers, tracing=chosen, journal=store, origin=origin)
        if batch_api:
            from ._batch_api import BatchApiModel

            # No rate limiter and no retries: Message Batches have neither ceiling nor 429s,
            # and an errored request is tried again in the next round. Rounds take minutes to
            # hours: the 1 h cache TTL keeps a prefix cached from one round to the next.
            ttl: CacheTTL = "1h" if cache_ttl == "5m" else cache_ttl
            deferring: Model = BatchApiModel(AnthropicModel(tiers=tiers, cache_ttl=ttl))
            if cache_path is not None:
                # Above the batch layer: a cached answer is never deferred, and the round
                # driver caches each result it collects (and asks a repeated request once).
                deferring = CachedModel(deferring, cache_path)
            return cls(deferring, tiers=tiers, tracing=chosen, journal=store, origin=origin)
        model = anthropic_model(tiers=tiers, cache_path=cache_path, cache_ttl=cache_ttl)
        return cls(model, tiers=tiers, tracing=chosen, journal=store, origin=origin)

    async def aclose(self) -> None:
        """Close the model stack (connection pools, cache database) and commit the journal."""
        try:
            await aclose_inner(self.model)
        finally:
            if self.journal is not None:
                await self.journal.aclose()

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
            self._workflows[workflow.name] = workflow
        return cached[1], cached[2]

    async def run(
        self,
        workflow: CompiledWorkflow,
        run_input: Mapping[str, Any],
        *,
        labels: Mapping[str, str] | None = None,
        on_event: EventSink | None = None,
        deltas: bool = False,
        run_id: str | None = None,
        resume: bool = False,
    ) -> RunResult:
        """Run `workflow` once on `run_input`. A failing node gives a failed result, not an
        exception; errors raised are bugs or cancellation. With `deltas`, agents stream their
        answers (when the model can) and `on_event` hears `OutputDelta`s.

        With a journal, every step is recorded under `run_id` (a fresh one by default); with
        `resume`, steps recorded under it earlier replay without a call (see `resume`)."""
        plan, input_model = self.plan(workflow)
        started = next(self._run_ids)
        nested = labels is not None and "run" in labels  # a sub-workflow's run (not a batch's)
        run_id = run_id or f"{self._run_prefix}-{started}"
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
        if self.journal is None or nested:
            # A sub-workflow's steps go in its parent's journal, under the parent's node.
            return await run.execute()
        return await self._journaled(run, workflow, run_input, resume=resume, labels=labels)

    async def _journaled(
        self,
        run: WorkflowRun,
        workflow: CompiledWorkflow,
        run_input: Mapping[str, Any],
        *,
        resume: bool,
        labels: Mapping[str, str] | None,
        rerun_changed: bool = False,
        rerun_tools: bool = False,
    ) -> RunResult:
        store = self.journal
        assert store is not None
        earlier, recorded = await store.resumable(run.run_id) if resume else (None, None)
        attempt = earlier.attempts + 1 if earlier is not None else 1
        journal = RunJournal(
            store,
            run.run_id,
            recorded,
            rerun_changed=rerun_changed,
            rerun_tools=rerun_tools,
            attempt=attempt,
        )
        if earlier is not None and earlier.trace and earlier.span:
            # The resumed run's span links to the earlier attempt's (see docs/tracing.md).
            run.follows = (earlier.trace, earlier.span, attempt)
        now = time.time()
        record = RunRecord(
            run_id=run.run_id,
            workflow=workflow.name,
            status="running",
            input=run_input,
            started=earlier.started if earlier is not None else now,
            updated=now,
            attempts=attempt,
            origin={**self.origin, **(earlier.origin if earlier is not None else {})},
            batch=(labels or {}).get("batch"),
        )
        if self.tracing is None:
            store.record_run(record)
        else:
            # Recorded with its span's ids, so that a resume after a crash links to this run.
            run.on_span = lambda: store.record_run(
                replace(record, trace=run.trace_id, span=run.span_id)
            )
        token = CURRENT_RUN.set(journal)
        try:
            try:
                result = await run.execute()
            except BaseExceptionGroup as group:
                # A resume that cannot go on, from inside a fork or a map: raise it bare.
                raise _journal_error(group) from None
        except JournalError:
            if earlier is not None:  # the resume did not happen: the run stays as it was
                store.record_run(replace(earlier, updated=time.time()))
            raise
        finally:
            CURRENT_RUN.reset(token)
        store.record_run(
            replace(
                record,
                status=result.status,
                updated=time.time(),
                waiting=result.waiting_for,
                error=result.error,
                trace=result.trace_id,
                span=run.span_id,
            )
        )
        if journal.replayed:
            result = replace(result, replayed=journal.replayed)
        return result

    async def resume(
        self,
        run_id: str,
        answer: Any = None,
        *,
        workflow: CompiledWorkflow | None = None,
        rerun_changed: bool = False,
        rerun_tools: bool = False,
    ) -> RunResult:
        """Resume a run recorded in the journal: re-execute it from its input, replaying every
        recorded step without a call, and go on live from the first step without a record.

        ```python
        result = await engine.run(workflow, {"ticket": "..."})   # status "waiting"
        result = await engine.resume(result.run_id, answer={"approved": True})
        ```

        `answer` answers the question a `waiting` run asks (checked against its schema:
        `AnswerRefused` names the field, and the run stays waiting). `workflow` is needed when
        this engine has not run the workflow itself. A step whose request changed since it was
        recorded raises `ReplayMismatch` naming the node, unless `rerun_changed`; a tool that
        is not idempotent and started without a recorded result raises `ToolDecisionNeeded`,
        unless `rerun_tools`."""
        store = self.journal
        if store is None:
            raise MicroagentsError("this engine has no journal: create it with journal=...")
        await store.durable()  # a run of this process may have just recorded its steps
        record = await store.run(run_id)
        if record is None:
            raise RunNotFound(run_id)
        workflow = workflow or self._workflows.get(record.workflow)
        if workflow is None:
            raise MicroagentsError(
                f"run '{record.run_id}' is of workflow '{record.workflow}', which this engine "
                "has not loaded: pass it, engine.resume(run_id, workflow=...)"
            )
        if answer is not None:
            await self._record_answer(store, record, answer)
        plan, _ = self.plan(workflow)
        labels = {"batch": record.batch} if record.batch else {}
        run = WorkflowRun(
            plan,
            record.input,
            runtime=self._runtime,
            run_id=record.run_id,
            labels={
                RUN_ORDER_LABEL: str(next(self._run_ids)),
                **labels,
                "run": record.run_id,
                "workflow": workflow.name,
            },
            on_event=self.on_event,
        )
        return await self._journaled(
            run,
            workflow,
            record.input,
            resume=True,
            labels=labels,
            rerun_changed=rerun_changed,
            rerun_tools=rerun_tools,
        )

    @staticmethod
    async def _record_answer(store: JournalStore, record: RunRecord, answer: Any) -> None:
        waiting = record.waiting
        if record.status != "waiting" or waiting is None:
            raise AnswerRefused(
                f"run '{record.run_id}' is {record.status}, not waiting for an answer; "
                "resume it without --answer"
            )
        if waiting.kind == "batch_result":
            raise AnswerRefused(
                f"run '{record.run_id}' waits for the result of a Message Batches request, not "
                "for a person: collect it with `microagents batches collect` (or the batch's "
                "command with --resume)"
            )
        try:
            model_from_schema(dict(waiting.schema), f"{waiting.node} answer").model_validate(answer)
        except ValidationError as exc:
            raise AnswerRefused(
                f"the answer to node '{waiting.node}' does not match its schema: "
                f"{validation_problems(exc, 'answer')}; the run is still waiting"
            ) from None
        answer_json = json.dumps(answer)
        attempt = record.attempts  # recorded by the attempt that asked; the next replays it
        store.record_step(record.run_id, waiting.step, "human", "answer", answer_json, attempt)
        await store.durable()

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


def _journal_error(group: BaseExceptionGroup) -> BaseException:
    """The `JournalError` out of a task group's exception group, or the group itself."""
    found, others = group.split(JournalError)
    if others is not None or found is None:
        return group
    leaf: BaseException = found
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


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
