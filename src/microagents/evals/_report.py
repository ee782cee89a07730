"""What an eval produces: a result per case, figures per node and overall, confusion matrices.

`EvalReport.to_json()` is the stable shape CI reads (`schema` 1): per node `accuracy`,
`escalation_rate` and `cost_usd`, plus the overall figures; it is also what the store keeps, so
a stored eval can be listed and compared later without the objects that made it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..graph._compiled import CompiledWorkflow
from ..results._summary import percentile
from ._matchers import FieldCheck

SCHEMA_VERSION = 1
OUTPUT = "output"
"""The target name of the workflow's own output, beside the node ids."""
NOT_RUN = "(not run)"
"""A router's label when the node did not run (or gave no value), in confusion matrices."""
CaseStatus = Literal["ok", "failed", "waiting", "not_run"]


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What one node did in one case's run: cost, latency, the triggers it climbed on."""

    cost_usd: float
    latency: float
    triggers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case: how its run went, and each scored target's field checks."""

    case_id: str
    line: int
    status: CaseStatus
    run_id: str | None = None
    trace_id: str | None = None
    error: str | None = None
    cost_usd: float = 0.0
    latency: float = 0.0
    checks: Mapping[str, tuple[FieldCheck, ...]] = field(default_factory=dict)
    """Target (`output` or a node id) → its checks; only targets the case labels."""
    nodes: Mapping[str, NodeFacts] = field(default_factory=dict)
    """Node id → what it did; only nodes that ran."""
    routes: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Router node → (expected, actual) label of its switch field."""

    def passed(self, target: str) -> bool | None:
        """Whether every check of `target` passed (None when the case does not label it)."""
        checks = self.checks.get(target)
        return None if checks is None else all(c.passed for c in checks)

    @property
    def all_passed(self) -> bool:
        return self.status == "ok" and all(self.passed(t) for t in self.checks)


@dataclass(frozen=True, slots=True)
class NodeReport:
    """One node's figures over the dataset."""

    node: str
    labelled: int
    correct: int
    runs: int
    escalated: int
    triggers: Mapping[str, int]
    cost_usd: float
    latencies: tuple[float, ...]

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    @property
    def escalation_rate(self) -> float | None:
        """Share of the node's runs that climbed at least once."""
        return self.escalated / self.runs if self.runs else None

    @property
    def cost_per_run(self) -> float | None:
        return self.cost_usd / self.runs if self.runs else None


@dataclass(frozen=True, slots=True)
class Confusion:
    """Expected (rows) against actual (columns) labels of a router's switch field."""

    node: str
    field: str
    labels: tuple[str, ...]
    matrix: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class EvalReport:
    """A dataset run through one variant of a workflow, scored."""

    eval_id: str
    workflow: str
    variant: str
    dataset: str
    created_at: str
    cases: tuple[CaseResult, ...]
    nodes: tuple[NodeReport, ...]
    confusions: tuple[Confusion, ...]
    simulated: bool = False
    judge_cost_usd: float = 0.0

    def node(self, node_id: str) -> NodeReport:
        """The figures of `node_id` (KeyError when the workflow has no such node)."""
        for report in self.nodes:
            if report.node == node_id:
                return report
        raise KeyError(node_id)

    @property
    def ran(self) -> list[CaseResult]:
        return [case for case in self.cases if case.status != "not_run"]

    @property
    def accuracy(self) -> float | None:
        """Share of the cases run whose every labelled target passed."""
        ran = self.ran
        return sum(case.all_passed for case in ran) / len(ran) if ran else None

    @property
    def output_accuracy(self) -> float | None:
        scored = [p for case in self.ran if (p := case.passed(OUTPUT)) is not None]
        return sum(scored) / len(scored) if scored else None

    @property
    def escalation_rate(self) -> float | None:
        """Share of the cases run in which some node climbed its ladder."""
        ran = self.ran
        escalated = sum(any(f.triggers for f in case.nodes.values()) for case in ran)
        return escalated / len(ran) if ran else None

    @property
    def cost_usd(self) -> float:
        """What the workflow's runs cost (the judge's calls are in `judge_cost_usd`)."""
        return sum(case.cost_usd for case in self.cases)

    @property
    def failing(self) -> list[CaseResult]:
        return [case for case in self.ran if not case.all_passed]

    def to_json(self) -> dict[str, Any]:
        """The stable, JSON-ready shape (see the module docstring)."""
        ran = self.ran
        latencies = sorted(case.latency for case in ran)
        return {
            "schema": SCHEMA_VERSION,
            "eval_id": self.eval_id,
            "workflow": self.workflow,
            "variant": self.variant,
            "dataset": self.dataset,
            "created_at": self.created_at,
            "simulated": self.simulated,
            "overall": {
                "cases": len(self.cases),
                "ran": len(ran),
                "failed_runs": sum(case.status == "failed" for case in ran),
                "accuracy": _round(self.accuracy),
                "output_accuracy": _round(self.output_accuracy),
                "escalation_rate": _round(self.escalation_rate),
                "cost_usd": round(self.cost_usd, 8),
                "cost_per_case_usd": round(self.cost_usd / len(ran), 8) if ran else None,
                "judge_cost_usd": round(self.judge_cost_usd, 8),
                "latency_p50_s": _round(percentile(latencies, 0.5)),
                "latency_p95_s": _round(percentile(latencies, 0.95)),
            },
            "nodes": {node.node: _node_json(node) for node in self.nodes},
            "confusion": {
                c.node: {"field": c.field, "labels": list(c.labels), "matrix": _rows(c.matrix)}
                for c in self.confusions
            },
            "failing": [_failing_json(case) for case in self.failing],
            "cases": [_case_json(case) for case in self.cases],
        }


