"""Durable runs against the fake API, its request log as the judge: kill -9 and resume pays no
recorded step again, human nodes wait and take an answer, a changed prompt stops a resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

import microagents as ma
from cli_runner import run_cli
from microagents.errors import AnswerRefused, ReplayMismatch, ToolDecisionNeeded
from microagents.runtime import Engine, SQLiteJournal
from microagents.testing import FakeAnthropicServer, Fault, ServerRateLimits
from test_batch import AGENT, read_lines, write_items

ROOT = Path(__file__).resolve().parent.parent
RUN_CLI = "import sys; from microagents.cli import main; main(sys.argv[1:])"

CHAIN = """\
name: chain
version: 1.0.0
description: Three calls per item.
input:
  type: object
  properties: {text: {type: string}}
  required: [text]
entry: first
nodes:
  first: {agent: labeller@^1, input: {text: "{{ input.text }}"}}
  second: {agent: labeller@^1, input: {text: "again {{ input.text }}"}}
  third: {agent: labeller@^1, input: {text: "once more {{ input.text }}"}}
edges:
  - {from: first, to: second}
  - {from: second, to: third}
output:
  label: "{{ nodes.third.output.label }}"
"""

REVIEWED = """\
name: reviewed
version: 1.0.0
description: Label, then ask a person.
input:
  type: object
  properties: {text: {type: string}}
  required: [text]
entry: label
nodes:
  label: {agent: labeller@^1, input: {text: "{{ input.text }}"}}
  review:
    human:
      prompt: "Is '{{ nodes.label.output.label }}' right for {{ input.text }}?"
      answer:
        type: object
        properties: {approved: {type: boolean}, note: {type: string}}
        required: [approved]
edges:
  - {from: label, to: review}
output:
  label: "{{ nodes.label.output.label }}"
  approved: "{{ nodes.review.output.approved }}"
"""


def project(root: Path, *, prompt: str = "Label this item: {{ text }}") -> None:
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "workflows").mkdir(exist_ok=True)
    agent = AGENT.replace("Label this item: {{ text }}", prompt)
    (root / "agents" / "labeller.yaml").write_text(agent, encoding="utf-8")
    (root / "workflows" / "chain.yaml").write_text(CHAIN, encoding="utf-8")
    (root / "workflows" / "reviewed.yaml").write_text(REVIEWED, encoding="utf-8")
    (root / "microagents.toml").write_text(
        "[tiers.haiku]\nrpm = 10000000\ninput_tpm = 10000000000\noutput_tpm = 10000000000\n"
    )


def engine_on(server: FakeAnthropicServer, journal: Path) -> Engine:
    tiers = ma.models.TierTable().with_tier("haiku", limits=ma.models.RateLimits(None, None, None))
    model = ma.models.anthropic_model(api_key="test-key", base_url=server.base_url, tiers=tiers)
    return Engine(model, tiers=tiers, journal=SQLiteJournal(journal))


def calls(server: FakeAnthropicServer) -> int:
    return sum(1 for r in server.requests if r.path == "/v1/messages" and r.succeeded)


def test_a_waiting_run_refuses_a_bad_answer_and_completes_with_a_good_one(
    tmp_path: Path, fake_anthropic: FakeAnthropicServer
) -> None:
    project(tmp_path)
    workflow = ma.Project(tmp_path).load_workflow(tmp_path / "workflows" / "reviewed.yaml")

    async def main() -> tuple[ma.RunResult, ma.RunResult]:
        async with engine_on(fake_anthropic, tmp_path / "journal.sqlite3") as engine:
            waiting = await engine.run(workflow, {"text": "a parcel"})
            with pytest.raises(AnswerRefused, match="approved"):
                await engine.resume(waiting.run_id, answer={"note": "no verdict"})
            done = await engine.resume(waiting.run_id, answer={"approved": True})
            return waiting, done

    waiting, done = anyio.run(main)

    assert waiting.status == "waiting"
    assert waiting.waiting_for is not None
    assert waiting.waiting_for.node == "review"
    assert "right for a parcel?" in waiting.waiting_for.question
    assert waiting.waiting_for.schema["required"] == ["approved"]
    assert done.status == "ok", done.error
    assert done.output["approved"] is True
    assert done.replayed == 2  # the label call and the answer, from the journal
    assert calls(fake_anthropic) == 1  # the label was paid once


PARENT = """\
name: parent
version: 1.0.0
description: A fork of a sub-workflow that asks a person and a label that does not wait.
input:
  type: object
  properties: {text: {type: string}}
  required: [text]
