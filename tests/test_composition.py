"""A published workflow as a node (`workflow: team/refund_flow@^2`): resolved from the
registry, its input and output schemas checked at compile time, and run as a child."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

import microagents as ma
from microagents.models._protocol import ModelRequest, ModelResponse, ToolUseBlock, Usage
from microagents.runtime._engine import Engine
from microagents.testing import FakeModel
from registry_helpers import EXAMPLE_PACKAGE, write

PARENT = """\
name: support
version: 1.0.0
description: Answer refund requests with the refunds team's workflow.
input:
  type: object
  properties: {text: {type: string}}
  required: [text]
nodes:
  refund:
    workflow: REFERENCE
    input: {BINDING: "{{ input.text }}"}
output:
  eligible: "{{ nodes.refund.output.FIELD }}"
"""


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    # The example package's folder as a folder source: the same specs an install offers.
    shutil.copytree(EXAMPLE_PACKAGE / "src" / "team_agents", tmp_path / "team")
    write(tmp_path / "microagents.toml", 'sources = ["team"]\n')
    return tmp_path


def parent(
    project_dir: Path,
    reference: str = "team/refund_flow@^2",
    binding: str = "ticket",
    field: str = "eligible",
) -> Path:
    text = PARENT.replace("REFERENCE", reference).replace("BINDING", binding)
    text = text.replace("FIELD", field)
    return write(project_dir / "workflows" / "support.yaml", text)


def problems(project_dir: Path, path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ma.SpecError) as exc:
        ma.Project(project_dir).load_workflow(path)
    return [(p.code, p.field_path) for p in exc.value.errors]


def test_a_published_workflow_runs_as_a_node(project_dir: Path) -> None:
    compiled = ma.Project(project_dir).load_workflow(parent(project_dir))
    node = compiled.nodes["refund"]
    assert node.kind == "workflow"
    assert node.target == "team/refund_flow@2.0.0"
    assert [a.reference for a in compiled.agents] == ["team/refund_checker@2.1.0"]

    def script(request: ModelRequest) -> ModelResponse:
        output: dict[str, Any] = {"eligible": True, "reason": "duplicate charge", "confidence": 0.9}
        block = ToolUseBlock("t1", "final_answer", output)
        return ModelResponse((block,), "tool_use", Usage(100, 20), request.model, cost_usd=0.001)

    model = FakeModel(script)

    async def main() -> ma.RunResult:
        async with Engine(model) as engine:
            return await engine.run(compiled, {"text": "charged twice for order 1042"})

    result = anyio.run(main)
    assert result.ok, result.error
    assert result.output == {"eligible": True}
    assert "charged twice for order 1042" in str(model.requests[0].messages[0].content)


def test_the_sub_workflow_input_schema_is_checked_at_compile_time(project_dir: Path) -> None:
    found = problems(project_dir, parent(project_dir, binding="tiket"))
    assert ("MA320", "nodes.refund.input") in found  # its required `ticket` is not bound
    assert ("MA321", "nodes.refund.input.tiket") in found


def test_the_sub_workflow_output_schema_is_checked_at_compile_time(project_dir: Path) -> None:
    found = problems(project_dir, parent(project_dir, field="eligable"))
    assert found == [("MA319", "output.eligible")]


def test_a_range_no_published_workflow_matches(project_dir: Path) -> None:
    with pytest.raises(ma.SpecError) as exc:
        ma.Project(project_dir).load_workflow(parent(project_dir, "team/refund_flow@^3"))
    (problem,) = exc.value.errors
    assert (problem.code, problem.field_path) == ("MA303", "nodes.refund.workflow")
    assert problem.message == (
        "no version of workflow 'team/refund_flow' matches '^3'; available: 2.0.0"
    )


def test_an_unknown_workflow_name_says_where_it_looked(project_dir: Path) -> None:
    found = parent(project_dir, "team/refund_flw")
    with pytest.raises(ma.SpecError, match="did you mean 'team/refund_flow'") as exc:
        ma.Project(project_dir).load_workflow(found)
    assert exc.value.errors[0].code == "MA303"
    assert "nor published in the registry sources" in exc.value.errors[0].message


def test_the_lock_pins_the_published_workflow_and_its_agents(project_dir: Path) -> None:
    parent(project_dir)
    old, new = ma.Project(project_dir).relock()
    assert old.pins == ()
    assert sorted((p.kind, p.reference, p.source) for p in new.pins) == [
        ("agent", "team/refund_checker@2.1.0", "team"),
        ("workflow", "team/refund_flow@2.0.0", "team"),
    ]
    new.write()
    flow = project_dir / "team" / "refund_flow.yaml"
    flow.write_text(flow.read_text().replace("say whether", "tell whether"))
    found = problems(project_dir, project_dir / "workflows" / "support.yaml")
    assert found == [("MA806", "nodes.refund.workflow")]
