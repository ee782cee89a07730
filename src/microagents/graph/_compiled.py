"""What compiling a workflow produces: immutable nodes, edges and the workflow itself.

The runtime executes a `CompiledWorkflow`, the renderers draw it, and its `run` family of
methods are shortcuts onto an `Engine` (imported only when used). The compiler that builds one
and runs every static check lives in `_graph`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx

from ..errors import Problem
from ..spec._agent_spec import EscalationSpec
from ..spec._expressions import Expression, Prompt
from ..spec._loading import Source
from ..spec._schema import JsonSchema
from ..spec._workflow_spec import EdgeSpec, NodeSpec, WorkflowSpec
from ._agent import CompiledAgent
from ._tools import Tool, Tools

NodeKind = Literal["agent", "tool", "workflow", "human"]
EdgeKind = Literal["plain", "conditional", "escalation", "map", "fan_in"]


@dataclass(frozen=True, slots=True)
class CompiledHuman:
    """A human node's question, compiled: render it from the run's context."""

    prompt: Prompt
    schema: Mapping[str, Any]
    """The answer's JSON Schema."""

    def render(self, context: Mapping[str, Any]) -> str:
        """The question, from the run's context (`input`, `nodes`) and the node's inputs."""
        # Not `Prompt.render`, which makes its values the `input`: here `input` is the run's.
        text: str = self.prompt.template.render(dict(context))
        return text


@dataclass(frozen=True, slots=True)
class CompiledNode:
    """One node, resolved and with its input binding compiled."""

    id: str
    kind: NodeKind
    spec: NodeSpec
    inputs: Any
    agent: CompiledAgent | None = None
    tool: Tool | None = None
    workflow: CompiledWorkflow | None = None
    escalation: EscalationSpec | None = None
    mapped: bool = False
    human: CompiledHuman | None = None

    @property
    def target(self) -> str:
        """What the node runs, as a person would name it."""
        if self.agent is not None:
            return self.agent.reference
        if self.tool is not None:
            return self.tool.name
        if self.human is not None:
            return "a person"
        assert self.workflow is not None
        return f"{self.workflow.spec.name}@{self.workflow.spec.version}"


@dataclass(frozen=True, slots=True)
class CompiledEdge:
    """One edge of the spec, with its condition or map expression compiled."""

    index: int
    spec: EdgeSpec
    when: Expression | None = None
    map: Expression | None = None
    always_taken: bool = False
    """True when some target is always entered: no condition, a switch with a default, or a
    switch whose cases cover every value of its field's enum."""

    def switch_target(self, output: Any) -> str | None:
        """The node a switch edge goes to for a source node's `output` (None: nowhere)."""
        spec = self.spec
        assert spec.switch is not None, "switch_target is for switch edges"
        value = switch_value(output, spec.switch)
        return (spec.cases or {}).get(case_text(value), spec.default)


def switch_value(output: Any, field_path: str) -> Any:
    """The value of a dotted output field, from a model or a mapping."""
    value = output
    for part in field_path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
    return value


def case_text(value: Any) -> str:
    """How a switch value is written as a `cases` key (YAML keys are text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class CompiledWorkflow:
    """A validated workflow: the graph, its nodes and edges, ready to run or draw."""

    spec: WorkflowSpec
    source: Source
    graph: nx.DiGraph
    nodes: dict[str, CompiledNode]
    edges: tuple[CompiledEdge, ...]
    entry: tuple[str, ...]
    output: Any
    output_schema: JsonSchema | None
    tools: Tools = field(default_factory=Tools)
    """The project's tools: what agents' allow-lists name and tool nodes call."""
    warnings: tuple[Problem, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def agents(self) -> list[CompiledAgent]:
        """Every agent this workflow (and its sub-workflows) runs, once each."""
        found: dict[str, CompiledAgent] = {}
        for node in self.nodes.values():
            if node.agent is not None:
                found.setdefault(node.agent.reference, node.agent)
            elif node.workflow is not None:
                for agent in node.workflow.agents:
                    found.setdefault(agent.reference, agent)
        return list(found.values())

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart (escalation ladders in the node labels)."""
        from ._render import to_mermaid

        return to_mermaid(self)

    def to_dot(self) -> str:
        """The graph in Graphviz DOT."""
        from ._render import to_dot

        return to_dot(self)
