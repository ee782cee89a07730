"""The shared workload: the 3-step triage pipeline (router → extractor → validator).

Every contender calls the same model objects and validates with the same pydantic models, so
that what differs between contenders is the orchestration alone.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, TypedDict

import anyio
from pydantic import BaseModel

import microagents as ma
from microagents.models._protocol import ModelRequest, ModelResponse, ToolUseBlock, Usage

STEPS = 3
TICKET = {"ticket": "I was charged twice"}
TEXT = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
ANSWERS = {
    "router": {"category": "billing", "confidence": 0.9},
    "extractor": {"order_id": "A1", "confidence": 0.9},
    "validator": {"valid": True},
}


class Route(BaseModel):
    category: str
    confidence: float


class Record(BaseModel):
    order_id: str
    confidence: float


class Verdict(BaseModel):
    valid: bool


class InstantModel:
    """Answers at once with a prepared structured output (no I/O, no sleep)."""

    def __init__(self) -> None:
        self.answers = {
            name: ModelResponse(
                (ToolUseBlock("toolu_1", "final_answer", output),),
                "tool_use",
                Usage(10, 5),
                "claude-haiku-4-5",
                cost_usd=0.0,
            )
            for name, output in ANSWERS.items()
        }

    async def complete(self, request: ModelRequest) -> ModelResponse:
        return self.answers[request.metadata["agent"]]


class SleepyModel(InstantModel):
    """Waits `delay` seconds (a model call's latency, no CPU), then answers."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def complete(self, request: ModelRequest) -> ModelResponse:
        await anyio.sleep(self.delay)
        return self.answers[request.metadata["agent"]]


# What the floor and LangGraph send: prepared once (no prompt rendering, no request building).
REQUESTS = {n: ModelRequest("claude-haiku-4-5", (), metadata={"agent": n}) for n in ANSWERS}


def triage_workflow() -> ma.CompiledWorkflow:
    def agent(name: str, prompt: str, output: type[BaseModel]) -> ma.AgentSpec:
        return ma.AgentSpec(
            name=name, version="1.0.0", description=name, prompt=prompt,
            input=TEXT if name != "validator" else {
                "type": "object", "properties": {"record": {"type": "object"}},
                "required": ["record"],
            },
            output=output,
        )  # fmt: skip

    ticket = {"text": "{{ input.ticket }}"}
    flow = (
        ma.Workflow(
            "triage", input={"type": "object", "properties": {"ticket": {"type": "string"}}}
        )
        .node("route", agent=agent("router", "Route: {{ text }}", Route), input=ticket)
        .node("extract", agent=agent("extractor", "Extract: {{ text }}", Record), input=ticket)
        .node(
            "check",
            agent=agent("validator", "Check: {{ record }}", Verdict),
            input={"record": "{{ nodes.extract.output }}"},
        )
        .edge("route", "extract")
        .edge("extract", "check")
        .returns("{{ nodes.check.output }}")
    )
    return flow.compile(ma.Project(tempfile.mkdtemp()))


async def plain_triage(model: InstantModel) -> Verdict:
    """The floor: the same three awaits and validations, no framework."""
    route = Route.model_validate(
        dict((await model.complete(REQUESTS["router"])).tool_uses[0].input)
    )
    record = Record.model_validate(
        dict((await model.complete(REQUESTS["extractor"])).tool_uses[0].input)
    )
    verdict = Verdict.model_validate(
        dict((await model.complete(REQUESTS["validator"])).tool_uses[0].input)
    )
    assert verdict.valid, (route, record)
    return verdict


def langgraph_available() -> bool:
    try:
        import langgraph.graph  # noqa: F401
    except ImportError:
        return False
    return True


LANGGRAPH_MISSING = "langgraph not installed: pip install -e '.[bench]'"


class TriageState(TypedDict, total=False):
    ticket: str
    route: Route
    record: Record
    verdict: Verdict


def langgraph_triage(model: InstantModel) -> Any:
    """The same three nodes as a LangGraph `StateGraph` (graph engine only, no LLM wrapper)."""
    from langgraph.graph import END, START, StateGraph

    async def route(state: TriageState) -> dict[str, Any]:
        response = await model.complete(REQUESTS["router"])
        return {"route": Route.model_validate(dict(response.tool_uses[0].input))}

    async def extract(state: TriageState) -> dict[str, Any]:
        response = await model.complete(REQUESTS["extractor"])
        return {"record": Record.model_validate(dict(response.tool_uses[0].input))}

    async def check(state: TriageState) -> dict[str, Any]:
        response = await model.complete(REQUESTS["validator"])
        return {"verdict": Verdict.model_validate(dict(response.tool_uses[0].input))}

    graph = StateGraph(TriageState)
    graph.add_node("route", route)
    graph.add_node("extract", extract)
    graph.add_node("check", check)
    graph.add_edge(START, "route")
    graph.add_edge("route", "extract")
    graph.add_edge("extract", "check")
    graph.add_edge("check", END)
    return graph.compile()


class CountingStoreExporter(ma.tracing.SqliteSpanExporter):
    """The embedded store's exporter, counting what it stored (so a run can show that no
    span was dropped)."""

    stored = 0

    def export(self, spans: Any) -> Any:
        result = super().export(spans)
        self.stored += len(spans)
        return result


def store_provider() -> tuple[CountingStoreExporter, Any, ma.tracing.StoreSpanProcessor]:
    """A tracer provider exporting to a fresh embedded store, set up as `default_tracing()`
    sets it up (the store's own processor, with its default queue and batch sizes)."""
    from opentelemetry.sdk.trace import TracerProvider

    exporter = CountingStoreExporter(Path(tempfile.mkdtemp()) / "traces.sqlite3")
    provider = TracerProvider()
    processor = ma.tracing.StoreSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return exporter, provider, processor