entry: [asked, other]
nodes:
  asked: {workflow: reviewed, input: {text: "{{ input.text }}"}}
  other: {agent: labeller@^1, input: {text: "other {{ input.text }}"}}
output:
  approved: "{{ nodes.asked.output.approved }}"
  other: "{{ nodes.other.output.label }}"
"""


def test_a_sub_workflow_that_waits_makes_its_parent_wait_and_the_fork_goes_on(
    tmp_path: Path, fake_anthropic: FakeAnthropicServer
) -> None:
    project(tmp_path)
    (tmp_path / "workflows" / "parent.yaml").write_text(PARENT, encoding="utf-8")
    workflow = ma.Project(tmp_path).load_workflow(tmp_path / "workflows" / "parent.yaml")

    async def main() -> tuple[ma.RunResult, int, ma.RunResult]:
        async with engine_on(fake_anthropic, tmp_path / "journal.sqlite3") as engine:
            waiting = await engine.run(workflow, {"text": "a parcel"})
            paid = calls(fake_anthropic)
            done = await engine.resume(waiting.run_id, answer={"approved": True})
            return waiting, paid, done

    waiting, paid, done = anyio.run(main)

    # Waiting, not failed; and the other branch of the fork ran on while the person waits.
    assert waiting.status == "waiting", waiting.error
    assert waiting.waiting_for is not None
    assert waiting.waiting_for.node == "review"
    assert paid == 2  # the sub-workflow's label and the other branch's
    assert done.status == "ok", done.error
    assert done.output["approved"] is True
    assert calls(fake_anthropic) == 2  # nothing paid again on resume


def test_a_resumed_runs_span_links_to_the_earlier_attempts_run_span(
    tmp_path: Path, fake_anthropic: FakeAnthropicServer
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    project(tmp_path)
    workflow = ma.Project(tmp_path).load_workflow(tmp_path / "workflows" / "reviewed.yaml")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tiers = ma.models.TierTable().with_tier("haiku", limits=ma.models.RateLimits(None, None, None))

    async def main() -> tuple[ma.RunResult, ma.RunResult]:
        model = ma.models.anthropic_model(
            api_key="test-key", base_url=fake_anthropic.base_url, tiers=tiers
        )
        tracing = ma.tracing.Tracing.from_provider(provider)
        journal = SQLiteJournal(tmp_path / "journal.sqlite3")
        async with Engine(model, tiers=tiers, tracing=tracing, journal=journal) as engine:
            waiting = await engine.run(workflow, {"text": "a parcel"})
            return waiting, await engine.resume(waiting.run_id, answer={"approved": True})

    waiting, done = anyio.run(main)

    runs = [s for s in exporter.get_finished_spans() if s.name == "invoke_workflow reviewed"]
    first, resumed = runs
    assert format(first.context.trace_id, "032x") == waiting.trace_id
    assert format(resumed.context.trace_id, "032x") == done.trace_id != waiting.trace_id
    (link,) = resumed.links
    assert (link.context.trace_id, link.context.span_id) == (
        first.context.trace_id,
        first.context.span_id,
    )
    assert link.attributes == {"microagents.link.type": "earlier_attempt"}
    attributes = resumed.attributes or {}
    assert attributes["microagents.run.attempt"] == 2
    assert attributes["microagents.run.resumed_from"] == waiting.trace_id
    assert not first.links
    assert "microagents.run.attempt" not in (first.attributes or {})
    chats = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    assert [(s.attributes or {}).get("microagents.replayed", False) for s in chats] == [
        False,
        True,
    ]


def test_a_changed_prompt_stops_the_resume_naming_the_node(
    tmp_path: Path, fake_anthropic: FakeAnthropicServer
) -> None:
    project(tmp_path)
    path = tmp_path / "workflows" / "reviewed.yaml"
    journal = tmp_path / "journal.sqlite3"

    async def first() -> ma.RunResult:
        async with engine_on(fake_anthropic, journal) as engine:
            return await engine.run(ma.Project(tmp_path).load_workflow(path), {"text": "x"})

    waiting = anyio.run(first)
    project(tmp_path, prompt="Label this item carefully: {{ text }}")
    changed = ma.Project(tmp_path).load_workflow(path)

    async def resume(**options: Any) -> ma.RunResult:
        async with engine_on(fake_anthropic, journal) as engine:
            return await engine.resume(
                waiting.run_id, answer={"approved": False}, workflow=changed, **options
            )

    with pytest.raises(ReplayMismatch, match=r"node 'label'.*the prompt changed"):
        anyio.run(resume)
    result = anyio.run(lambda: resume(rerun_changed=True))
    assert result.status == "ok"
    assert calls(fake_anthropic) == 2


def test_human_node_from_the_command_line_exits_3_and_resumes_with_an_answer(
    tmp_path: Path,
    fake_anthropic: FakeAnthropicServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MICROAGENTS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)

    code, out, err = run_cli(
        ["run", "workflows/reviewed.yaml", "--input", '{"text": "a parcel"}'], capsys
    )
    assert code == 3, err
    run_id = json.loads(out)["run_id"]
    assert "waiting at node 'review'" in err

    code, out, _ = run_cli(["runs", "show", run_id, "--json"], capsys)
    shown = json.loads(out)
    assert (code, shown["status"], shown["waiting_for"]["node"]) == (0, "waiting", "review")
    assert shown["waiting_for"]["schema"]["required"] == ["approved"]
    code, out, _ = run_cli(["runs", "list", "--status", "waiting"], capsys)
    assert run_id in out

    code, _, err = run_cli(
        ["runs", "resume", run_id, "--answer", '{"approved": "perhaps"}'], capsys
    )
    assert code == 2
    assert "approved" in err
    assert "still waiting" in err

    code, out, err = run_cli(["runs", "resume", run_id, "--answer", '{"approved": true}'], capsys)
    assert code == 0, err
    assert json.loads(out)["output"]["approved"] is True
    assert calls(fake_anthropic) == 1

    # `runs show` says which steps came from the journal (`trace show`: the kill -9 test).
    code, out, _ = run_cli(["runs", "show", run_id], capsys)
    assert "2 came from the journal in attempt 2" in out
    assert "label#1/haiku/1  model  attempt 1 replayed" in out


# -- killed with SIGKILL, in a real process --------------------------------------------------

ITEMS = 200


def cli_env(tmp_path: Path, server: FakeAnthropicServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OTEL_"))}
    env.update(
        ANTHROPIC_API_KEY="test-key",
        ANTHROPIC_BASE_URL=server.base_url,
        MICROAGENTS_HOME=str(tmp_path / "home"),
    )
    return env


def recorded_request_ids(home: Path) -> list[str]:
    """The API request id of every model step the journal in `home` recorded."""
    if not (home / "journal.sqlite3").exists():
        return []
    with sqlite3.connect(home / "journal.sqlite3") as db:
        try:
            rows = db.execute(
                "SELECT result FROM steps WHERE kind = 'model' AND result IS NOT NULL"
            ).fetchall()
        except sqlite3.OperationalError:  # created, its tables not yet
            return []
    return [json.loads(result)["request_id"] for (result,) in rows]


@pytest.fixture
def slow_api() -> Any:
    with FakeAnthropicServer(rate_limits=ServerRateLimits(10**7, 10**10, 10**10)) as server:
        server.fail(Fault.slow(0.01))
        yield server


def test_a_batch_killed_with_sigkill_pays_no_recorded_step_again(
    tmp_path: Path, slow_api: FakeAnthropicServer
) -> None:
    project(tmp_path)
    write_items(tmp_path / "items.jsonl", ITEMS, ids=True)
    env = cli_env(tmp_path, slow_api)
    command = [sys.executable, "-c", RUN_CLI, "run", "workflows/chain.yaml", "--input-file",
               "items.jsonl", "--out", "out.jsonl", "--concurrency", "16"]  # fmt: skip
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while calls(slow_api) < ITEMS:  # a third of the way
        assert process.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    recorded = recorded_request_ids(tmp_path / "home")
    assert recorded

    resumed = subprocess.run(
        [*command, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )

    assert resumed.returncode == 0, resumed.stderr
    # Calls in flight at the kill may reach the server's log at any time, so count by what
    # was asked, not by when: every step was paid for, and a recorded one exactly once.
    paid = [r for r in slow_api.requests if r.path == "/v1/messages" and r.succeeded]
    times_paid = Counter(json.dumps(r.body["messages"]) for r in paid)
    assert len(times_paid) == 3 * ITEMS
    asked = {r.request_id: json.dumps(r.body["messages"]) for r in paid}
    assert all(times_paid[asked[request_id]] == 1 for request_id in recorded)
    lines = read_lines(tmp_path / "out.jsonl")
    assert Counter(line["index"] for line in lines) == Counter(range(1, ITEMS + 1))
    assert all(line["status"] == "ok" for line in lines)


def test_a_single_text_to_sql_run_killed_between_calls_resumes_from_the_command_line(
    tmp_path: Path, slow_api: FakeAnthropicServer, shop_sqlite: Path
) -> None:
    from test_text_to_sql import QUESTIONS, script

    script(slow_api)
    slow_api.fail(Fault.slow(0.15))
    env = cli_env(tmp_path, slow_api)
    question = json.dumps({"question": QUESTIONS[0]["question"], "tenant_id": 1})
    command = [sys.executable, "-c", RUN_CLI, "run", str(ROOT / "workflows" / "text_to_sql.yaml"),
               "--database", f"sqlite:///{shop_sqlite}", "--input", question]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    home = tmp_path / "home"
    # Killed once the writer's answer is recorded, while the reviewer's call is in flight.
    while not recorded_request_ids(home):
        assert process.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.01)
    while calls(slow_api) < 1:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    (writer,) = recorded_request_ids(home)
    with sqlite3.connect(home / "journal.sqlite3") as db:
        ((run_id, status),) = db.execute("SELECT run_id, status FROM runs").fetchall()
    assert status == "running"

    resumed = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "runs", "resume", run_id],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["output"]["rows"] == QUESTIONS[0]["answer"]["rows"]
    # The writer's recorded call was not made again (counted by what was asked: the call in
    # flight at the kill may reach the server's log at any time).
    paid = [r for r in slow_api.requests if r.path == "/v1/messages" and r.succeeded]
    times_paid = Counter(json.dumps(r.body["messages"]) for r in paid)
    (writer_asked,) = [json.dumps(r.body["messages"]) for r in paid if r.request_id == writer]
    assert times_paid[writer_asked] == 1

    # The resumed run's trace says so, and where the earlier attempt's trace is.
    shown = subprocess.run(
        [sys.executable, "-c", RUN_CLI, "trace", "show", run_id],
        cwd=ROOT, env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "attempt 2: resumed from trace" in shown.stdout
    hops = shown.stdout.split("hop", 1)[1].splitlines()
    assert sum("replayed from the journal" in hop for hop in hops) == 1  # the writer's call


# -- a tool that had started when the process died ---------------------------------------------

CHARGED = """\
name: charged
version: 1.0.0
description: Label an item, then charge for it (a tool that must not run twice unasked).
input:
  type: object
  properties: {text: {type: string}}
  required: [text]
