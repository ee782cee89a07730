"""The workflow spec: nodes, the edges between them, the entry and the output."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator, model_validator

from ._agent_spec import EscalationSpec, Strict, check_version
from ._mcp_spec import McpServerName, McpServerSpec
from ._schema import JsonSchema

NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
NodeId = Annotated[str, StringConstraints(pattern=NODE_ID_PATTERN)]


_KINDS = ("agent", "tool", "workflow", "human")


class HumanSpec(Strict):
    """A question for a person: the run waits (status ``waiting``) until it is answered.

    ```yaml
    review:
      human:
        prompt: "Refund {{ nodes.extract.output.amount }} for {{ input.customer }}?"
        answer:
          type: object
          properties: {approved: {type: boolean}, note: {type: string}}
          required: [approved]
    ```
    """

    prompt: str = Field(
        description="Jinja2 template of the question, rendered from the run's context "
        "(`input`, `nodes`) and the node's `input` fields."
    )
    answer: dict[str, Any] = Field(
        description="JSON Schema of the answer; it is the node's output once answered."
    )


class NodeSpec(Strict):
    """One step: an agent, a Python tool, or another workflow (a file, or one published in
    the registry: ``workflow: team/refund_flow@^2``).

    ```yaml
    extract:
      agent: extractor@^1
      input: {text: "{{ input.ticket }}"}
      timeout: 30
    ```
    """

    agent: str | None = Field(default=None, description="Agent reference: `name` or `name@range`.")
    tool: str | None = Field(default=None, description="Name of a registered Python tool.")
    workflow: str | None = Field(
        default=None,
        description="Sub-workflow: a path relative to this file, a workflow name, or a "
        "published workflow's `name@range` from the registry.",
    )
    human: HumanSpec | None = Field(
        default=None, description="A question for a person: the run waits for the answer."
    )
    description: str | None = None
    input: dict[str, Any] = Field(
        default_factory=dict,
        description="Input fields, each a literal or a sandboxed `{{ expression }}`.",
    )
    model: str | None = Field(default=None, description="Override the agent's tier or model.")
    escalation: EscalationSpec | None = Field(
        default=None, description="Override the agent's escalation ladder and triggers."
    )
    timeout: float | None = Field(default=None, gt=0, description="Seconds per attempt.")
    retries: int | None = Field(default=None, ge=0, le=10, description="Retries of a failed call.")

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> NodeSpec:
        kinds = [k for k in _KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = " and ".join(kinds) if kinds else "none of them"
            raise ValueError(
                "a node runs exactly one of agent, tool, workflow or human "
                f"(found {found}); keep one"
            )
        if self.agent is None and (self.model or self.escalation):
            raise ValueError("model and escalation apply to agent nodes only")
        return self


class EdgeSpec(Strict):
    """A connection between nodes. One of four shapes:

    ```yaml
    - {from: a, to: b}                                   # plain
    - {from: a, to: b, when: "nodes.a.output.ok"}        # conditional
    - {from: a, switch: category, cases: {x: b}, default: c}   # switch on an output field
    - {from: a, map: "{{ nodes.a.output.items }}", to: b, into: c}  # fan-out over a list, fan-in
    ```

    Every cycle needs `max_visits` on one of its edges: the most times that edge's target may
    run. A taken loop edge holds back its source's other edges until the source's last visit.
    """

    source: str = Field(alias="from", description="The node this edge leaves.")
    to: str | None = Field(default=None, description="The node this edge enters.")
    when: str | None = Field(default=None, description="Sandboxed condition; taken when true.")
    switch: str | None = Field(default=None, description="Output field of `from` to switch on.")
    cases: dict[str, str] | None = Field(default=None, description="Field value → node.")
    default: str | None = Field(default=None, description="Node when no case matches.")
    map: str | None = Field(default=None, description="Expression giving the list to fan out over.")
    into: str | None = Field(
        default=None, description="Fan-in node that receives the mapped results, in order."
    )
    concurrency: int | None = Field(default=None, ge=1, description="Map items run at once.")
    max_visits: int | None = Field(
        default=None, ge=1, le=100, description="Bound on the target's runs; required on cycles."
    )
    on_error: bool = Field(
        default=False,
        description="Taken only when `from` fails (after its retries): route failures here "
        "instead of failing the run. The target can read nodes.FROM.error.",
    )

    @model_validator(mode="after")
    def _one_shape(self) -> EdgeSpec:
        if self.switch is not None:
            if self.on_error:
                raise ValueError("on_error belongs to a plain edge, not a switch")
            if self.cases is None:
                raise ValueError("a switch edge needs `cases` (field value → node)")
            extra = [
                k
                for k in ("to", "when", "map", "into", "concurrency")
                if getattr(self, k) is not None
            ]
            if extra:
                raise ValueError(f"a switch edge takes cases/default, not {', '.join(extra)}")
            return self
        if self.cases is not None or self.default is not None:
            raise ValueError("cases and default belong to a switch edge; add `switch: FIELD`")
        if self.to is None:
            raise ValueError("an edge needs `to` (or `switch` with `cases`)")
        if self.on_error and (self.map is not None or self.when is not None):
            raise ValueError("an on_error edge is a plain edge: give it only `to`")
        if self.map is not None:
            if self.into is None:
                raise ValueError(
                    "a map edge needs `into`: add into: NODE, the node that receives the results"
                )
            if self.when is not None:
                raise ValueError("a map edge cannot have `when`; filter the list in `map` instead")
        elif self.into is not None or self.concurrency is not None:
            raise ValueError("into and concurrency belong to a map edge; add `map: EXPRESSION`")
        return self

    def targets(self) -> list[str]:
        """Every node this edge may lead to."""
        if self.switch is not None:
            found = list((self.cases or {}).values())
            if self.default is not None:
                found.append(self.default)
            return found
        return [self.to] if self.to is not None else []


class WorkflowSpec(Strict):
    """A workflow: a graph of nodes that turns an input into an output."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*(/[a-z][a-z0-9_]*)?$")
    version: str = Field(description="Semantic version, MAJOR.MINOR.PATCH.")
    description: str = Field(min_length=1)
    input: JsonSchema = Field(description="JSON Schema (type: object) of one run's input.")
    entry: str | list[str] | None = Field(
        default=None, description="The node (or nodes) that start a run; default: the first node."
    )
    nodes: dict[NodeId, NodeSpec] = Field(min_length=1, description="Node id → node.")
    edges: list[EdgeSpec] = Field(default_factory=list)
    output: Any = Field(
        default=None,
        description="What a run returns: a `{{ expression }}` or a mapping of them.",
    )
    mcp_servers: dict[McpServerName, McpServerSpec] = Field(
        default_factory=dict,
        description="MCP servers whose tools (named SERVER.TOOL) this workflow's agents may "
        "call, beside the project's.",
    )

    def entry_nodes(self) -> list[str]:
        """The nodes a run starts at."""
        if self.entry is None:
            return [next(iter(self.nodes))]
        return [self.entry] if isinstance(self.entry, str) else list(self.entry)

    @field_validator("nodes", mode="after")
    @classmethod
    def _no_reserved_ids(cls, value: dict[str, NodeSpec]) -> dict[str, NodeSpec]:
        reserved = [node_id for node_id in value if node_id.startswith("__")]
        if reserved:
            raise ValueError(
                f"node id '{reserved[0]}' starts with '__', which is reserved; rename it"
            )
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_semver(cls, value: Any) -> Any:
        return check_version(value)
