"""The tier sweep: each agent node pinned to each rung of its ladder, and with its ladder.

Pinning rewrites the compiled workflow — the node's escalation becomes a one-rung ladder, so it
cannot climb — and leaves the engine and its scheduler alone. One node is pinned at a time and
the others keep their ladders, so a node's figures are its own with the inputs it would really
get. The option that keeps the whole ladder is the same run for every node: it runs once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import EvalError, suggest
from ..graph._compiled import CompiledWorkflow
from ..runtime._engine import DEFAULT_CONCURRENCY, Engine
from ._dataset import Dataset
from ._evaluate import evaluate
from ._report import EvalReport

LADDER = "ladder"
"""The option that keeps a node's whole escalation ladder."""


@dataclass(frozen=True, slots=True)
class SweepOption:
    """One node on one option (a tier, or `ladder`): how accurate, at what cost per run."""

    node: str
    option: str
    accuracy: float | None
    cost_per_run: float | None
    escalation_rate: float | None
    scored_by: str
    """`node` when the dataset labels the node; `workflow` when its accuracy is the overall one."""


@dataclass(frozen=True, slots=True)
class SweepReport:
    """Every option of every swept node, and what meets `target`."""

    target: float | None
    options: tuple[SweepOption, ...]
    ladder_report: EvalReport

    def of(self, node: str) -> list[SweepOption]:
        return [option for option in self.options if option.node == node]

    @property
    def nodes(self) -> list[str]:
        return list(dict.fromkeys(option.node for option in self.options))

    def recommend(self, node: str) -> SweepOption | None:
        """The cheapest option of `node` whose accuracy meets the target (None: none does)."""
        if self.target is None:
            return None
        target = self.target
        meeting = [
            o for o in self.of(node) if o.accuracy is not None and o.accuracy >= target - 1e-9
        ]
        return min(meeting, key=lambda o: o.cost_per_run or 0.0, default=None)

    def to_json(self) -> dict[str, Any]:
        nodes: dict[str, Any] = {}
        for node in self.nodes:
            best = self.recommend(node)
            nodes[node] = {
                "options": {
                    o.option: {
                        "accuracy": _round(o.accuracy),
                        "cost_per_run_usd": _round(o.cost_per_run, 8),
                        "escalation_rate": _round(o.escalation_rate),
                        "scored_by": o.scored_by,
                    }
                    for o in self.of(node)
                },
                "recommended": best.option if best is not None else None,
            }
        return {"target": self.target, "nodes": nodes}


def pin(workflow: CompiledWorkflow, node_id: str, tier: str) -> CompiledWorkflow:
    """`workflow` with agent node `node_id` held on `tier`: a one-rung ladder, no climbing."""
    node = workflow.nodes[node_id]
    if node.escalation is None:
        raise EvalError(f"node '{node_id}' of '{workflow.name}' is not an agent: nothing to pin")
    escalation = node.escalation.model_copy(update={"ladder": [tier]})
    nodes = {**workflow.nodes, node_id: replace(node, escalation=escalation)}
    return replace(workflow, nodes=nodes)


def agent_nodes(workflow: CompiledWorkflow) -> list[str]:
    return [n for n, node in workflow.nodes.items() if node.escalation is not None]


async def sweep_tiers(
    workflow: CompiledWorkflow,
    dataset: Dataset,
    *,
    engine: Engine,
    target: float | None = None,
    nodes: list[str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    judge_tier: str = "sonnet",
) -> SweepReport:
    """Run the dataset with the ladders, then once per node and rung with that node pinned.

    `nodes` defaults to the agent nodes the dataset labels, or every agent node when it labels
    none. Runs: 1 + the sum of the swept nodes' ladder lengths, each over the whole dataset.
    """
    agents = agent_nodes(workflow)
    for node in nodes or []:
        if node not in agents:
            raise EvalError(f"cannot sweep '{node}': {suggest(node, agents, 'agent nodes')}")
    swept = nodes or [n for n in dataset.labelled_nodes if n in agents] or agents

    async def run(flow: CompiledWorkflow, variant: str) -> EvalReport:
        return await evaluate(
            flow,
            dataset,
            engine=engine,
            concurrency=concurrency,
            judge_tier=judge_tier,
            variant=variant,
        )

    ladder_report = await run(workflow, LADDER)
    options: list[SweepOption] = []
    for node in swept:
        escalation = workflow.nodes[node].escalation
        assert escalation is not None  # an agent node
        for tier in escalation.ladder:
            report = await run(pin(workflow, node, tier), f"{node}={tier}")
            options.append(_option(report, node, tier))
        if len(escalation.ladder) > 1:
            options.append(_option(ladder_report, node, LADDER))
    return SweepReport(target, tuple(options), ladder_report)


def _option(report: EvalReport, node: str, option: str) -> SweepOption:
    try:
        figures = report.node(node)
    except KeyError:  # the node never ran on this dataset
        return SweepOption(node, option, None, None, None, "node")
    labelled = figures.labelled > 0
    return SweepOption(
        node,
        option,
        figures.accuracy if labelled else report.accuracy,
        figures.cost_per_run,
        figures.escalation_rate,
        "node" if labelled else "workflow",
    )


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
