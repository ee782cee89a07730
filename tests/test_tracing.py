"""Spans on the GenAI conventions, checked with the SDK's in-memory exporter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from syrupy.assertion import SnapshotAssertion

import microagents as ma
from microagents.models._protocol import ModelRequest, ModelResponse, ToolUseBlock, Usage
from microagents.runtime import SQLiteJournal
from microagents.runtime._engine import Engine
from microagents.testing import FakeModel
from microagents.tracing._tracing import Tracing

FAKE_KEY = "sk-ant-api03-THIS-IS-A-FAKE-KEY-0000000000"
VOLATILE = {"microagents.run.id", "gen_ai.response.id"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


def tracing_to(exporter: InMemorySpanExporter, *, capture_content: bool = False) -> Tracing:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing.from_provider(provider, capture_content=capture_content)


def triage_script(request: ModelRequest) -> ModelResponse:
    """The router is unsure on haiku (escalation), sure on sonnet: 'other' → a person."""
    unsure = request.model == "claude-haiku-4-5"
    output = {"category": "other", "confidence": 0.3 if unsure else 0.9, "reason": "a poem"}
    block = ToolUseBlock("toolu_1", "final_answer", output)
    return ModelResponse(
        (block,), "tool_use", Usage(120, 30, 0, 400), request.model, request_id="req_1",
        cost_usd=0.0005,
    )  # fmt: skip


def run_triage(project: ma.Project, tracing: Tracing) -> ma.RunResult:
    workflow = project.load_workflow("workflows/support_triage.yaml")

    async def main() -> ma.RunResult:
        # Journaled: `other` goes to `human_review`, a human node, where the run waits.
        async with Engine(FakeModel(triage_script), tracing=tracing, journal=SQLiteJournal()) as e:
            return await e.run(workflow, {"ticket": "Write me a poem about invoices."})

    return anyio.run(main)


def tree(exported: tuple[ReadableSpan, ...]) -> list[dict[str, Any]]:
    """Spans as a nested list in start order: name, kind, status, attributes, events —
    without timing or ids."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {span.context.span_id for span in exported}
    for span in sorted(exported, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent and span.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(span)

    def render(span: ReadableSpan) -> dict[str, Any]:
        attributes = {
            k: ("<volatile>" if k in VOLATILE else (list(v) if isinstance(v, tuple) else v))
            for k, v in sorted((span.attributes or {}).items())
        }
        return {
            "name": span.name,
            "kind": span.kind.name,
            "status": span.status.status_code.name,
            "attributes": attributes,
            "events": [{"name": e.name, **dict(e.attributes or {})} for e in span.events],
            "children": [render(child) for child in by_parent.get(span.context.span_id, [])],
        }

    return [render(span) for span in by_parent.get(None, [])]


def test_support_triage_span_tree(
    project: ma.Project, spans: InMemorySpanExporter, snapshot: SnapshotAssertion
) -> None:
    result = run_triage(project, tracing_to(spans))
    assert result.status == "waiting", result.error
    assert result.trace_id is not None
    rendered = tree(spans.get_finished_spans())
    assert rendered == snapshot
    (root,) = rendered
    assert root["name"] == "invoke_workflow support_triage"
    assert root["attributes"]["openinference.span.kind"] == "CHAIN"
    agent, human = root["children"]
    # The node's id and the agent it runs; the climb in the name, where a viewer's tree shows it.
    assert agent["name"] == "invoke_agent route (router) ⤴ sonnet"
    assert agent["attributes"]["microagents.escalated"] is True
    assert [c["name"] for c in agent["children"]] == [
        "chat claude-haiku-4-5",
        "chat claude-sonnet-4-6",
    ]
    assert agent["events"][0]["microagents.escalation.trigger"] == "low_confidence"
    # The run waits for a person: neither an error nor done.
    assert human["name"] == "ask_human human_review"
    assert root["attributes"]["microagents.run.waiting_for"] == "human_review"
    assert {span["status"] for span in [agent, *agent["children"]]} == {"OK"}
    assert {span["status"] for span in [root, human]} == {"UNSET"}
    every = [root, agent, human, *agent["children"]]
    assert [span["attributes"]["openinference.span.kind"] for span in every] == [
        "CHAIN", "AGENT", "CHAIN", "LLM", "LLM",
    ]  # fmt: skip
    assert format(spans.get_finished_spans()[-1].context.trace_id, "032x") == result.trace_id


def test_content_is_absent_by_default_and_present_when_opted_in(
    project: ma.Project, spans: InMemorySpanExporter
) -> None:
    run_triage(project, tracing_to(spans))
    keys = {k for span in spans.get_finished_spans() for k in (span.attributes or {})}
    assert not keys & {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
    }

    spans.clear()
    run_triage(project, tracing_to(spans, capture_content=True))
    chat = next(s for s in spans.get_finished_spans() if s.name.startswith("chat"))
    messages = json.loads(str((chat.attributes or {})["gen_ai.input.messages"]))
    assert "Write me a poem about invoices." in json.dumps(messages)
    assert "gen_ai.output.messages" in (chat.attributes or {})


def test_a_fake_api_key_never_reaches_a_span_or_a_log_line(
    fake_anthropic: Any,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")  # everything any library logs, the SDK's request logs included
    from microagents.models._backends import anthropic_model
    from microagents.testing import Reply

    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    fake_anthropic.on(Reply.structured({"category": "other", "confidence": 0.9, "reason": "x"}))
    workflow = ma.Project(".").load_workflow("workflows/support_triage.yaml")

    async def main() -> None:
        model = anthropic_model(base_url=fake_anthropic.base_url)
        tracing = tracing_to(spans, capture_content=True)
        async with Engine(model, tracing=tracing, journal=SQLiteJournal()) as engine:
            result = await engine.run(workflow, {"ticket": "hello"})
            assert result.status == "waiting", result.error

    anyio.run(main)
    dumped = json.dumps(
        [
            {
                "attributes": dict(s.attributes or {}),
                "events": [dict(e.attributes or {}) for e in s.events],
            }
            for s in spans.get_finished_spans()
        ],
        default=str,
    )
    assert FAKE_KEY not in dumped
    assert "authorization" not in dumped.lower()
    assert caplog.records  # the SDK did log its requests at DEBUG
    assert FAKE_KEY not in caplog.text
    assert fake_anthropic.requests[0].headers["authorization"] == f"Bearer {FAKE_KEY}"


def test_failures_are_error_spans(spans: InMemorySpanExporter, tmp_path: Any) -> None:
    spec = ma.AgentSpec(
        name="a", version="1.0.0", description="d", prompt="{{ text }}",
        input={"type": "object", "properties": {"text": {"type": "string"}}},
        output={"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]},
    )  # fmt: skip
    flow = ma.Workflow(
        "f",
        input={"type": "object", "properties": {"t": {"type": "string"}}},
        output="{{ nodes.n.output }}",
    )
    workflow = flow.node("n", agent=spec, input={"text": "{{ input.t }}"}).compile(
        ma.Project(tmp_path)
    )

    async def main() -> ma.RunResult:
        async with Engine(
            FakeModel(lambda r: ma.errors.OverloadedError("busy")), tracing=tracing_to(spans)
        ) as engine:
            return await engine.run(workflow, {"t": "x"})

    result = anyio.run(main)
    assert not result.ok
    by_name = {s.name: s for s in spans.get_finished_spans()}
    assert by_name["invoke_workflow f"].status.status_code.name == "ERROR"
    assert by_name["invoke_agent n (a)"].status.status_code.name == "ERROR"
    chat = by_name["chat claude-haiku-4-5"]
    assert (chat.attributes or {})["error.type"] == "OverloadedError"


def test_otlp_http_export_to_a_loopback_receiver(
    project: ma.Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting OTEL_EXPORTER_OTLP_ENDPOINT is enough: spans arrive as OTLP/HTTP protobuf."""
    import gzip
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from microagents.tracing._setup import _make_provider

    received: list[ExportTraceServiceRequest] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            received.append(request)
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("MICROAGENTS_TRACE_STORE", "off")
        provider = _make_provider()
        result = run_triage(project, Tracing.from_provider(provider))
        provider.force_flush()
        provider.shutdown()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    names = {
        span.name
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    }
    assert {
        "invoke_workflow support_triage",
        "invoke_agent route (router) ⤴ sonnet",
        "chat claude-haiku-4-5",
    } <= names
    trace_ids = {
        span.trace_id.hex()
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    }
    assert trace_ids == {result.trace_id}


def test_the_fast_sdk_path_and_the_plain_api_path_make_the_same_tree(project: ma.Project) -> None:
    """With an SDK provider, hops are recorded as light spans handed to its processors; with
    any other provider the OpenTelemetry API is used. A reader must not see a difference."""
    trees = []
    for fast in (True, False):
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracing = (
            Tracing.from_provider(provider) if fast else Tracing(provider.get_tracer("microagents"))
        )
        run_triage(project, tracing)
        trees.append(tree(exporter.get_finished_spans()))
    assert trees[0] == trees[1]


def test_a_run_joins_the_applications_current_trace(
    project: ma.Project, spans: InMemorySpanExporter
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app_tracer = provider.get_tracer("app")
    with app_tracer.start_as_current_span("handle request") as outer:
        result = run_triage(project, Tracing.from_provider(provider))
    outer_context = outer.get_span_context()
    root = next(s for s in spans.get_finished_spans() if s.name.startswith("invoke_workflow"))
    assert result.trace_id == format(outer_context.trace_id, "032x")
    assert root.parent is not None
    assert root.parent.span_id == outer_context.span_id


def test_tools_see_the_hop_as_their_current_span(
    tmp_path: Any, spans: InMemorySpanExporter
) -> None:
    from opentelemetry import trace

    seen: list[int] = []

    @ma.tool(name="probe")
    async def probe(item: Any) -> str:
        """Record the trace the tool runs in."""
        seen.append(trace.get_current_span().get_span_context().trace_id)
        return "ok"

    flow = ma.Workflow(
        "t",
        input={"type": "object", "properties": {"x": {"type": "string"}}},
        output="{{ nodes.p.output }}",
    ).node("p", tool=probe, input={"item": "{{ input.x }}"})
    workflow = flow.compile(ma.Project(tmp_path))

    async def main() -> ma.RunResult:
        async with Engine(FakeModel(), tracing=tracing_to(spans)) as engine:
            return await engine.run(workflow, {"x": "1"})

    result = anyio.run(main)
    assert result.ok, result.error
    assert seen == [int(result.trace_id or "0", 16)]


def test_a_run_traced_inside_another_providers_run_reaches_its_own_processors(
    tmp_path: Any,
) -> None:
    """A run whose engine has its own provider, started from inside a run traced to another
    (a tool running a workflow, say), continues the outer trace and is exported by its own
    provider's processors."""
    outer_spans, inner_spans = InMemorySpanExporter(), InMemorySpanExporter()
    inner_tracing = tracing_to(inner_spans)
    inner_flow = ma.Workflow(
        "inner", input={"type": "object", "properties": {"x": {"type": "string"}}}
    ).node("echo", tool=_echo, input={"item": "{{ input.x }}"})
    inner = inner_flow.compile(ma.Project(tmp_path))

    @ma.tool(name="nested")
    async def nested(item: Any) -> str:
        """Run the inner workflow on its own engine."""
        async with Engine(FakeModel(), tracing=inner_tracing) as engine:
            result = await engine.run(inner, {"x": str(item)})
        return str(result.status)

    outer = (
        ma.Workflow("outer", input={"type": "object", "properties": {"x": {"type": "string"}}})
        .node("n", tool=nested, input={"item": "{{ input.x }}"})
        .compile(ma.Project(tmp_path))
    )

    async def main() -> ma.RunResult:
        async with Engine(FakeModel(), tracing=tracing_to(outer_spans)) as engine:
            return await engine.run(outer, {"x": "1"})

    result = anyio.run(main)
    assert result.ok, result.error
    inner_names = sorted(span.name for span in inner_spans.get_finished_spans())
    assert inner_names == ["execute_tool echo", "invoke_workflow inner"]
    trace_ids = {span.context.trace_id for span in inner_spans.get_finished_spans()}
    assert trace_ids == {int(result.trace_id or "0", 16)}


@ma.tool(name="echo")
async def _echo(item: Any) -> str:
    """Return what it is given."""
    return str(item)


# -- the SDK's own spans ----------------------------------------------------------------------

_SDK_SPANS_SCRIPT = """
import json, anyio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import microagents as ma
from microagents.testing import FakeAnthropicServer, Reply

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)  # the SDK traces through the global provider
workflow = ma.Project(".").load_workflow("workflows/support_triage.yaml")
with FakeAnthropicServer() as server:
    server.on(Reply.structured({"category": "other", "confidence": 0.9, "reason": "x"}))

    async def main():
        model = ma.models.anthropic_model(api_key="test-key", base_url=server.base_url)
        tracing = ma.tracing.Tracing.from_provider(provider)
        async with ma.Engine(model, tracing=tracing, journal=ma.runtime.SQLiteJournal()) as engine:
            assert (await engine.run(workflow, {"ticket": "hello"})).status == "waiting"

    anyio.run(main)
print(json.dumps([
    {"name": s.name, "trace": s.context.trace_id, "id": s.context.span_id,
     "parent": s.parent.span_id if s.parent else None}
    for s in exporter.get_finished_spans()
]))
"""


def sdk_spans_run(**env: str) -> list[dict[str, Any]]:
    """Support triage over the real SDK (against the fake server), every span of the process."""
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    ran = subprocess.run(
        [sys.executable, "-c", _SDK_SPANS_SCRIPT],
        cwd=Path(__file__).resolve().parent.parent,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    spans: list[dict[str, Any]] = json.loads(ran.stdout)
    return spans


def test_a_model_call_is_one_span_ours_and_the_sdk_makes_no_trace_of_its_own() -> None:
    spans = sdk_spans_run()
    assert len({span["trace"] for span in spans}) == 1
    assert not [span for span in spans if span["name"].startswith("anthropic.")]
    assert [span["name"] for span in spans].count("chat claude-haiku-4-5") == 1


def test_the_sdks_spans_when_asked_for_are_children_of_our_model_call_span() -> None:
    spans = sdk_spans_run(MICROAGENTS_ANTHROPIC_SPANS="on")
    assert len({span["trace"] for span in spans}) == 1
    by_id = {span["id"]: span for span in spans}
    (sdk,) = [span for span in spans if span["name"] == "anthropic.messages.create"]
    assert by_id[sdk["parent"]]["name"] == "chat claude-haiku-4-5"


# -- captured content, in the shapes viewers read ---------------------------------------------

PART_FIELDS = {
    # The required properties of each part type in the conventions' JSON schemas.
    "text": {"type", "content"},
    "tool_call": {"type", "name"},
    "tool_call_response": {"type", "response"},
}
CONTENT_KEYS = {
    "gen_ai.system_instructions",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "input.value",
    "output.value",
}


def assert_parts(parts: Any) -> None:
    assert isinstance(parts, list)
    assert parts
    for part in parts:
        assert PART_FIELDS[part["type"]] <= part.keys(), part


def assert_messages(raw: Any, *, output: bool = False) -> list[dict[str, Any]]:
    """Parse a message attribute and check it against the conventions' schemas."""
    messages = json.loads(raw)
    assert isinstance(messages, list)
    for message in messages:
        assert message["role"] in {"system", "user", "assistant", "tool"}
        assert_parts(message["parts"])
        if output:
            assert message["finish_reason"]
    return messages


@ma.tool(name="orders.lookup")
async def _lookup(order_id: str) -> dict[str, str]:
    """Find an order by its id."""
    return {"order_id": order_id, "status": "shipped"}


def orders_workflow(tmp_path: Any) -> ma.CompiledWorkflow:
    """An agent that calls a tool before it answers, and a check that sends it round once."""
    checks: list[bool] = []

    @ma.tool(name="orders.check")
    async def check(status: str) -> dict[str, bool]:
        """Accept the second answer."""
        checks.append(True)
        return {"ok": len(checks) > 1}

    support = ma.AgentSpec(
        name="support", version="1.0.0", description="Answer with the order's status.",
        system="You answer questions about orders.", prompt="{{ text }}", tools=["orders.lookup"],
        input={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        output={"type": "object", "properties": {"status": {"type": "string"}},
                "required": ["status"]},
    )  # fmt: skip
    flow = (
        ma.Workflow(
            "orders",
            input={"type": "object", "properties": {"ticket": {"type": "string"}}},
            output="{{ nodes.answer.output }}",
        )
        .node("answer", agent=support, input={"text": "{{ input.ticket }}"})
        .node("confirm", tool=check, input={"status": "{{ nodes.answer.output.status }}"})
        .edge("answer", "confirm")
        .edge("confirm", "answer", when="not nodes.confirm.output.ok", max_visits=2)
    )
    return flow.compile(ma.Project(tmp_path, tools=[_lookup, check]))


def orders_script(request: ModelRequest) -> object:
    """Calls the lookup tool, then answers."""
    if len(request.messages) == 1:
        call = ToolUseBlock("toolu_1", "orders.lookup", {"order_id": "A-1"})
        return ModelResponse((call,), "tool_use", Usage(50, 10), request.model)
    return {"status": "shipped"}


def run_orders(tmp_path: Any, tracing: Tracing) -> ma.RunResult:
    workflow = orders_workflow(tmp_path)

    async def main() -> ma.RunResult:
        async with Engine(FakeModel(orders_script), tracing=tracing) as engine:
            return await engine.run(workflow, {"ticket": "Where is order A-1?"})

    return anyio.run(main)


def test_captured_content_span_tree(
    tmp_path: Any, spans: InMemorySpanExporter, snapshot: SnapshotAssertion
) -> None:
    result = run_orders(tmp_path, tracing_to(spans, capture_content=True))
    assert result.ok, result.error
    rendered = tree(spans.get_finished_spans())
    assert rendered == snapshot
    (root,) = rendered
    assert [child["name"] for child in root["children"]] == [
        "invoke_agent answer (support)",
        "execute_tool confirm (orders.check)",
        "invoke_agent answer (support) #2",  # a node's second visit says so
        "execute_tool confirm (orders.check) #2",
    ]
    assert json.loads(root["attributes"]["input.value"]) == {"ticket": "Where is order A-1?"}
    assert json.loads(root["attributes"]["output.value"]) == {"status": "shipped"}

    agent = root["children"][0]
    assert json.loads(agent["attributes"]["input.value"]) == {"text": "Where is order A-1?"}
    assert agent["attributes"]["output.mime_type"] == "application/json"
    (user,) = assert_messages(agent["attributes"]["gen_ai.input.messages"])
    assert json.loads(user["parts"][0]["content"]) == {"text": "Where is order A-1?"}
    assert_messages(agent["attributes"]["gen_ai.output.messages"], output=True)

    first_call, tool_call, second_call = agent["children"]
    system = json.loads(first_call["attributes"]["gen_ai.system_instructions"])
    assert system == [{"type": "text", "content": "You answer questions about orders."}]
    (asked,) = assert_messages(first_call["attributes"]["gen_ai.input.messages"])
    assert asked["parts"] == [{"type": "text", "content": "Where is order A-1?"}]
    (answer,) = assert_messages(first_call["attributes"]["gen_ai.output.messages"], output=True)
    assert answer["finish_reason"] == "tool_call"
    assert answer["parts"] == [
        {"type": "tool_call", "id": "toolu_1", "name": "orders.lookup",
         "arguments": {"order_id": "A-1"}},
    ]  # fmt: skip
    # The tool's result goes back in a message of its own, role `tool`, as the conventions say.
    history = assert_messages(second_call["attributes"]["gen_ai.input.messages"])
    assert [message["role"] for message in history] == ["user", "assistant", "tool"]
    response = history[2]["parts"][0]
    assert response["type"] == "tool_call_response"
    assert response["id"] == "toolu_1"
    assert json.loads(response["response"]) == {"order_id": "A-1", "status": "shipped"}

    arguments = tool_call["attributes"]["gen_ai.tool.call.arguments"]
    assert json.loads(arguments) == {"order_id": "A-1"}
    assert tool_call["attributes"]["input.value"] == arguments
    assert json.loads(tool_call["attributes"]["gen_ai.tool.call.result"])["status"] == "shipped"

    node_tool = root["children"][1]
    assert json.loads(node_tool["attributes"]["gen_ai.tool.call.arguments"]) == {
        "status": "shipped"
    }
    assert json.loads(node_tool["attributes"]["output.value"]) == {"ok": False}


def test_content_is_absent_without_capture(tmp_path: Any, spans: InMemorySpanExporter) -> None:
    run_orders(tmp_path, tracing_to(spans))
    keys = {k for span in spans.get_finished_spans() for k in (span.attributes or {})}
    assert not keys & CONTENT_KEYS
    assert not {k for k in keys if k.endswith("mime_type")}


def test_captured_content_is_cut_to_its_limit_and_stays_json(
    tmp_path: Any, spans: InMemorySpanExporter
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing = Tracing.from_provider(provider, capture_content=True, content_limit=1_000)
    workflow = orders_workflow(tmp_path)
    ticket = "Where is order A-1? " * 500

    async def main() -> ma.RunResult:
        async with Engine(FakeModel(orders_script), tracing=tracing) as engine:
            return await engine.run(workflow, {"ticket": ticket})

    assert anyio.run(main).ok
    cut = 0
    for span in spans.get_finished_spans():
        attributes = span.attributes or {}
        for key in CONTENT_KEYS & attributes.keys():
            text = str(attributes[key])
            assert len(text) <= 1_000, (span.name, key)
            cut += "…[cut:" in text
            if key.startswith("gen_ai.") and key.endswith("messages"):
                assert_messages(text)
        for side in ("input", "output"):
            if attributes.get(f"{side}.mime_type") == "application/json":
                json.loads(str(attributes[f"{side}.value"]))
    assert cut > 5


def test_a_content_limit_too_small_to_be_useful_is_refused() -> None:
    with pytest.raises(ma.MicroagentsError, match="content_limit must be at least 256"):
        Tracing.from_provider(TracerProvider(), content_limit=10)


# -- naming the service and the Phoenix project -----------------------------------------------


@pytest.mark.parametrize(
    ("environment", "service", "project"),
    [
        ({}, "support_triage", "support_triage"),
        ({"OTEL_SERVICE_NAME": "helpdesk"}, "helpdesk", "helpdesk"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=helpdesk"}, "helpdesk", "helpdesk"),
        (
            {"OTEL_RESOURCE_ATTRIBUTES": "openinference.project.name=triage-evals"},
            "support_triage",
            "triage-evals",
        ),
    ],
)
def test_the_service_and_the_phoenix_project_are_named_after_the_workflow_unless_configured(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], service: str, project: str
) -> None:
    from microagents.tracing._setup import _make_provider

    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.setenv("MICROAGENTS_TRACE_STORE", "off")
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    provider = _make_provider("support_triage")
    attributes = provider.resource.attributes
    assert (attributes["service.name"], attributes["openinference.project.name"]) == (
        service,
        project,
    )
    provider.shutdown()


def test_the_content_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from microagents.tracing._setup import content_limit_from_env

    monkeypatch.delenv("MICROAGENTS_TRACE_CONTENT_LIMIT", raising=False)
    assert content_limit_from_env() == 32_768
    monkeypatch.setenv("MICROAGENTS_TRACE_CONTENT_LIMIT", "4096")
    assert content_limit_from_env() == 4_096
    for bad in ("100", "lots", "-5"):
        monkeypatch.setenv("MICROAGENTS_TRACE_CONTENT_LIMIT", bad)
        with pytest.raises(ma.MicroagentsError, match="MICROAGENTS_TRACE_CONTENT_LIMIT must be"):
            content_limit_from_env()


def test_a_streamed_model_call_is_recorded_like_any_other(
    fake_anthropic: Any, spans: InMemorySpanExporter
) -> None:
    from microagents.models._backends import anthropic_model
    from microagents.testing import Reply

    fake_anthropic.on(Reply.tool_call("final_answer", {"category": "other", "confidence": 0.9,
                                                       "reason": "a poem"}))  # fmt: skip
    workflow = ma.Project(".").load_workflow("workflows/support_triage.yaml")
    events: list[object] = []

    async def main() -> ma.RunResult:
        model = anthropic_model(api_key="test-key", base_url=fake_anthropic.base_url)
        tracing = tracing_to(spans, capture_content=True)
        async with Engine(model, tracing=tracing, journal=SQLiteJournal()) as engine:
            return await engine.run(
                workflow, {"ticket": "A poem?"}, on_event=events.append, deltas=True
            )

    assert anyio.run(main).status == "waiting"
    assert fake_anthropic.requests[0].stream  # the call was streamed
    (chat,) = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    attributes = chat.attributes or {}
    assert chat.status.status_code.name == "OK"
    assert attributes["openinference.span.kind"] == "LLM"
    assert attributes["microagents.tier"] == "haiku"
    (answer,) = assert_messages(attributes["gen_ai.output.messages"], output=True)
    assert answer["parts"][0]["name"] == "final_answer"
