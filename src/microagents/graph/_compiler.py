"""Compiling a workflow spec into a checked graph, before any token is spent.

`compile_workflow` resolves every node, compiles every expression once, builds a
`networkx.DiGraph`, and runs all static checks, collecting *every* problem it finds. The result,
`CompiledWorkflow`, is immutable and is what the runtime executes and the renderers draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

import networkx as nx

from ..errors import (
    ExpressionError,
    MicroagentsError,
    Problem,
    RegistryError,
    SchemaError,
    SpecError,
    SpecPartError,
    suggest,
)
from ..spec._agent_spec import EscalationSpec
from ..spec._expressions import (
    BINDING_NAMES,
    ENVIRONMENT,
    MAP_NAMES,
    Expression,
    compile_prompt,
    compile_value,
    expressions_in,
    parse_template_string,
)
from ..spec._loading import Source
from ..spec._schema import (
    JsonSchema,
    check_schema,
    enum_values,
    json_type_of,
    json_types,
    model_from_schema,
    subschema,
)
from ..spec._workflow_spec import EdgeSpec, NodeSpec, WorkflowSpec
from ..spec._yaml import FieldPath, format_path
from ._agent import CompiledAgent
from ._compiled import (
    CompiledEdge,
    CompiledHuman,
    CompiledNode,
    CompiledWorkflow,
    EdgeKind,
    NodeKind,
    case_text,
)
from ._tools import Tools

ERROR_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
}
"""What `nodes.X.error` holds once X has failed (and an `on_error` edge caught it)."""
UNPARSED = object()
"""Stands in for a binding that failed to compile (and was reported), so later checks skip it."""


class AgentResolver(Protocol):
    """What the compiler needs from a registry: an agent for a reference, compiled."""

    def resolve(self, reference: str) -> CompiledAgent: ...


SubworkflowLoader = Callable[[str, Source], CompiledWorkflow]
"""Loads the workflow a node names (relative to the parent's source), compiled."""


def _no_subworkflows(reference: str, parent: Source) -> CompiledWorkflow:
    raise MicroagentsError(f"cannot load sub-workflow '{reference}': compile through a Project")


def compile_workflow(
    spec: WorkflowSpec,
    source: Source,
    *,
    agents: AgentResolver,
    tools: Tools,
    load_subworkflow: SubworkflowLoader = _no_subworkflows,
) -> CompiledWorkflow:
    """Resolve, compile and check `spec`; raise `SpecError` listing every problem found."""
    return _Compiler(spec, source, agents, tools, load_subworkflow).run()


class _Compiler:
    def __init__(
        self,
        spec: WorkflowSpec,
        source: Source,
        agents: AgentResolver,
        tools: Tools,
        load_subworkflow: SubworkflowLoader,
    ) -> None:
        self.spec = spec
        self.source = source
        self.agents = agents
        self.tools = tools
        self.load_subworkflow = load_subworkflow
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.graph: nx.DiGraph = nx.DiGraph(name=spec.name)
        self.nodes: dict[str, CompiledNode] = {}
        self.tool_checked: set[str] = set()
        self.quiet = False

    # -- reporting -------------------------------------------------------------------------

    def problem(self, code: str, message: str, *path: str | int) -> None:
        if not self.quiet:
            self.problems.append(
                Problem(code, message, self.source.locate(*path), format_path(path))
            )

    def quiet_schema(self, reference: tuple[str, ...], before: set[str]) -> JsonSchema | None:
        """`reference_schema` without reporting: for type inference over references whose
        problems are reported once, where they are checked."""
        self.quiet = True
        try:
            return self.reference_schema(reference, before, (), None)
        finally:
            self.quiet = False

    def warn(self, code: str, message: str, *path: str | int) -> None:
        self.warnings.append(
            Problem(code, message, self.source.locate(*path), format_path(path), "warning")
        )

    def graph_is_whole(self) -> bool:
        """False when an edge or entry names an unknown node: the graph is missing edges, so
        checks that follow paths (reachability, what runs before what) would only report
        consequences of that one mistake. They run once it is fixed."""
        return not any(p.code == "MA311" for p in self.problems)

    # -- the passes ------------------------------------------------------------------------

    def run(self) -> CompiledWorkflow:
        try:
            check_schema(self.spec.input)
        except SchemaError as exc:
            path = ("input", *exc.path)
            self.problem("MA213", str(exc), *path)
        mapped = {e.to for e in self.spec.edges if e.map is not None and e.to is not None}
        for node_id, node in self.spec.nodes.items():
            compiled = self.compile_node(node_id, node, node_id in mapped)
            if compiled is not None:
                self.nodes[node_id] = compiled
            self.graph.add_node(node_id, kind=_node_kind(node))
        edges = [self.compile_edge(index, edge) for index, edge in enumerate(self.spec.edges)]
        entry = self.check_entry()
        self.check_cycles()
        self.check_reachable(entry)
        self.check_map_shape(mapped)
        output = self.compile_output()
        self.check_references(edges, output, mapped)
        exhaustive = self.check_switches()
        self.check_node_inputs(mapped)
        self.check_output_reach(output)
        if self.problems:
            raise SpecError(self.problems + self.warnings)
        return CompiledWorkflow(
            spec=self.spec,
            source=self.source,
            graph=self.graph,
            nodes=self.nodes,
            edges=tuple(
                replace(e, always_taken=_always_taken(e.spec, e.index in exhaustive))
                for e in edges
                if e is not None
            ),
            entry=tuple(entry),
            output=output,
            output_schema=self.output_schema(output),
            tools=self.tools,
            warnings=tuple(self.warnings),
        )

    def compile_node(self, node_id: str, node: NodeSpec, mapped: bool) -> CompiledNode | None:
        path = ("nodes", node_id)
        inputs = self.compile_binding(node.input, (*path, "input"))
        if node.agent is not None:
            agent = self.resolve_agent(node.agent, (*path, "agent"))
            if agent is None:
                return None
            escalation = self.effective_escalation(node_id, node, agent)
            return CompiledNode(
                node_id, "agent", node, inputs, agent=agent, escalation=escalation, mapped=mapped
            )
        if node.tool is not None:
            found = self.tools.get(node.tool)
            if found is None:
                self.problem("MA302", _unknown_tool(node.tool, self.tools), *path, "tool")
                return None
            return CompiledNode(node_id, "tool", node, inputs, tool=found, mapped=mapped)
        if node.human is not None:
            return self.compile_human(node_id, node, inputs, mapped)
        assert node.workflow is not None
        try:
            sub = self.load_subworkflow(node.workflow, self.source)
        except SpecError as exc:
            self.problems.extend(exc.problems)
            self.problem(
                "MA303",
                f"sub-workflow '{node.workflow}' has errors (listed above)",
                *path,
                "workflow",
            )
            return None
        except RegistryError as exc:
            self.problem(exc.code, str(exc), *path, "workflow")
            return None
        except MicroagentsError as exc:
            self.problem("MA303", str(exc), *path, "workflow")
            return None
        return CompiledNode(node_id, "workflow", node, inputs, workflow=sub, mapped=mapped)

    def compile_human(
        self, node_id: str, node: NodeSpec, inputs: Any, mapped: bool
    ) -> CompiledNode | None:
        assert node.human is not None
        path = ("nodes", node_id, "human")
        try:
            prompt = compile_prompt(node.human.prompt)
            model_from_schema(node.human.answer, f"{node_id} answer")
        except SpecPartError as exc:
            self.problem("MA327", str(exc), *path)
            return None
        human = CompiledHuman(prompt, node.human.answer)
        return CompiledNode(node_id, "human", node, inputs, mapped=mapped, human=human)

    def resolve_agent(self, reference: str, path: FieldPath) -> CompiledAgent | None:
        try:
            agent = self.agents.resolve(reference)
            if agent.reference not in self.tool_checked:  # report once per agent, not per node
                self.tool_checked.add(agent.reference)
                self.problems.extend(agent_tool_problems(agent, self.tools))
            return agent
        except SpecError as exc:
            self.problems.extend(exc.problems)
            self.problem("MA304", f"agent '{reference}' has errors (listed above)", *path)
        except RegistryError as exc:
            self.problem(exc.code, str(exc), *path)
        except MicroagentsError as exc:
            self.problem("MA301", str(exc), *path)
        return None

    def effective_escalation(
        self, node_id: str, node: NodeSpec, agent: CompiledAgent
    ) -> EscalationSpec:
        escalation = node.escalation or agent.escalation
        if node.model is not None and node.escalation is None:
            escalation = EscalationSpec(ladder=[node.model], on=[])
        elif node.model is not None and escalation.ladder[0] != node.model:
            self.problem(
                "MA305",
                f"model is '{node.model}' but the escalation ladder starts at "
                f"'{escalation.ladder[0]}'; start the ladder at the node's model",
                "nodes",
                node_id,
                "escalation",
                "ladder",
            )
        if "low_confidence" in escalation.on:
            field_name = escalation.confidence_field
            if field_name not in (agent.output_schema.get("properties") or {}):
                self.problem(
                    "MA306",
                    f"low_confidence needs a '{field_name}' field in agent "
                    f"'{agent.spec.name}' output; it has none",
                    "nodes",
                    node_id,
                    "escalation",
                )
        return escalation

    def compile_binding(self, value: Any, path: FieldPath) -> Any:
        """Compile each templated string on its own, so that a problem names its field."""
        if isinstance(value, dict):
            return {k: self.compile_binding(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.compile_binding(v, (*path, i)) for i, v in enumerate(value)]
        try:
            return compile_value(value)
        except ExpressionError as exc:
            self.problem("MA310", str(exc), *path)
            return UNPARSED

    def compile_edge(self, index: int, edge: EdgeSpec) -> CompiledEdge | None:
        path: FieldPath = ("edges", index)
        ok = self.check_endpoint(edge.source, (*path, "from"))
        if edge.switch is not None:
            for case, target in (edge.cases or {}).items():
                if self.check_endpoint(target, (*path, "cases", case)) and ok:
                    self.add_edge(edge.source, target, "conditional", case, index, edge.max_visits)
            if (
                edge.default is not None
                and self.check_endpoint(edge.default, (*path, "default"))
                and ok
            ):
                self.add_edge(
                    edge.source, edge.default, "conditional", "default", index, edge.max_visits
                )
            return CompiledEdge(index, edge) if ok else None
        assert edge.to is not None
        ok = self.check_endpoint(edge.to, (*path, "to")) and ok
        when = self.compile_expression(edge.when, (*path, "when"))
        mapping = self.compile_expression(edge.map, (*path, "map"))
        if (
            edge.map is not None
            and edge.into is not None
            and self.check_endpoint(edge.into, (*path, "into"))
            and ok
        ):
            self.add_edge(edge.to, edge.into, "fan_in", "all results", index, None)
        if ok:
            kind: EdgeKind = (
                "map"
                if edge.map is not None
                else "conditional"
                if edge.when or edge.on_error
                else "plain"
            )
            label = "on error" if edge.on_error else edge.when or ""
            if edge.map is not None:
                label = "for each item" + (
                    f" · {edge.concurrency} at a time" if edge.concurrency else ""
                )
            self.add_edge(edge.source, edge.to, kind, label, index, edge.max_visits)
        return CompiledEdge(index, edge, when, mapping) if ok else None

    def add_edge(
        self, source: str, target: str, kind: EdgeKind, label: str, index: int, bound: int | None
    ) -> None:
        """Add an edge, merging with an existing one between the same nodes: labels are
        joined, and an unbounded edge makes the pair unbounded (so a loop cannot hide behind
        a second, bounded edge)."""
        if not self.graph.has_edge(source, target):
            self.graph.add_edge(
                source, target, kind=kind, label=label, index=index, max_visits=bound
            )
            return
        data = self.graph.edges[source, target]
        data["label"] = " / ".join(part for part in (data["label"], label) if part)
        if data["kind"] == "plain" or kind == "plain":
            data["kind"] = "plain"
        if bound is None or data["max_visits"] is None:
            if data["max_visits"] is not None:
                data["index"] = index  # report the unbounded edge, not the bounded one
            data["max_visits"] = None
        else:
            data["max_visits"] = min(data["max_visits"], bound)

    def check_endpoint(self, node_id: str, path: FieldPath) -> bool:
        if node_id in self.spec.nodes:
            return True
        self.problem(
            "MA311",
            f"no node named '{node_id}'; {suggest(node_id, list(self.spec.nodes), 'nodes')}",
            *path,
        )
        return False

    def compile_expression(self, text: str | None, path: FieldPath) -> Expression | None:
        if text is None:
            return None
        stripped = text.strip()
        # `when:` may be written bare or in braces; both mean the same expression.
        wrapped = stripped if stripped.startswith("{{") else "{{ " + stripped + " }}"
        try:
            return parse_template_string(wrapped)
        except ExpressionError as exc:
            self.problem("MA310", str(exc), *path)
            return None

    def check_entry(self) -> list[str]:
        entry = self.spec.entry_nodes()
        for index, node_id in enumerate(entry):
            where = ("entry",) if isinstance(self.spec.entry, str) else ("entry", index)
            self.check_endpoint(node_id, where)
        return [node_id for node_id in entry if node_id in self.spec.nodes]

    def check_cycles(self) -> None:
        unbounded = nx.DiGraph(
            (u, v) for u, v, data in self.graph.edges(data=True) if data.get("max_visits") is None
        )
        for component in nx.strongly_connected_components(unbounded):
            if len(component) == 1 and not unbounded.has_edge(*(2 * tuple(component))):
                continue
            cycle = nx.find_cycle(unbounded.subgraph(component))
            closing = cycle[-1]
            index = self.graph.edges[closing]["index"]
            loop = " → ".join([u for u, _ in cycle] + [cycle[0][0]])
            self.problem(
                "MA312",
                f"cycle {loop} has no bound; add max_visits to an edge in it "
                f"(e.g. {closing[0]} → {closing[1]}) so that the loop ends",
                "edges",
                index,
            )
        for u, v, data in self.graph.edges(data=True):
            if data.get("max_visits") is not None and not nx.has_path(self.graph, v, u):
                if self.spec.edges[data["index"]].switch is not None:
                    # A switch's bound is written once for all its cases; it applies to the
                    # cases that loop back, and the others simply have none.
                    data["max_visits"] = None
                    continue
                self.warn(
                    "MA313",
                    f"max_visits on {u} → {v} bounds no cycle; remove it",
                    "edges",
                    data["index"],
                    "max_visits",
                )
            elif data.get("max_visits") is not None and _triggers(self.nodes.get(v), "rejected"):
                data["kind"] = "escalation"  # a rejection loop: the revisit climbs the ladder

    def check_reachable(self, entry: list[str]) -> None:
        if not entry or not self.graph_is_whole():
            return
        reached = set(entry)
        for node_id in entry:
            reached |= nx.descendants(self.graph, node_id)
        for node_id in self.spec.nodes:
            if node_id not in reached:
                self.problem(
                    "MA314",
                    f"node '{node_id}' is unreachable from the entry ({', '.join(entry)}); "
                    "add an edge to it, list it under `entry`, or remove it",
                    "nodes",
                    node_id,
                )

    def check_map_shape(self, mapped: set[str]) -> None:
        for index, edge in enumerate(self.spec.edges):
            if edge.source in mapped and edge.map is None:
                self.problem(
                    "MA315",
                    f"node '{edge.source}' runs once per item of a map; its results go to the "
                    "map's `into` node, so it cannot have edges of its own",
                    "edges",
                    index,
                    "from",
                )
            if edge.map is None and set(edge.targets()) & mapped:
                self.problem(
                    "MA315",
                    "this edge enters a node that a map edge fans out to; a mapped node is "
                    "entered only by its map edge",
                    "edges",
                    index,
                )

    def compile_output(self) -> Any:
        if self.spec.output is None:
            sinks = [n for n in self.spec.nodes if self.graph.out_degree(n) == 0]
            return {n: parse_template_string(f"{{{{ nodes.{n}.output }}}}") for n in sinks}
        return self.compile_binding(self.spec.output, ("output",))

    # -- references and schemas ------------------------------------------------------------

    def check_references(
        self, edges: list[CompiledEdge | None], output: Any, mapped: set[str]
    ) -> None:
        for node_id, node in self.nodes.items():
            before = self.may_run_before(node_id)
            names = BINDING_NAMES | MAP_NAMES if node.mapped else BINDING_NAMES
            for sub_path, expression in expressions_in(node.inputs):
                self.check_expression(
                    expression, before, names, ("nodes", node_id, "input", *sub_path), node_id
                )
        for edge in edges:
            if edge is None:
                continue
            before = self.may_run_before(edge.spec.source) | {edge.spec.source}
            for key, condition in (("when", edge.when), ("map", edge.map)):
                if condition is not None:
                    self.check_expression(
                        condition, before, BINDING_NAMES, ("edges", edge.index, key), None
                    )
        for sub_path, expression in expressions_in(output):
            self.check_expression(
                expression, set(self.spec.nodes), BINDING_NAMES, ("output", *sub_path), None
            )

    def may_run_before(self, node_id: str) -> set[str]:
        before = set(nx.ancestors(self.graph, node_id))
        # On a cycle (a self-loop is one too: `descendants` never lists the node itself), a
        # revisit sees its own earlier output.
        if any(
            s == node_id or node_id in nx.descendants(self.graph, s)
            for s in self.graph.successors(node_id)
        ):
            before.add(node_id)
        return before

    def check_expression(
        self,
        expression: Expression,
        before: set[str],
        names: frozenset[str],
        path: FieldPath,
        node_id: str | None,
    ) -> None:
        unknown = sorted(expression.names - names - set(ENVIRONMENT.globals))
        for name in unknown:
            self.problem(
                "MA316",
                f"unknown name '{name}' in '{expression.source}'; expressions can use "
                + ", ".join(sorted(names)),
                *path,
            )
        for reference in expression.references:
            if reference[0] in names:
                self.reference_schema(reference, before, path, node_id)

    def reference_schema(
        self, reference: tuple[str, ...], before: set[str], path: FieldPath, node_id: str | None
    ) -> JsonSchema | None:
        """The schema of what `reference` reads, reporting a problem if it cannot exist."""
        shown = ".".join(reference)
        root = reference[0]
        if root == "input":
            return self.lookup(self.spec.input, reference[1:], "the workflow input", shown, path)
        if root == "index":
            return {"type": "integer"}
        if root == "item":
            return self.lookup(
                self.map_item_schema(node_id), reference[1:], "the map item", shown, path
            )
        if len(reference) < 2:
            return None
        target = reference[1]
        if target not in self.spec.nodes:
            self.problem(
                "MA317",
                f"'{shown}' names no node; {suggest(target, list(self.spec.nodes), 'nodes')}",
                *path,
            )
            return None
        if len(reference) > 2 and reference[2] not in ("output", "error"):
            self.problem(
                "MA317",
                f"'{shown}': a node exposes `output` (and `error`, after it failed); "
                f"write nodes.{target}.output",
                *path,
            )
            return None
        if target not in before and self.graph_is_whole():
            self.problem(
                "MA318",
                f"'{shown}' reads node '{target}', which cannot have run before this point; "
                "only nodes upstream of here can be read",
                *path,
            )
            return None
        if len(reference) > 2 and reference[2] == "error":
            return self.lookup(ERROR_SCHEMA, reference[3:], f"the error of '{target}'", shown, path)
        node = self.nodes.get(target)
        if node is None:
            return None
        schema = self.node_output_schema(node)
        return self.lookup(schema, reference[3:], f"the output of '{target}'", shown, path)

    def lookup(
        self,
        schema: JsonSchema | None,
        rest: tuple[str, ...],
        what: str,
        shown: str,
        path: FieldPath,
    ) -> JsonSchema | None:
        if schema is None:
            return None
        try:
            return subschema(schema, rest) if rest else schema
        except KeyError as exc:
            missing = str(exc.args[0])
            known = list(_properties_along(schema, rest, missing))
            self.problem(
                "MA319",
                f"'{shown}': {what} has no field '{missing}'; {suggest(missing, known, 'fields')}",
                *path,
            )
            return None

    def node_output_schema(self, node: CompiledNode) -> JsonSchema | None:
        if node.agent is not None:
            schema: JsonSchema | None = node.agent.output_schema
        elif node.tool is not None:
            schema = node.tool.output_schema
        elif node.human is not None:
            schema = dict(node.human.schema)
        else:
            assert node.workflow is not None
            schema = node.workflow.output_schema
        if node.mapped:
            return {"type": "array", "items": schema} if schema is not None else {"type": "array"}
        return schema

    def map_item_schema(self, node_id: str | None) -> JsonSchema | None:
        for edge in self.spec.edges:
            if edge.map is not None and edge.to == node_id:
                found = self.compile_expression(edge.map, ())
                if found is None or found.direct is None:
                    return None
                before = self.may_run_before(edge.source) | {edge.source}
                schema = self.reference_schema(found.direct, before, (), None)
                items = schema.get("items") if schema else None
                return items if isinstance(items, dict) else None
        return None

    def input_schema_of(self, node: CompiledNode) -> JsonSchema | None:
        if node.agent is not None:
            return node.agent.input_schema
        if node.tool is not None:
            return node.tool.input_schema
        if node.human is not None:
            return None  # its inputs are whatever the question shows
        assert node.workflow is not None
        return node.workflow.spec.input

    def check_node_inputs(self, mapped: set[str]) -> None:
        for node_id, node in self.nodes.items():
            schema = self.input_schema_of(node)
            if not schema or "properties" not in schema:
                continue
            properties: dict[str, Any] = schema["properties"]
            path: FieldPath = ("nodes", node_id, "input")
            for missing in [r for r in schema.get("required", []) if r not in node.spec.input]:
                self.problem(
                    "MA320",
                    f"{node.kind} '{node.target}' requires input '{missing}'; bind it here",
                    *path,
                )
            before = self.may_run_before(node_id)
            for key, value in (node.inputs or {}).items():
                if key not in properties:
                    self.problem(
                        "MA321",
                        f"{node.kind} '{node.target}' has no input '{key}'; "
                        + suggest(key, list(properties), "inputs"),
                        *path,
                        key,
                    )
                    continue
                expected = json_types(properties[key])
                found = self.value_types(value, before, node.mapped)
                if expected and found and not (expected & found):
                    self.problem(
                        "MA322",
                        f"input '{key}' of {node.kind} '{node.target}' expects "
                        f"{_types_text(expected)} but is bound to {_types_text(found)}; "
                        f"bind a value of type {_types_text(expected)} here",
                        *path,
                        key,
                    )

    def value_types(self, value: Any, before: set[str], mapped: bool) -> frozenset[str] | None:
        if value is UNPARSED:
            return None  # already reported; its type is unknowable
        if isinstance(value, Expression):
            if value.renders_text:
                return frozenset({"string"})
            if value.direct is None:
                return None
            names = BINDING_NAMES | MAP_NAMES if mapped else BINDING_NAMES
            if value.direct[0] not in names:
                return None
            schema = self.quiet_schema(value.direct, before)
            return json_types(schema)
        return frozenset({json_type_of(value)})

    def check_switches(self) -> set[int]:
        """Check switch cases against the field's enum; return the exhaustive switches."""
        exhaustive: set[int] = set()
        for index, edge in enumerate(self.spec.edges):
            if edge.switch is None or edge.source not in self.nodes:
                continue
            node = self.nodes[edge.source]
            schema = self.node_output_schema(node)
            field_path = tuple(edge.switch.split("."))
            field_schema = self.lookup(
                schema,
                field_path,
                f"the output of '{edge.source}'",
                edge.switch,
                ("edges", index, "switch"),
            )
            values = enum_values(field_schema)
            if values is None:
                if field_schema is not None:
                    self.warn(
                        "MA323",
                        f"'{edge.switch}' has no enum in the output schema of '{edge.source}', "
                        "so the cases cannot be checked; give the field an enum",
                        "edges",
                        index,
                        "switch",
                    )
                continue
            allowed = [case_text(v) for v in values]
            for case in edge.cases or {}:
                if case not in allowed:
                    self.problem(
                        "MA324",
                        f"case '{case}' is not a value '{edge.switch}' can take; allowed: "
                        + ", ".join(allowed),
                        "edges",
                        index,
                        "cases",
                        case,
                    )
            uncovered = [v for v in allowed if v not in (edge.cases or {})]
            if not uncovered:
                exhaustive.add(index)
            elif edge.default is None:
                self.warn(
                    "MA325",
                    f"no case and no default for {', '.join(uncovered)}; the run stops at "
                    f"'{edge.source}' for those values",
                    "edges",
                    index,
                    "cases",
                )
        return exhaustive

    def check_output_reach(self, output: Any) -> None:
        if self.spec.output is None or not self.graph_is_whole():
            return
        used = {
            reference[1]
            for _, expression in expressions_in(output)
            for reference in expression.references
            if reference[0] == "nodes" and len(reference) > 1
        }
        useful = used | {n for n, node in self.nodes.items() if node.kind == "tool"}
        for node_id, node in self.nodes.items():
            if node_id in useful or node.kind == "tool":
                continue
            if not (nx.descendants(self.graph, node_id) & useful):
                self.problem(
                    "MA326",
                    f"node '{node_id}' cannot reach the output: nothing downstream of it is "
                    "used by `output`; reference it in `output`, connect it, or remove it",
                    "nodes",
                    node_id,
                )

    def output_schema(self, output: Any) -> JsonSchema | None:
        every = set(self.spec.nodes)
        if isinstance(output, Expression):
            if output.direct is None:
                return None
            return self.quiet_schema(output.direct, every)
        if isinstance(output, dict):
            properties = {}
            for key, value in output.items():
                schema = None
                if isinstance(value, Expression) and value.direct is not None:
                    schema = self.quiet_schema(value.direct, every)
                properties[key] = schema or {}
            return {"type": "object", "properties": properties}
        return None


def _unknown_tool(name: str, tools: Tools) -> str:
    return (
        f"unknown tool '{name}' ({tools.suggest(name)}); tools are Python functions "
        "made with @tool and passed in with --tools MODULE or Project(tools=...), or "
        "SERVER.TOOL for a server in `mcp_servers`"
    )


def agent_tool_problems(agent: CompiledAgent, tools: Tools) -> list[Problem]:
    """An agent's `tools` allow-list must name tools the project has."""
    return [
        Problem(
            "MA302",
            _unknown_tool(name, tools),
            agent.source.locate("tools", index),
            f"tools[{index}]",
        )
        for index, name in enumerate(agent.spec.tools)
        if name not in tools
    ]


def _always_taken(edge: EdgeSpec, exhaustive_switch: bool) -> bool:
    if edge.on_error:
        return False
    if edge.switch is not None:
        return edge.default is not None or exhaustive_switch
    return edge.when is None


def _node_kind(node: NodeSpec) -> NodeKind:
    if node.human is not None:
        return "human"
    return "agent" if node.agent else "tool" if node.tool else "workflow"


def _triggers(node: CompiledNode | None, trigger: str) -> bool:
    return node is not None and node.escalation is not None and trigger in node.escalation.on


def _types_text(types: frozenset[str]) -> str:
    shown = sorted(types - {"integer"} if "number" in types else types)
    return " or ".join(shown)


def _properties_along(schema: JsonSchema, rest: tuple[str, ...], missing: str) -> list[str]:
    prefix = rest[: rest.index(missing)] if missing in rest else ()
    try:
        parent = subschema(schema, prefix) if prefix else schema
    except KeyError:
        return []
    return list((parent or {}).get("properties") or {})