entry: label
nodes:
  label: {agent: labeller@^1, input: {text: "{{ input.text }}"}}
  charge: {tool: billing.charge, input: {label: "{{ nodes.label.output.label }}"}}
edges:
  - {from: label, to: charge}
output:
  charged: "{{ nodes.charge.output.charged }}"
"""

CHARGES = '''\
import os
import time

from microagents import tool


@tool(name="billing.charge")
def charge(label: str) -> dict[str, str]:
    """Charge the customer: not idempotent, a second call is a second charge."""
    with open(os.environ["CHARGES_LOG"], "a", encoding="utf-8") as log:
        log.write(label + "\\n")
    if os.environ.get("CHARGE_HANGS"):
        time.sleep(60)  # killed in here
    return {"charged": label}
'''


def test_a_tool_that_started_before_a_crash_stops_the_resume_until_rerun_is_asked_for(
    tmp_path: Path, slow_api: FakeAnthropicServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path)
    (tmp_path / "workflows" / "charged.yaml").write_text(CHARGED, encoding="utf-8")
    (tmp_path / "charges.py").write_text(CHARGES, encoding="utf-8")
    charges = tmp_path / "charges.log"
    env = {**cli_env(tmp_path, slow_api), "CHARGES_LOG": str(charges)}
    command = [sys.executable, "-c", RUN_CLI, "run", "workflows/charged.yaml", "--tools",
               "charges", "--input", '{"text": "a parcel"}']  # fmt: skip
    process = subprocess.Popen(
        command, cwd=tmp_path, env={**env, "CHARGE_HANGS": "1"}, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while not charges.exists():  # the tool has started: its start is recorded, durably
        assert process.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    journal = tmp_path / "home" / "journal.sqlite3"
    with sqlite3.connect(journal) as db:
        ((run_id,),) = db.execute("SELECT run_id FROM runs").fetchall()
        started = db.execute("SELECT key FROM steps WHERE kind = 'tool' AND result IS NULL")
        ((step,),) = started.fetchall()
    assert step == "charge#1/1"

    def resume(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", RUN_CLI, "runs", "resume", run_id, *options],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    refused = resume()
    assert refused.returncode == 2, refused.stderr  # a decision for the user, as bad input
    assert "MA903" in refused.stderr
    assert "tool 'billing.charge' (node 'charge', step charge#1/1)" in refused.stderr
    assert "--rerun-tools" in refused.stderr

    # The Python API stops the same way, naming the call.
    monkeypatch.setenv("MICROAGENTS_HOME", str(tmp_path / "home"))
    monkeypatch.syspath_prepend(str(tmp_path))
    tools = ma.Project.tools_from_modules(["charges"])
    workflow = ma.Project(tmp_path, tools=tools).load_workflow(tmp_path / "workflows/charged.yaml")

    async def python_resume() -> None:
        async with engine_on(slow_api, journal) as engine:
            await engine.resume(run_id, workflow=workflow)

    with pytest.raises(ToolDecisionNeeded) as stopped:
        anyio.run(python_resume)
    assert (stopped.value.tool, stopped.value.node) == ("billing.charge", "charge")
    assert len(charges.read_text().splitlines()) == 1  # not called again

    paid = calls(slow_api)
    done = resume("--rerun-tools")
    assert done.returncode == 0, done.stderr
    label = json.loads(done.stdout)["output"]["charged"]
    assert charges.read_text().splitlines() == [label, label]  # charged again, as asked
    assert calls(slow_api) == paid  # the label came from the journal


def test_a_run_is_found_by_its_id_or_a_unique_prefix_of_it(tmp_path: Path) -> None:
    from microagents.runtime._journal_store import RunRecord

    store = SQLiteJournal(tmp_path / "journal.sqlite3")
    for run_id in ("batch-a1", "batch-a2", "batch-b1", "batch-b"):
        store.record_run(RunRecord(run_id, "chain", "ok", {}, 0.0, 0.0))

    async def found(run_id: str) -> str | None:
        record = await store.run(run_id)
        return None if record is None else record.run_id

    async def main() -> list[str | None]:
        await store.durable()  # records are written behind
        try:
            return [await found(x) for x in ("batch-a1", "batch-b", "batch-b1", "batch-a", "x")]
        finally:
            await store.aclose()

    # Exact first (batch-b is also a prefix of batch-b1); an ambiguous prefix finds nothing.
    assert anyio.run(main) == ["batch-a1", "batch-b", "batch-b1", None, None]


def test_resuming_a_batch_whose_items_wait_refuses_a_repeated_id_once(
    tmp_path: Path, fake_anthropic: FakeAnthropicServer
) -> None:
    from microagents.runtime import run_batch

    project(tmp_path)
    workflow = ma.Project(tmp_path).load_workflow(tmp_path / "workflows" / "reviewed.yaml")
    items = tmp_path / "items.jsonl"
    write_items(items, 3, ids=True)
    with items.open("a") as handle:
        handle.write(json.dumps({"id": "item-2", "text": "the same id again"}) + "\n")

    async def main() -> None:
        for resume in (False, True):  # the items wait for a person both times
            async with engine_on(fake_anthropic, tmp_path / "journal.sqlite3") as engine:
                await run_batch(engine, workflow, items, tmp_path / "out.jsonl", resume=resume)

    anyio.run(main)
    lines = read_lines(tmp_path / "out.jsonl")
    assert sorted(line["index"] for line in lines) == [1, 2, 3, 4]
    (refused,) = [line for line in lines if line["status"] == "failed"]
    assert "repeats line 2" in refused["error"]
