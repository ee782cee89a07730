"""The embedded trace store: spans in, runs and traces out, retention, and no secrets kept.

Spans come from the real OpenTelemetry SDK with explicit start and end times, shaped as the
tracer shapes them (see `_semconv`), so that what is stored is exactly predictable.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from microagents import MicroagentsError
from microagents.errors import TraceNotFoundError
from microagents.tracing import _semconv as sc
from microagents.tracing._store import SqliteSpanExporter, TraceStore, default_trace_path

BASE_NS = 1_735_787_045_000_000_000  # 2025-01-02 03:04:05 UTC
MS = 1_000_000
FIRST_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C


class CountingIds(IdGenerator):
    """Predictable ids, so that a rendered trace can be a snapshot."""

    def __init__(self) -> None:
        self.traces = 0
        self.spans = 0

    def generate_span_id(self) -> int:
        self.spans += 1
        return self.spans

    def generate_trace_id(self) -> int:
        self.traces += 1
        return FIRST_TRACE_ID + self.traces - 1


def make_provider(exporter: SqliteSpanExporter, *, batch: bool = False) -> TracerProvider:
    provider = TracerProvider(
        id_generator=CountingIds(),
        resource=Resource({"service.name": "microagents-tests"}),
        shutdown_on_exit=False,
    )
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return provider


class _Recorder:
    """Starts spans at fixed offsets (in ms) from the run's start."""

    def __init__(self, tracer: Tracer, start_ns: int) -> None:
        self.tracer = tracer
        self.start_ns = start_ns

    def start(
        self,
        name: str,
        parent: Span | None,
        at_ms: int,
        attributes: Mapping[str, Any],
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Span:
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(
            name,
            context=context,
            kind=kind,
            attributes=attributes,
            start_time=self.start_ns + at_ms * MS,
        )

    def end(self, span: Span, at_ms: int) -> None:
        span.end(end_time=self.start_ns + at_ms * MS)

    def chat(
        self,
        parent: Span,
        start_ms: int,
        end_ms: int,
        tier: str,
        tokens: tuple[int, int],
        cost: float,
        *,
        finish: str = "end_turn",
        content: bool = False,
        **extra: Any,
    ) -> None:
        model = {"haiku": "claude-haiku-4-5", "sonnet": "claude-sonnet-4-6"}[tier]
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_CHAT,
            sc.PROVIDER_NAME: sc.PROVIDER,
            sc.REQUEST_MODEL: model,
            sc.TIER: tier,
        }
        if content:
            attributes[sc.SYSTEM_INSTRUCTIONS] = "You route support tickets."
            attributes[sc.INPUT_MESSAGES] = (
                '[{"role": "user", "parts": [{"type": "text", "text": "My invoice is wrong"}]}]'
            )
        span = self.start(f"chat {model}", parent, start_ms, attributes, SpanKind.CLIENT)
        span.set_attributes(
            {
                sc.RESPONSE_MODEL: model,
                sc.RESPONSE_ID: f"msg_{start_ms}",
                sc.RESPONSE_FINISH_REASONS: (finish,),
                sc.USAGE_INPUT_TOKENS: tokens[0],
                sc.USAGE_OUTPUT_TOKENS: tokens[1],
                sc.USAGE_CACHE_READ: 0,
                sc.USAGE_CACHE_CREATION: 0,
                sc.COST_USD: cost,
                sc.CACHE_HIT: False,
                sc.SIMULATED: False,
                sc.ATTEMPTS: 1,
                **extra,
            }
        )
        if content:
            span.set_attribute(
                sc.OUTPUT_MESSAGES,
                '[{"role": "assistant", "parts": [{"type": "tool_use", "id": "toolu_1", '
                '"name": "route", "input": {"queue": "billing", "confidence": 0.9}}]}]',
            )
        self.end(span, end_ms)

    def node(
        self,
        parent: Span,
        start_ms: int,
        node_id: str,
        agent: str,
        item_index: int | None = None,
    ) -> Span:
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_AGENT,
            sc.AGENT_NAME: agent,
            sc.AGENT_ID: f"{agent}@1.0.0",
            sc.NODE_ID: node_id,
            sc.NODE_KIND: "agent",
            sc.NODE_VISIT: 1,
        }
        if item_index is not None:
            attributes[sc.ITEM_INDEX] = item_index
        return self.start(f"invoke_agent {agent}", parent, start_ms, attributes)

    def finish_node(
        self, span: Span, end_ms: int, tier: str, tokens: tuple[int, int], cost: float
    ) -> None:
        span.set_attributes(
            {
                sc.TIER: tier,
                sc.COST_USD: cost,
                sc.USAGE_INPUT_TOKENS: tokens[0],
                sc.USAGE_OUTPUT_TOKENS: tokens[1],
            }
        )
        self.end(span, end_ms)