def build_report(
    workflow: CompiledWorkflow,
    cases: Sequence[CaseResult],
    *,
    eval_id: str,
    variant: str,
    dataset: str,
    created_at: str,
    simulated: bool,
    judge_cost_usd: float,
) -> EvalReport:
    """Add up case results into figures per node, and a confusion matrix per router."""
    labelled = {t for case in cases for t in case.checks if t != OUTPUT}
    ran = {n for case in cases for n in case.nodes}
    order = [n for n in workflow.nodes if n in labelled or n in ran]
    nodes = tuple(_node_report(node, cases) for node in order)
    routers = {e.spec.source: e.spec.switch for e in workflow.edges if e.spec.switch}
    confusions = tuple(
        _confusion(node, switch, cases)
        for node, switch in routers.items()
        if switch and any(node in case.routes for case in cases)
    )
    return EvalReport(
        eval_id,
        workflow.name,
        variant,
        dataset,
        created_at,
        tuple(cases),
        nodes,
        confusions,
        simulated=simulated,
        judge_cost_usd=judge_cost_usd,
    )


def _node_report(node: str, cases: Sequence[CaseResult]) -> NodeReport:
    scores = [p for case in cases if (p := case.passed(node)) is not None]
    facts = [case.nodes[node] for case in cases if node in case.nodes]
    triggers = Counter(t for f in facts for t in f.triggers)
    return NodeReport(
        node=node,
        labelled=len(scores),
        correct=sum(scores),
        runs=len(facts),
        escalated=sum(bool(f.triggers) for f in facts),
        triggers=dict(sorted(triggers.items())),
        cost_usd=sum(f.cost_usd for f in facts),
        latencies=tuple(sorted(f.latency for f in facts)),
    )


def _confusion(node: str, switch: str, cases: Sequence[CaseResult]) -> Confusion:
    pairs = [case.routes[node] for case in cases if node in case.routes]
    labels = tuple(sorted({label for pair in pairs for label in pair}))
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for expected, actual in pairs:
        matrix[index[expected]][index[actual]] += 1
    return Confusion(node, switch, labels, tuple(tuple(row) for row in matrix))


def _node_json(node: NodeReport) -> dict[str, Any]:
    runs = node.runs
    return {
        "accuracy": _round(node.accuracy),
        "labelled": node.labelled,
        "correct": node.correct,
        "runs": runs,
        "escalation_rate": _round(node.escalation_rate),
        "escalations_by_trigger": {t: round(n / runs, 4) for t, n in node.triggers.items()},
        "cost_usd": round(node.cost_usd, 8),
        "cost_per_run_usd": round(node.cost_usd / runs, 8) if runs else None,
        "latency_p50_s": _round(percentile(node.latencies, 0.5)),
        "latency_p95_s": _round(percentile(node.latencies, 0.95)),
    }


def _failing_json(case: CaseResult) -> dict[str, Any]:
    return {
        "case": case.case_id,
        "line": case.line,
        "run_id": case.run_id,
        "trace_id": case.trace_id,
        "error": case.error,
        "checks": [
            {"target": target, "field": c.path, "actual": c.actual, "reason": c.reason}
            for target, checks in case.checks.items()
            for c in checks
            if not c.passed
        ],
    }


def _case_json(case: CaseResult) -> dict[str, Any]:
    return {
        "case": case.case_id,
        "line": case.line,
        "status": case.status,
        "run_id": case.run_id,
        "trace_id": case.trace_id,
        "cost_usd": round(case.cost_usd, 8),
        "latency_s": round(case.latency, 4),
        "scores": {target: case.passed(target) for target in case.checks},
        "nodes": {
            node: {"cost_usd": round(f.cost_usd, 8), "escalations": list(f.triggers)}
            for node, f in case.nodes.items()
        },
    }


def _rows(matrix: tuple[tuple[int, ...], ...]) -> list[list[int]]:
    return [list(row) for row in matrix]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
