"""`microagents trace list|show` over a trace store filled by the real OpenTelemetry SDK."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest
from syrupy.assertion import SnapshotAssertion

from cli_runner import run_cli as run
from microagents.tracing._store import SqliteSpanExporter, default_trace_path
from test_trace_store import BASE_NS, make_provider, record_fake_run


@pytest.fixture(autouse=True)
def _plain_fixed_terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A 132-column terminal without colour, in UTC: output that a snapshot can pin."""
    monkeypatch.setenv("COLUMNS", "132")
    monkeypatch.setenv("NO_COLOR", "1")
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old_tz is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old_tz
    time.tzset()


@pytest.fixture
def two_runs() -> None:
    """A failed run with captured content, then a successful one ten seconds later."""
    provider = make_provider(SqliteSpanExporter(keep_days=0))
    record_fake_run(provider, run_id="c0ffee01-1", content=True)
    record_fake_run(provider, run_id="c0ffee01-2", start_ns=BASE_NS + 10**10, failed=False)


@pytest.mark.usefixtures("two_runs")
def test_list_shows_the_newest_runs_first(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["trace", "list"], capsys)
    assert (code, err) == (0, "")
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == [
        "run", "workflow", "start", "duration", "status", "tokens", "in", "/", "out", "cost",
        "escalations",
    ]  # fmt: skip
    assert lines[1] == [
        "c0ffee01-2", "support_triage@1.0.0", "2025-01-02", "03:04:15", "1.50s", "ok",
        "2,400", "/", "1,274", "$0.0089", "1",
    ]  # fmt: skip
    assert lines[2][0] == "c0ffee01-1"
    assert lines[2][5] == "failed"
    assert len(lines) == 3


@pytest.mark.usefixtures("two_runs")
def test_list_filters_by_status_workflow_and_limit(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(["trace", "list", "--status", "error"], capsys)
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["c0ffee01-1"]
    _, out, _ = run(["trace", "list", "--limit", "1"], capsys)
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["c0ffee01-2"]
    code, out, _ = run(["trace", "list", "--workflow", "nope"], capsys)
    assert (code, out) == (0, "no runs match these filters\n")
    code, _, err = run(["trace", "list", "--status", "meh"], capsys)
    assert code == 2
    assert "'meh' is not one of 'ok', 'error', 'failed'" in err


def test_an_empty_store_says_how_to_get_traces(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["trace", "list"], capsys)
    assert code == 0
    assert out.startswith("no traces yet in ")
    assert "Run a workflow (`microagents run WORKFLOW --input JSON`" in out
    code, out, err = run(["trace", "show", "c0ffee01-1"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("error: no run 'c0ffee01-1': the trace store ")
    assert err.count("\n") == 1


def test_a_damaged_store_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    path = default_trace_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database, just some bytes " * 100)
    code, _, err = run(["trace", "list"], capsys)
    assert code == 2
    assert err == (
        f"error: cannot read the trace store {path}: file is not a database; move or delete "
        "the file and the next run starts a new one\n"
    )


@pytest.mark.usefixtures("two_runs")
def test_show_draws_the_tree_of_hops(
    capsys: pytest.CaptureFixture[str], snapshot: SnapshotAssertion
) -> None:
    code, out, err = run(["trace", "show", "c0ffee01-1"], capsys)
    assert (code, err) == (0, "")
    assert "\x1b[" not in out  # no colour codes
    assert out == snapshot


@pytest.mark.usefixtures("two_runs")
def test_show_content_when_it_was_captured(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(["trace", "show", "c0ffee01-1", "--content"], capsys)
    content = out[out.index("└── ✗ RunFailed") :].splitlines()[2:]
    assert content == [
        "── agent classify (router) › chat claude-haiku-4-5",
        "  system: You route support tickets.",
        "  user: My invoice is wrong",
        '  assistant: → route({"queue": "billing", "confidence": 0.9})',
        "── agent answer (responder) › tool kb.search",
        '  arguments: {"query": "invoice wrong"}',
        '  result: {"hits": 2}',
    ]
    _, out, _ = run(["trace", "show", "c0ffee01-2", "--content"], capsys)
    tail = " ".join(out[out.index("no content") :].split())
    assert tail == (
        "no content was captured for this run; set "
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true to record prompts, "
        "completions and tool arguments"
    )


@pytest.mark.usefixtures("two_runs")
def test_show_json_is_the_run_and_its_spans(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["trace", "show", "c0ffee01-2", "--json"], capsys)
    assert code == 0
    document = json.loads(out)
    assert document["run"]["run_id"] == "c0ffee01-2"
    assert document["run"]["status"] == "ok"
    spans = document["spans"]
    assert len(spans) == 15
    root = spans[0]
    assert root["parent_span_id"] is None
    assert root["trace_id"] == document["run"]["trace_id"]
    assert {s["parent_span_id"] for s in spans[1:]} <= {s["span_id"] for s in spans}
    classify = spans[1]
    assert classify["attributes"]["gen_ai.agent.name"] == "router"
    assert classify["events"][0]["attributes"]["microagents.escalation.trigger"] == (
        "low_confidence"
    )
    assert [s["kind"] for s in spans].count("CLIENT") == 7


@pytest.mark.usefixtures("two_runs")
def test_show_accepts_a_trace_id_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["trace", "show", "0af7651916cd43dd8448eb211c80319d"], capsys)
    assert code == 0
    assert out.startswith("workflow support_triage@1.0.0 · run c0ffee01-2 · ok\n")


@pytest.mark.usefixtures("two_runs")
def test_unknown_or_ambiguous_run_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["trace", "show", "nope"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("error: no run or trace 'nope' in the trace store ")
    assert err.endswith("; `microagents trace list` shows the runs it has\n")
    code, _, err = run(["trace", "show", "c0ffee01"], capsys)
    assert code == 2
    assert err == (
        "error: run id prefix 'c0ffee01' is ambiguous: it matches c0ffee01-2, c0ffee01-1; "
        "give more of the id\n"
    )


def test_simulated_runs_and_runless_traces_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    provider = make_provider(SqliteSpanExporter(keep_days=0))
    tracer = provider.get_tracer("t")
    attributes = {"microagents.run.id": "sim-1", "microagents.simulated": True}
    with tracer.start_as_current_span("invoke_workflow dry", attributes=attributes):
        pass
    orphan = tracer.start_span("invoke_agent router", start_time=BASE_NS)
    orphan.record_exception(ValueError("boom"), timestamp=BASE_NS + 5)
    orphan.end(end_time=BASE_NS + 10)
    trace_id = format(orphan.get_span_context().trace_id, "032x")
    _, out, _ = run(["trace", "list"], capsys)
    assert "ok (simulated)" in out
    _, out, _ = run(["trace", "show", "sim-1"], capsys)
    assert out.startswith("workflow dry · run sim-1 · ok · simulated back-end: no model was called")
    _, out, _ = run(["trace", "show", trace_id], capsys)
    assert " ".join(out.split("\n\n")[0].split()) == (
        f"trace {trace_id} · 1 span started 2025-01-02 03:04:05 · no finished microagents run "
        "in this trace (still running, killed, or recorded by other instrumentation)"
    )
    assert out.splitlines()[-1] == "└── ✗ ValueError: boom"
