"""The execution plan of a compiled workflow: what the scheduler needs, derived once.

Edges are split into forward edges (the workflow minus the edges that close cycles, which the
compiler proved is a DAG) and loop edges (bounded by `max_visits`). A node runs when every
forward edge into it is resolved — taken or skipped — and at least one was taken; a node none
of whose edges were taken is skipped, and so are the edges out of it (dead-path elimination).
A loop edge, when taken, re-arms the nodes of its loop body and runs its target again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx

from ..graph._compiled import CompiledEdge, CompiledNode, CompiledWorkflow
from ._runner import PreparedAgent, prepare

DEFAULT_MAP_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class PlanNode:
    node: CompiledNode
    prepared: PreparedAgent | None
    forward_sources: frozenset[str]
    """Nodes with a forward edge into this one: each must resolve before it can run."""
    forward_targets: tuple[str, ...]
    routes: tuple[CompiledEdge, ...]
    """Edges out of this node, in spec order (on_error edges excluded)."""
    error_routes: tuple[CompiledEdge, ...]
    loop_targets: frozenset[str]
    """Targets reached from here over a loop edge."""


@dataclass(frozen=True, slots=True)
class Plan:
    workflow: CompiledWorkflow
    nodes: Mapping[str, PlanNode]
    loop_bodies: Mapping[tuple[str, str], frozenset[str]]
    """(source, target) of a loop edge → the nodes its revisit re-runs."""
    max_visits: Mapping[tuple[str, str], int]
    """Source node → its map edge (a node fans out over at most one list per edge)."""


def build_plan(workflow: CompiledWorkflow) -> Plan:
    """Derive the plan once per compiled workflow (the engine caches it)."""
    graph = workflow.graph
    loop_pairs = {
        (u, v)
        for u, v, data in graph.edges(data=True)
        if data.get("max_visits") is not None and nx.has_path(graph, v, u)
    }
    forward = nx.DiGraph(graph)
    forward.remove_edges_from(loop_pairs)
    bodies = {
        (u, v): frozenset({v, u} | (nx.descendants(forward, v) & nx.ancestors(forward, u)))
        for u, v in loop_pairs
    }
    max_visits = {(u, v): int(graph.edges[u, v]["max_visits"]) for u, v in loop_pairs}
    routes: dict[str, list[CompiledEdge]] = {n: [] for n in workflow.nodes}
    error_routes: dict[str, list[CompiledEdge]] = {n: [] for n in workflow.nodes}
    for edge in workflow.edges:
        (error_routes if edge.spec.on_error else routes)[edge.spec.source].append(edge)
    prepared: dict[str, PreparedAgent] = {}
    nodes: dict[str, PlanNode] = {}
    for node_id, node in workflow.nodes.items():
        agent_prep = None
        if node.agent is not None:
            agent_prep = prepared.get(node.agent.reference)
            if agent_prep is None:
                agent_prep = prepared[node.agent.reference] = prepare(node.agent, workflow.tools)
        nodes[node_id] = PlanNode(
            node=node,
            prepared=agent_prep,
            forward_sources=frozenset(forward.predecessors(node_id)),
            forward_targets=tuple(forward.successors(node_id)),
            routes=tuple(routes[node_id]),
            error_routes=tuple(error_routes[node_id]),
            loop_targets=frozenset(v for u, v in loop_pairs if u == node_id),
        )
    return Plan(workflow, nodes, bodies, max_visits)
