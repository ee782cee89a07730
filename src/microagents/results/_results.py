"""What a run produces: per-attempt, per-node and per-run results, and the events a stream sees.

Frozen, slotted dataclasses: cheap to create on the hot path, safe to share, and easy to
serialise (`RunResult.to_json`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from ..models._protocol import Usage

RunStatus = Literal["ok", "failed", "waiting"]
NodeStatus = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of an agent on one tier: what it cost, and why it ended if it escalated."""

    tier: str
    model: str
    usage: Usage
    cost_usd: float
    latency: float
    calls: int
    """Model calls in this attempt (tool rounds and the repair call count)."""
    trigger: str | None = None
    """The escalation trigger that ended this attempt, or None if it gave the answer."""
    cached: bool = False
    simulated: bool = False
    unpriced_calls: int = 0
    """Calls of a model with no known price: `cost_usd` leaves them out, so it is a floor."""


@dataclass(frozen=True, slots=True)
class Escalation:
    """A step that climbed its ladder: from which tier to which, and why."""

    node: str
    visit: int
    trigger: str
    from_tier: str
    to_tier: str


@dataclass(frozen=True, slots=True)
class NodeRun:
    """One visit of one node (a mapped node has one per item)."""

    node: str
    visit: int
    status: NodeStatus
    output: Any = None
    error: str | None = None
    attempts: tuple[Attempt, ...] = ()
    latency: float = 0.0
    item_index: int | None = None

    @property
    def usage(self) -> Usage:
        total = Usage()
        for attempt in self.attempts:
            total = total + attempt.usage
        return total

    @property
    def cost_usd(self) -> float:
        return sum(a.cost_usd for a in self.attempts)

    @property
    def unpriced_calls(self) -> int:
        return sum(a.unpriced_calls for a in self.attempts)


@dataclass(frozen=True, slots=True)
class WaitingFor:
    """What a `waiting` run waits for: the node, its question (rendered from the run's
    context) and the JSON Schema an answer must match."""

    node: str
    question: str
    schema: Mapping[str, Any]
    step: str
    """The journal step the answer will be recorded under."""
    kind: Literal["answer", "batch_result"] = "answer"
    """What the run waits for: a person's answer, or (Message Batches mode) the result of
    its request in a Message Batch, which the next round collects."""

    def to_json(self) -> dict[str, Any]:
        found = {"node": self.node, "question": self.question, "schema": dict(self.schema)}
        return found if self.kind == "answer" else {**found, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class RunResult:
    """The outcome of one workflow run."""

    run_id: str
    workflow: str
    status: RunStatus
    output: Any
    error: str | None
    failed_node: str | None
    nodes: tuple[NodeRun, ...]
    escalations: tuple[Escalation, ...]
    usage: Usage
    cost_usd: float
    latency: float
    simulated: bool = False
    trace_id: str | None = None
    input: Mapping[str, Any] = field(default_factory=dict)
    waiting_for: WaitingFor | None = None
    """Set when `status` is ``waiting``: the question the run needs answered to go on."""
    replayed: int = 0
    """Steps (model calls, tool calls, answers) returned from the run's journal, not made."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def unpriced_calls(self) -> int:
        """Model calls whose cost is unknown (no price for their model): not in `cost_usd`."""
        return sum(run.unpriced_calls for run in self.nodes)

    def node(self, node_id: str) -> NodeRun:
        """The last visit of `node_id` (KeyError if it never ran)."""
        for run in reversed(self.nodes):
            if run.node == node_id:
                return run
        raise KeyError(node_id)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary: status, output, error, escalations, usage, cost, latency."""
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "output": jsonable(self.output),
            "error": self.error,
            "failed_node": self.failed_node,
            "escalations": [
                {"node": e.node, "trigger": e.trigger, "from": e.from_tier, "to": e.to_tier}
                for e in self.escalations
            ],
            "usage": {
                "input_tokens": self.usage.input_tokens,
                "output_tokens": self.usage.output_tokens,
                "cache_creation_input_tokens": self.usage.cache_creation_input_tokens,
                "cache_read_input_tokens": self.usage.cache_read_input_tokens,
            },
            "cost_usd": round(self.cost_usd, 8),
            **({"unpriced_calls": self.unpriced_calls} if self.unpriced_calls else {}),
            "latency_s": round(self.latency, 4),
            "simulated": self.simulated,
            "trace_id": self.trace_id,
            **({"waiting_for": self.waiting_for.to_json()} if self.waiting_for else {}),
            **({"replayed": self.replayed} if self.replayed else {}),
        }


def jsonable(value: Any) -> Any:
    """Outputs as plain JSON data: pydantic models dumped, tuples as lists."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


# -- events, for `stream` ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeStarted:
    node: str
    visit: int
    item_index: int | None = None


@dataclass(frozen=True, slots=True)
class NodeFinished:
    run: NodeRun


@dataclass(frozen=True, slots=True)
class Escalated:
    escalation: Escalation


@dataclass(frozen=True, slots=True)
class ToolCalled:
    node: str
    tool: str
    is_error: bool


@dataclass(frozen=True, slots=True)
class OutputDelta:
    """A piece of an agent's answer as the model streams it (text, or the JSON of a
    structured answer); only from `stream(..., deltas=True)` on a back-end that streams."""

    node: str
    text: str


@dataclass(frozen=True, slots=True)
class RunFinished:
    result: RunResult


RunEvent = NodeStarted | NodeFinished | Escalated | ToolCalled | OutputDelta | RunFinished
EventSink = Callable[[RunEvent], None]
"""Where a run's events go as they happen (called on the event loop; must return quickly)."""
