"""Message Batches mode at scale: a one-node workflow over N items (100,000; 10,000 in quick
mode) in batch mode against the fake server, whose batches take 1 s to process.

Each contender runs in a fresh subprocess (its peak RSS and CPU are its own), and the fake
server in another (its CPU and memory are not the client's):

- **batch mode**: `run_batch(..., batch_api=...)` on `BatchApiModel`: a pass that defers
  every item's call (each run suspends in the journal), one round of Message Batches, the
  collection of their results into the journal, and a pass that resumes every run;
- **batch mode, a full queue**: the same, against an account whose processing queue holds a
  quarter of the items (the API's per-tier limit on batch requests in processing; batches
  take 3 s per 10,000 items here, so that it binds): the round is submitted in four parts,
  and the items whose calls wait for room are left as they are by each pass, not run again;
- **standard mode** (the baseline): the same items through the standard Messages API at
  concurrency 500, checkpoints on as in batch mode.

Reported: wall time, client-side CPU per item (user + system, `resource.getrusage`), peak
RSS (`ru_maxrss`), rounds, and batch mode's ratios to standard mode. Figures come from the
fake server on loopback, never the real API (whose batches take minutes to hours).

    .venv/bin/python -m bench.batch_scale [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

import microagents as ma

from ._workload import ANSWERS, TEXT, Route

API_KEY = "sk-bench-not-a-real-key"
CONCURRENCY = 500
PROCESSING_SECONDS = 1.0


def serve(processing: float, queue_limit: int | None) -> None:
    """Run the fake server until stdin closes (the parent process's end)."""
    from microagents.testing import BatchSettings, FakeAnthropicServer, Reply, ServerRateLimits

    unlimited = ServerRateLimits(10**9, 10**12, 10**12)
    batches = BatchSettings(processing_seconds=processing, queue_limit=queue_limit)
    with FakeAnthropicServer(rate_limits=unlimited, batches=batches) as server:
        server.on(Reply.structured(ANSWERS["router"]), message_contains="Route:")
        print(server.base_url, flush=True)
        sys.stdin.read()


def one_node_workflow() -> ma.CompiledWorkflow:
    router = ma.AgentSpec(
        name="router",
        version="1.0.0",
        description="router",
        prompt="Route: {{ text }}",
        input=TEXT,
        output=Route,
    )
    flow = (
        ma.Workflow("route", input={"type": "object", "properties": {"ticket": {"type": "string"}}})
        .node("route", agent=router, input={"text": "{{ input.ticket }}"})
        .returns("{{ nodes.route.output }}")
    )
    return flow.compile(ma.Project(tempfile.mkdtemp()))


def write_input(path: Path, lines: int) -> None:
    with path.open("w") as handle:
        for n in range(lines):
            handle.write(json.dumps({"id": f"T-{n}", "ticket": f"I was charged twice ({n})"}))
            handle.write("\n")


def child(mode: str, lines: int, base_url: str, folder: Path) -> dict[str, Any]:
    """One contender in this process, against the server at `base_url`; its figures."""
    from microagents.runtime._batch import run_batch
    from microagents.runtime._batch_api import BatchApiModel
    from microagents.runtime._journal_store import SQLiteJournal
    from microagents.runtime._rounds import BatchApiOptions

    from .model_costs import _tiers

    source = folder / "items.jsonl"
    write_input(source, lines)
    workflow = one_node_workflow()
    tiers = _tiers()
    backend = ma.models.AnthropicModel(api_key=API_KEY, base_url=base_url, tiers=tiers)
    journal = SQLiteJournal(folder / "journal.sqlite3")
    options = BatchApiOptions(poll_interval=0.1, max_poll_interval=0.5)

    async def go() -> ma.results.BatchSummary:
        if mode == "batch":
            async with ma.Engine(
                BatchApiModel(backend), tiers=tiers, journal=journal, tracing=None
            ) as engine:
                return await run_batch(
                    engine,
                    workflow,
                    source,
                    folder / "out.jsonl",
                    concurrency=CONCURRENCY,
                    batch_api=options,
                )
        model = ma.models.anthropic_model(api_key=API_KEY, base_url=base_url, tiers=tiers)
        async with ma.Engine(model, tiers=tiers, tracing=None) as engine:
            return await run_batch(
                engine, workflow, source, folder / "out.jsonl", concurrency=CONCURRENCY,
                store=journal,
            )  # fmt: skip

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    summary = anyio.run(go)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    with (folder / "out.jsonl").open() as out:
        written = sum(1 for _ in out)
    assert summary.ok == lines, summary
    assert written == lines, (written, lines)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall": wall,
        "cpu": cpu,
        "peak": after.ru_maxrss / 1024,  # kB on Linux
        "rounds": summary.batch_api.rounds if summary.batch_api is not None else 0,
    }


