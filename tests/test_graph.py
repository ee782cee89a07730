from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

import microagents as ma

FIXTURES = Path(__file__).parent / "fixtures" / "project"
TICKET_INPUT = {
    "type": "object",
    "properties": {"ticket": {"type": "string"}},
    "required": ["ticket"],
}


@pytest.fixture
def fixture_project() -> ma.Project:
    return ma.Project(FIXTURES)


def triage(**changes: Any) -> ma.Workflow:
    """A small valid workflow over the fixture agents, to break one thing at a time."""
    flow = (
        ma.Workflow("triage", input=TICKET_INPUT, output="{{ nodes.check.output }}")
        .node("route", agent="router", input={"text": "{{ input.ticket }}"})
        .node(
            "extract",
            agent="extractor@^1",
            **{"input": {"text": "{{ input.ticket }}", "fields": ["order_id"]}, **changes},
        )
        .node(
            "check",
            agent="validator",
            input={"source": "{{ input.ticket }}", "record": "{{ nodes.extract.output.record }}"},
        )
        .edge("route", switch="category", cases={"billing": "extract"})
        .edge("extract", "check")
    )
    return flow


def problems(flow: ma.Workflow, project: ma.Project) -> list[tuple[str, str]]:
    with pytest.raises(ma.SpecError) as exc:
        flow.compile(project)
    return [(p.code, p.field_path) for p in exc.value.errors]


def test_compiled_graph_has_kinds_for_nodes_and_edges(fixture_project: ma.Project) -> None:
    compiled = fixture_project.load_workflow(FIXTURES / "workflows" / "line_items.yaml")
    graph = compiled.graph
    assert dict(graph.nodes(data="kind")) == {
        "split": "agent",
        "extract_item": "agent",
        "check_all": "agent",
    }
    assert graph.edges["split", "extract_item"]["kind"] == "map"
    assert graph.edges["extract_item", "check_all"]["kind"] == "fan_in"
    assert compiled.nodes["extract_item"].mapped
    # The range ^1 picks the highest 1.x, not 2.0.0.
    assert compiled.nodes["extract_item"].target == "extractor@1.2.0"


def test_sub_workflow_output_schema_is_checked(fixture_project: ma.Project) -> None:
    compiled = fixture_project.load_workflow(FIXTURES / "workflows" / "escalate_or_review.yaml")
    assert compiled.nodes["items"].workflow is not compiled  # a compiled child
    assert compiled.output_schema is not None
    assert "valid" in compiled.output_schema["properties"]


def test_every_problem_is_reported_not_only_the_first(fixture_project: ma.Project) -> None:
    flow = (
        triage(input={"text": "{{ input.tikcet }}", "fields": []})
        .edge("check", "route")
        .node("orphan", tool="review.enqueue", input={"item": 1})
    )
    found = problems(flow, fixture_project)
    assert ("MA319", "nodes.extract.input.text") in found  # unknown input field
    assert ("MA312", "edges[2]") in found  # cycle without max_visits
    assert ("MA314", "nodes.orphan") in found  # unreachable
    assert len(found) == 3


def test_unreachability_is_not_reported_on_top_of_an_unknown_edge_end(
    fixture_project: ma.Project,
) -> None:
    flow = triage()
    flow._data["edges"][1]["to"] = "chek"
    assert problems(flow, fixture_project) == [("MA311", "edges[1].to")]


def test_reading_a_node_that_cannot_have_run_yet(fixture_project: ma.Project) -> None:
    flow = triage(input={"text": "{{ nodes.check.output.reasons }}", "fields": []})
    assert ("MA318", "nodes.extract.input.text") in problems(flow, fixture_project)


def test_reading_a_node_on_the_same_cycle_is_allowed(fixture_project: ma.Project) -> None:
    flow = triage(
        input={"text": "{{ input.ticket }} {{ nodes.check.output.reasons }}", "fields": []},
        escalation={"ladder": ["haiku", "sonnet"], "on": ["rejected"]},
    ).edge("check", "extract", when="not nodes.check.output.valid", max_visits=2)
    compiled = flow.compile(fixture_project)
    assert compiled.graph.edges["check", "extract"]["kind"] == "escalation"


def test_a_node_on_a_self_loop_may_read_its_own_earlier_output(
    fixture_project: ma.Project,
) -> None:
    # A self-loop is a cycle too: the revisit reads the output of the visit before.
    looping = triage(
        input={"text": "{{ nodes.extract.output.record if nodes.extract else input.ticket }}",
               "fields": []},
    ).edge("extract", "extract", when="not nodes.extract.output.record", max_visits=2)  # fmt: skip
    looping.compile(fixture_project)
    # Without the loop, it is still a node reading itself before it has run.
    alone = triage(input={"text": "{{ nodes.extract.output.record }}", "fields": []})
    assert ("MA318", "nodes.extract.input.text") in problems(alone, fixture_project)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"input": {"text": "{{ nodes.route.output.categroy }}", "fields": []}}, "MA319"),
        ({"input": {"text": "{{ input.tikcet }}", "fields": []}}, "MA319"),
        ({"input": {"text": "{{ ticket }}", "fields": []}}, "MA316"),
        ({"input": {"text": "{{ input.ticket }}"}}, "MA320"),
        ({"input": {"text": "{{ input.ticket }}", "fields": [], "colour": "red"}}, "MA321"),
        ({"input": {"text": "{{ nodes.route.output.confidence }}", "fields": []}}, "MA322"),
        ({"input": {"text": "{{ input.ticket }}", "fields": "order_id"}}, "MA322"),
        ({"input": {"text": "{{ input.ticket.__class__ }}", "fields": []}}, "MA310"),
        ({"model": "sonnet", "escalation": {"ladder": ["haiku", "sonnet"]}}, "MA305"),
    ],
)
def test_binding_checks(fixture_project: ma.Project, change: dict[str, Any], expected: str) -> None:
    codes = [code for code, _ in problems(triage(**change), fixture_project)]
    assert expected in codes


