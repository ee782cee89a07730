"""Concurrency efficiency: N runs of the 3-step workflow, 200 at a time, 20 ms per model call.

Each model call is an `await anyio.sleep(0.02)` (latency, no CPU), so a framework that costs
nothing would finish in ideal = N / 200 × 3 × 20 ms. The figure is ideal ÷ actual wall time
(1.0 is perfect), for plain asyncio (a semaphore-bounded task per run doing the three awaits),
microagents (`Engine.run_many`, untraced) and LangGraph (`ainvoke` under a semaphore).

    .venv/bin/python -m bench.concurrency [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread

import microagents as ma

from ._workload import (
    LANGGRAPH_MISSING,
    STEPS,
    TICKET,
    SleepyModel,
    langgraph_available,
    langgraph_triage,
    plain_triage,
    store_provider,
    triage_workflow,
)

CONCURRENCY = 200
DELAY = 0.02
Body = Callable[[int], Awaitable[None]]


async def _bounded(runs: int, one: Callable[[], Awaitable[object]]) -> None:
    slots = asyncio.Semaphore(CONCURRENCY)

    async def task() -> None:
        async with slots:
            await one()

    await asyncio.gather(*(task() for _ in range(runs)))


def plain_asyncio() -> Body:
    model = SleepyModel(DELAY)

    async def go(runs: int) -> None:
        await _bounded(runs, lambda: plain_triage(model))

    return go


def microagents_run_many(tracing: ma.tracing.Tracing | None = None) -> Body:
    workflow = triage_workflow()

    async def go(runs: int) -> None:
        done = 0
        async with ma.Engine(SleepyModel(DELAY), tracing=tracing) as engine:
            inputs = (TICKET for _ in range(runs))
            async for _, result in engine.run_many(workflow, inputs, concurrency=CONCURRENCY):
                assert result.ok, result.error
                done += 1
        assert done == runs

    return go


def flushed(body: Body, provider: Any) -> Body:
    """`body`, then the store's queue flushed inside the timed pass: writing is counted."""

    async def go(runs: int) -> None:
        await body(runs)
        await anyio.to_thread.run_sync(provider.force_flush)

    return go


def langgraph_ainvoke() -> Body:
    graph = langgraph_triage(SleepyModel(DELAY))

    async def go(runs: int) -> None:
        await _bounded(runs, lambda: graph.ainvoke(dict(TICKET)))

    return go


def efficiency(body: Body, runs: int, repetitions: int) -> tuple[float, float]:
    """(median wall seconds, ideal ÷ that) over `repetitions` passes after a warm-up pass."""
    ideal = runs / CONCURRENCY * STEPS * DELAY
    anyio.run(body, CONCURRENCY * 2)
    samples = []
    for _ in range(repetitions):
        gc.collect()
        started = time.perf_counter()
        anyio.run(body, runs)
        samples.append(time.perf_counter() - started)
    actual = statistics.median(samples)
    return actual, ideal / actual


def run(quick: bool) -> dict[str, Any]:
    """Print the concurrency table; return its ratios."""
    runs, repetitions = (1_000, 3) if quick else (5_000, 3)
    ideal = runs / CONCURRENCY * STEPS * DELAY
    store, to_store, _ = store_provider()
    contenders: list[tuple[str, str, Body]] = [
        ("asyncio", "plain asyncio (semaphore, task per run)", plain_asyncio()),
        ("microagents", "microagents (Engine.run_many, untraced)", microagents_run_many()),
        (
            "microagents_traced_store",
            "microagents (run_many, traced to the store)",
            flushed(microagents_run_many(ma.tracing.Tracing.from_provider(to_store)), to_store),
        ),
    ]
    if langgraph_available():
        contenders.append(
            ("langgraph", "LangGraph (ainvoke under a semaphore)", langgraph_ainvoke())
        )
    print(
        f"\n## concurrency: {runs:,} runs at concurrency {CONCURRENCY}, "
        f"{DELAY * 1000:.0f} ms per model call, ideal {ideal:.2f} s, median of {repetitions}"
    )
    print(f"{'contender':48}  {'wall s':>8}  {'ideal/actual':>12}")
    ratios: dict[str, Any] = {}
    for key, name, body in contenders:
        actual, ratio = efficiency(body, runs, repetitions)
        ratios[f"{key}_efficiency"] = round(ratio, 2)
        print(f"{name:48}  {actual:8.2f}  {ratio:12.2f}")
    to_store.shutdown()
    if "langgraph_efficiency" not in ratios:
        print(LANGGRAPH_MISSING)
    print(f"(the store received {store.stored:,} spans; none may be dropped)")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, for CI-sized machines")
    run(parser.parse_args().quick)


if __name__ == "__main__":
    main()
