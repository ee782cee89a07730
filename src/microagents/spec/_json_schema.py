"""JSON Schema of the YAML spec formats, generated from the pydantic models, for editors."""

from __future__ import annotations

from typing import Any, Literal

from ._agent_spec import AgentSpec
from ._workflow_spec import WorkflowSpec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def spec_json_schema(kind: Literal["agent", "workflow"] | str) -> dict[str, Any]:
    """The JSON Schema for agent or workflow YAML files (``microagents schema KIND``)."""
    model = AgentSpec if kind == "agent" else WorkflowSpec
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": f"microagents-{kind}.schema.json", **schema}
