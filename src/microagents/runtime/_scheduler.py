"""One workflow run over its plan: a dataflow with dead-path elimination and bounded loops.

The core loop is short on purpose. A linear chain of nodes runs inline, one await after
another, with no task per node; a task group is opened only where two or more nodes are ready
at once (a fork) or a map fans out. Cross-cutting concerns stay outside where they can: model
retries, rate limits, caching and model-call spans wrap the model, and progress listens to
events. Run and node spans are the exception: the loop opens them directly, since a span per
hop made from an event stream cost more than the hop's own work (see PERFORMANCE.md).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import ValidationError

from ..errors import AgentFailed, NodeError, RunSuspended
from ..models._protocol import Usage
from ..results._results import (
    Attempt,
    Escalated,
    Escalation,
    EventSink,
    NodeFinished,
    NodeRun,
    NodeStarted,
    RunResult,
    WaitingFor,
    jsonable,
)
from ..spec._agent_spec import EscalationSpec
from ..spec._expressions import evaluate_value
from ..spec._schema import validation_problems
from ._journal import human_answer
from ._plan import DEFAULT_MAP_CONCURRENCY, Plan, PlanNode
from ._runner import run_agent
from ._tool_calls import DEFAULT_TOOL_TIMEOUT, call_tool

if TYPE_CHECKING:
    from ..graph._compiled import CompiledWorkflow
    from ..models._protocol import Model
    from ..models._tiers import TierTable
    from ..tracing._tracing import Tracing

RunSubWorkflow = Callable[
    ["CompiledWorkflow", Mapping[str, Any], Mapping[str, str]], Awaitable[RunResult]
]


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a run needs from whatever runs it (an `Engine`): the model stack, the tier table,
    tracing, and how to run a sub-workflow (with the parent's labels)."""

    model: Model
    tiers: TierTable
    tracing: Tracing | None
    run_workflow: RunSubWorkflow


WAITING, QUEUED, DONE, SKIPPED = "waiting", "queued", "done", "skipped"


