"""The embedded store's span processor: a bounded queue, a writer thread, and what reaches
the store being exactly what every other exporter sees."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes
from tests.test_tracing import run_triage

import microagents as ma
from microagents.tracing._store import SpanRecord, TraceStore, default_trace_path
from microagents.tracing._tracing import Tracing


def store_provider(**options: Any) -> tuple[TracerProvider, ma.tracing.StoreSpanProcessor]:
    provider = TracerProvider(shutdown_on_exit=False)
    processor = ma.tracing.StoreSpanProcessor(ma.tracing.SqliteSpanExporter(keep_days=0), **options)
    provider.add_span_processor(processor)
    return provider, processor


def stored_span_count() -> int:
    if not default_trace_path().exists():
        return 0
    with sqlite3.connect(default_trace_path()) as db:
        try:
            (count,) = db.execute(
                "SELECT COALESCE(SUM(json_array_length(spans)), 0) FROM span_batches"
            ).fetchone()
        except sqlite3.OperationalError:  # the writer is creating the tables
            count = 0
    db.close()
    return int(count)


def wait_until_stored(count: int) -> None:
    deadline = time.monotonic() + 10
    while stored_span_count() < count and time.monotonic() < deadline:
        time.sleep(0.02)


def end_spans(provider: TracerProvider, count: int) -> None:
    tracer = provider.get_tracer("test")
    for number in range(count):
        tracer.start_span(f"span {number}").end()


def test_the_writer_stores_spans_without_being_asked() -> None:
    provider, processor = store_provider(interval_s=0.02)
    end_spans(provider, 3)
    wait_until_stored(3)
    assert stored_span_count() == 3
    processor.shutdown()


def test_the_writer_wakes_as_soon_as_enough_spans_have_queued() -> None:
    provider, processor = store_provider(wake_after=4, interval_s=3600)
    end_spans(provider, 4)
    wait_until_stored(4)
    assert stored_span_count() == 4
    processor.shutdown()


def test_a_full_queue_drops_new_spans_counts_them_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider, processor = store_provider(max_queue_size=3, interval_s=3600)
    with caplog.at_level(logging.WARNING, logger="microagents.trace_store"):
        end_spans(provider, 5)
    assert processor.dropped == 2
    [warning] = [r.getMessage() for r in caplog.records]  # once, not once per span
    assert "queue is full (3 spans): 1 spans dropped" in warning
    assert processor.force_flush()
    assert stored_span_count() == 3


def test_shutdown_stores_what_is_queued_then_refuses_more() -> None:
    provider, processor = store_provider(interval_s=3600)
    end_spans(provider, 2)
    processor.shutdown()
    assert stored_span_count() == 2
    assert processor.force_flush() is False
    processor.shutdown()  # a second call is harmless


class RecordOnly(Sampler):
    """Records spans without sampling them: exporters must not receive them."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY)

    def get_description(self) -> str:
        return "RecordOnly"


def test_spans_recorded_but_not_sampled_are_not_stored() -> None:
    provider = TracerProvider(sampler=RecordOnly(), shutdown_on_exit=False)
    processor = ma.tracing.StoreSpanProcessor(
        ma.tracing.SqliteSpanExporter(keep_days=0), interval_s=3600
    )
    provider.add_span_processor(processor)
    end_spans(provider, 2)
    processor.shutdown()
    assert stored_span_count() == 0


def _as_stored(span: ReadableSpan) -> dict[str, Any]:
    """What the store should keep of a span the SDK handed to exporters."""
    assert span.context is not None
    return {
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "name": span.name,
        "kind": span.kind.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status_code": span.status.status_code.name,
        "status_message": span.status.description,
        "attributes": {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in (span.attributes or {}).items()
        },
        "events": [
            {"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
            for e in span.events
        ],
        "resource": dict(span.resource.attributes),
    }


def test_the_store_keeps_exactly_what_exporters_see(project: ma.Project) -> None:
    """Our spans are encoded by a fast path of their own; the store must not differ from
    what an exporter reading the `ReadableSpan` API gets."""
    seen = InMemorySpanExporter()
    provider, processor = store_provider(interval_s=3600)
    provider.add_span_processor(SimpleSpanProcessor(seen))
    result = run_triage(project, Tracing.from_provider(provider))
    processor.force_flush()
    exported = [_as_stored(span) for span in seen.get_finished_spans()]
    stored = [span.to_json() for span in TraceStore().get_trace(result.run_id)]
    processor.shutdown()
    assert sorted((s["name"], s["kind"], len(s["events"])) for s in exported) == [
        ("ask_human human_review", "INTERNAL", 0),  # where the run waits for a person
        ("chat claude-haiku-4-5", "CLIENT", 0),
        ("chat claude-sonnet-4-6", "CLIENT", 0),
        ("invoke_agent route (router) ⤴ sonnet", "INTERNAL", 1),  # the escalation
        ("invoke_workflow support_triage", "INTERNAL", 0),
    ]
    assert sorted(stored, key=lambda s: s["span_id"]) == sorted(
        exported, key=lambda s: s["span_id"]
    )


def test_the_applications_own_spans_are_stored_with_the_run(project: ma.Project) -> None:
    """Joining an application's provider, the store gets its spans too: the SDK's own span
    objects, in the same batch as ours."""
    provider, processor = store_provider(interval_s=3600)
    with provider.get_tracer("app").start_as_current_span("handle request") as outer:
        result = run_triage(project, Tracing.from_provider(provider))
    processor.force_flush()
    assert stored_span_count() == 6
    run = TraceStore().get_trace(result.trace_id or "")
    assert [span.to_json() for span in run] == [
        span.to_json() for span in TraceStore().get_trace(result.run_id)
    ]
    assert len(run) == 5
    assert run[0].name == "invoke_workflow support_triage"
    assert run[0].parent_span_id == format(outer.get_span_context().span_id, "016x")
    processor.shutdown()


def _span_names(spans: list[SpanRecord]) -> list[str]:
    return sorted(span.name for span in spans)


def test_a_trace_without_a_run_is_found_by_its_id(tmp_path: Path) -> None:
    provider, processor = store_provider(interval_s=3600)
    span = provider.get_tracer("app").start_span("lonely")
    span.end()
    processor.force_flush()
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert _span_names(TraceStore().get_trace(trace_id[:12])) == ["lonely"]
    assert TraceStore().get_run(trace_id) is None
    processor.shutdown()


def test_our_spans_are_stored_whole_when_orjson_refuses_a_value() -> None:
    """An integer beyond 64 bits sends the batch to the standard library's encoder, which
    must write our spans' kinds and events as orjson does."""
    provider, processor = store_provider(interval_s=3600)
    tracing = Tracing.from_provider(provider)
    with tracing.run_span("w", "1", "big-2", nested=False, batch_index=None) as span:
        span.set_attribute("tool.rows", 2**70)
        tracing.escalation_event(span, "low_confidence", "haiku", "sonnet")
    processor.shutdown()
    [run] = TraceStore().get_trace("big-2")
    assert (run.kind, run.attributes["tool.rows"]) == ("INTERNAL", 2**70)
    assert [(e.name, dict(e.attributes)) for e in run.events] == [
        (
            "microagents.escalation",
            {
                "microagents.escalation.trigger": "low_confidence",
                "microagents.tier": "haiku",
                "microagents.escalation.to_tier": "sonnet",
            },
        )
    ]
