"""What compiling a workflow produces: immutable nodes, edges and the workflow itself.

The runtime executes a `CompiledWorkflow`, the renderers draw it, and its `run` family of
methods are shortcuts onto an `Engine` (imported only when used). The compiler that builds one
and runs every static check lives in `_graph`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import networkx as nx

from ._agent import CompiledAgent
from ._agent_spec import EscalationSpec
from ._errors import Problem
from ._expressions import Expression
from ._loading import Source
from ._schema import JsonSchema
from ._tools import Tool, Tools
from ._workflow_spec import EdgeSpec, NodeSpec, WorkflowSpec

if TYPE_CHECKING:
    from ._engine import Backend, Engine
    from ._results import RunEvent, RunResult

NodeKind = Literal["agent", "tool", "workflow"]
EdgeKind = Literal["plain", "conditional", "escalation", "map", "fan_in"]


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

    @property
    def target(self) -> str:
        """What the node runs, as a person would name it."""
        if self.agent is not None:
            return self.agent.reference
        if self.tool is not None:
            return self.tool.name
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

    # -- running: shortcuts onto an Engine (the runtime is imported only when used) --------

    async def run(
        self,
        run_input: Mapping[str, Any],
        *,
        engine: Engine | None = None,
        backend: Backend = "anthropic",
    ) -> RunResult:
        """Run once. Without an `engine`, one is made for `backend` and closed afterwards;
        to run many inputs, share an `Engine` or use `run_many`."""
        from ._engine import Engine

        if engine is not None:
            return await engine.run(self, run_input)
        async with Engine.for_backend(backend, self) as made:
            return await made.run(self, run_input)

    def run_sync(
        self,
        run_input: Mapping[str, Any],
        *,
        engine: Engine | None = None,
        backend: Backend = "anthropic",
    ) -> RunResult:
        """`run` for synchronous code."""
        import anyio

        return anyio.run(partial(self.run, run_input, engine=engine, backend=backend))

    async def run_many(
        self,
        inputs: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]],
        *,
        concurrency: int = 16,
        engine: Engine | None = None,
        backend: Backend = "anthropic",
    ) -> AsyncIterator[tuple[int, RunResult]]:
        """Run every input, `concurrency` at a time; yield ``(index, result)`` as each ends.
        To stop early, iterate inside `contextlib.aclosing(...)`."""
        from ._engine import Engine

        async with (
            contextlib.nullcontext(engine) if engine else Engine.for_backend(backend, self)
        ) as used:
            async for item in used.run_many(self, inputs, concurrency=concurrency):
                yield item

    async def stream(
        self,
        run_input: Mapping[str, Any],
        *,
        engine: Engine | None = None,
        backend: Backend = "anthropic",
        deltas: bool = False,
    ) -> AsyncIterator[RunEvent]:
        """The events of one run as they happen (node started/finished, escalation, tool
        call), ending with `RunFinished`; with `deltas`, agents' answers as they stream."""
        from ._engine import Engine

        async with (
            contextlib.nullcontext(engine) if engine else Engine.for_backend(backend, self)
        ) as used:
            async for event in used.stream(self, run_input, deltas=deltas):
                yield event

    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart (escalation ladders in the node labels)."""
        from ._render import to_mermaid

        return to_mermaid(self)

    def to_dot(self) -> str:
        """The graph in Graphviz DOT."""
        from ._render import to_dot

        return to_dot(self)
