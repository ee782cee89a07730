"""The runtime above the model layer: agent runner, escalation, scheduler, engine API.

Models here are `FakeModel`s (in-process, instant, scripted per request), as the test plan
allows above the model layer; end-to-end runs through the fake HTTP server live in
test_batch.py and test_model_anthropic.py.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel

import microagents as ma
from microagents.models._protocol import ModelRequest, ModelResponse, TextBlock, ToolUseBlock, Usage
from microagents.results._results import (
    Escalated,
    NodeFinished,
    NodeStarted,
    RunFinished,
    ToolCalled,
)
from microagents.runtime._engine import Engine
from microagents.testing import FakeModel

TICKET = {"type": "object", "properties": {"ticket": {"type": "string"}}, "required": ["ticket"]}
MODELS = {"claude-haiku-4-5": "haiku", "claude-sonnet-4-6": "sonnet", "claude-opus-4-8": "opus"}


class Answer(BaseModel):
    text: str
    confidence: float


class Ticket(BaseModel):
    text: str


def agent(name: str = "answerer", **changes: Any) -> ma.AgentSpec:
    fields: dict[str, Any] = {
        "name": name,
        "version": "1.0.0",
        "description": "Answer a ticket.",
        "prompt": "Answer: {{ text }}",
        "input": Ticket,
        "output": Answer,
        "escalation": {
            "ladder": ["haiku", "sonnet", "opus"],
            "on": list(typing.get_args(ma.Trigger)),
            "confidence_below": 0.5,
        },
        **changes,
    }
    return ma.AgentSpec(**fields)


def tier(request: ModelRequest) -> str:
    return MODELS[request.model]


def response(request: ModelRequest, *blocks: Any, stop: str = "tool_use") -> ModelResponse:
    return ModelResponse(tuple(blocks), stop, Usage(100, 20), request.model, cost_usd=0.001)  # type: ignore[arg-type]


def answer(request: ModelRequest, **output: Any) -> ModelResponse:
    return response(request, ToolUseBlock(f"t{len(request.messages)}", "final_answer", output))


def one_agent_flow(spec: ma.AgentSpec, tools: list[ma.Tool] | None = None) -> ma.CompiledWorkflow:
    flow = ma.Workflow("single", input=TICKET, output="{{ nodes.answer.output }}").node(
        "answer", agent=spec, input={"text": "{{ input.ticket }}"}
    )
    project = ma.Project(Path("/nonexistent"), tools=tools or [])
    return flow.compile(project)


def run(
    workflow: ma.CompiledWorkflow, script: Callable[[ModelRequest], Any], **input: Any
) -> tuple[ma.RunResult, FakeModel]:
    model = FakeModel(script)

    async def main() -> ma.RunResult:
        async with Engine(model) as engine:
            return await engine.run(workflow, input or {"ticket": "hello"})

    return anyio.run(main), model


def tiers_tried(result: ma.RunResult) -> list[str]:
    return [a.tier for n in result.nodes for a in n.attempts]


# -- escalation: one test per trigger -------------------------------------------------------


def test_invalid_output_is_repaired_once_then_escalates() -> None:
    def script(request: ModelRequest) -> Any:
        if tier(request) == "haiku":
            return answer(request, text="no confidence field")
        return answer(request, text="fine", confidence=0.9)

    result, model = run(one_agent_flow(agent()), script)
    assert result.ok
    assert tiers_tried(result) == ["haiku", "sonnet"]
    assert [(e.trigger, e.from_tier, e.to_tier) for e in result.escalations] == [
        ("invalid_output", "haiku", "sonnet")
    ]
    assert result.nodes[0].attempts[0].calls == 2  # the answer and one repair
    repair = model.requests[1].messages[-1].content[0]
    assert "does not match the required schema" in repair.content  # type: ignore[union-attr]
    assert repair.is_error  # type: ignore[union-attr]


def test_a_repair_that_works_does_not_escalate() -> None:
    def script(request: ModelRequest) -> Any:
        if len(request.messages) == 1:
            return answer(request, text="missing confidence")
        return answer(request, text="fixed", confidence=0.8)

    result, _ = run(one_agent_flow(agent()), script)
    assert tiers_tried(result) == ["haiku"]
    assert result.output.text == "fixed"


def test_low_confidence_climbs_until_sure() -> None:
    levels = {"haiku": 0.2, "sonnet": 0.4, "opus": 0.9}
    result, _ = run(
        one_agent_flow(agent()),
        lambda r: answer(r, text=tier(r), confidence=levels[tier(r)]),
    )
    assert tiers_tried(result) == ["haiku", "sonnet", "opus"]
    assert [e.trigger for e in result.escalations] == ["low_confidence", "low_confidence"]
    assert result.output.text == "opus"


def test_low_confidence_on_the_last_rung_keeps_the_best_answer() -> None:
    result, _ = run(one_agent_flow(agent()), lambda r: answer(r, text=tier(r), confidence=0.1))
    assert result.ok
    assert result.output.text == "opus"


@pytest.mark.parametrize(
    ("stop", "trigger"), [("refusal", "refusal"), ("max_tokens", "max_tokens")]
)
def test_refusal_and_max_tokens_escalate(stop: str, trigger: str) -> None:
    def script(request: ModelRequest) -> Any:
        if tier(request) == "haiku":
            return response(request, TextBlock("..."), stop=stop)
        return answer(request, text="ok", confidence=0.9)

    result, _ = run(one_agent_flow(agent()), script)
    assert tiers_tried(result) == ["haiku", "sonnet"]
    assert result.escalations[0].trigger == trigger


def test_a_model_error_after_retries_escalates() -> None:
    def script(request: ModelRequest) -> Any:
        if tier(request) == "haiku":
            return ma.errors.OverloadedError("overloaded")
        return answer(request, text="ok", confidence=0.9)

    result, _ = run(one_agent_flow(agent()), script)
    assert tiers_tried(result) == ["haiku", "sonnet"]
    assert result.escalations[0].trigger == "error"


def test_the_escalate_tool_climbs_with_its_reason() -> None:
    def script(request: ModelRequest) -> Any:
        if tier(request) == "haiku":
            return response(request, ToolUseBlock("e1", "escalate", {"reason": "too hard"}))
        return answer(request, text="ok", confidence=0.9)

    result, model = run(one_agent_flow(agent()), script)
    assert tiers_tried(result) == ["haiku", "sonnet"]
    assert result.escalations[0].trigger == "self"
    # Native structured output: the answer is the reply's text, so only escalate is a tool.
    offered = {t.name for t in model.requests[0].tools}
    assert offered == {"escalate"}
    assert model.requests[0].tool_choice == ma.models.ToolChoice("auto")
    # On the top rung there is nowhere to go: the escalate tool is not offered.
    assert (
        "escalate" not in {t.name for t in model.requests[-1].tools}
        or tier(model.requests[-1]) != "opus"
    )


def test_a_tool_loop_over_budget_escalates() -> None:
    @ma.tool(name="lookup")
    def lookup(key: str) -> str:
        """Look something up."""
        return f"value of {key}"

    def script(request: ModelRequest) -> Any:
        if tier(request) == "haiku":
            return response(
                request, ToolUseBlock(f"l{len(request.messages)}", "lookup", {"key": "a"})
            )
        return answer(request, text="ok", confidence=0.9)

    spec = agent(tools=["lookup"], max_tool_rounds=2)
    result, _ = run(one_agent_flow(spec, [lookup]), script)
    assert tiers_tried(result) == ["haiku", "sonnet"]
    assert result.escalations[0].trigger == "tool_budget"
    assert result.nodes[0].attempts[0].calls == 3  # two rounds of tools, then over budget


def test_a_trigger_not_in_the_ladder_fails_the_node() -> None:
    spec = agent(
        escalation={
            "ladder": ["haiku", "sonnet"],
            "on": ["low_confidence"],
            "confidence_below": 0.5,
        }
    )
    result, _ = run(one_agent_flow(spec), lambda r: response(r, TextBlock("no"), stop="refusal"))
    assert not result.ok
    assert result.failed_node == "answer"
    assert "failed on haiku (refusal)" in (result.error or "")
    assert result.cost_usd > 0  # a failed attempt still cost money, and is counted


# -- tools -----------------------------------------------------------------------------------


def test_tools_run_concurrently_and_errors_go_back_to_the_model() -> None:
    running: list[int] = []
    peak: list[int] = []

    @ma.tool(name="slow")
    async def slow(n: int) -> int:
        """Slow."""
        running.append(n)
        peak.append(len(running))
        await anyio.sleep(0.01)
        running.remove(n)
        return n * 2

    def script(request: ModelRequest) -> Any:
        if len(request.messages) == 1:
            return response(
                request,
                ToolUseBlock("a", "slow", {"n": 1}),
                ToolUseBlock("b", "slow", {"n": 2}),
                ToolUseBlock("c", "slow", {"n": "not a number"}),
            )
        return answer(request, text="done", confidence=0.9)

    events: list[Any] = []
    model = FakeModel(script)

    async def main() -> ma.RunResult:
        async with Engine(model, on_event=events.append) as engine:
            return await engine.run(one_agent_flow(agent(tools=["slow"]), [slow]), {"ticket": "x"})

    result = anyio.run(main)
    assert result.ok
    assert max(peak) == 2  # both valid calls were in flight together
    results = model.requests[1].messages[-1].content
    assert [r.content for r in results[:2]] == ["2", "4"]  # type: ignore[union-attr]
    assert results[2].is_error  # type: ignore[union-attr]
    assert "invalid arguments for slow" in results[2].content  # type: ignore[union-attr]
    assert [e.is_error for e in events if isinstance(e, ToolCalled)].count(True) == 1


# -- the scheduler ----------------------------------------------------------------------------


def test_support_triage_routes_extracts_and_loops_back_on_rejection(project: ma.Project) -> None:
    workflow = project.load_workflow("workflows/support_triage.yaml")
    checks = iter([False, True])

    def script(request: ModelRequest) -> Any:
        name = request.metadata["agent"]
        if name == "router":
            return answer(request, category="billing", confidence=0.95, reason="charged twice")
        if name == "extractor":
            record = {"order_id": "A1", "amount": 20.0, "currency": "EUR", "reason": "double"}
            return answer(request, record=record, missing=[], confidence=0.9)
        return answer(request, valid=next(checks), reasons=["amount wrong"], confidence=0.9)

    result, model = run(workflow, script, ticket="I was charged twice for A1")
    assert result.ok, result.error
    assert [n.node for n in result.nodes] == [
        "route", "extract_billing", "check_billing", "extract_billing", "check_billing"
    ]  # fmt: skip
    # The revisit started one rung up, with the validator's reasons as feedback.
    assert [(e.node, e.trigger, e.from_tier, e.to_tier) for e in result.escalations] == [
        ("extract_billing", "rejected", "haiku", "sonnet")
    ]
    second_extract = [r for r in model.requests if r.metadata["agent"] == "extractor"][1]
    assert second_extract.model == "claude-sonnet-4-6"
    assert "amount wrong" in second_extract.messages[0].text
    assert result.output["verdict"].valid is True


def test_dead_paths_are_skipped_and_a_join_waits_for_live_branches(tmp_path: Path) -> None:
    spec = agent(escalation=None)
    started: list[str] = []
    flow = (
        ma.Workflow("join", input=TICKET, output="{{ nodes.merge.output }}")
        .node("a", agent=spec, input={"text": "{{ input.ticket }}"})
        .node("b", agent=spec, input={"text": "b"})
        .node("c", agent=spec, input={"text": "c"})
        .node(
            "merge",
            agent=spec,
            input={"text": "{{ nodes.b.output.text }}|{{ nodes.c.output.text }}"},
        )
        .edge("a", "b")
        .edge("a", "c", when="nodes.a.output.confidence > 0.99")
        .edge("b", "merge")
        .edge("c", "merge")
    )
    workflow = flow.compile(ma.Project(tmp_path))

    def script(request: ModelRequest) -> Any:
        started.append(request.messages[0].text)
        return answer(request, text=request.messages[0].text[8:], confidence=0.9)

    result, _ = run(workflow, script)
    assert result.ok
    assert [n.node for n in result.nodes] == ["a", "b", "merge"]  # c skipped, merge still ran
    assert result.output.text == "b|"


def fork_flow(tmp_path: Path) -> ma.CompiledWorkflow:
    """a → (b, c) in parallel; the output reads both branches."""
    spec = agent(escalation=None)
    return (
        ma.Workflow(
            "fork", input=TICKET, output={"b": "{{ nodes.b.output }}", "c": "{{ nodes.c.output }}"}
        )
        .node("a", agent=spec, input={"text": "{{ input.ticket }}"})
        .node("b", agent=spec, input={"text": "b"})
        .node("c", agent=spec, input={"text": "c"})
        .edge("a", "b")
        .edge("a", "c")
        .compile(ma.Project(tmp_path))
    )


def test_independent_branches_run_concurrently(tmp_path: Path) -> None:
    in_flight: list[int] = [0]
    peak: list[int] = [0]

    class Slow:
        async def complete(self, request: ModelRequest) -> ModelResponse:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            await anyio.sleep(0.02)
            in_flight[0] -= 1
            return answer(request, text="x", confidence=0.9)

    async def main() -> ma.RunResult:
        async with Engine(Slow()) as engine:
            return await engine.run(fork_flow(tmp_path), {"ticket": "t"})

    result = anyio.run(main)
    assert result.ok
    assert peak[0] == 2


def test_map_fans_out_with_bounded_concurrency_and_fans_in_in_order(tmp_path: Path) -> None:
    class Items(BaseModel):
        items: list[str]

    splitter = ma.AgentSpec(
        name="splitter", version="1.0.0", description="Split.", prompt="{{ text }}",
        input=Ticket, output=Items,
    )  # fmt: skip
    worker = agent("worker", escalation=None)
    flow = (
        ma.Workflow("fan", input=TICKET, output="{{ nodes.gather.output }}")
        .node("split", agent=splitter, input={"text": "{{ input.ticket }}"})
        .node("each", agent=worker, input={"text": "{{ index }}:{{ item }}"})
        .node("gather", tool="review.enqueue", input={"item": "{{ nodes.each.output }}"})
        .edge(
            "split", "each", map="{{ nodes.split.output['items'] }}", into="gather", concurrency=2
        )
    )
    in_flight = [0]
    peak = [0]

    class Model:
        async def complete(self, request: ModelRequest) -> ModelResponse:
            if request.metadata["agent"] == "splitter":
                return answer(request, items=["a", "b", "c", "d", "e"])
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
            text = request.messages[0].text
            await anyio.sleep(0.01 if "a" in text else 0.001)  # the first item finishes last
            in_flight[0] -= 1
            return answer(request, text=text.removeprefix("Answer: "), confidence=0.9)

    async def main() -> ma.RunResult:
        async with Engine(Model()) as engine:
            return await engine.run(flow.compile(ma.Project(tmp_path)), {"ticket": "t"})

    result = anyio.run(main)
    assert result.ok, result.error
    each = result.node("gather")
    assert each.status == "ok"
    assert [
        n.output.text for n in result.nodes if n.node == "each" and n.item_index is not None
    ] != []
    gathered = result.nodes_state if hasattr(result, "nodes_state") else None
    assert gathered is None
    outputs = [n for n in result.nodes if n.node == "each"]
    assert sorted(n.item_index for n in outputs) == [0, 1, 2, 3, 4]  # type: ignore[type-var]
    assert peak[0] == 2


def test_a_loop_stops_at_max_visits(tmp_path: Path) -> None:
    spec = agent(escalation=None)
    flow = (
        ma.Workflow("loop", input=TICKET, output="{{ nodes.check.output }}")
        .node("work", agent=spec, input={"text": "{{ input.ticket }}"})
        .node("check", agent=spec, input={"text": "{{ nodes.work.output.text }}"})
        .edge("work", "check")
        .edge("check", "work", when="nodes.check.output.confidence < 0.99", max_visits=3)
    )
    result, _ = run(
        flow.compile(ma.Project(tmp_path)), lambda r: answer(r, text="x", confidence=0.5)
    )
    assert result.ok
    assert [n.node for n in result.nodes] == ["work", "check"] * 3


def test_a_failing_node_fails_the_run_naming_it_unless_routed(tmp_path: Path) -> None:
    def flow(on_error: bool) -> ma.CompiledWorkflow:
        return (
            ma.Workflow("fallback", input=TICKET, output="{{ nodes.review.output }}")
            .node("work", agent=agent(escalation=None), input={"text": "{{ input.ticket }}"})
            .node(
                "review",
                tool="review.enqueue",
                input={"item": "{{ input.ticket }}", "reason": "{{ nodes.work.error.message }}"},
            )
            .edge("work", "review", on_error=on_error)
            .compile(ma.Project(tmp_path))
        )

    refusing = lambda r: response(r, TextBlock("no"), stop="refusal")  # noqa: E731
    failed, _ = run(flow(on_error=False), refusing)
    assert (failed.status, failed.failed_node) == ("failed", "work")
    assert "refusal" in (failed.error or "")

    result, _ = run(flow(on_error=True), refusing)
    assert result.ok, result.error
    assert result.output["status"] == "queued"
    assert [n.status for n in result.nodes] == ["failed", "ok"]


@pytest.mark.parametrize(("bound", "ok"), [(3, True), (2, False)])
def test_an_on_error_edge_back_up_the_graph_retries_with_the_error(
    tmp_path: Path, bound: int, ok: bool
) -> None:
    checked: list[str] = []

    @ma.tool(name="strict.check")
    def strict(text: str) -> str:
        checked.append(text)
        if len(checked) < 3:
            raise ValueError(f"refusal {len(checked)}")
        return text

    flow = (
        ma.Workflow("retry", input=TICKET, output="{{ nodes.check.output }}")
        .node(
            "work",
            agent=agent(),
            input={"text": "{{ input.ticket }} | {{ nodes.check.error.message }}"},
        )
        .node("check", tool="strict.check", input={"text": "{{ nodes.work.output.text }}"})
        .edge("work", "check")
        .edge("check", "work", on_error=True, max_visits=bound)
        .compile(ma.Project(tmp_path, tools=[strict]))
    )
    result, model = run(flow, lambda r: answer(r, text=tier(r), confidence=0.9))

    assert [n.node for n in result.nodes] == ["work", "check"] * bound
    # Each retry sees the error it repairs, one rung up the ladder (the `rejected` trigger).
    prompts = [r.messages[0].text for r in model.requests]
    assert "refusal 1" in prompts[1]
    assert tiers_tried(result) == ["haiku", "sonnet", "opus"][:bound]
    if ok:
        assert result.ok
        assert result.output == "opus"
    else:
        assert (result.status, result.failed_node) == ("failed", "check")
        assert "refusal 2" in (result.error or "")


def test_node_timeout_and_retries(tmp_path: Path) -> None:
    spec = agent(escalation=None)
    flow = ma.Workflow("slow", input=TICKET, output="{{ nodes.work.output }}").node(
        "work", agent=spec, input={"text": "{{ input.ticket }}"}, timeout=0.05, retries=1
    )
    calls = [0]

    class Model:
        async def complete(self, request: ModelRequest) -> ModelResponse:
            calls[0] += 1
            if calls[0] == 1:
                await anyio.sleep(1)  # cancelled by the node timeout
            return answer(request, text="ok", confidence=0.9)

    async def main() -> ma.RunResult:
        async with Engine(Model()) as engine:
            return await engine.run(flow.compile(ma.Project(tmp_path)), {"ticket": "t"})

    result = anyio.run(main)
    assert result.ok
    assert calls[0] == 2


def test_bad_run_input_is_a_failed_result_not_an_exception() -> None:
    result, model = run(one_agent_flow(agent()), lambda r: None, tikcet="typo")
    assert not result.ok
    assert "input does not match the workflow's input schema" in (result.error or "")
    assert model.requests == []


def test_sub_workflow_node_rolls_up_cost(tmp_path: Path) -> None:
    (tmp_path / "inner.yaml").write_text(one_agent_flow(agent()).spec.model_dump_json())
    inner_spec = one_agent_flow(agent()).spec
    inner = ma.Workflow.from_spec(inner_spec)
    outer = ma.Workflow("outer", input=TICKET, output="{{ nodes.sub.output }}").node(
        "sub", workflow="inner", input={"ticket": "{{ input.ticket }}"}
    )
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "inner.yaml").write_text(inner.to_yaml())
    project = ma.Project(
        tmp_path, agent_dirs=[], registry=ma.registry.AgentRegistry([]).with_specs([agent()])
    )
    result, _ = run(outer.compile(project), lambda r: answer(r, text="deep", confidence=0.9))
    assert result.ok, result.error
    assert result.output.text == "deep"
    assert result.cost_usd == pytest.approx(0.001)


# -- the engine API ----------------------------------------------------------------------------


def test_run_many_yields_every_result_with_its_index() -> None:
    workflow = one_agent_flow(agent())
    model = FakeModel(lambda r: answer(r, text=r.messages[0].text, confidence=0.9))

    async def main() -> dict[int, str]:
        found = {}
        async with Engine(model) as engine:
            inputs = ({"ticket": f"t{i}"} for i in range(50))
            async for index, result in engine.run_many(workflow, inputs, concurrency=7):
                found[index] = result.output.text
        return found

    found = anyio.run(main)
    assert found == {i: f"Answer: t{i}" for i in range(50)}


@pytest.mark.parametrize("kind", ["empty list", "short list", "async generator"])
def test_run_many_takes_lists_and_async_sources_and_never_exceeds_its_concurrency(
    kind: str,
) -> None:
    workflow = one_agent_flow(agent())
    fake = FakeModel(lambda r: answer(r, text="x", confidence=0.9))
    in_flight = peak = 0

    class Slow:
        async def complete(self, request: Any) -> Any:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await anyio.sleep(0.001)
            in_flight -= 1
            return await fake.complete(request)

    async def numbered(count: int) -> Any:
        for i in range(count):
            await anyio.lowlevel.checkpoint()
            yield {"ticket": f"t{i}"}

    count = {"empty list": 0, "short list": 3, "async generator": 40}[kind]
    inputs: Any = (
        numbered(count)
        if kind == "async generator"
        else [{"ticket": f"t{i}"} for i in range(count)]
    )

    async def main() -> list[int]:
        async with Engine(Slow()) as engine:
            return sorted([i async for i, _ in engine.run_many(workflow, inputs, concurrency=5)])

    assert anyio.run(main) == list(range(count))
    assert peak <= 5


def test_stream_reports_progress_events_in_order() -> None:
    workflow = one_agent_flow(agent())
    levels = {"haiku": 0.1, "sonnet": 0.9, "opus": 0.9}
    model = FakeModel(lambda r: answer(r, text="x", confidence=levels[tier(r)]))

    async def main() -> list[Any]:
        async with (
            Engine(model) as engine,
            contextlib.aclosing(engine.stream(workflow, {"ticket": "t"})) as events,
        ):
            return [event async for event in events]

    events = anyio.run(main)
    kinds = [type(e) for e in events]
    assert kinds == [NodeStarted, Escalated, NodeFinished, RunFinished]
    assert events[-1].result.ok


def test_run_sync_with_the_simulated_backend(
    project: ma.Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROAGENTS_TIER_HAIKU", "claude-haiku-4-5")
    workflow = project.load_workflow("workflows/invoice_extraction.yaml")
    engine = Engine(
        ma.models.SimulatedModel(workflow.agents, latency=ma.models.SimulatedLatency(scale=0))
    )
    result = ma.run_sync(workflow, {"text": "Invoice 42 from ACME, total 10.00 EUR"}, engine=engine)
    assert result.ok, result.error
    assert result.simulated
    assert result.to_json()["simulated"] is True


def test_a_whole_upstream_output_binds_to_an_object_input(tmp_path: Path) -> None:
    class Record(BaseModel):
        order_id: str

    class Verdict(BaseModel):
        valid: bool

    extract = ma.AgentSpec(
        name="extractor", version="1.0.0", description="e", prompt="{{ text }}",
        input=Ticket, output=Record,
    )  # fmt: skip
    record_input = {"type": "object", "properties": {"record": {"type": "object"}}}
    check = ma.AgentSpec(
        name="validator", version="1.0.0", description="v", prompt="{{ record }}",
        input={**record_input, "required": ["record"]}, output=Verdict,
    )  # fmt: skip
    flow = (
        ma.Workflow("pair", input=TICKET, output="{{ nodes.check.output }}")
        .node("extract", agent=extract, input={"text": "{{ input.ticket }}"})
        .node("check", agent=check, input={"record": "{{ nodes.extract.output }}"})
        .edge("extract", "check")
    )

    def script(request: ModelRequest) -> Any:
        if request.metadata["agent"] == "extractor":
            return answer(request, order_id="A1")
        assert "A1" in request.messages[0].text
        return answer(request, valid=True)

    result, _ = run(flow.compile(ma.Project(tmp_path)), script)
    assert result.ok, result.error


def test_a_failure_in_a_parallel_branch_is_a_failed_result(tmp_path: Path) -> None:
    fork = fork_flow(tmp_path)

    def script(request: ModelRequest) -> Any:
        if request.messages[0].text == "Answer: c":
            return response(request, TextBlock("no"), stop="refusal")
        return answer(request, text="ok", confidence=0.9)

    result, _ = run(fork, script)
    assert (result.status, result.failed_node) == ("failed", "c")


def test_a_sync_tool_is_stopped_waiting_for_at_its_timeout(tmp_path: Path) -> None:
    import time as clock

    @ma.tool(name="stuck")
    def stuck(item: str) -> str:
        """Blocks far longer than its node allows."""
        clock.sleep(1.0)
        return item

    flow = (
        ma.Workflow("slow_tool", input=TICKET, output="{{ nodes.t.output }}")
        .node("t", tool=stuck, input={"item": "{{ input.ticket }}"}, timeout=0.05)
        .compile(ma.Project(tmp_path))
    )
    started = clock.perf_counter()
    result, _ = run(flow, lambda r: None)
    assert not result.ok
    assert "timed out after 0.05 s" in (result.error or "")
    assert clock.perf_counter() - started < 0.9


def test_node_retries_keep_the_cost_of_failed_tries_and_are_not_escalations(
    tmp_path: Path,
) -> None:
    spec = agent(escalation=None)
    flow = (
        ma.Workflow("retry", input=TICKET, output="{{ nodes.work.output }}")
        .node("work", agent=spec, input={"text": "{{ input.ticket }}"}, retries=1)
        .compile(ma.Project(tmp_path))
    )
    calls = [0]

    def script(request: ModelRequest) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            return response(request, TextBlock("no"), stop="refusal")
        return answer(request, text="ok", confidence=0.9)

    result, _ = run(flow, script)
    assert result.ok
    assert result.cost_usd == pytest.approx(0.002)  # both tries were paid for
    assert result.escalations == ()


def test_run_many_and_stream_can_be_closed_early() -> None:
    workflow = one_agent_flow(agent())
    model = FakeModel(lambda r: answer(r, text="x", confidence=0.9))

    async def main() -> tuple[int, int]:
        async with Engine(model) as engine:
            inputs = ({"ticket": f"t{i}"} for i in range(1_000))
            seen = 0
            async with contextlib.aclosing(
                engine.run_many(workflow, inputs, concurrency=4)
            ) as runs:
                async for _ in runs:
                    seen += 1
                    if seen == 5:
                        break
            events = 0
            async with contextlib.aclosing(engine.stream(workflow, {"ticket": "t"})) as stream:
                async for _ in stream:
                    events += 1
                    break
            return seen, events

    assert anyio.run(main) == (5, 1)
    assert len(model.requests) < 100  # closing stopped the intake


def test_a_failing_map_item_is_a_failed_result_naming_the_item(tmp_path: Path) -> None:
    class Items(BaseModel):
        items: list[str]

    splitter = ma.AgentSpec(
        name="splitter", version="1.0.0", description="Split.", prompt="{{ text }}",
        input=Ticket, output=Items,
    )  # fmt: skip
    flow = (
        ma.Workflow("fan", input=TICKET, output="{{ nodes.gather.output }}")
        .node("split", agent=splitter, input={"text": "{{ input.ticket }}"})
        .node("each", agent=agent("worker", escalation=None), input={"text": "{{ item }}"})
        .node("gather", tool="review.enqueue", input={"item": "{{ nodes.each.output }}"})
        .edge("split", "each", map="{{ nodes.split.output['items'] }}", into="gather")
        .compile(ma.Project(tmp_path))
    )

    def script(request: ModelRequest) -> Any:
        if request.metadata["agent"] == "splitter":
            return answer(request, items=["a", "b", "c"])
        if request.messages[0].text == "Answer: b":
            return response(request, TextBlock("no"), stop="refusal")
        return answer(request, text="ok", confidence=0.9)

    result, _ = run(flow, script)
    assert (result.status, result.failed_node) == ("failed", "each")
    assert (result.error or "").startswith("item 1: ")
