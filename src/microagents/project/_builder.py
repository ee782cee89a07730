"""Building a workflow in Python: the same spec as YAML, the same validation, and back to YAML."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import SpecError
from ..graph._compiled import CompiledWorkflow
from ..graph._tools import Tool
from ..spec._agent_spec import AgentSpec, EscalationSpec
from ..spec._loading import Source, problems_from_validation
from ..spec._workflow_spec import WorkflowSpec
from ..spec._yaml import load_yaml
from ._project import Project


class Workflow:
    """A workflow built in Python; `spec()` validates it exactly as a YAML file would be.

    ```python
    flow = (
        Workflow("triage", input={"type": "object", "properties": {"ticket": {"type": "string"}}})
        .node("route", agent="router", input={"text": "{{ input.ticket }}"})
        .node("extract", agent="extractor",
              input={"text": "{{ input.ticket }}", "fields": ["order_id"]})
        .edge("route", "extract", when="nodes.route.output.category == 'billing'")
    )
    print(flow.to_yaml())
    ```
    """

    def __init__(
        self,
        name: str,
        *,
        version: str = "0.1.0",
        description: str = "A workflow built in Python.",
        input: dict[str, Any] | type[BaseModel] | None = None,
        entry: list[str] | None = None,
        output: Any = None,
    ) -> None:
        schema = input.model_json_schema() if isinstance(input, type) else input
        self._data: dict[str, Any] = {
            "name": name,
            "version": version,
            "description": description,
            "input": schema or {"type": "object", "properties": {}},
            "nodes": {},
            "edges": [],
        }
        if entry is not None:
            self._data["entry"] = entry
        if output is not None:
            self._data["output"] = output
        self._agents: list[AgentSpec] = []
        self._tools: list[Tool] = []

    def node(
        self,
        node_id: str,
        *,
        agent: str | AgentSpec | None = None,
        tool: str | Tool | None = None,
        workflow: str | None = None,
        human: dict[str, Any] | None = None,
        input: dict[str, Any] | None = None,
        model: str | None = None,
        escalation: EscalationSpec | dict[str, Any] | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        description: str | None = None,
    ) -> Workflow:
        """Add a node that runs an agent (a reference or an `AgentSpec`), a tool or a workflow,
        or asks a person (`human={"prompt": "...", "answer": {JSON Schema}}`)."""
        if isinstance(agent, AgentSpec):
            self._agents.append(agent)
            agent = f"{agent.name}@{agent.version}"
        if isinstance(tool, Tool):
            self._tools.append(tool)
            tool = tool.name
        if isinstance(escalation, EscalationSpec):
            escalation = escalation.model_dump(exclude_defaults=True)
        fields = {
            "agent": agent, "tool": tool, "workflow": workflow, "human": human,
            "description": description,
            "input": input, "model": model, "escalation": escalation, "timeout": timeout,
            "retries": retries,
        }  # fmt: skip
        self._data["nodes"][node_id] = {k: v for k, v in fields.items() if v is not None}
        return self

    def edge(
        self,
        source: str,
        to: str | None = None,
        *,
        when: str | None = None,
        switch: str | None = None,
        cases: dict[str, str] | None = None,
        default: str | None = None,
        map: str | None = None,
        into: str | None = None,
        concurrency: int | None = None,
        max_visits: int | None = None,
        on_error: bool = False,
    ) -> Workflow:
        """Add an edge: plain, conditional (`when`), `switch`, `map` with `into`, or
        `on_error` (taken only when `source` fails)."""
        fields = {
            "from": source, "to": to, "when": when, "switch": switch, "cases": cases,
            "default": default, "map": map, "into": into, "concurrency": concurrency,
            "max_visits": max_visits, "on_error": on_error or None,
        }  # fmt: skip
        self._data["edges"].append({k: v for k, v in fields.items() if v is not None})
        return self

    def returns(self, output: Any) -> Workflow:
        """Set what a run returns: a ``{{ expression }}`` or a mapping of them."""
        self._data["output"] = output
        return self

    def spec(self) -> WorkflowSpec:
        """The validated spec; raises `SpecError` with field paths like a YAML file would."""
        try:
            return WorkflowSpec.model_validate(self._data)
        except ValidationError as exc:
            raise SpecError(problems_from_validation(exc, WorkflowSpec, Source())) from None

    def compile(self, project: Project | None = None) -> CompiledWorkflow:
        """Validate and compile against `project` (default: the current folder's)."""
        base = project or Project()
        derived = Project(
            base.root,
            registry=base.registry.with_specs(self._agents),
            workflow_dirs=base.workflow_dirs,
            tools=[*base.tools.values(), *self._tools],
            database=base.database,
        )
        return derived.compile(self.spec())

    def to_yaml(self) -> str:
        """The workflow as YAML that `microagents validate` accepts."""
        return spec_to_yaml(self.spec())

    @classmethod
    def from_spec(cls, spec: WorkflowSpec) -> Workflow:
        """A builder holding `spec`, to extend it in Python."""
        built = cls(spec.name)
        built._data = spec.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
        built._data.setdefault("edges", [])
        for key in ("name", "version", "description", "input"):
            built._data[key] = getattr(spec, key)
        return built

    @classmethod
    def from_yaml(cls, text: str) -> Workflow:
        """A builder from YAML text (errors carry line numbers)."""
        loaded = load_yaml(text)
        try:
            spec = WorkflowSpec.model_validate(loaded.data)
        except ValidationError as exc:
            raise SpecError(
                problems_from_validation(exc, WorkflowSpec, Source(None, loaded.source_map))
            ) from None
        return cls.from_spec(spec)


def spec_to_yaml(spec: BaseModel, *, with_defaults: bool = False) -> str:
    """Dump a spec as YAML in field order, leaving out defaults unless `with_defaults`."""
    data = spec.model_dump(by_alias=True, exclude_none=True, exclude_defaults=not with_defaults)
    for required in ("name", "version", "description", "input"):
        if hasattr(spec, required):
            data[required] = getattr(spec, required)
    ordered = {k: data[k] for k in type(spec).model_fields if k in data}
    ordered.update({k: v for k, v in data.items() if k not in ordered})
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=100)
