"""Drawing a compiled workflow: Mermaid for docs and pull requests, DOT for Graphviz."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._compiled import CompiledNode, CompiledWorkflow

START, END = "__start__", "__end__"  # node ids may not start with "__", so these are free

# Words Mermaid's flowchart parser reads as keywords; a node with such an id gets a suffix.
MERMAID_KEYWORDS = frozenset(
    {"end", "graph", "subgraph", "flowchart", "style", "class", "classdef", "click", "linkstyle"}
)


def _mermaid_ids(node_ids: list[str]) -> dict[str, str]:
    """Node id → Mermaid id: keywords get underscores until the id is unused."""
    taken = set(node_ids)
    found: dict[str, str] = {}
    for node_id in node_ids:
        mermaid_id = node_id
        while mermaid_id.lower() in MERMAID_KEYWORDS or (
            mermaid_id != node_id and mermaid_id in taken
        ):
            mermaid_id += "_"
        taken.add(mermaid_id)
        found[node_id] = mermaid_id
    return found


def _ladder(node: CompiledNode) -> str:
    if node.escalation is None:
        return ""
    return " → ".join(node.escalation.ladder)


def _node_lines(node: CompiledNode) -> list[str]:
    lines = [node.id]
    if node.kind == "agent":
        lines.append(f"{node.target} · {_ladder(node)}")
        if node.escalation is not None and len(node.escalation.ladder) > 1:
            lines.append("escalates on " + ", ".join(node.escalation.on))
    elif node.kind == "tool":
        lines.append(f"tool {node.target}")
    elif node.kind == "human":
        lines.append("asks a person, waits")
    else:
        lines.append(f"workflow {node.target}")
    if node.mapped:
        lines.append("once per item")
    return lines


def _edge_label(data: dict[str, object]) -> str:
    label = str(data.get("label") or "")
    if data.get("kind") == "escalation":
        label = f"{label} ⇒ escalate" if label else "escalate"
    if data.get("max_visits") is not None:
        label = f"{label} · max {data['max_visits']}" if label else f"max {data['max_visits']}"
    return label


def _may_end_run(workflow: CompiledWorkflow, node_id: str) -> bool:
    """A run may finish after this node unless some edge out of it is always taken."""
    if workflow.nodes[node_id].mapped:
        return False  # its results always flow on to the map's `into` node
    return not any(e.always_taken for e in workflow.edges if e.spec.source == node_id)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(workflow: CompiledWorkflow) -> str:
    """A Mermaid flowchart: agents as boxes, tools as subroutines, sub-workflows as hexagons,
    human nodes as parallelograms; conditional edges labelled, escalation loops dotted,
    map/fan-in edges thick."""
    spec = workflow.spec
    _mid = _mermaid_ids(list(workflow.graph.nodes)).__getitem__
    out = [
        "---",
        f"title: {spec.name} {spec.version}",
        "---",
        "flowchart TD",
        f'    {START}(["input"])',
    ]
    for node_id in workflow.graph.nodes:
        node = workflow.nodes[node_id]
        label = "<br/>".join(_mermaid_text(line) for line in _node_lines(node))
        if node.kind == "agent":
            out.append(f'    {_mid(node_id)}["{label}"]')
        elif node.kind == "tool":
            out.append(f'    {_mid(node_id)}[["{label}"]]')
        elif node.kind == "human":  # a parallelogram: manual input, in flowchart convention
            out.append(f'    {_mid(node_id)}[/"{label}"/]')
        else:
            out.append(f'    {_mid(node_id)}{{{{"{label}"}}}}')
    out.append(f'    {END}(["output"])')
    for node_id in workflow.entry:
        out.append(f"    {START} --> {_mid(node_id)}")
    for source, target, data in workflow.graph.edges(data=True):
        label = _mermaid_text(_edge_label(data))
        arrow = {"escalation": "-.->", "map": "==>", "fan_in": "==>"}.get(str(data["kind"]), "-->")
        out.append(
            f'    {_mid(source)} {arrow}|"{label}"| {_mid(target)}'
            if label
            else f"    {_mid(source)} {arrow} {_mid(target)}"
        )
    for node_id in workflow.graph.nodes:
        if _may_end_run(workflow, node_id):
            out.append(f"    {_mid(node_id)} --> {END}")
    tools = [n for n, node in workflow.nodes.items() if node.kind == "tool"]
    if tools:
        out.append("    classDef tool fill:#f4f4f4,stroke:#888")
        out.append(f"    class {','.join(_mid(t) for t in tools)} tool")
    return "\n".join(out) + "\n"


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(workflow: CompiledWorkflow) -> str:
    """Graphviz DOT with the same conventions as the Mermaid rendering."""
    spec = workflow.spec
    out = [
        f'digraph "{_dot_text(spec.name)}" {{',
        f'    label="{_dot_text(spec.name)} {spec.version}"; labelloc=t;',
        "    node [fontname=Helvetica, fontsize=11]; edge [fontname=Helvetica, fontsize=10];",
        f'    {START} [label="input", shape=oval];',
        f'    {END} [label="output", shape=oval];',
    ]
    shapes = {"agent": "box", "tool": "component", "workflow": "hexagon", "human": "parallelogram"}
    for node_id in workflow.graph.nodes:
        node = workflow.nodes[node_id]
        label = "\\n".join(_dot_text(line) for line in _node_lines(node))
        out.append(f'    "{node_id}" [label="{label}", shape={shapes[node.kind]}];')
    for node_id in workflow.entry:
        out.append(f'    {START} -> "{node_id}";')
    styles = {"escalation": "dashed", "map": "bold", "fan_in": "bold", "conditional": "solid"}
    for source, target, data in workflow.graph.edges(data=True):
        attributes = [f"style={styles.get(str(data['kind']), 'solid')}"]
        label = _edge_label(data)
        if label:
            attributes.append(f'label="{_dot_text(label)}"')
        out.append(f'    "{source}" -> "{target}" [{", ".join(attributes)}];')
    for node_id in workflow.graph.nodes:
        if _may_end_run(workflow, node_id):
            out.append(f'    "{node_id}" -> {END};')
    out.append("}")
    return "\n".join(out) + "\n"
