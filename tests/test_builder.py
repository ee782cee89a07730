from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

import microagents as ma
from microagents.spec._loading import load_workflow_spec

FIXTURES = Path(__file__).parent / "fixtures" / "project"
ROOT = Path(__file__).parent.parent


def workflow_files() -> list[Path]:
    return sorted([*FIXTURES.glob("workflows/*.yaml"), *ROOT.glob("workflows/*.yaml")])


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_yaml_to_python_to_yaml_round_trips(path: Path) -> None:
    spec = load_workflow_spec(path).spec
    rebuilt = ma.Workflow.from_spec(spec)
    assert rebuilt.spec() == spec
    again = ma.Workflow.from_yaml(rebuilt.to_yaml())
    assert again.spec() == spec
    assert again.to_yaml() == rebuilt.to_yaml()


def test_python_and_yaml_build_the_same_spec() -> None:
    built = (
        ma.Workflow(
            "line_items",
            version="1.0.0",
            description=(
                "Split an order into items, extract each in parallel, and check them together."
            ),
            input={
                "type": "object",
                "properties": {"email": {"type": "string"}},
                "required": ["email"],
            },
            output="{{ nodes.check_all.output }}",
        )
        .node("split", agent="splitter", input={"text": "{{ input.email }}"})
        .node(
            "extract_item",
            agent="extractor@^1",
            input={
                "text": "{{ item.description }} (item {{ index }})",
                "fields": ["sku", "colour"],
            },
        )
        .node(
            "check_all",
            agent="validator",
            input={
                "source": "{{ input.email }}",
                "record": {"items": "{{ nodes.extract_item.output }}"},
            },
        )
        .edge(
            "split",
            "extract_item",
            map="{{ nodes.split.output.items }}",
            into="check_all",
            concurrency=4,
        )
    )
    assert built.spec() == load_workflow_spec(FIXTURES / "workflows" / "line_items.yaml").spec


def test_builder_errors_name_the_field_like_yaml_errors_do() -> None:
    flow = ma.Workflow("x", input={"type": "object"}).node(
        "a", agent="router", tool="review.enqueue"
    )
    flow.edge("a", switch="category")
    with pytest.raises(ma.SpecError) as exc:
        flow.spec()
    paths = {p.field_path for p in exc.value.problems}
    assert paths == {"nodes.a", "edges[0]"}
    assert "exactly one of agent, tool, workflow or human" in str(exc.value)


class Ticket(BaseModel):
    text: str


class Route(BaseModel):
    queue: str
    confidence: float


def test_agents_and_tools_defined_in_python_compile_into_a_workflow(tmp_path: Path) -> None:
    router = ma.AgentSpec(
        name="queue_router",
        version="0.1.0",
        description="Pick a queue.",
        prompt="Which queue handles: {{ text }}",
        input=Ticket,
        output=Route,
        escalation=ma.EscalationSpec(
            ladder=["haiku", "sonnet"], on=["low_confidence"], confidence_below=0.5
        ),
    )

    @ma.tool(name="queue.put")
    def put(queue: str, text: str) -> dict[str, str]:
        """Put a ticket on a queue."""
        return {"queue": queue}

    flow = (
        ma.Workflow("routing", input=Ticket, output="{{ nodes.route.output }}")
        .node("route", agent=router, input={"text": "{{ input.text }}"})
        .node(
            "put",
            tool=put,
            input={"queue": "{{ nodes.route.output.queue }}", "text": "{{ input.text }}"},
        )
        .edge("route", "put")
    )
    compiled = flow.compile(ma.Project(tmp_path))
    agent = compiled.nodes["route"].agent
    assert agent is not None
    assert agent.output_model is Route  # typed results for Python users
    assert agent.render_prompt({"text": "hello"}) == "Which queue handles: hello"
    assert compiled.nodes["put"].tool is put