class _RunFailed(Exception):
    def __init__(self, node: str, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


class WorkflowRun:
    """The state of one run. Create, `await execute()`, read the `RunResult`."""

    def __init__(
        self,
        plan: Plan,
        run_input: Mapping[str, Any],
        *,
        runtime: RunContext,
        run_id: str,
        labels: Mapping[str, str],
        on_event: EventSink | None,
        nested: bool = False,
        deltas: bool = False,
    ) -> None:
        self.plan = plan
        self.nested = nested
        self.deltas = deltas and on_event is not None
        self.runtime = runtime
        self.run_id = run_id
        self.trace_id: str | None = None
        """Set when the run is traced: the id of the trace its spans are in."""
        self.span_id: str | None = None
        """Set when the run is traced: its run span's id (hex)."""
        self.follows: tuple[str, str, int] | None = None
        """A resumed run: the earlier attempt's trace and run span ids, and this attempt's
        number; the run span links to that span."""
        self.on_span: Callable[[], None] | None = None
        """Called once the run span exists (`trace_id`, `span_id` set), before any node."""
        self.labels = labels
        self.on_event = on_event
        self.input = run_input
        self.nodes_state: dict[str, dict[str, Any]] = {}
        self.context: dict[str, Any] = {"input": run_input, "nodes": self.nodes_state}
        self.status: dict[str, str] = dict.fromkeys(plan.nodes, WAITING)
        self.resolved: dict[str, dict[str, bool]] = {n: {} for n in plan.nodes}
        self.visits: dict[str, int] = dict.fromkeys(plan.nodes, 0)
        self.last_rung: dict[str, int] = {}
        self.ready: list[str] = []
        self.node_runs: list[NodeRun] = []
        self.escalations: list[Escalation] = []

    # -- the loop --------------------------------------------------------------------------

    async def execute(self) -> RunResult:
        tracing = self.runtime.tracing
        if tracing is None:
            return await self._execute_run()
        spec = self.plan.workflow.spec
        batch_index = self.labels.get("batch_index")
        with tracing.run_span(
            spec.name,
            spec.version,
            self.run_id,
            nested=self.nested,
            batch_index=int(batch_index) if batch_index is not None else None,
            follows=self.follows,
        ) as span:
            self.trace_id = tracing.trace_id(span)
            self.span_id = tracing.span_id(span)
            if self.on_span is not None:
                self.on_span()
            result = await self._execute_run()
            tracing.finish_run(span, result)
            return result

    async def _execute_run(self) -> RunResult:
        started = time.perf_counter()
        failed: _RunFailed | None = None
        try:
            for node_id in self.plan.workflow.entry:
                self.status[node_id] = QUEUED
            try:
                await self._drive(list(self.plan.workflow.entry))
            except BaseExceptionGroup as group:
                # A failure inside a fork or a map arrives wrapped by its task group.
                raise _run_failure(group) from None
        except _RunFailed as failure:
            failed = failure
        except RunSuspended as suspended:
            # Waiting (for a person): the journal holds everything done so far.
            return self._result(None, None, time.perf_counter() - started, suspended.waiting_for)
        output = None
        if failed is None:
            output = evaluate_value(self.plan.workflow.output, self.context)
        return self._result(output, failed, time.perf_counter() - started)

    async def _drive(self, pending: list[str]) -> None:
        while pending:
            if len(pending) == 1:
                await self._visit(pending[0])
            else:
                waits = _Waits()
                async with anyio.create_task_group() as group:
                    for node_id in pending:
                        group.start_soon(waits.run, self._drive, [node_id])
                waits.raise_first()
            pending = self.ready
            self.ready = []

    async def _visit(self, node_id: str) -> None:
        plan_node = self.plan.nodes[node_id]
        self.visits[node_id] += 1
        visit = self.visits[node_id]
        if self.on_event is not None:
            self.on_event(NodeStarted(node_id, visit))
        run = await self._run_node(plan_node, visit, self.context)
        self.status[node_id] = DONE
        if run.status == "failed":
            caught = {edge.spec.to for edge in plan_node.error_routes if edge.spec.to}
            # An on_error edge back up the graph is a retry with the error as feedback, while
            # its max_visits lasts; after that the failure stands unless a forward one catches.
            retry = [
                t
                for t in caught & plan_node.loop_targets
                if self.visits[t] < self.plan.max_visits[(node_id, t)]
            ]
            caught -= plan_node.loop_targets
            if not retry and not caught:
                raise _RunFailed(node_id, run.error or "failed")
            self.nodes_state[node_id] = {
                "output": None,
                "error": {"type": "NodeError", "message": run.error},
            }
            for target in retry:
                self._rearm(node_id, target)
            if retry:
                return
            for target in plan_node.forward_targets:
                self._resolve(node_id, target, target in caught)
            return
        self.nodes_state[node_id] = {"output": run.output, "error": None}
        await self._route(plan_node, run.output)

    async def _run_node(
        self,
        plan_node: PlanNode,
        visit: int,
        context: Mapping[str, Any],
        item_index: int | None = None,
    ) -> NodeRun:
        """Run and record one visit (in its span, when tracing is on); never raises
        NodeError: a failure is a failed `NodeRun`."""
        tracing = self.runtime.tracing
        if tracing is None:
            run = await self._timed(plan_node, visit, context, item_index)
        else:
            node = plan_node.node
            with tracing.node_span(node, visit, item_index) as span:
                run = await self._timed(plan_node, visit, context, item_index)
                tracing.finish_node(span, run, node.kind)
        self._record(run)
        return run

    async def _timed(
        self,
        plan_node: PlanNode,
        visit: int,
        context: Mapping[str, Any],
        item_index: int | None,
    ) -> NodeRun:
        node_id = plan_node.node.id
        started = time.perf_counter()
        try:
            output, attempts = await self._execute(plan_node, visit, context)
        except NodeError as error:
            elapsed = time.perf_counter() - started
            return NodeRun(
                node_id, visit, "failed", None, str(error), error.attempts, elapsed, item_index
            )
        elapsed = time.perf_counter() - started
        return NodeRun(node_id, visit, "ok", output, None, attempts, elapsed, item_index)

    async def _route(self, plan_node: PlanNode, output: Any) -> None:
        node_id = plan_node.node.id
        taken: set[str] = set()
        loops: list[str] = []
        for edge in plan_node.routes:
            spec = edge.spec
            if spec.map is not None:
                await self._run_map(edge)
                continue
            if spec.switch is not None:
                chosen = edge.switch_target(output)
                targets = [chosen] if chosen is not None else []
            elif edge.when is not None:
                targets = [spec.to] if edge.when.evaluate(self.context) and spec.to else []
            else:
                targets = [spec.to] if spec.to else []
            for target in targets:
                if target not in plan_node.loop_targets:
                    taken.add(target)
                elif self.visits[target] < self.plan.max_visits[(node_id, target)]:
                    loops.append(target)
        if loops:
            # Going round again: this node's other edges wait for its last visit.
            for target in loops:
                self._rearm(node_id, target)
            return
        for target in plan_node.forward_targets:
            if not self.plan.nodes[target].node.mapped:
                self._resolve(node_id, target, target in taken)

    def _resolve(self, source: str, target: str, taken: bool) -> None:
        """One forward edge into `target` is decided; run or skip it once all are."""
        if self.status[target] != WAITING:
            return
        decided = self.resolved[target]
        decided[source] = taken
        if len(decided) < len(self.plan.nodes[target].forward_sources):
            return
        if any(decided.values()):
            self.status[target] = QUEUED
            self.ready.append(target)
        else:
            self._skip(target)

    def _skip(self, node_id: str) -> None:
        self.status[node_id] = SKIPPED
        for target in self.plan.nodes[node_id].forward_targets:
            if self.plan.nodes[target].node.mapped:
                self._skip(target)
            else:
                self._resolve(node_id, target, False)

    def _rearm(self, source: str, target: str) -> None:
        body = self.plan.loop_bodies[(source, target)]
        for node_id in body:
            if node_id == target:
                continue
            self.status[node_id] = WAITING
            decided = self.resolved[node_id]
            for upstream in [s for s in decided if s in body]:
                del decided[upstream]
        self.status[target] = QUEUED
        self.ready.append(target)

    async def _run_map(self, edge: Any) -> None:
        spec = edge.spec
        mapped = self.plan.nodes[spec.to]
        items = edge.map.evaluate(self.context)
        if items is None:
            items = []
        if not isinstance(items, list | tuple):
            raise _RunFailed(
                spec.source, f"map expression '{spec.map}' gave {type(items).__name__}, not a list"
            )
        self.visits[spec.to] += 1
        visit = self.visits[spec.to]
        results: list[Any] = [None] * len(items)
        limiter = anyio.CapacityLimiter(spec.concurrency or DEFAULT_MAP_CONCURRENCY)

        async def one(index: int, item: Any) -> None:
            async with limiter:
                context = {**self.context, "item": item, "index": index}
                run = await self._run_node(mapped, visit, context, index)
                if run.status == "failed":
                    raise _RunFailed(spec.to, f"item {index}: {run.error}")
                results[index] = run.output

        async def fan_out() -> None:
            waits = _Waits()
            async with anyio.create_task_group() as group:
                for index, item in enumerate(items):
                    group.start_soon(waits.run, one, index, item)
            waits.raise_first()

        tracing = self.runtime.tracing
        if items and tracing is None:
            await fan_out()
        elif items and tracing is not None:
            with tracing.fan_out_span(spec.to, len(items)) as span:
                await fan_out()
                tracing.finish_fan_out(span)
        self.nodes_state[spec.to] = {"output": results, "error": None}
        self.status[spec.to] = DONE
        self._resolve(spec.to, spec.into, True)

    # -- one node --------------------------------------------------------------------------

    async def _execute(
        self, plan_node: PlanNode, visit: int, context: Mapping[str, Any]
    ) -> tuple[Any, tuple[Attempt, ...]]:
        """Run a node with its timeout and retries; raise `NodeError` when it fails."""
        spec = plan_node.node.spec
        tries = (spec.retries or 0) + 1
        spent: tuple[Attempt, ...] = ()
        message = ""
        for _ in range(tries):
            try:
                if spec.timeout is None:
                    output, attempts = await self._execute_once(plan_node, visit, context)
                else:
                    with anyio.fail_after(spec.timeout):
                        output, attempts = await self._execute_once(plan_node, visit, context)
                # Earlier failed tries cost money too: they stay in the record.
                return output, spent + attempts
            except TimeoutError:
                message = f"timed out after {spec.timeout:g} s"
            except NodeError as error:
                spent += error.attempts
                message = str(error)
                if isinstance(error, _InputError):
                    break  # the same input will be refused again
        raise NodeError(message, spent)

    async def _execute_once(
        self, plan_node: PlanNode, visit: int, context: Mapping[str, Any]
    ) -> tuple[Any, tuple[Attempt, ...]]:
        node = plan_node.node
        # Plain data in: a bound upstream output is a pydantic object, and an input schema
        # of `type: object` (or a tool's dict parameter) takes a mapping.
        inputs = jsonable(evaluate_value(node.inputs, context) or {})
        # The journal's step key: deterministic given the input and what was recorded.
        step = f"{self.labels.get('scope', '')}{node.id}#{visit}"
        if node.mapped:
            step = f"{step}[{context['index']}]"
        tracing = self.runtime.tracing
        if tracing is not None and tracing.capture_content:
            tracing.node_input(tracing.current(), node.kind, inputs)
        if node.agent is not None:
            assert plan_node.prepared is not None
            assert node.escalation is not None
            try:
                node.agent.input_model.model_validate(inputs)
            except ValidationError as exc:
                raise _InputError(
                    f"input for agent '{node.agent.spec.name}' does not match its schema: "
                    + validation_problems(exc, "input")
                ) from None
            start = self._start_rung(node.id, visit, node.escalation)
            try:
                outcome = await run_agent(
                    plan_node.prepared,
                    inputs,
                    tracing=self.runtime.tracing,
                    model=self.runtime.model,
                    tiers=self.runtime.tiers,
                    tools=self.plan.workflow.tools,
                    escalation=node.escalation,
                    start_rung=start,
                    labels={
                        **self.labels,
                        "agent": node.agent.spec.name,
                        "node": node.id,
                        "step": step,
                    },
                    node=node.id,
                    visit=visit,
                    on_event=self.on_event,
                    stream=self.deltas,
                )
            except AgentFailed as failed:
                raise NodeError(str(failed), failed.attempts) from None
            self.last_rung[node.id] = outcome.rung
            return outcome.output, outcome.attempts
        if node.tool is not None:
            limit = node.spec.timeout or DEFAULT_TOOL_TIMEOUT
            if self.runtime.tracing is None:
                outcome_tool = await call_tool(
                    node.tool, inputs, time_limit=limit, step=step, node=node.id
                )
            else:
                with self.runtime.tracing.tool_context():
                    outcome_tool = await call_tool(
                        node.tool, inputs, time_limit=limit, step=step, node=node.id
                    )
            if outcome_tool.error is not None:
                raise NodeError(outcome_tool.error)
            return outcome_tool.value, ()
        if node.human is not None:
            human = node.human
            return human_answer(
                step, node.id, lambda: human.render({**context, **inputs}), human.schema
            ), ()
        assert node.workflow is not None
        sub = await self.runtime.run_workflow(
            node.workflow, inputs, {**self.labels, "scope": f"{step}/"}
        )
        attempts = tuple(a for run in sub.nodes for a in run.attempts)
        # Its climbs are this node's: the escalation table has a row per node of this run.
        self.escalations.extend(
            Escalation(node.id, visit, e.trigger, e.from_tier, e.to_tier) for e in sub.escalations
        )
        if sub.waiting_for is not None:
            # It waits (for a person, or a Message Batch result): so does this run, and the
            # sub-workflow replays its steps when this run is resumed.
            raise RunSuspended(sub.waiting_for)
        if not sub.ok:
            raise NodeError(
                f"sub-workflow '{node.workflow.name}' failed at '{sub.failed_node}': {sub.error}",
                attempts,
            )
        return sub.output, attempts

    def _start_rung(self, node_id: str, visit: int, escalation: EscalationSpec) -> int:
        """A revisit through a rejection loop starts one rung above the last answer."""
        if visit == 1 or "rejected" not in escalation.on or node_id not in self.last_rung:
            return 0
        previous = self.last_rung[node_id]
        start = min(previous + 1, len(escalation.ladder) - 1)
        if start > previous:
            ladder = escalation.ladder
            climb = Escalation(node_id, visit, "rejected", ladder[previous], ladder[start])
            self.escalations.append(climb)
            if self.runtime.tracing is not None:  # we are inside the node's span
                tracing = self.runtime.tracing
                tracing.escalation_event(
                    tracing.current(), "rejected", climb.from_tier, climb.to_tier
                )
            if self.on_event is not None:
                self.on_event(Escalated(climb))
        return start

    # -- bookkeeping -----------------------------------------------------------------------

    def _record(self, run: NodeRun) -> None:
        self.node_runs.append(run)
        # Climbs within this visit: each attempt that ended on a trigger led to the next
        # (a sub-workflow's attempts are its own nodes', and a node retry is not a climb).
        kind = self.plan.nodes[run.node].node.kind
        for attempt, following in itertools.pairwise(run.attempts):
            if kind == "agent" and attempt.trigger is not None and following.tier != attempt.tier:
                self.escalations.append(
                    Escalation(run.node, run.visit, attempt.trigger, attempt.tier, following.tier)
                )
        if self.on_event is not None:
            self.on_event(NodeFinished(run))

    def _result(
        self,
        output: Any,
        failed: _RunFailed | None,
        latency: float,
        waiting_for: WaitingFor | None = None,
    ) -> RunResult:
        usage = Usage()
        cost = 0.0
        simulated = False
        for run in self.node_runs:
            for attempt in run.attempts:
                usage = usage + attempt.usage
                cost += attempt.cost_usd
                simulated = simulated or attempt.simulated
        return RunResult(
            run_id=self.run_id,
            workflow=self.plan.workflow.name,
            status="failed" if failed else "waiting" if waiting_for else "ok",
            output=output,
            error=failed.message if failed else None,
            failed_node=failed.node if failed else None,
            nodes=tuple(self.node_runs),
            escalations=tuple(self.escalations),
            usage=usage,
            cost_usd=cost,
            latency=latency,
            simulated=simulated,
            input=self.input,
            trace_id=self.trace_id,
            waiting_for=waiting_for,
        )


def _run_failure(group: BaseExceptionGroup) -> BaseException:
    """The run's own failure out of a task group's exception group, or the group itself
    when something else (a bug, a cancellation) is in it."""
    failures, others = group.split((_RunFailed, RunSuspended))
    if others is not None or failures is None:
        return group
    suspended = failures.subgroup(RunSuspended)
    if suspended is not None:  # a branch that waits makes the run wait
        failures = suspended
    leaf: BaseException = failures
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


class _Waits:
    """The branches of a fork or the items of a map that wait: one that waits lets the others
    go on until they finish or wait too (a failure still stops them all). So every call that
    can be made is deferred into the same Message Batches round, and every question a person
    can be asked now is asked, rather than one a resume."""

    __slots__ = ("first",)

    def __init__(self) -> None:
        self.first: RunSuspended | None = None

    async def run(self, branch: Callable[..., Awaitable[None]], *args: Any) -> None:
        try:
            await branch(*args)
        except RunSuspended as suspended:
            if self.first is None:
                self.first = suspended

    def raise_first(self) -> None:
        if self.first is not None:
            raise self.first


class _InputError(NodeError):
    """A node's input does not match the schema of what it runs: retrying cannot help."""
