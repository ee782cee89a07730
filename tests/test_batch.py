"""The batch runner: one output line per input line, checkpoints, resume, budgets, repair."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import microagents as ma
from microagents.graph._compiled import CompiledWorkflow
from microagents.results._summary import BatchSummary, LatencyHistogram, percentile
from microagents.runtime._batch import BatchProgress, BatchRunner, run_batch
from microagents.runtime._engine import Engine
from microagents.runtime._journal_store import JOURNAL_FILE, SQLiteJournal
from microagents.testing import FakeAnthropicServer, FakeModel, Fault

ROOT = Path(__file__).resolve().parent.parent

AGENT = """\
name: labeller
version: 1.0.0
description: Label one item.
model: haiku
prompt: "Label this item: {{ text }}"
input:
  type: object
  properties: {text: {type: string}}
  required: [text]
output:
  type: object
  properties: {label: {type: string}}
  required: [label]
"""

WORKFLOW = """\
name: labelling
version: 1.0.0
description: Label items, one agent call each.
input:
  type: object
  properties: {text: {type: string}}
  required: [text]
entry: label
nodes:
  label:
    agent: labeller@^1
    input: {text: "{{ input.text }}"}
output:
  label: "{{ nodes.label.output.label }}"
"""

MARKER = re.compile(r"marker-\d+")


def write_project(root: Path, *, prompt: str = "Label this item: {{ text }}") -> Path:
    """A one-agent workflow in `root`; returns the workflow file."""
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "workflows").mkdir(exist_ok=True)
    agent = AGENT.replace("Label this item: {{ text }}", prompt)
    (root / "agents" / "labeller.yaml").write_text(agent, encoding="utf-8")
    path = root / "workflows" / "labelling.yaml"
    path.write_text(WORKFLOW, encoding="utf-8")
    return path


def labelling(root: Path, **kwargs: Any) -> CompiledWorkflow:
    path = write_project(root, **kwargs)
    return ma.Project(root).load_workflow(path)


def write_items(path: Path, count: int, *, ids: bool = False, start: int = 1) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for n in range(start, start + count):
            item: dict[str, Any] = {"text": f"marker-{n} something to label"}
            if ids:
                item["id"] = f"item-{n}"
            handle.write(json.dumps(item) + "\n")


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def markers(requests: Iterable[ma.models.ModelRequest]) -> list[str]:
    found: list[str] = []
    for request in requests:
        text = "".join(
            block.text
            for message in request.messages
            for block in message.content
            if isinstance(block, ma.models.TextBlock)
        )
        found.extend(MARKER.findall(text))
    return found


def answer(cost: float = 0.0) -> Callable[[ma.models.ModelRequest], ma.models.ModelResponse]:
    """A forced-tool answer that costs `cost` dollars."""

    def reply(request: ma.models.ModelRequest) -> ma.models.ModelResponse:
        block = ma.models.ToolUseBlock("toolu_1", "final_answer", {"label": "fine"})
        usage = ma.models.Usage(input_tokens=10, output_tokens=5)
        return ma.models.ModelResponse((block,), "tool_use", usage, request.model, cost_usd=cost)

    return reply


class Notes:
    """An observer that keeps what it was told."""

    interval = 0.01

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.updates: list[BatchProgress] = []

    def update(self, progress: BatchProgress, **future_kwargs: Any) -> None:
        self.updates.append(progress)

    def note(self, message: str, **future_kwargs: Any) -> None:
        self.notes.append(message)


def batch(
    model: ma.models.Model, workflow: CompiledWorkflow, items: Path, out: Path, **options: Any
) -> BatchSummary:
    async def main() -> BatchSummary:
        async with Engine(model, tiers=ma.models.TierTable()) as engine:
            return await run_batch(engine, workflow, items, out, **options)

    return anyio.run(main)


# -- one line out per line in ---------------------------------------------------------------


def test_bad_lines_fail_with_their_line_number_and_the_rest_finish(tmp_path: Path) -> None:
    workflow = labelling(tmp_path)
    items = tmp_path / "items.jsonl"
    write_items(items, 3)
    with items.open("ab") as handle:
        handle.write(b'{"text": "marker-4 broken",\n')  # line 4: bad JSON
        handle.write(b"\n")  # line 5: blank, not an item
        handle.write(b'["marker-6 not an object"]\n')  # line 6
        handle.write(b'{"text": "\xff\xfe marker-7"}\n')  # line 7: not UTF-8
        handle.write(b'{"nothing": "marker-8 wrong fields"}\n')  # line 8: fails the schema
    write_items(items, 2, start=9)  # lines 9 and 10
    model = FakeModel(answer())
    out = tmp_path / "out.jsonl"
    notes = Notes()

    summary = batch(model, workflow, items, out, observer=notes)

    lines = read_lines(out)
    by_index = {line["index"]: line for line in lines}
    assert len(lines) == len(by_index) == 9  # every line but the blank one, once
    assert sorted(by_index) == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    assert {i for i, line in by_index.items() if line["status"] == "ok"} == {1, 2, 3, 9, 10}
    assert by_index[4]["error"].startswith("items.jsonl:4: not valid JSON")
    assert by_index[6]["error"] == "items.jsonl:6: expected a JSON object, got an array"
    assert by_index[7]["error"].startswith("items.jsonl:7: not UTF-8 text")
    assert "does not match the workflow's input schema" in by_index[8]["error"]
    assert by_index[1]["output"] == {"label": "fine"}
    assert set(by_index[1]) == set(by_index[4]) == {
        "index", "id", "status", "output", "error", "failed_node", "escalations", "cost_usd",
        "simulated", "run_id", "trace_id",
    }  # fmt: skip
    assert by_index[1]["run_id"] is not None
    assert by_index[4]["run_id"] is None  # a bad line never became a run
    assert sorted(markers(model.requests)) == ["marker-1", "marker-10", "marker-2", "marker-3",
                                               "marker-9"]  # fmt: skip
    assert (summary.ok, summary.failed, summary.malformed) == (5, 4, 3)
    assert not summary.all_ok
    assert any(note.startswith("items.jsonl:4: not valid JSON") for note in notes.notes)


def test_resume_skips_finished_items_without_a_model_call(tmp_path: Path) -> None:
    workflow = labelling(tmp_path)
    items = tmp_path / "items.jsonl"
    out = tmp_path / "out.jsonl"
    write_items(items, 30)
    first = FakeModel(answer(0.01))
    batch(first, workflow, items, out, concurrency=4)
    write_items(items, 20, start=31)  # the file grew: only the new lines are new work

    second = FakeModel(answer(0.01))
    summary = batch(second, workflow, items, out, concurrency=4, resume=True)

    assert sorted(markers(second.requests)) == sorted(f"marker-{n}" for n in range(31, 51))
    assert (summary.ok, summary.resumed, summary.resumed_ok) == (20, 30, 30)
    assert summary.total_cost_usd == pytest.approx(0.5)
    assert Counter(line["index"] for line in read_lines(out)) == Counter(range(1, 51))


def test_without_resume_a_batch_starts_over(tmp_path: Path) -> None:
    workflow = labelling(tmp_path)
    items, out = tmp_path / "items.jsonl", tmp_path / "out.jsonl"
    write_items(items, 10)
    batch(FakeModel(answer()), workflow, items, out)
    again = FakeModel(answer())
    notes = Notes()

    batch(again, workflow, items, out, observer=notes)

    assert len(again.requests) == 10
    assert len(read_lines(out)) == 10  # rewritten, not appended
    assert any("forgot 10 checkpointed results" in note for note in notes.notes)


def test_a_changed_workflow_does_not_resume_stale_results(tmp_path: Path) -> None:
    items, out = tmp_path / "items.jsonl", tmp_path / "out.jsonl"
    write_items(items, 10)
    batch(FakeModel(answer()), labelling(tmp_path), items, out)
    changed = labelling(tmp_path, prompt="Label this item carefully: {{ text }}")
    model = FakeModel(answer())

    summary = batch(model, changed, items, out, resume=True)

    assert (summary.resumed, len(model.requests)) == (0, 10)
    assert len(read_lines(out)) == 10


def test_items_with_ids_resume_by_id_and_a_repeated_id_fails(tmp_path: Path) -> None:
    workflow = labelling(tmp_path)
    items, out = tmp_path / "items.jsonl", tmp_path / "out.jsonl"
    write_items(items, 5, ids=True)
    with items.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"id": "item-2", "text": "marker-99 again"}) + "\n")
    model = FakeModel(answer())

    summary = batch(model, workflow, items, out, concurrency=2)

    lines = {line["index"]: line for line in read_lines(out)}
    assert sorted(lines) == [1, 2, 3, 4, 5, 6]
    assert lines[3]["id"] == "item-3"
    assert lines[6]["status"] == "failed"
    assert lines[6]["error"].startswith("items.jsonl:6: id 'item-2' repeats line 2")
    assert "marker-99" not in markers(model.requests)
    assert summary.duplicates == 1

    # The lines moved: known by id, the items are still finished.
    items.write_text("".join(reversed(items.read_text().splitlines(keepends=True))))
    again = FakeModel(answer())
    summary = batch(again, workflow, items, out, resume=True)
    assert (summary.resumed, len(again.requests)) == (6, 0)


# -- budgets -------------------------------------------------------------------------------


def test_the_budget_stops_new_items_and_a_resume_with_more_continues(tmp_path: Path) -> None:
    workflow = labelling(tmp_path)
    items, out = tmp_path / "items.jsonl", tmp_path / "out.jsonl"
    write_items(items, 20)
    notes = Notes()

    # Each item costs $0.01; after 5 items $0.05 >= $0.045, so the 6th is not started.
    summary = batch(
        FakeModel(answer(0.01)), workflow, items, out, concurrency=1, budget_usd=0.045,
        observer=notes,
    )  # fmt: skip

    assert (summary.ok, summary.skipped_by_budget) == (5, 15)
    assert summary.stopped_by_budget
    assert not summary.all_ok
    assert len(read_lines(out)) == 5
    assert any(note.startswith("budget reached: $0.0500 spent of $0.045") for note in notes.notes)
    assert any("stopped by the budget: 15 items not started" in note for note in notes.notes)

    more = FakeModel(answer(0.01))
    summary = batch(more, workflow, items, out, concurrency=1, budget_usd=1.0, resume=True)

    assert (summary.ok, summary.resumed, summary.skipped_by_budget) == (15, 5, 0)
    assert summary.all_ok
    assert sorted(markers(more.requests)) == sorted(f"marker-{n}" for n in range(6, 21))
    assert Counter(line["index"] for line in read_lines(out)) == Counter(range(1, 21))


def test_a_budget_already_spent_starts_nothing(tmp_path: Path) -> None:
    workflow = labelling(tmp_path)
    items, out = tmp_path / "items.jsonl", tmp_path / "out.jsonl"
    write_items(items, 6)
    batch(FakeModel(answer(0.01)), workflow, items, out, concurrency=1, budget_usd=0.02)
    model = FakeModel(answer(0.01))

    summary = batch(model, workflow, items, out, budget_usd=0.02, resume=True)

    assert (summary.ok, summary.resumed, summary.skipped_by_budget) == (0, 2, 4)
    assert model.requests == []


# -- interruption and repair ---------------------------------------------------------------


class GatedModel:
    """Answers the first `open_calls` calls at once; later calls wait until cancelled.
    `settled` is set once `open_calls` are answered and `waiting` calls wait. Create it
    inside the event loop."""

    def __init__(self, open_calls: int, waiting: int) -> None:
        self.open_calls = open_calls
        self.expected_waiting = waiting
        self.requests: list[ma.models.ModelRequest] = []
        self.answered = 0
        self.waiting = 0
        self.settled = anyio.Event()

    async def complete(self, request: ma.models.ModelRequest) -> ma.models.ModelResponse:
        self.requests.append(request)
        if len(self.requests) > self.open_calls:
            self.waiting += 1
            self._check()
            await anyio.sleep_forever()
        await anyio.lowlevel.checkpoint()
        self.answered += 1
        self._check()
        return answer(0.01)(request)

    def _check(self) -> None:
        if self.answered >= self.open_calls and self.waiting >= self.expected_waiting:
            self.settled.set()


def test_cancelling_a_batch_keeps_every_finished_item(tmp_path: Path) -> None:
    workflow = labelling(tmp_path)
    items, out = tmp_path / "items.jsonl", tmp_path / "out.jsonl"
    write_items(items, 40)

    async def main() -> BatchRunner:
        gated = GatedModel(open_calls=12, waiting=4)
        async with Engine(gated, tiers=ma.models.TierTable()) as engine:
            runner = BatchRunner(engine, workflow, items, out, concurrency=4)
            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    group.start_soon(runner.run)
                    await gated.settled.wait()
                    group.cancel_scope.cancel()  # as Ctrl-C does
            return runner

    runner = anyio.run(main)

    # Flushed on the way out, though no flush was due: the output has all twelve.
    assert sorted(line["index"] for line in read_lines(out)) == list(range(1, 13))
    summary = runner.summary()
    assert summary.interrupted
    assert summary.ok == 12

    model = FakeModel(answer(0.01))
    summary = batch(model, workflow, items, out, concurrency=4, resume=True)
    assert summary.resumed == 12
    assert sorted(markers(model.requests)) == sorted(f"marker-{n}" for n in range(13, 41))
    assert Counter(line["index"] for line in read_lines(out)) == Counter(range(1, 41))


def test_reading_stays_a_chunk_ahead_of_the_items_running(tmp_path: Path) -> None:
    workflow = labelling(tmp_path)
    items, out = tmp_path / "items.jsonl", tmp_path / "out.jsonl"
    items.write_text('{"text": "marker-1"}\n' * 50_000)

    async def main() -> BatchProgress:
        gated = GatedModel(open_calls=0, waiting=4)
        async with Engine(gated, tiers=ma.models.TierTable()) as engine:
            runner = BatchRunner(engine, workflow, items, out, concurrency=4)
            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    group.start_soon(runner.run)
                    await gated.settled.wait()
                    await anyio.sleep(0.05)  # time enough to read far ahead, if it would
                    progress = runner.progress()
                    group.cancel_scope.cancel()
            return progress

    progress = anyio.run(main)

    assert progress.lines_read <= 3 * 32  # a chunk dispatching, one read ahead, one waiting
    assert progress.done == 0


def test_resume_repairs_an_output_file_cut_between_checkpoint_and_write(tmp_path: Path) -> None:
    workflow = labelling(tmp_path)
    items, out = tmp_path / "items.jsonl", tmp_path / "out.jsonl"
    write_items(items, 10)
    batch(FakeModel(answer()), workflow, items, out)
    # As if killed after checkpointing all ten but writing only three lines and a half, with
    # the last confirmed save covering those three.
    raw = out.read_bytes().splitlines(keepends=True)
    kept = b"".join(raw[:3])
    out.write_bytes(kept + raw[3][:20])
    with sqlite3.connect(tmp_path / "home" / JOURNAL_FILE) as db:
        db.execute("UPDATE batches SET out_size = ?, written_seq = 3", (len(kept),))
    model = FakeModel(answer())
    notes = Notes()

    summary = batch(model, workflow, items, out, resume=True, observer=notes)

    assert model.requests == []
    assert summary.resumed == 10
    lines = out.read_bytes().splitlines(keepends=True)
    assert lines[:3] == raw[:3]
    assert sorted(lines) == sorted(raw)
    assert "restored 7 checkpointed results that the output file lacked" in notes.notes


def test_resume_rewrites_a_lost_output_file_from_the_checkpoint(tmp_path: Path) -> None:
    workflow = labelling(tmp_path)
    items, out = tmp_path / "items.jsonl", tmp_path / "out.jsonl"
    write_items(items, 10)
    batch(FakeModel(answer()), workflow, items, out)
    before = sorted(out.read_text().splitlines())
    out.unlink()
    model = FakeModel(answer())
    notes = Notes()

    batch(model, workflow, items, out, resume=True, observer=notes)

    assert model.requests == []
    assert sorted(out.read_text().splitlines()) == before
    assert any("rewriting all 10 checkpointed results" in note for note in notes.notes)


def test_checkpoints_are_written_in_batches_not_per_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = labelling(tmp_path)
    items, out = tmp_path / "items.jsonl", tmp_path / "out.jsonl"
    write_items(items, 500)
    saves: list[int] = []
    save = SQLiteJournal._save

    def counting(self: SQLiteJournal, batch: str, rows: Any, written: Any) -> None:
        saves.append(len(rows))
        save(self, batch, rows, written)

    monkeypatch.setattr(SQLiteJournal, "_save", counting)

    batch(FakeModel(answer()), workflow, items, out, concurrency=8)

    assert sum(saves) == 500
    assert len(saves) <= 6  # 200 + 200 + the rest, plus the start and the end watermarks


def test_the_output_file_is_the_input_file(tmp_path: Path) -> None:
    workflow = labelling(tmp_path)
    items = tmp_path / "items.jsonl"
    write_items(items, 1)
    with pytest.raises(ma.MicroagentsError, match="is the input file"):
        batch(FakeModel(answer()), workflow, items, items)


# -- summary -------------------------------------------------------------------------------


def test_a_simulated_batch_is_labelled_and_summed_up(tmp_path: Path) -> None:
    workflow = ma.Project(ROOT).load_workflow(ROOT / "workflows" / "support_triage.yaml")
    items = tmp_path / "tickets.jsonl"
    items.write_text(
        "".join((ROOT / "examples" / "tickets.jsonl").read_text().splitlines(True)[:20])
    )
    out = tmp_path / "out.jsonl"
    model = ma.models.SimulatedModel(workflow.agents, latency=ma.models.SimulatedLatency(scale=0))

    summary = batch(model, workflow, items, out, concurrency=8)

    assert summary.simulated
    assert summary.ok == 20
    assert all(line["simulated"] for line in read_lines(out))
    data = summary.to_dict()
    assert data["items"]["ok"] == 20
    assert data["simulated"] is True
    route = data["escalation"]["route"]
    assert route["visits"] == 20
    assert 0 < route["escalated"] < 20
    assert route["rate"] == pytest.approx(route["escalated"] / 20, abs=1e-4)
    assert {"haiku", "sonnet"} <= set(data["tiers"])
    assert data["tiers"]["haiku"]["calls"] >= 20
    assert data["tiers"]["haiku"]["cost_usd"] > 0
    assert data["latency_s"]["p50"] is not None
    escalated_lines = sum(bool(line["escalations"]) for line in read_lines(out))
    assert data["items"]["escalated"] == escalated_lines

    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(summary.render())
    text = console.export_text()
    assert text.startswith("SIMULATED support_triage: 20 ok, 0 failed")
    assert "route" in text
    assert "haiku" in text


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([], 0.5) is None


def test_latency_percentiles_in_constant_memory_are_within_a_percent() -> None:
    values = [0.001 * 1.007**n for n in range(2000)]  # 1 ms to ~1,100 s
    histogram = LatencyHistogram()
    for value in values:
        histogram.add(value)
    for fraction in (0.5, 0.95, 0.99):
        exact = percentile(values, fraction)
        assert exact is not None
        assert histogram.percentile(fraction) == pytest.approx(exact, rel=0.01)
    assert LatencyHistogram().percentile(0.5) is None
    instant = LatencyHistogram()
    instant.add(0.0)
    assert instant.percentile(0.99) == 0.0


# -- against the fake Anthropic API, with faults -------------------------------------------


def test_two_thousand_items_through_injected_faults_are_all_accounted_for(
    tmp_path: Path, fake_anthropic: FakeAnthropicServer
) -> None:
    workflow = labelling(tmp_path)
    items, out = tmp_path / "items.jsonl", tmp_path / "out.jsonl"
    write_items(items, 2000)
    # About a fifth of calls fail, each way the API can fail, the same calls on every run.
    fake_anthropic.fail(Fault.rate_limited(retry_after=0.01), rate=0.06, seed=1)
    fake_anthropic.fail(Fault.overloaded(), rate=0.05, seed=2)
    fake_anthropic.fail(Fault.server_error(), rate=0.05, seed=3)
    fake_anthropic.fail(Fault.drop_connection(), rate=0.05, seed=4)
    unlimited = ma.models.RateLimits(None, None, None)
    tiers = ma.models.TierTable()
    for name in tiers.names:
        tiers = tiers.with_tier(name, limits=unlimited)
    model = ma.models.anthropic_model(
        api_key="test-key",
        base_url=fake_anthropic.base_url,
        tiers=tiers,
        # Three tries: an item fails after three faults in a row (~1%), so both outcomes show.
        retry=ma.models.RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01),
    )

    async def main() -> BatchSummary:
        async with Engine(model, tiers=tiers) as engine:
            return await run_batch(engine, workflow, items, out, concurrency=32)

    summary = anyio.run(main)

    lines = read_lines(out)
    assert Counter(line["index"] for line in lines) == Counter(range(1, 2001))
    assert {line["status"] for line in lines} <= {"ok", "failed"}
    failed = [line for line in lines if line["status"] == "failed"]
    assert all(line["error"] and line["failed_node"] == "label" for line in failed)
    assert summary.ok + summary.failed == 2000
    assert summary.ok >= 1900
    assert summary.failed == len(failed) > 0
    faults = Counter(r.fault.kind for r in fake_anthropic.requests if r.fault is not None)
    assert faults["error"] > 300
    assert faults["drop"] > 50
    assert fake_anthropic.paid_calls == summary.ok
