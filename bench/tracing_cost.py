"""Where tracing to the embedded store spends its time, part by part.

The overhead benchmark's workload (3-step triage, instant model, sequential runs), traced five
ways, each adding one part of the store's path to the one before:

1. untraced (the baseline);
2. spans made and dropped (the hot path alone);
3. spans queued by the store's processor, whose writer takes them and throws them away (the
   queue, the writer thread and the spans it holds);
4. ... and encodes them as it would store them, without writing (the exporter's Python work);
5. ... and stores them (SQLite).

The passes are interleaved, and each contender's figure is its fastest pass: on a shared
machine a slow pass is noise, and interleaving spreads the drift over every contender.

    .venv/bin/python -m bench.tracing_cost [--quick]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

import microagents as ma

from ._workload import STEPS
from .overhead import microagents_runs


class _DiscardingExporter(ma.tracing.SqliteSpanExporter):
    """Takes spans and throws them away."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class _EncodingExporter(ma.tracing.SqliteSpanExporter):
    """Encodes spans and their run rows exactly as the store does, then throws them away."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.rows_for(spans)
        return SpanExportResult.SUCCESS


def _through_store_processor(exporter: ma.tracing.SqliteSpanExporter) -> Any:
    provider = TracerProvider()
    processor = ma.tracing.StoreSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return microagents_runs(ma.tracing.Tracing.from_provider(provider), processor.force_flush)


def run(quick: bool) -> dict[str, Any]:
    """Print the table; return each part's share as a ratio to untraced."""
    runs, passes = (500, 3) if quick else (2_000, 7)

    class Drop(SpanProcessor):
        """Receives spans and drops them."""

    dropping = TracerProvider()
    dropping.add_span_processor(Drop())
    folder = Path(tempfile.mkdtemp())
    contenders = {
        "untraced": microagents_runs(None),
        "spans made and dropped": microagents_runs(ma.tracing.Tracing.from_provider(dropping)),
        "+ queued for the store, discarded": _through_store_processor(
            _DiscardingExporter(folder / "discard.sqlite3")
        ),
        "+ encoded as stored": _through_store_processor(
            _EncodingExporter(folder / "encode.sqlite3")
        ),
        "+ written to SQLite (the store)": _through_store_processor(
            ma.tracing.SqliteSpanExporter(folder / "traces.sqlite3")
        ),
    }
    fastest = {name: float("inf") for name in contenders}
    for body in contenders.values():
        anyio.run(body, max(50, runs // 10))  # warm-up
    for _ in range(passes):
        for name, body in contenders.items():
            gc.collect()
            started = time.perf_counter()
            anyio.run(body, runs)
            per_run = (time.perf_counter() - started) / runs * 1e6
            fastest[name] = min(fastest[name], per_run)

    untraced = fastest["untraced"]
    print(
        f"\n## tracing cost, part by part: {runs} runs a pass, fastest of {passes} "
        "interleaved passes, instant model"
    )
    print(f"{'contender':40}  {'µs/run':>8}  {'µs/step':>8}  {'vs untraced':>11}  {'added':>8}")
    previous = untraced
    for name, per_run in fastest.items():
        print(
            f"{name:40}  {per_run:8.1f}  {per_run / STEPS:8.1f}  {per_run / untraced:10.2f}x"
            f"  {per_run - previous:+8.1f}"
        )
        previous = per_run
    names = ("dropped", "queued", "encoded", "stored")
    return {
        f"tracing_{key}_vs_untraced": round(fastest[name] / untraced, 2)
        for key, name in zip(names, list(contenders)[1:], strict=True)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and passes")
    run(parser.parse_args().quick)


if __name__ == "__main__":
    main()
