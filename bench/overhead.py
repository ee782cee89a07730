"""Framework overhead per step: plain asyncio vs microagents (untraced, traced, journaled, and
resumed with every step replayed from its journal) vs LangGraph.

The workload is the 3-step triage pipeline (router → extractor → validator) with an instant
in-process model, so that what is measured is the framework, not a model: µs per step,
sequential, after a warm-up pass, median of 5 timed passes (3 in quick mode). The verdict is
the ratio to plain asyncio doing the same awaits and pydantic validations, measured in the same
run.

    .venv/bin/python -m bench.overhead [--quick]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

import microagents as ma

from ._workload import (
    LANGGRAPH_MISSING,
    STEPS,
    TICKET,
    InstantModel,
    langgraph_available,
    langgraph_triage,
    plain_triage,
    store_provider,
    triage_workflow,
)

Body = Callable[[int], Awaitable[None]]
ASYNCIO = "plain asyncio (3 awaits + pydantic validation)"
UNTRACED = "microagents, untraced"
DROPPED = "microagents, traced (spans dropped)"
IN_MEMORY = "microagents, traced to an in-memory exporter"
STORED = "microagents, traced to the embedded store"
JOURNALED = "microagents, journaled (untraced)"
REPLAYED = "microagents, resumed: every step replayed from the journal"
LANGGRAPH = "LangGraph (graph engine only)"
# Runs between flushes of the store's span queue (~8 spans a run; the queue holds 16,384).
FLUSH_EVERY = 1_000


async def plain_asyncio(runs: int) -> None:
    model = InstantModel()
    for _ in range(runs):
        await plain_triage(model)


def microagents_runs(
    tracing: ma.tracing.Tracing | None, after_pass: Callable[[], object] | None = None
) -> Body:
    workflow = triage_workflow()

    async def go(runs: int) -> None:
        async with ma.Engine(InstantModel(), tracing=tracing) as engine:
            for done in range(1, runs + 1):
                result = await engine.run(workflow, TICKET)
                assert result.ok, result.error
                if after_pass is not None and done % FLUSH_EVERY == 0:
                    after_pass()  # before the span queue can overflow and drop spans
        if after_pass is not None:
            after_pass()  # inside the timed pass: the export is part of what tracing costs

    return go


def journaled_runs(path: Path) -> Body:
    """Every step recorded in a journal (a fresh file per pass), no tracing."""
    workflow = triage_workflow()
    passes = itertools.count()

    async def go(runs: int) -> None:
        journal = ma.runtime.SQLiteJournal(path / f"journal-{next(passes)}.sqlite3")
        # The closing commit of what is queued is inside the timed pass: part of the cost.
        async with ma.Engine(InstantModel(), journal=journal) as engine:
            for _ in range(runs):
                result = await engine.run(workflow, TICKET)
                assert result.ok, result.error

    return go


def replayed_runs(path: Path, recorded: int) -> Body:
    """Runs resumed from a journal that holds all their steps: no model call at all."""
    workflow = triage_workflow()
    journal_path = path / "replayed.sqlite3"

    async def record() -> None:
        async with ma.Engine(
            InstantModel(), journal=ma.runtime.SQLiteJournal(journal_path)
        ) as engine:
            for n in range(recorded):
                await engine.run(workflow, TICKET, run_id=f"run-{n}")

    anyio.run(record)

    async def go(runs: int) -> None:
        model = InstantModel()
        async with ma.Engine(model, journal=ma.runtime.SQLiteJournal(journal_path)) as engine:
            for n in range(runs):
                result = await engine.run(workflow, TICKET, run_id=f"run-{n}", resume=True)
                assert result.ok, result.error
                assert result.replayed == STEPS, result.replayed

    return go


def langgraph_runs() -> Body:
    graph = langgraph_triage(InstantModel())

    async def go(runs: int) -> None:
        for _ in range(runs):
            state = await graph.ainvoke(dict(TICKET))
            assert state["verdict"].valid

    return go


def measure(body: Body, runs: int, repetitions: int) -> float:
    """Median µs per step over `repetitions` timed passes, after one warm-up pass."""
    anyio.run(body, max(50, runs // 10))
    samples = []
    for _ in range(repetitions):
        gc.collect()
        started = time.perf_counter()
        anyio.run(body, runs)
        samples.append((time.perf_counter() - started) / runs / STEPS * 1e6)
    return statistics.median(samples)


def run(quick: bool) -> dict[str, Any]:
    """Print the overhead table; return its ratios."""
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    runs, repetitions = (1_000, 3) if quick else (4_000, 5)

    class NoExport(SpanProcessor):
        """Receives spans and drops them: the hot-path cost of tracing alone."""

    no_export = TracerProvider()
    no_export.add_span_processor(NoExport())
    # What a test suite does: every span kept in a list (cleared between passes).
    memory = InMemorySpanExporter()
    in_memory = TracerProvider()
    in_memory.add_span_processor(SimpleSpanProcessor(memory))
    _, to_store, store_queue = store_provider()
    folder = tempfile.TemporaryDirectory(prefix="microagents-bench-")
    journal_folder = Path(folder.name)
    contenders: list[tuple[str, Body, int]] = [
        (ASYNCIO, plain_asyncio, runs),
        (UNTRACED, microagents_runs(None), runs),
        (DROPPED, microagents_runs(ma.tracing.Tracing.from_provider(no_export)), runs),
        (
            IN_MEMORY,
            microagents_runs(ma.tracing.Tracing.from_provider(in_memory), memory.clear),
            runs,
        ),
        (
            STORED,
            microagents_runs(ma.tracing.Tracing.from_provider(to_store), to_store.force_flush),
            runs,
        ),
        (JOURNALED, journaled_runs(journal_folder), runs),
        # Each resume reads its run and steps (two queries in a worker thread): fewer runs.
        (REPLAYED, replayed_runs(journal_folder, runs // 4), runs // 4),
    ]
    if langgraph_available():
        # ~10x slower per step: a quarter of the runs keeps each pass about as long.
        contenders.append((LANGGRAPH, langgraph_runs(), max(100, runs // 4)))

    print(f"\n## overhead: µs per step, sequential, instant model, median of {repetitions}")
    print(f"{'contender':48}  {'runs':>6}  {'µs/step':>8}  {'vs asyncio':>10}")
    results: dict[str, float] = {}
    for name, body, n in contenders:
        results[name] = per_step = measure(body, n, repetitions)
        print(f"{name:48}  {n:6}  {per_step:8.1f}  {per_step / results[ASYNCIO]:9.1f}x")
    to_store.shutdown()
    folder.cleanup()
    if LANGGRAPH not in results:
        print(LANGGRAPH_MISSING)
    if store_queue.dropped:
        print(f"warning: the store's queue overflowed: {store_queue.dropped} spans were dropped")

    untraced = results[UNTRACED]
    ratios: dict[str, Any] = {
        "asyncio_us_per_step": round(results[ASYNCIO], 1),
        "untraced_us_per_step": round(untraced, 1),
        "untraced_vs_asyncio": round(untraced / results[ASYNCIO], 1),
        "traced_dropped_vs_untraced": round(results[DROPPED] / untraced, 2),
        "traced_in_memory_vs_untraced": round(results[IN_MEMORY] / untraced, 2),
        "traced_store_vs_untraced": round(results[STORED] / untraced, 2),
        "journaled_us_per_step": round(results[JOURNALED], 1),
        "journaled_vs_untraced": round(results[JOURNALED] / untraced, 2),
        "replayed_us_per_step": round(results[REPLAYED], 1),
        "spans_dropped": store_queue.dropped,
    }
    if LANGGRAPH in results:
        ratios["langgraph_us_per_step"] = round(results[LANGGRAPH], 1)
        ratios["langgraph_vs_untraced"] = round(results[LANGGRAPH] / untraced, 1)
        ratios["langgraph_vs_traced_store"] = round(results[LANGGRAPH] / results[STORED], 1)
    print(
        f"untraced microagents: {untraced:.1f} µs/step; traced to the store "
        f"{ratios['traced_store_vs_untraced']}x untraced"
        + (
            f"; LangGraph is {ratios['langgraph_vs_untraced']}x untraced microagents"
            if LANGGRAPH in results
            else ""
        )
    )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, for CI-sized machines")
    run(parser.parse_args().quick)


if __name__ == "__main__":
    main()
