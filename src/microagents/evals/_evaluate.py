"""Running a dataset through a workflow on an engine, and scoring every case.

The runs are ordinary engine runs (`Engine.run_many`): whatever the engine is — the Anthropic
back-end with its retries, limits and response cache, the simulated back-end, a fake, and later
a model that answers from a recorded journal (replay) — the eval runs on it unchanged, and each
case's run is traced like any other, so a failing case links to its trace.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import DatasetError
from ..graph._compiled import CompiledWorkflow, case_text, switch_value
from ..results._results import RunResult
from ..runtime._engine import DEFAULT_CONCURRENCY, Engine
from ._dataset import Case, Dataset
from ._judge import ModelGrader
from ._matchers import Exact, FieldCheck, check, leaf
from ._report import NOT_RUN, OUTPUT, CaseResult, EvalReport, NodeFacts, build_report


async def evaluate(
    workflow: CompiledWorkflow,
    dataset: Dataset,
    *,
    engine: Engine,
    concurrency: int = DEFAULT_CONCURRENCY,
    budget_usd: float | None = None,
    judge_tier: str = "sonnet",
    variant: str = "current",
) -> EvalReport:
    """Run every case of `dataset` through `workflow` on `engine` and score it.

    With `budget_usd`, no new case starts once the runs so far have cost that much; the cases
    left are reported as not run. `$judge` matchers are graded by `judge_tier` on the engine's
    model stack.

    ```python
    async with Engine.for_backend("simulate", workflow) as engine:
        report = await evaluate(workflow, load_dataset("cases.jsonl"), engine=engine)
    print(report.node("route").accuracy)
    ```
    """
    check_labels(workflow, dataset)
    grader = ModelGrader(engine.model, engine.tiers, tier=judge_tier)
    spent = 0.0

    async def inputs() -> AsyncIterator[Mapping[str, Any]]:
        for case in dataset.cases:
            if budget_usd is not None and spent >= budget_usd:
                return
            yield case.input

    results: dict[int, CaseResult] = {}
    simulated = False
    async for index, result in engine.run_many(workflow, inputs(), concurrency=concurrency):
        spent += result.cost_usd
        simulated = simulated or result.simulated
        results[index] = await score_case(workflow, dataset.cases[index], result, grader)
    cases = [
        results.get(i) or CaseResult(case.id, case.line, "not_run", error="budget reached")
        for i, case in enumerate(dataset.cases)
    ]
    now = datetime.now(UTC)
    return build_report(
        workflow,
        cases,
        eval_id=f"{now:%Y%m%dT%H%M%S}-{os.urandom(3).hex()}",
        variant=variant,
        dataset=str(dataset.path),
        created_at=now.isoformat(timespec="seconds"),
        simulated=simulated,
        judge_cost_usd=grader.cost_usd,
    )


def check_labels(workflow: CompiledWorkflow, dataset: Dataset) -> None:
    """Every node a case labels must exist in `workflow` (checked before anything runs)."""
    for case in dataset.cases:
        for node in case.nodes:
            if node not in workflow.nodes:
                known = ", ".join(workflow.nodes)
                raise DatasetError(
                    dataset.path,
                    case.line,
                    f"expected.nodes.{node}",
                    f"workflow '{workflow.name}' has no node '{node}' (its nodes: {known})",
                )


async def score_case(
    workflow: CompiledWorkflow, case: Case, result: RunResult, grader: ModelGrader
) -> CaseResult:
    """Check one run against its case's expectations."""
    checks: dict[str, tuple[FieldCheck, ...]] = {}
    if case.output is not None:
        output = result.output if result.ok else None
        checks[OUTPUT] = tuple(await check(case.output, output, path="", grader=grader))
    for node, expected in case.nodes.items():
        value = node_output(result, node)
        checks[node] = tuple(await check(expected, value, path="", grader=grader))
    return CaseResult(
        case_id=case.id,
        line=case.line,
        status=result.status,
        run_id=result.run_id,
        trace_id=result.trace_id,
        error=result.error,
        cost_usd=result.cost_usd,
        latency=result.latency,
        checks=checks,
        nodes=_facts(result),
        routes=_routes(workflow, case, result),
    )


def node_output(result: RunResult, node: str) -> Any:
    """A node's output in a run: its last visit's, the items' in order for a mapped node,
    None when it did not run or failed."""
    visits = [run for run in result.nodes if run.node == node]
    if not visits:
        return None
    if visits[-1].item_index is not None:
        items = sorted((r for r in visits if r.item_index is not None), key=_item)
        return [r.output for r in items]
    return visits[-1].output if visits[-1].status == "ok" else None


def _item(run: Any) -> int:
    return int(run.item_index)


def _facts(result: RunResult) -> dict[str, NodeFacts]:
    facts: dict[str, NodeFacts] = {}
    for run in result.nodes:
        before = facts.get(run.node, NodeFacts(0.0, 0.0))
        facts[run.node] = NodeFacts(before.cost_usd + run.cost_usd, before.latency + run.latency)
    for escalation in result.escalations:
        if escalation.node in facts:
            before = facts[escalation.node]
            triggers = (*before.triggers, escalation.trigger)
            facts[escalation.node] = NodeFacts(before.cost_usd, before.latency, triggers)
    return facts


def _routes(
    workflow: CompiledWorkflow, case: Case, result: RunResult
) -> dict[str, tuple[str, str]]:
    """(expected, actual) label of each labelled router's switch field."""
    routes: dict[str, tuple[str, str]] = {}
    for edge in workflow.edges:
        node, switch = edge.spec.source, edge.spec.switch
        if not switch or node not in case.nodes:
            continue
        matcher = leaf(case.nodes[node], switch)
        if not isinstance(matcher, Exact):
            continue  # only an exact label has a row in the matrix
        output = node_output(result, node)
        actual = switch_value(output, switch) if output is not None else None
        routes[node] = (
            case_text(matcher.expected),
            NOT_RUN if actual is None else case_text(actual),
        )
    return routes