def test_switch_cases_must_be_output_enum_values(fixture_project: ma.Project) -> None:
    flow = triage().edge("route", switch="category", cases={"biling": "check"})
    assert ("MA324", "edges[2].cases.biling") in problems(flow, fixture_project)


def test_uncovered_switch_values_warn(fixture_project: ma.Project) -> None:
    compiled = triage().compile(fixture_project)
    assert [w.code for w in compiled.warnings] == ["MA325"]


def test_a_node_whose_result_is_never_used_is_an_error(fixture_project: ma.Project) -> None:
    flow = triage().returns("{{ nodes.route.output }}")
    found = problems(flow, fixture_project)
    # route feeds the output; extract and check feed nothing that does.
    assert ("MA326", "nodes.check") in found
    assert ("MA326", "nodes.extract") in found
    assert ("MA326", "nodes.route") not in found


def test_map_item_fields_are_checked(fixture_project: ma.Project, tmp_path: Path) -> None:
    text = (FIXTURES / "workflows" / "line_items.yaml").read_text()
    broken = tmp_path / "line_items.yaml"
    broken.write_text(text.replace("item.description", "item.descripton"))
    with pytest.raises(ma.SpecError) as exc:
        fixture_project.load_workflow(broken)
    problem = exc.value.errors[0]
    assert problem.code == "MA319"
    assert "did you mean 'description'" in problem.message
    assert problem.location.line == 14


def test_sub_workflows_that_include_each_other_are_refused(tmp_path: Path) -> None:
    for name, other in (("a", "b"), ("b", "a")):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: {name}\nversion: 1.0.0\ndescription: loops\ninput: {{type: object}}\n"
            f"nodes:\n  inner: {{workflow: {other}}}\n"
        )
    with pytest.raises(ma.SpecError) as exc:
        ma.Project(tmp_path).load_workflow(tmp_path / "a.yaml")
    assert "include each other in a loop: a.yaml → b.yaml → a.yaml" in str(exc.value)


@pytest.mark.parametrize("name", ["line_items", "escalate_or_review"])
def test_renderings(fixture_project: ma.Project, name: str, snapshot: SnapshotAssertion) -> None:
    compiled = fixture_project.load_workflow(FIXTURES / "workflows" / f"{name}.yaml")
    assert compiled.to_mermaid() == snapshot(name="mermaid")
    assert compiled.to_dot() == snapshot(name="dot")


def test_a_switch_that_covers_every_value_always_continues(fixture_project: ma.Project) -> None:
    partial = triage().compile(fixture_project)
    assert partial.edges[0].always_taken is False
    assert "route --> __end__" in partial.to_mermaid()

    exhaustive = triage()
    exhaustive._data["edges"][0]["cases"] = {
        "billing": "extract",
        "technical": "extract",
        "other": "check",
    }
    compiled = exhaustive.compile(fixture_project)
    assert [e.always_taken for e in compiled.edges] == [True, True]
    assert "route --> __end__" not in compiled.to_mermaid()


def test_a_second_bounded_edge_cannot_hide_an_unbounded_loop(fixture_project: ma.Project) -> None:
    for bounded_first in (True, False):
        flow = triage()
        loop = [
            {
                "from": "check",
                "to": "extract",
                "when": "not nodes.check.output.valid",
                "max_visits": 2,
            },
            {"from": "check", "to": "extract"},
        ]
        flow._data["edges"].extend(loop if bounded_first else loop[::-1])
        assert ("MA312", "edges[3]" if bounded_first else "edges[2]") in problems(
            flow, fixture_project
        )


def test_max_visits_on_a_switch_edge_bounds_its_cycle(fixture_project: ma.Project) -> None:
    flow = triage().edge("check", switch="valid", cases={"false": "extract"}, max_visits=2)
    compiled = flow.compile(fixture_project)
    assert compiled.graph.edges["check", "extract"]["max_visits"] == 2


def test_two_cases_to_one_node_keep_both_labels(fixture_project: ma.Project) -> None:
    flow = triage()
    flow._data["edges"][0]["cases"] = {"billing": "extract", "other": "extract"}
    compiled = flow.compile(fixture_project)
    assert compiled.graph.edges["route", "extract"]["label"] == "billing / other"


def test_node_ids_that_are_renderer_keywords_still_render(fixture_project: ma.Project) -> None:
    flow = (
        ma.Workflow("keywords", input=TICKET_INPUT, output="{{ nodes.end.output }}")
        .node("node", agent="router", input={"text": "{{ input.ticket }}"})
        .node("end", tool="review.enqueue", input={"item": "{{ nodes.node.output }}"})
        .edge("node", "end")
    )
    compiled = flow.compile(fixture_project)
    assert '"node" -> "end"' in compiled.to_dot()
    assert "node --> end_" in compiled.to_mermaid()
    with pytest.raises(ma.SpecError, match="starts with '__', which is reserved"):
        ma.Workflow("x", input=TICKET_INPUT).node("__end__", tool="review.enqueue").spec()
