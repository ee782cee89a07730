"""Framework overhead per step: plain asyncio vs microagents (untraced and traced).

The workload is the 3-step triage pipeline (router → extractor → validator) with an instant
in-process model, so that what is measured is the framework, not a model. Each contender runs
the same number of runs in this process; the verdict is the ratio to plain asyncio doing the
same awaits and pydantic validations, measured in the same run.

    .venv/bin/python bench/overhead.py            # ~20 s
    .venv/bin/python bench/overhead.py --quick    # ~5 s

The full benchmark suite (concurrency, scale, memory, LangGraph side by side) is the
benchmark issue's; this script is its first piece.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

import microagents as ma
from microagents._model import ModelRequest, ModelResponse, ToolUseBlock, Usage

STEPS = 3
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


async def plain_asyncio(runs: int) -> None:
    """The floor: the same three awaits and validations, no framework."""
    model = InstantModel()
    request = {n: ModelRequest("claude-haiku-4-5", (), metadata={"agent": n}) for n in ANSWERS}
    for _ in range(runs):
        route = Route.model_validate(
            dict((await model.complete(request["router"])).tool_uses[0].input)
        )
        record = Record.model_validate(
            dict((await model.complete(request["extractor"])).tool_uses[0].input)
        )
        verdict = Verdict.model_validate(
            dict((await model.complete(request["validator"])).tool_uses[0].input)
        )
        assert verdict.valid, (route, record)


def microagents_runs(tracing: ma.Tracing | None) -> Callable[[int], Awaitable[None]]:
    workflow = triage_workflow()

    async def go(runs: int) -> None:
        async with ma.Engine(InstantModel(), tracing=tracing) as engine:
            for _ in range(runs):
                result = await engine.run(workflow, {"ticket": "I was charged twice"})
                assert result.ok, result.error

    return go


def measure(body: Callable[[int], Awaitable[None]], runs: int, repetitions: int) -> float:
    """Median µs per step over `repetitions` timed passes, after one warm-up pass."""
    anyio.run(body, max(50, runs // 10))
    samples = []
    for _ in range(repetitions):
        gc.collect()
        started = time.perf_counter()
        anyio.run(body, runs)
        samples.append((time.perf_counter() - started) / runs / STEPS * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, for CI-sized machines")
    args = parser.parse_args()
    runs, repetitions = (1_000, 3) if args.quick else (4_000, 5)

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanProcessor

    class NoExport(SpanProcessor):
        """Receives spans and drops them: the hot-path cost of tracing alone."""

    store_home = Path(tempfile.mkdtemp())
    no_export = TracerProvider()
    no_export.add_span_processor(NoExport())
    to_store = TracerProvider()
    to_store.add_span_processor(
        BatchSpanProcessor(
            ma.SqliteSpanExporter(store_home / "traces.sqlite3"),
            max_queue_size=16_384,
            max_export_batch_size=1_024,
        )
    )
    dropped = ma.Tracing.from_provider(no_export)
    stored = ma.Tracing.from_provider(to_store)
    contenders: list[tuple[str, Callable[[int], Awaitable[None]]]] = [
        ("plain asyncio (3 awaits + pydantic validation)", plain_asyncio),
        ("microagents, untraced", microagents_runs(None)),
        ("microagents, traced (spans dropped)", microagents_runs(dropped)),
        ("microagents, traced to the embedded store", microagents_runs(stored)),
    ]
    results: dict[str, float] = {}
    print(f"{'contender':48}  {'µs/step':>8}  {'vs asyncio':>10}")
    for name, body in contenders:
        per_step = measure(body, runs, repetitions)
        results[name] = per_step
        floor = results[contenders[0][0]]
        print(f"{name:48}  {per_step:8.1f}  {per_step / floor:9.1f}x")
    to_store.shutdown()
    untraced = results[contenders[1][0]]
    ratios: dict[str, Any] = {
        "untraced_us_per_step": round(untraced, 1),
        "untraced_vs_asyncio": round(untraced / results[contenders[0][0]], 1),
        "traced_dropped_vs_untraced": round(results[contenders[2][0]] / untraced, 2),
        "traced_store_vs_untraced": round(results[contenders[3][0]] / untraced, 2),
    }
    print("RATIOS " + json.dumps(ratios))


if __name__ == "__main__":
    main()