def in_subprocess(
    mode: str,
    lines: int,
    processing: float = PROCESSING_SECONDS,
    queue_limit: int | None = None,
) -> dict[str, Any]:
    me = [sys.executable, "-m", "bench.batch_scale"]
    limit = [] if queue_limit is None else ["--queue-limit", str(queue_limit)]
    server = subprocess.Popen(
        [*me, "--serve", str(processing), *limit],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as folder:
            command = [*me, "--child", mode, str(lines), base_url, folder]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
    figures: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return figures


def run(quick: bool) -> dict[str, Any]:
    """Print the table; return batch mode's ratios to standard mode."""
    items = 10_000 if quick else 100_000
    print(
        f"\n## batch scale: a one-node workflow over {items:,} items, fake server "
        f"(batches processed in {PROCESSING_SECONDS:g} s), concurrency {CONCURRENCY}"
    )
    print(
        f"{'contender':40}  {'wall s':>7}  {'items/s':>8}  {'CPU µs/item':>11}  "
        f"{'peak MB':>7}  {'rounds':>6}"
    )
    rows = [
        ("standard mode (Messages API)", in_subprocess("standard", items)),
        ("batch mode (Message Batches API)", in_subprocess("batch", items)),
        # Batches take long enough that a quarter of the items fills the queue (creating
        # 5,000 requests takes the fake ~1 s).
        (
            "batch mode, queue of a quarter",
            in_subprocess("batch", items, 3.0 * items / 10_000, items // 4),
        ),
    ]
    for name, f in rows:
        print(
            f"{name:40}  {f['wall']:7.1f}  {items / f['wall']:8,.0f}  "
            f"{f['cpu'] / items * 1e6:11,.0f}  {f['peak']:7.0f}  {f['rounds']:6}"
        )
    standard, batch, queued = rows[0][1], rows[1][1], rows[2][1]
    cpu_ratio = batch["cpu"] / standard["cpu"]
    rss_ratio = batch["peak"] / standard["peak"]
    print(
        f"batch ÷ standard: CPU per item {cpu_ratio:.2f}x, peak RSS {rss_ratio:.2f}x, "
        f"wall {batch['wall'] / standard['wall']:.2f}x; a full queue ÷ batch: CPU per item "
        f"{queued['cpu'] / batch['cpu']:.2f}x"
    )
    return {
        "batch_scale_items": items,
        "batch_scale_cpu_us_per_item": round(batch["cpu"] / items * 1e6),
        "batch_scale_peak_rss_mb": round(batch["peak"]),
        "batch_scale_rounds": batch["rounds"],
        "batch_scale_cpu_ratio": round(cpu_ratio, 2),
        "batch_scale_rss_ratio": round(rss_ratio, 2),
        "batch_scale_full_queue_cpu_ratio": round(queued["cpu"] / batch["cpu"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer items, for CI-sized machines")
    parser.add_argument("--serve", type=float, metavar="PROCESSING_SECONDS")
    parser.add_argument("--queue-limit", type=int, metavar="REQUESTS")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "LINES", "BASE_URL", "FOLDER"))
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.queue_limit)
        return
    if args.child:
        mode, lines, base_url, folder = args.child
        print(json.dumps(child(mode, int(lines), base_url, Path(folder))))
        return
    run(args.quick)


if __name__ == "__main__":
    main()
