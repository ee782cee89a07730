"""Replay through the real SDK against the fake server, its request log as the judge: an
unchanged workflow makes no call and reports no change; a prompt edit calls the model only for
the edited node and the nodes downstream of it."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
from syrupy.assertion import SnapshotAssertion

import microagents as ma
from cli_runner import run_cli
from microagents.evals import (
    RecordedRun,
    ReplayReport,
    export_run,
    load_recorded,
    recorded_run,
    replay,
)
from microagents.runtime import Engine, SQLiteJournal
from microagents.testing import (
    FakeAnthropicServer,
    Reply,
    assert_replay,
    replay_cases,
    replay_outcome,
)

AGENT = """\
name: {name}
version: 1.0.0
description: Label one item.
model: haiku
prompt: "{prompt}"
input:
  type: object
  properties: {{text: {{type: string}}}}
  required: [text]
output:
  type: object
  properties: {{label: {{type: string}}}}
  required: [label]
"""

# first → second → third, and `aside` beside them on the input alone.
WORKFLOW = """\
name: chain
version: 1.0.0
description: Four calls, three in a row.
input:
  type: object
  properties: {text: {type: string}}
  required: [text]
entry: first
nodes:
  first: {agent: first@^1, input: {text: "{{ input.text }}"}}
  second: {agent: second@^1, input: {text: "{{ nodes.first.output.label }}"}}
  third: {agent: third@^1, input: {text: "{{ nodes.second.output.label }}"}}
  aside: {agent: aside@^1, input: {text: "{{ input.text }}"}}
edges:
  - {from: first, to: second}
  - {from: first, to: aside}
  - {from: second, to: third}
output:
  label: "{{ nodes.third.output.label }}"
  aside: "{{ nodes.aside.output.label }}"