def record_fake_run(
    provider: TracerProvider,
    *,
    run_id: str = "c0ffee01-1",
    start_ns: int = BASE_NS,
    workflow: str = "support_triage",
    failed: bool = True,
    content: bool = False,
    batch_index: int | None = None,
) -> None:
    """One support-triage-like run: an escalation, a tool call, a fan-out, a failed node.

    Takes 1.5 s from `start_ns`; with ``failed=False`` the last node succeeds instead.
    """
    rec = _Recorder(provider.get_tracer("microagents"), start_ns)
    root_attributes: dict[str, Any] = {
        sc.OPERATION_NAME: sc.OP_WORKFLOW,
        sc.WORKFLOW_NAME: workflow,
        sc.WORKFLOW_VERSION: "1.0.0",
        sc.RUN_ID: run_id,
    }
    if batch_index is not None:
        root_attributes[sc.BATCH_INDEX] = batch_index
    root = rec.start(f"invoke_workflow {workflow}", None, 0, root_attributes)

    # classify: haiku is not sure, sonnet answers (after a retry and a rate-limit wait).
    classify = rec.node(root, 10, "classify", "router")
    rec.chat(classify, 20, 220, "haiku", (300, 40), 0.00031, content=content)
    classify.add_event(
        sc.EVENT_ESCALATION,
        {sc.ESCALATION_TRIGGER: "low_confidence", sc.TIER: "haiku", sc.ESCALATION_TO: "sonnet"},
        timestamp=start_ns + 230 * MS,
    )
    retried = {sc.ATTEMPTS: 2, sc.RATE_LIMIT_WAIT: 0.25}
    rec.chat(classify, 240, 600, "sonnet", (310, 60), 0.0021, **retried)
    rec.finish_node(classify, 610, "sonnet", (610, 100), 0.00241)

    # answer: a tool loop with one tool call.
    answer = rec.node(root, 620, "answer", "responder")
    rec.chat(answer, 630, 800, "haiku", (500, 30), 0.0005, finish="tool_use")
    tool_attributes: dict[str, Any] = {
        sc.OPERATION_NAME: sc.OP_TOOL,
        sc.TOOL_NAME: "kb.search",
        sc.TOOL_CALL_ID: "toolu_01",
        sc.TOOL_TYPE: "function",
    }
    if content:
        tool_attributes[sc.TOOL_CALL_ARGUMENTS] = '{"query": "invoice wrong"}'
    tool_call = rec.start("execute_tool kb.search", answer, 805, tool_attributes)
    if content:
        tool_call.set_attribute(sc.TOOL_CALL_RESULT, '{"hits": 2}')
    rec.end(tool_call, 900)
    rec.chat(answer, 905, 1090, "haiku", (650, 80), 0.0007)
    rec.finish_node(answer, 1100, "haiku", (1150, 110), 0.0012)

    # enrich: a map over two items.
    fan_out = rec.start(
        "fan_out enrich", root, 1105, {sc.NODE_ID: "enrich", "microagents.fan_out.items": 2}
    )
    for index in range(2):
        item = rec.node(fan_out, 1110, "enrich", "extractor", item_index=index)
        rec.chat(item, 1112, 1150 + 20 * index, "haiku", (120, 20), 0.0001)
        rec.finish_node(item, 1152 + 20 * index, "haiku", (120, 20), 0.0001)
    rec.end(fan_out, 1175)

    # validate: fails (or passes).
    validate = rec.node(root, 1180, "validate", "validator")
    rec.chat(validate, 1185, 1480, "haiku", (400, 1024), 0.0051, finish="max_tokens")
    if failed:
        validate.set_status(Status(StatusCode.ERROR, "output was cut off at max_tokens"))
        validate.set_attribute(sc.ERROR_TYPE, "NodeError")
    rec.finish_node(validate, 1490, "haiku", (400, 1024), 0.0051)

    root.set_attributes(
        {
            sc.RUN_STATUS: "failed" if failed else "ok",
            sc.COST_USD: 0.00891,
            sc.USAGE_INPUT_TOKENS: 2400,
            sc.USAGE_OUTPUT_TOKENS: 1274,
            sc.ESCALATION_COUNT: 1,
            sc.SIMULATED: False,
        }
    )
    if failed:
        root.set_status(Status(StatusCode.ERROR, "node 'validate' failed"))
        root.set_attribute(sc.ERROR_TYPE, "RunFailed")
    rec.end(root, 1500)


