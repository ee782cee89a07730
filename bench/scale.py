"""Scale and memory: a big JSONL batch through the batch runner, checkpoints on.

Two measurements, each in a fresh subprocess so that its peak RSS is its own:

- **scale**: N items (100,000; 20,000 in quick mode) through `run_batch` at concurrency 1,000
  with 20 ms per model call: items per second, ideal ÷ actual (ideal = N / 1,000 × 3 × 20 ms)
  and peak RSS. The floor, measured the same way in its own subprocess, is plain asyncio
  reading the same JSONL, doing the three awaits and validations per line at the same
  concurrency and writing one JSON line per item (no checkpoints).
- **memory**: 1,000,000 lines (100,000 in quick mode) with an instant model at concurrency
  1,000: resident memory when 10% of the lines are done and at the end. Flat means the
  batch runner holds a bounded window of items, not the file.

    .venv/bin/python -m bench.scale [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

import microagents as ma

from ._workload import STEPS, InstantModel, SleepyModel, plain_triage, triage_workflow

CONCURRENCY = 1_000
DELAY = 0.02
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """Resident memory of this process now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


def peak_rss_mb() -> float:
    """This process's peak resident memory. (Not `getrusage`'s ru_maxrss: Linux carries it
    over `exec`, so a child would report its parent's peak when that was higher.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def write_input(path: Path, lines: int) -> None:
    with path.open("w") as handle:
        for n in range(lines):
            handle.write(json.dumps({"id": f"T-{n}", "ticket": f"I was charged twice ({n})"}))
            handle.write("\n")


class _Sampler:
    """A batch observer that notes resident memory at 10% of the lines and at the end."""

    interval = 0.05

    def __init__(self, lines: int) -> None:
        self.lines = lines
        self.at_10: float | None = None

    def update(self, progress: ma.runtime.BatchProgress, **_: Any) -> None:
        if self.at_10 is None and progress.done >= self.lines // 10:
            self.at_10 = rss_mb()

    def note(self, message: str, **_: Any) -> None:
        pass


def child_batch(lines: int, delay: float, folder: Path) -> dict[str, Any]:
    """One batch through microagents' runner; returns its figures."""
    source = folder / "items.jsonl"
    write_input(source, lines)
    model = SleepyModel(delay) if delay else InstantModel()
    workflow = triage_workflow()
    sampler = _Sampler(lines)
    os.environ["MICROAGENTS_HOME"] = str(folder / "home")

    async def go() -> ma.results.BatchSummary:
        async with ma.Engine(model) as engine:
            return await ma.run_batch(
                engine,
                workflow,
                source,
                folder / "out.jsonl",
                concurrency=CONCURRENCY,
                observer=sampler,
            )

    started = time.perf_counter()
    summary = anyio.run(go)
    wall = time.perf_counter() - started
    with (folder / "out.jsonl").open() as out:
        written = sum(1 for _ in out)
    assert summary.failed == 0, summary
    assert written == lines, (written, lines)
    return {
        "wall": wall,
        "rss_10": sampler.at_10,
        "rss_end": rss_mb(),
        "peak": peak_rss_mb(),
    }


def child_plain(lines: int, delay: float, folder: Path) -> dict[str, Any]:
    """The floor: the same JSONL through plain asyncio, no checkpoints."""
    source = folder / "items.jsonl"
    write_input(source, lines)
    model = SleepyModel(delay)

    async def go() -> None:
        slots = asyncio.Semaphore(CONCURRENCY)
        with source.open() as lines_in, (folder / "out.jsonl").open("w") as out:

            async def one(line: str) -> None:
                try:
                    item = json.loads(line)
                    verdict = await plain_triage(model)
                    out.write(json.dumps({"id": item["id"], "output": verdict.model_dump()}))
                    out.write("\n")
                finally:
                    slots.release()

            async with asyncio.TaskGroup() as group:
                for line in lines_in:
                    await slots.acquire()
                    group.create_task(one(line))

    started = time.perf_counter()
    asyncio.run(go())
    return {"wall": time.perf_counter() - started, "peak": peak_rss_mb()}


def in_subprocess(kind: str, lines: int, delay: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "bench.scale", "--child", kind, str(lines), str(delay)]
        output = subprocess.run(
            [*command, folder], check=True, capture_output=True, text=True
        ).stdout
    figures: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return figures


def run(quick: bool) -> dict[str, Any]:
    """Print the scale and memory tables; return their ratios."""
    items = 20_000 if quick else 100_000
    memory_lines = 100_000 if quick else 1_000_000
    ideal = items / CONCURRENCY * STEPS * DELAY
    print(
        f"\n## scale: {items:,} items, JSONL in and out, concurrency {CONCURRENCY:,}, "
        f"{DELAY * 1000:.0f} ms per model call, ideal {ideal:.1f} s"
    )
    print(f"{'contender':48}  {'wall s':>7}  {'items/s':>8}  {'ideal/actual':>12}  {'peak MB':>7}")
    rows = [
        ("plain asyncio (JSONL in/out, no checkpoints)", in_subprocess("plain", items, DELAY)),
        ("microagents run_batch (checkpoints on)", in_subprocess("batch", items, DELAY)),
    ]
    for name, figures in rows:
        wall = figures["wall"]
        print(
            f"{name:48}  {wall:7.1f}  {items / wall:8,.0f}  {ideal / wall:12.2f}  "
            f"{figures['peak']:7.0f}"
        )
    plain, batch = rows[0][1], rows[1][1]
    print(
        f"\n## memory: {memory_lines:,} lines, instant model, concurrency {CONCURRENCY:,}, "
        "checkpoints on"
    )
    flat = in_subprocess("batch", memory_lines, 0.0)
    # The 10% sample needs a run long enough for the observer to see it (any real size).
    at_10 = flat["rss_10"] or float("nan")
    growth = flat["rss_end"] / at_10
    print(f"{'RSS at 10% of the lines':48}  {at_10:7.0f} MB")
    print(f"{'RSS at 100% of the lines':48}  {flat['rss_end']:7.0f} MB  ({growth:.2f}x)")
    print(f"{'peak RSS':48}  {flat['peak']:7.0f} MB  ({memory_lines / flat['wall']:,.0f} lines/s)")
    return {
        "scale_items": items,
        "scale_items_per_s": round(items / batch["wall"]),
        "scale_efficiency": round(ideal / batch["wall"], 2),
        "scale_asyncio_efficiency": round(ideal / plain["wall"], 2),
        "scale_peak_rss_mb": round(batch["peak"]),
        "memory_lines": memory_lines,
        "memory_rss_10_mb": round(at_10) if flat["rss_10"] else None,
        "memory_rss_end_mb": round(flat["rss_end"]),
        "memory_growth": round(growth, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer items, for CI-sized machines")
    parser.add_argument("--child", nargs=4, metavar=("KIND", "LINES", "DELAY", "FOLDER"))
    args = parser.parse_args()
    if args.child:
        kind, lines, delay, folder = args.child
        child = child_batch if kind == "batch" else child_plain
        print(json.dumps(child(int(lines), float(delay), Path(folder))))
        return
    run(args.quick)


if __name__ == "__main__":
    main()