"""


def write_project(root: Path, *, second_prompt: str = "Refine: {{ text }}") -> Path:
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "workflows").mkdir(exist_ok=True)
    prompts = {
        "first": "Label: {{ text }}",
        "second": second_prompt,
        "third": "Finish: {{ text }}",
        "aside": "Aside: {{ text }}",
    }
    for name, prompt in prompts.items():
        text = AGENT.format(name=name, prompt=prompt)
        (root / "agents" / f"{name}.yaml").write_text(text, encoding="utf-8")
    path = root / "workflows" / "chain.yaml"
    path.write_text(WORKFLOW, encoding="utf-8")
    return path


def script(server: FakeAnthropicServer) -> None:
    """Each agent labels with what it read; `second` says whether it was asked to be short."""
    server.on(Reply.structured({"label": "parcel"}), message_contains="Label:")
    server.on(Reply.structured({"label": "short parcel"}), message_contains="Refine briefly:")
    server.on(Reply.structured({"label": "refined parcel"}), message_contains="Refine:")
    server.on(Reply.structured({"label": "done"}), message_contains="Finish: refined")
    server.on(Reply.structured({"label": "done short"}), message_contains="Finish: short")
    server.on(Reply.structured({"label": "beside"}), message_contains="Aside:")


def model_on(server: FakeAnthropicServer) -> ma.models.Model:
    tiers = ma.models.TierTable().with_tier("haiku", limits=ma.models.RateLimits(None, None, None))
    return ma.models.anthropic_model(api_key="test-key", base_url=server.base_url, tiers=tiers)


def calls(server: FakeAnthropicServer) -> list[str]:
    """The prompt of every successful model call, in order."""
    prompts = []
    for request in server.requests:
        if request.path == "/v1/messages" and request.succeeded:
            prompts.append(json.dumps(request.body["messages"]))
    return prompts


def record_run(root: Path, server: FakeAnthropicServer, journal: Path) -> str:
    workflow = ma.Project(root).load_workflow(root / "workflows" / "chain.yaml")

    async def main() -> ma.RunResult:
        async with Engine(model_on(server), journal=SQLiteJournal(journal)) as engine:
            return await engine.run(workflow, {"text": "a parcel"})

    result = anyio.run(main)
    assert result.status == "ok", result.error
    assert result.output == {"label": "done", "aside": "beside"}
    return result.run_id


def replay_now(
    root: Path, server: FakeAnthropicServer, run: str | RecordedRun, journal: Path
) -> ReplayReport:
    workflow = ma.Project(root).load_workflow(root / "workflows" / "chain.yaml")

    async def main() -> ReplayReport:
        store = SQLiteJournal(journal)
        model = model_on(server)
        try:
            return await replay(run, workflow, model=model, journal=store)
        finally:
            await model.aclose()
            await store.aclose()

    return anyio.run(main)


def test_an_unchanged_workflow_replays_without_a_call_and_reports_no_change(
    tmp_path: Path, fake_anthropic: FakeAnthropicServer
) -> None:
    write_project(tmp_path)
    script(fake_anthropic)
    journal = tmp_path / "journal.sqlite3"
    run_id = record_run(tmp_path, fake_anthropic, journal)
    recorded_calls = len(calls(fake_anthropic))

    report = replay_now(tmp_path, fake_anthropic, run_id, journal)

    assert recorded_calls == 4
    assert len(calls(fake_anthropic)) == recorded_calls  # not one call more
    assert not report.changed
    assert report.live_calls == 0
    assert report.replayed_calls == 4
    assert report.live_cost_usd == 0
    assert [n.node for n in report.nodes if n.changed] == []
    assert report.result.output == {"label": "done", "aside": "beside"}


def test_a_prompt_edit_calls_the_model_for_that_node_and_its_dependants_only(
    tmp_path: Path, fake_anthropic: FakeAnthropicServer
) -> None:
    write_project(tmp_path)
    script(fake_anthropic)
    journal = tmp_path / "journal.sqlite3"
    run_id = record_run(tmp_path, fake_anthropic, journal)
    recorded_calls = len(calls(fake_anthropic))

    write_project(tmp_path, second_prompt="Refine briefly: {{ text }}")
    report = replay_now(tmp_path, fake_anthropic, run_id, journal)

    live = calls(fake_anthropic)[recorded_calls:]
    assert len(live) == 2
    assert "Refine briefly:" in live[0]
    assert "Finish:" in live[1]
    assert "short parcel" in live[1]
    by_node = {n.node: n for n in report.nodes}
    assert {name: (n.live, n.replayed) for name, n in by_node.items()} == {
        "first": (0, 1),
        "second": (1, 0),
        "third": (1, 0),
        "aside": (0, 1),
    }
    assert [n.node for n in report.nodes if n.changed] == ["second", "third"]
    assert by_node["second"].changed_request == "the prompt"
    assert by_node["third"].changed_request == "the prompt"
    assert by_node["second"].recorded_output == {"label": "refined parcel"}
    assert by_node["second"].output == {"label": "short parcel"}
    assert '-  "label": "refined parcel"' in by_node["second"].diff()
    assert report.output_changed
    assert report.result.output == {"label": "done short", "aside": "beside"}
    assert report.live_cost_usd > 0
    assert report.live_cost_usd == by_node["second"].live_cost_usd + by_node["third"].live_cost_usd


def test_the_command_replays_from_the_recorded_origin_and_exports_runs(
    tmp_path: Path,
    fake_anthropic: FakeAnthropicServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write_project(tmp_path)
    script(fake_anthropic)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    code, out, err = run_cli(
        ["run", "workflows/chain.yaml", "--agents", "agents", "--input", '{"text": "a parcel"}'],
        capsys,
    )
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    recorded_calls = len(calls(fake_anthropic))

    code, out, err = run_cli(["replay", run_id, "--check"], capsys)
    assert code == 0, err
    assert "no change; 4 calls replayed, 0 live ($0.00000)" in out
    assert len(calls(fake_anthropic)) == recorded_calls

    write_project(tmp_path, second_prompt="Refine briefly: {{ text }}")
    code, out, err = run_cli(["replay", run_id, "--check", "--json", "replay.json"], capsys)
    assert code == 1, err
    assert "second#1" in out
    assert '+  "label": "short parcel"' in out
    assert len(calls(fake_anthropic)) == recorded_calls + 2
    shown = json.loads((tmp_path / "replay.json").read_text())
    assert [n["node"] for n in shown["nodes"] if n["changed"]] == ["second", "third"]

    code, out, err = run_cli(["runs", "export", run_id, "--to", "recorded"], capsys)
    assert code == 0, err
    exported = load_recorded(tmp_path / "recorded" / f"{run_id}.json")
    assert exported.input == {"text": "a parcel"}
    assert len(exported.steps) == 4
    # An exported run replays without the journal, and exports the same again.
    assert export_run(exported, tmp_path / "again").read_text() == Path(out.strip()).read_text()


# -- a folder of recorded runs as a regression suite ----------------------------------------


def test_recorded_runs_become_snapshot_cases(
    tmp_path: Path, fake_anthropic: FakeAnthropicServer, snapshot: SnapshotAssertion
) -> None:
    write_project(tmp_path)
    script(fake_anthropic)
    journal = tmp_path / "journal.sqlite3"
    run_id = record_run(tmp_path, fake_anthropic, journal)
    store = SQLiteJournal(journal)
    export_run(anyio.run(recorded_run, run_id, store), tmp_path / "recorded")
    anyio.run(store.aclose)
    recorded_calls = len(calls(fake_anthropic))
    workflow = ma.Project(tmp_path).load_workflow(tmp_path / "workflows" / "chain.yaml")

    cases = replay_cases(tmp_path / "recorded")
    assert [case.id for case in cases] == [run_id]
    (recorded,) = cases[0].values
    assert isinstance(recorded, RecordedRun)
    report = assert_replay(recorded, workflow, snapshot)
    assert not report.changed
    assert len(calls(fake_anthropic)) == recorded_calls  # offline

    # A prompt edit: offline, the edited node fails, and the outcome no longer matches.
    write_project(tmp_path, second_prompt="Refine briefly: {{ text }}")
    edited = ma.Project(tmp_path).load_workflow(tmp_path / "workflows" / "chain.yaml")
    with pytest.raises(AssertionError):
        assert_replay(recorded, edited, replay_outcome(report))
    outcome = replay_outcome(anyio.run(lambda: replay(recorded, edited)))
    assert outcome["nodes"]["second#1"]["status"] == "failed"
    assert "replay with a model" in outcome["nodes"]["second#1"]["error"]
    assert len(calls(fake_anthropic)) == recorded_calls