@pytest.fixture
def exporter() -> SqliteSpanExporter:
    # No age limit: the fake runs are dated 2025 so that rendered times are stable.
    return SqliteSpanExporter(keep_days=0)


@pytest.fixture
def provider(exporter: SqliteSpanExporter) -> TracerProvider:
    return make_provider(exporter)


def all_text(path: Path) -> str:
    """Every stored value as one string, to search for what must not be there."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT * FROM span_batches").fetchall()
        rows += db.execute("SELECT * FROM runs").fetchall()
    db.close()
    return "\n".join(repr(row) for row in rows)


# -- writing ---------------------------------------------------------------------------------


def test_a_run_is_stored_as_spans_and_one_run_row(provider: TracerProvider) -> None:
    record_fake_run(provider, batch_index=7)
    store = TraceStore()
    assert store.path == default_trace_path()
    [run] = store.list_runs()
    assert run.to_json() == {
        "run_id": "c0ffee01-1",
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": run.span_id,
        "workflow": "support_triage",
        "version": "1.0.0",
        "start_ns": BASE_NS,
        "end_ns": BASE_NS + 1500 * MS,
        "status": "failed",
        "input_tokens": 2400,
        "output_tokens": 1274,
        "cost_usd": 0.00891,
        "escalations": 1,
        "simulated": False,
        "batch_index": 7,
    }
    assert run.duration_s == 1.5

    spans = store.get_trace(run.run_id)
    assert [s.name for s in spans] == [
        "invoke_workflow support_triage",
        "invoke_agent router",
        "chat claude-haiku-4-5",
        "chat claude-sonnet-4-6",
        "invoke_agent responder",
        "chat claude-haiku-4-5",
        "execute_tool kb.search",
        "chat claude-haiku-4-5",
        "fan_out enrich",
        "invoke_agent extractor",
        "invoke_agent extractor",
        "chat claude-haiku-4-5",
        "chat claude-haiku-4-5",
        "invoke_agent validator",
        "chat claude-haiku-4-5",
    ]
    by_id = {s.span_id: s for s in spans}
    root, classify, haiku = spans[0], spans[1], spans[2]
    assert root.parent_span_id is None
    assert root.span_id == run.span_id
    assert classify.parent_span_id == root.span_id
    assert haiku.parent_span_id == classify.span_id
    assert all(s.parent_span_id in by_id for s in spans[1:])
    assert {s.trace_id for s in spans} == {run.trace_id}
    assert (haiku.kind, classify.kind) == ("CLIENT", "INTERNAL")
    # Sequence attributes come back as JSON lists; times are kept to the nanosecond.
    assert haiku.attributes[sc.RESPONSE_FINISH_REASONS] == ["end_turn"]
    assert (haiku.start_ns, haiku.end_ns) == (BASE_NS + 20 * MS, BASE_NS + 220 * MS)
    [escalation] = classify.events
    assert escalation.name == sc.EVENT_ESCALATION
    assert escalation.time_ns == BASE_NS + 230 * MS
    assert escalation.attributes == {
        sc.ESCALATION_TRIGGER: "low_confidence",
        sc.TIER: "haiku",
        sc.ESCALATION_TO: "sonnet",
    }
    failed = spans[-2]
    assert (failed.status_code, failed.status_message) == (
        "ERROR",
        "output was cut off at max_tokens",
    )
    assert spans[-1].status_code == "UNSET"
    assert root.resource["service.name"] == "microagents-tests"


def test_a_nested_workflow_is_part_of_its_parents_run(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("microagents")
    outer = {sc.RUN_ID: "r-1", sc.WORKFLOW_NAME: "outer"}
    node = {sc.NODE_ID: "sub", sc.NODE_KIND: "workflow"}
    inner = {sc.RUN_ID: "r-1/sub", sc.WORKFLOW_NAME: "inner", "microagents.run.nested": True}
    with (
        tracer.start_as_current_span("invoke_workflow outer", attributes=outer),
        tracer.start_as_current_span("invoke_workflow inner", attributes=node),
        tracer.start_as_current_span("invoke_workflow inner", attributes=inner),
    ):
        pass
    [run] = TraceStore().list_runs()
    assert (run.run_id, run.workflow, run.status) == ("r-1", "outer", "ok")
    assert len(TraceStore().get_trace("r-1")) == 3


def test_the_batch_processor_stores_everything_by_shutdown(exporter: SqliteSpanExporter) -> None:
    provider = make_provider(exporter, batch=True)
    for number in range(3):
        record_fake_run(provider, run_id=f"batch-{number}", start_ns=BASE_NS + number * 10**10)
    provider.shutdown()  # flushes the processor's queue, then shuts the exporter down
    store = TraceStore()
    assert [r.run_id for r in store.list_runs()] == ["batch-2", "batch-1", "batch-0"]
    assert len(store.get_trace("batch-1")) == 15
    assert exporter.export([]) is SpanExportResult.FAILURE  # shut down: no silent reopening
    assert exporter.force_flush() is True


def test_exports_from_many_threads_all_land(exporter: SqliteSpanExporter) -> None:
    provider = make_provider(exporter)  # SimpleSpanProcessor: export on each ending thread

    def work(number: int) -> None:
        record_fake_run(provider, run_id=f"t-{number}", start_ns=BASE_NS + number * 10**10)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = TraceStore()
    assert len(store.list_runs()) == 8
    assert all(len(store.get_trace(f"t-{n}")) == 15 for n in range(8))


def test_secrets_never_reach_the_store(provider: TracerProvider) -> None:
    key = "sk-ant-api03-DO-NOT-STORE-abc123"
    tracer = provider.get_tracer("microagents")
    with tracer.start_as_current_span(
        "invoke_workflow leaky",
        attributes={
            sc.RUN_ID: "leaky-1",
            "anthropic.api_key": "plain-looking-value",
            "http.request.header.x-api-key": ("abc",),
            "http.request.header.Authorization": "whatever",
            "some.token": key,
            "some.bearer": "Bearer eyJhbGciOiJIUzI1NiJ9.payload",
            "some.list": ("fine", key),
            "tool.output": f"the config says api key = {key}, oops",
            sc.INPUT_MESSAGES: f'[{{"role": "user", "parts": ["Authorization: Bearer {key}"]}}]',
        },
    ) as span:
        span.add_event("exception", {"exception.message": f"401 for key {key}", "x-api-key": key})
        span.set_status(Status(StatusCode.ERROR, f"auth failed with {key}"))
    text = all_text(default_trace_path())
    for secret in ("DO-NOT-STORE", "plain-looking-value", "whatever", "eyJhbGciOiJIUzI1NiJ9"):
        assert secret not in text
    [stored] = TraceStore().get_trace("leaky-1")
    assert set(stored.attributes) == {sc.RUN_ID, "tool.output", sc.INPUT_MESSAGES}
    assert stored.attributes["tool.output"] == "the config says api key = [REDACTED], oops"
    assert stored.status_message == "auth failed with [REDACTED]"
    assert stored.events[0].attributes == {"exception.message": "401 for key [REDACTED]"}


def test_a_secret_in_a_value_under_a_plain_key_is_redacted(provider: TracerProvider) -> None:
    # Plain keys take the bulk check: only the encoded text betrays the secret.
    key = "sk-ant-api03-DO-NOT-STORE-xyz789"
    tracer = provider.get_tracer("microagents")
    with tracer.start_as_current_span("invoke_workflow w", attributes={sc.RUN_ID: "plain-1"}):
        with tracer.start_as_current_span("execute_tool t", attributes={"tool.output": "fine"}):
            pass
        with tracer.start_as_current_span("execute_tool t") as span:
            span.set_attribute("tool.output", f"key={key}")
            span.set_status(Status(StatusCode.ERROR, "Bearer abcdefghijklmnopqrstuvwxyz"))
    assert "DO-NOT-STORE" not in all_text(default_trace_path())
    assert "abcdefghijklmnop" not in all_text(default_trace_path())
    _root, clean, leaky = TraceStore().get_trace("plain-1")
    assert clean.attributes == {"tool.output": "fine"}
    assert leaky.attributes == {"tool.output": "key=[REDACTED]"}
    assert leaky.status_message == "[REDACTED]"


def test_values_the_fast_encoder_refuses_are_still_stored(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("microagents")
    with (
        tracer.start_as_current_span("invoke_workflow w", attributes={sc.RUN_ID: "big-1"}),
        tracer.start_as_current_span("execute_tool t") as span,
    ):
        span.set_attribute("tool.rows", 2**70)  # beyond 64 bits
        span.set_attribute("tool.text", "naïve ✓")
    _, tool = TraceStore().get_trace("big-1")
    assert tool.attributes == {"tool.rows": 2**70, "tool.text": "naïve ✓"}


# -- format versions -------------------------------------------------------------------------

V1_SPANS = """
CREATE TABLE spans (
    trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT, name TEXT NOT NULL,
    kind TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    status_code TEXT NOT NULL, status_message TEXT, attributes TEXT NOT NULL,
    events TEXT NOT NULL, resource TEXT NOT NULL, PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
"""


def test_a_store_of_the_first_format_is_migrated_without_losing_spans() -> None:
    exporter = SqliteSpanExporter(keep_days=0)
    record_fake_run(make_provider(exporter))
    exporter.shutdown()
    before = [span.to_json() for span in TraceStore().get_trace("c0ffee01-1")]
    # Rewrite the store as the first format kept it: one row per span.
    with sqlite3.connect(default_trace_path()) as db:
        db.executescript(V1_SPANS)
        for span in before:
            db.execute(
                "INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *(span[k] for k in ("trace_id", "span_id", "parent_span_id", "name")),
                    *(span[k] for k in ("kind", "start_ns", "end_ns", "status_code")),
                    span["status_message"],
                    json.dumps(span["attributes"]),
                    json.dumps(span["events"]),
                    json.dumps(span["resource"]),
                ),
            )
        db.execute("DROP TABLE span_batches")
        db.execute("PRAGMA user_version = 1")
    db.close()
    after = [span.to_json() for span in TraceStore().get_trace("c0ffee01-1")]
    assert after == before
    # ... and the store goes on taking spans in the new format.
    record_fake_run(make_provider(SqliteSpanExporter(keep_days=0)), run_id="c0ffee02-1")
    assert len(TraceStore().get_trace("c0ffee02-1")) == len(before)


V2_BATCHES = """
CREATE TABLE span_batches (
    trace_id TEXT NOT NULL, start_ns INTEGER NOT NULL, resource TEXT NOT NULL,
    spans TEXT NOT NULL
);
CREATE INDEX span_batches_trace ON span_batches (trace_id);
"""


def test_a_store_of_the_second_format_is_migrated_without_losing_spans() -> None:
    exporter = SqliteSpanExporter(keep_days=0)
    record_fake_run(make_provider(exporter))
    exporter.shutdown()
    before = [span.to_json() for span in TraceStore().get_trace("c0ffee01-1")]
    # Rewrite the store as the second format kept it: a row per trace, ids in hex, kinds and
    # status codes by name.
    fields = ("span_id", "parent_span_id", "name", "kind", "start_ns", "end_ns", "status_code")
    arrays = [
        [*(span[k] for k in fields), span["status_message"], span["attributes"], span["events"]]
        for span in before
    ]
    with sqlite3.connect(default_trace_path()) as db:
        db.execute("DROP TABLE span_batches")
        db.executescript(V2_BATCHES)
        db.execute(
            "INSERT INTO span_batches VALUES (?, ?, ?, ?)",
            (before[0]["trace_id"], BASE_NS, json.dumps(before[0]["resource"]), json.dumps(arrays)),
        )
        db.execute("PRAGMA user_version = 2")
    db.close()
    after = [span.to_json() for span in TraceStore().get_trace("c0ffee01-1")]
    assert after == before
    record_fake_run(make_provider(SqliteSpanExporter(keep_days=0)), run_id="c0ffee02-1")
    assert len(TraceStore().get_trace("c0ffee02-1")) == len(before)


def test_a_store_from_a_newer_version_is_refused_with_what_to_do() -> None:
    record_fake_run(make_provider(SqliteSpanExporter(keep_days=0)))
    with sqlite3.connect(default_trace_path()) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(MicroagentsError, match=r"written by a newer microagents \(format 99"):
        TraceStore().list_runs()


# -- retention -------------------------------------------------------------------------------


def _run_ids(store: TraceStore) -> list[str]:
    return [run.run_id for run in store.list_runs(limit=100)]


def _trace_count(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (count,) = db.execute(
            "SELECT COUNT(DISTINCT span.value ->> '$[0][0]') "
            "FROM span_batches, json_each(span_batches.spans) AS span"
        ).fetchone()
    db.close()
    return int(count)


def test_keep_runs_deletes_the_oldest_runs_and_their_spans() -> None:
    exporter = SqliteSpanExporter(keep_runs=3, keep_days=0)
    exporter.prune_every = 10**9  # only the first export and the explicit calls below prune
    provider = make_provider(exporter)
    for number in range(5):
        record_fake_run(provider, run_id=f"run-{number}", start_ns=BASE_NS + number * 10**10)
    # A run whose root span never arrived (its process was killed): spans, but no run row.
    orphan = provider.get_tracer("t").start_span("invoke_agent router", start_time=BASE_NS - 1)
    orphan.end(end_time=BASE_NS)
    assert _trace_count(exporter.path) == 6

    assert exporter.prune() == 2
    store = TraceStore()
    assert _run_ids(store) == ["run-4", "run-3", "run-2"]
    assert _trace_count(exporter.path) == 3
    assert len(store.get_trace("run-2")) == 15
    with pytest.raises(TraceNotFoundError):
        store.get_trace("run-1")
    assert exporter.prune() == 0


def test_keep_days_deletes_runs_older_than_that() -> None:
    exporter = SqliteSpanExporter(keep_runs=0, keep_days=30)
    exporter.prune_every = 10**9  # only the first export and the explicit call below prune
    provider = make_provider(exporter)
    now = time.time_ns()
    day = 86_400 * 10**9
    record_fake_run(provider, run_id="ancient", start_ns=now - 400 * day)
    record_fake_run(provider, run_id="last-month", start_ns=now - 31 * day)
    record_fake_run(provider, run_id="last-week", start_ns=now - 7 * day)
    assert exporter.prune() == 2
    assert _run_ids(TraceStore()) == ["last-week"]
    assert _trace_count(exporter.path) == 1


def test_retention_runs_by_itself_every_few_exports() -> None:
    exporter = SqliteSpanExporter(keep_runs=2, keep_days=0)
    exporter.prune_every = 16  # one run exports 15 spans, one at a time
    provider = make_provider(exporter)
    for number in range(4):
        record_fake_run(provider, run_id=f"run-{number}", start_ns=BASE_NS + number * 10**10)
    # Pruned at exports 16, 32 and 48, each time keeping the newest two runs it had seen.
    assert _run_ids(TraceStore()) == ["run-3", "run-2", "run-1"]
    record_fake_run(provider, run_id="run-4", start_ns=BASE_NS + 4 * 10**10)
    assert _run_ids(TraceStore()) == ["run-4", "run-3", "run-2"]


def test_retention_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = SqliteSpanExporter()
    assert (exporter.keep_runs, exporter.keep_days) == (1000, 30)
    monkeypatch.setenv("MICROAGENTS_TRACE_KEEP_RUNS", "5")
    monkeypatch.setenv("MICROAGENTS_TRACE_KEEP_DAYS", "0.5")
    exporter = SqliteSpanExporter()
    assert (exporter.keep_runs, exporter.keep_days) == (5, 0.5)
    assert SqliteSpanExporter(keep_runs=9).keep_runs == 9
    monkeypatch.setenv("MICROAGENTS_TRACE_KEEP_RUNS", "lots")
    with pytest.raises(MicroagentsError, match=r"MICROAGENTS_TRACE_KEEP_RUNS must be a whole"):
        SqliteSpanExporter()


# -- reading ---------------------------------------------------------------------------------


def test_runs_are_found_by_id_prefix_or_trace_id(provider: TracerProvider) -> None:
    record_fake_run(provider, run_id="abc-1")
    record_fake_run(provider, run_id="abd-1", start_ns=BASE_NS + 10**10)
    store = TraceStore()
    trace_id = store.get_trace("abc-1")[0].trace_id
    assert len(store.get_trace("abc")) == 15
    assert store.get_trace(trace_id) == store.get_trace("abc-1")
    assert store.get_trace(trace_id.upper()) == store.get_trace("abc-1")
    run = store.get_run(trace_id)
    assert run is not None
    assert run.run_id == "abc-1"

    with pytest.raises(TraceNotFoundError, match="'ab' is ambiguous: it matches abd-1, abc-1"):
        store.get_trace("ab")
    # The two trace ids differ only in their last digit.
    with pytest.raises(TraceNotFoundError, match="trace id prefix '0af765' is ambiguous"):
        store.get_trace("0af765")
    with pytest.raises(TraceNotFoundError, match=r"no run or trace 'zzz' in the trace store"):
        store.get_trace("zzz")


def test_list_runs_filters_and_puts_the_newest_first(provider: TracerProvider) -> None:
    record_fake_run(provider, run_id="one", failed=False)
    record_fake_run(provider, run_id="two", start_ns=BASE_NS + 10**10)
    record_fake_run(provider, run_id="three", start_ns=BASE_NS + 2 * 10**10, workflow="other")
    store = TraceStore()
    assert [r.run_id for r in store.list_runs()] == ["three", "two", "one"]
    assert [r.run_id for r in store.list_runs(limit=1)] == ["three"]
    assert [r.run_id for r in store.list_runs(status="error")] == ["three", "two"]
    assert [r.run_id for r in store.list_runs(status="ok")] == ["one"]
    assert [r.run_id for r in store.list_runs(workflow="support_triage")] == ["two", "one"]
    assert store.count_runs() == 3
    with pytest.raises(MicroagentsError, match="unknown run status 'meh'"):
        store.list_runs(status="meh")


def test_reading_a_missing_store_creates_nothing() -> None:
    store = TraceStore()
    assert store.list_runs() == []
    assert store.count_runs() == 0
    with pytest.raises(TraceNotFoundError, match="is empty; run a workflow first"):
        store.get_trace("abc")
    assert not store.path.parent.exists()


def test_a_store_that_cannot_be_written_fails_the_export_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    exporter = SqliteSpanExporter(blocker / "traces.sqlite3")
    provider = make_provider(exporter)
    record_fake_run(provider)  # must not raise into the traced code
    assert "could not store 1 spans in" in caplog.text
