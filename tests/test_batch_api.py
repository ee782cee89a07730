"""Message Batches mode, end to end through the official SDK against the fake server."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anthropic
import anyio
import pytest
from bench.model_costs import _batch, _script, _tiers

import microagents as ma
from microagents.errors import AnswerRefused
from microagents.models._anthropic import AnthropicModel
from microagents.models._cache import CachedModel
from microagents.models._protocol import Usage
from microagents.models._retry import RetryPolicy
from microagents.results import BatchSummary
from microagents.runtime._batch import BatchObserver, BatchProgress, run_batch
from microagents.runtime._batch_api import BatchApiModel
from microagents.runtime._journal_store import SQLiteJournal
from microagents.runtime._rounds import BatchApiOptions, RoundDriver
from microagents.testing import BatchSettings, FakeAnthropicServer, FakeModel, Fault

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sk-test-not-a-real-key"
FAST = BatchApiOptions(poll_interval=0.02, max_poll_interval=0.1)


@pytest.fixture
def server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer(batches=BatchSettings(processing_seconds=0.05)) as running:
        yield running


def tickets(count: int) -> list[dict[str, Any]]:
    texts = [
        json.loads(line)["ticket"]
        for line in (ROOT / "examples" / "tickets.jsonl").read_text().splitlines()
        if line.strip()
    ]
    return [{"id": f"T{i}", "ticket": f"{texts[i % len(texts)]} (ref #{i})"} for i in range(count)]


def triage() -> ma.CompiledWorkflow:
    return ma.Project(ROOT).load_workflow(ROOT / "workflows" / "support_triage.yaml")


def run_batch_api(
    server: FakeAnthropicServer,
    workflow: ma.CompiledWorkflow,
    folder: Path,
    *,
    resume: bool = False,
    options: BatchApiOptions = FAST,
    budget_usd: float | None = None,
    tiers: ma.models.TierTable | None = None,
    journal_in: str = ".",
    observer: BatchObserver | None = None,
    cache: Path | None = None,
    name: str = "items",
) -> BatchSummary:
    """`name`.jsonl in `folder` through a batch-mode engine on the fake server, into
    out.jsonl (out-`name`.jsonl for another name); with `cache`, the response cache on
    (`--cache --batch-api`)."""
    tiers = tiers or _tiers()
    backend = AnthropicModel(api_key=API_KEY, base_url=server.base_url, tiers=tiers)
    out = folder / ("out.jsonl" if name == "items" else f"out-{name}.jsonl")

    async def main() -> BatchSummary:
        journal = SQLiteJournal(folder / journal_in / "journal.sqlite3")
        model: ma.models.Model = BatchApiModel(backend)
        if cache is not None:
            model = CachedModel(model, cache)
        async with ma.Engine(model, tiers=tiers, journal=journal) as engine:
            return await run_batch(
                engine,
                workflow,
                folder / f"{name}.jsonl",
                out,
                resume=resume,
                budget_usd=budget_usd,
                observer=observer,
                batch_api=options,
            )

    return anyio.run(main)


class Recorder:
    interval = 0.01

    def __init__(self) -> None:
        self.updates: list[BatchProgress] = []
        self.notes: list[str] = []

    def update(self, progress: BatchProgress, **_: Any) -> None:
        self.updates.append(progress)

    def note(self, message: str, **_: Any) -> None:
        self.notes.append(message)


def noted_run(
    server: FakeAnthropicServer, folder: Path, options: BatchApiOptions = FAST
) -> tuple[BatchSummary, list[str]]:
    recorder = Recorder()
    summary = run_batch_api(server, triage(), folder, options=options, observer=recorder)
    return summary, recorder.notes


def write_items(folder: Path, items: list[dict[str, Any]]) -> None:
    (folder / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))


def out_lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "out.jsonl").read_text().splitlines()]


def batch_cost(server: FakeAnthropicServer, tiers: ma.models.TierTable) -> float:
    """What the server's log of batch requests costs at batch rates."""
    total = 0.0
    for batch in server.batches:
        for line in batch.results.values():
            if line["result"]["type"] != "succeeded":
                continue
            message = line["result"]["message"]
            raw = message["usage"]
            usage = Usage(
                input_tokens=raw.get("input_tokens") or 0,
                output_tokens=raw.get("output_tokens") or 0,
                cache_creation_input_tokens=raw.get("cache_creation_input_tokens") or 0,
                cache_read_input_tokens=raw.get("cache_read_input_tokens") or 0,
            )
            price = tiers.price_of(message["model"])
            assert price is not None
            total += price.cost(usage, batch=True)
    return total


def test_support_triage_in_batch_mode_costs_at_most_0_27_of_all_sonnet(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    workflow = triage()
    items = tickets(200)
    write_items(tmp_path, items)
    summary = run_batch_api(server, workflow, tmp_path)
    lines = out_lines(tmp_path)
    assert len(lines) == 200
    assert {line["status"] for line in lines} == {"ok"}
    assert sorted(line["id"] for line in lines) == sorted(i["id"] for i in items)
    assert server.paid_calls == 0  # nothing went to the standard API
    # route on Haiku, route again on Sonnet for one in five, extract, check: 4 rounds.
    assert summary.batch_api is not None
    assert summary.batch_api.rounds == 4
    assert server.paid_batch_requests == 3 * 200 + 200 // 5
    cost = batch_cost(server, _tiers())
    assert summary.batch_api.cost_usd == pytest.approx(cost)
    # Items that waited for a round are counted once in the batch's total, not once a round.
    assert summary.total_cost_usd == pytest.approx(sum(line["cost_usd"] for line in lines))
    assert summary.total_cost_usd == pytest.approx(cost)
    sonnet = _batch(
        workflow, [{"ticket": i["ticket"]} for i in items], _tiers("sonnet"), concurrency=16
    )
    assert cost / sonnet.cost <= 0.27, cost / sonnet.cost
    # The summary is the whole run's, every round's items, not the last pass's.
    assert (summary.ok, summary.failed, summary.resumed) == (200, 0, 0)
    visits = {e.node: (e.visits, e.escalated) for e in summary.escalation}
    assert visits["route"] == (200, 40)
    assert sum(t.calls for t in summary.tiers.values()) == 640
    # Batch against standard rates, node by node and model by model.
    by_node = {(c.node, c.model): c for c in summary.batch_api.by_node}
    assert {node for node, _ in by_node} >= {"route", "extract_billing", "check_billing"}
    assert {model for _, model in by_node} == {"claude-haiku-4-5", "claude-sonnet-4-6"}
    assert sum(c.calls for c in by_node.values()) == 640
    assert sum(c.cost_usd for c in by_node.values()) == pytest.approx(cost)
    assert all(c.standard_cost_usd == pytest.approx(2 * c.cost_usd) for c in by_node.values())
    assert summary.batch_api.waited_p50 is not None


def test_a_round_is_split_into_message_batches_of_the_configured_size(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    write_items(tmp_path, tickets(25))
    options = replace(FAST, requests_per_batch=10)
    summary = run_batch_api(server, triage(), tmp_path, options=options)
    assert summary.all_ok
    assert summary.batch_api is not None
    # Rounds of 25, 25, 25 and 5 calls: route; route again on Sonnet (one in five) or
    # extract; extract or check; check.
    sizes = [len(batch.results) for batch in server.batches]
    assert sizes == [10, 10, 5, 10, 10, 5, 10, 10, 5, 5]
    assert summary.batch_api.message_batches == len(sizes)
    assert_paid_once(server)


def test_progress_shows_rounds_batches_in_flight_and_items_over_all_rounds(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    server.batch_settings = BatchSettings(processing_seconds=0.3)
    write_items(tmp_path, tickets(20))
    tiers = _tiers()
    backend = AnthropicModel(api_key=API_KEY, base_url=server.base_url, tiers=tiers)
    recorder = Recorder()

    async def main() -> BatchProgress:
        journal = SQLiteJournal(tmp_path / "journal.sqlite3")
        async with ma.Engine(BatchApiModel(backend), tiers=tiers, journal=journal) as engine:
            driver = RoundDriver(
                engine, triage(), tmp_path / "items.jsonl", tmp_path / "out.jsonl",
                observer=recorder, options=FAST,
            )  # fmt: skip
            await driver.run()
            return driver.progress()

    final = anyio.run(main)
    waiting = [u for u in recorder.updates if u.rounds and u.rounds.phase == "waiting for results"]
    assert {u.rounds.round for u in waiting if u.rounds} == {1, 2, 3, 4}
    first = next(u.rounds for u in waiting if u.rounds and u.rounds.round == 1)
    (in_flight,) = first.in_flight
    assert sum(in_flight.counts.values()) == 20  # the API's counts of the round's batch
    assert first.in_batches == 20
    assert "round 1 · waiting for results · 1 Message Batch in flight" in first.describe()
    # Items finished in earlier rounds stay counted; the money is what the batches cost.
    done = [u.done for u in recorder.updates]
    assert done == sorted(done)
    assert (final.done, final.to_do) == (20, 20)
    assert final.rounds is not None
    assert (final.rounds.phase, final.rounds.round) == ("finished", 4)
    assert final.cost_usd == pytest.approx(batch_cost(server, tiers))
    assert not any("waiting for a person" in note for note in recorder.notes)


def test_a_small_tail_finishes_on_the_standard_api_and_says_what_it_costs(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    write_items(tmp_path, tickets(20))
    summary, notes = noted_run(server, tmp_path, replace(FAST, standard_tail=4))
    assert summary.all_ok
    assert len(out_lines(tmp_path)) == 20
    figures = summary.batch_api
    assert figures is not None
    # Rounds of 20, 20 and 20 calls; the 4 checks of the escalated tickets that a fourth
    # round would have held are made at once on the standard API.
    assert (figures.rounds, len(server.batches), server.paid_calls) == (3, 3, 4)
    assert figures.standard_calls == 4
    assert figures.standard_calls_cost_usd > 0
    assert summary.total_cost_usd == pytest.approx(
        batch_cost(server, _tiers()) + figures.standard_calls_cost_usd
    )
    (said,) = [note for note in notes if "standard API" in note]
    assert said.startswith("4 calls left (at most --standard-tail 4): making them on the")
    assert "more than in a Message Batch" in said


def test_a_batch_size_beyond_the_apis_limits_is_refused_naming_the_limit() -> None:
    with pytest.raises(ma.MicroagentsError, match="between 1 and 100,000"):
        BatchApiOptions(requests_per_batch=100_001)
    with pytest.raises(ma.MicroagentsError, match="256 MB"):
        BatchApiOptions(bytes_per_batch=300 * 1024 * 1024)


# -- crashes, detaching --------------------------------------------------------------------


def cli(
    folder: Path, server: FakeAnthropicServer, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "ANTHROPIC_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": server.base_url,
        "MICROAGENTS_HOME": str(folder / "home"),
        "MICROAGENTS_BATCH_POLL_SECONDS": "0.05",
        "OTEL_SDK_DISABLED": "true",
        **(env or {}),
    }
    command = [
        str(Path(sys.executable).parent / "microagents"),
        "run",
        str(ROOT / "workflows" / "support_triage.yaml"),
        "--input-file",
        str(folder / "items.jsonl"),
        "--out",
        str(folder / "out.jsonl"),
        "--batch-api",
        *extra,
    ]
    return subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def assert_paid_once(server: FakeAnthropicServer) -> None:
    paid = Counter(
        cid
        for batch in server.batches
        for cid, line in batch.results.items()
        if line["result"]["type"] == "succeeded"
    )
    assert paid
    assert max(paid.values()) == 1, "a request was paid twice"


def by_id(lines: list[dict[str, Any]]) -> dict[str, tuple[str, Any]]:
    return {line["id"]: (line["status"], line["output"]) for line in lines}


def test_kill_9_while_polling_then_resume_pays_nothing_twice(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    write_items(tmp_path, tickets(30))
    server.batch_settings = BatchSettings(processing_seconds=60)
    first = cli(tmp_path, server)
    deadline = time.monotonic() + 20
    while not server.batches and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.batches, first.communicate()
    time.sleep(0.3)  # polling now
    first.send_signal(signal.SIGKILL)
    first.communicate()
    server.batch_settings = BatchSettings(processing_seconds=0.05)
    # Resumed here (a new process, as far as the journal knows: it is all it shares).
    summary = run_batch_api(server, triage(), tmp_path, resume=True, journal_in="home")
    assert summary.all_ok
    lines = out_lines(tmp_path)
    assert len(lines) == 30
    assert {line["status"] for line in lines} == {"ok"}
    assert len({line["id"] for line in lines}) == 30
    assert len(server.batches) == 4  # one a round: none created twice
    assert_paid_once(server)
    assert server.paid_calls == 0


def test_detach_then_collect_in_a_new_process_gives_the_attached_results(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    items = tickets(20)
    attached = tmp_path / "attached"
    attached.mkdir()
    write_items(attached, items)
    run_batch_api(server, triage(), attached)
    server.reset()
    _script(server)
    detached = tmp_path / "detached"
    detached.mkdir()
    write_items(detached, items)
    detach = BatchApiOptions(poll_interval=0.02, detach=True)
    summary = run_batch_api(server, triage(), detached, options=detach, journal_in="home")
    assert summary.batch_api is not None
    assert (summary.batch_api.rounds, summary.batch_api.in_flight) == (1, 1)
    assert len(server.batches) == 1
    waiting = out_lines(detached)
    assert {line["status"] for line in waiting} == {"waiting"}
    assert summary.batch_api.items_waiting == 20
    assert waiting[0]["waiting_for"]["kind"] == "batch_result"
    assert "collect with --resume" in summary.batch_api.describe()

    # Such a run waits for the API, not a person: an answer is refused, saying what to do.
    async def answer() -> None:
        journal = SQLiteJournal(detached / "home" / "journal.sqlite3")
        async with ma.Engine(FakeModel(), journal=journal) as engine:
            await engine.resume(waiting[0]["run_id"], answer={}, workflow=triage())

    with pytest.raises(AnswerRefused, match="microagents batches collect"):
        anyio.run(answer)
    collect = cli(detached, server, "--resume")  # a new process collects and goes on
    _, err = collect.communicate(timeout=40)
    assert collect.returncode == 0, err.decode()
    assert len(server.batches) == 4
    assert by_id(out_lines(detached)) == by_id(out_lines(attached))
    assert_paid_once(server)


def test_a_hop_answered_in_a_batch_records_its_batch_wait_and_standard_cost(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    write_items(tmp_path, tickets(3))
    process = cli(tmp_path, server, env={"OTEL_SDK_DISABLED": "false"})
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()
    run_id = out_lines(tmp_path)[0]["run_id"]
    env = {**os.environ, "MICROAGENTS_HOME": str(tmp_path / "home"), "COLUMNS": "250"}
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "microagents"), "trace", "show", run_id, "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    spans = json.loads(shown.stdout)["spans"]
    chats = [s["attributes"] for s in spans if s["name"].startswith("chat ")]
    ids = {batch.id for batch in server.batches}
    assert len(chats) == 3  # route, extract, check: each from its round's batch
    assert {a["microagents.batch.id"] for a in chats} <= ids
    assert len({a["microagents.batch.id"] for a in chats}) == 3
    for attributes in chats:
        assert attributes["microagents.batch.waited_s"] > 0
        assert attributes["microagents.cost_standard_usd"] == pytest.approx(
            2 * attributes["microagents.cost_usd"]
        )
    table = subprocess.run(
        [str(Path(sys.executable).parent / "microagents"), "trace", "show", run_id],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert table.count("Message Batch msgbatch_") == 3


def test_with_the_response_cache_a_repeated_request_is_asked_once_and_cached(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    # 6 tickets, each twice: identical requests, node by node.
    items = [{**ticket, "id": f"{ticket['id']}-{n}"} for ticket in tickets(6) for n in (1, 2)]
    write_items(tmp_path, items)
    summary = run_batch_api(server, triage(), tmp_path, cache=tmp_path / "cache.sqlite3")
    assert summary.all_ok
    assert summary.batch_api is not None
    paid = server.paid_batch_requests
    # One request for both copies of each ticket's calls (three each, four if escalated).
    assert 3 * 6 < paid < 4 * 6
    assert sum(t.calls for t in summary.tiers.values()) == 2 * paid
    assert summary.batch_api.duplicates == paid
    assert summary.batch_api.calls == paid
    lines = {line["id"]: line for line in out_lines(tmp_path)}
    for ticket in tickets(6):
        first, second = lines[f"{ticket['id']}-1"], lines[f"{ticket['id']}-2"]
        assert first["output"] == second["output"]
    # Every request paid once, by whichever copy asked first: a copy answered costs nothing.
    total = sum(line["cost_usd"] for line in lines.values())
    assert total == pytest.approx(summary.batch_api.cost_usd)
    assert_paid_once(server)

    # The results are in the response cache: the same tickets again ask the API nothing.
    (tmp_path / "again.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    again = run_batch_api(
        server, triage(), tmp_path, cache=tmp_path / "cache.sqlite3", name="again"
    )
    assert again.all_ok
    assert server.paid_batch_requests == paid
    assert again.cache_hits == 2 * paid


def test_with_the_response_cache_a_standard_tail_takes_the_repeats_along(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    items = [{**ticket, "id": f"{ticket['id']}-{n}"} for ticket in tickets(6) for n in (1, 2)]
    write_items(tmp_path, items)
    summary = run_batch_api(
        server, triage(), tmp_path, cache=tmp_path / "cache.sqlite3",
        options=replace(FAST, standard_tail=100),
    )  # fmt: skip
    # Round 1 in a batch (a request per ticket, its copy following); the rest, copies
    # included, on the standard API: every item finishes, none is left waiting.
    assert summary.all_ok, summary.to_dict()
    assert summary.batch_api is not None
    assert (summary.batch_api.rounds, summary.batch_api.items_waiting) == (1, 0)
    assert {line["status"] for line in out_lines(tmp_path)} == {"ok"}
    assert len(out_lines(tmp_path)) == 12


def test_a_call_following_one_no_longer_awaited_is_released() -> None:
    from microagents.runtime._batch_calls import BatchCallStore, PendingCall

    with tempfile.TemporaryDirectory() as folder:
        store = BatchCallStore(Path(folder) / "journal.sqlite3")
        calls = [
            PendingCall("lead-1", "run-1", "s", "sig", "n", "m", "{}"),
            PendingCall("copy-1", "run-2", "s", "sig", "n", "m", "", same_as="lead-1"),
            PendingCall("lead-2", "run-3", "s", "sig", "n", "m", "{}"),
            PendingCall("copy-2", "run-4", "s", "sig", "n", "m", "", same_as="lead-2"),
        ]
        store.add_pending("b", 1, calls)
        store.intend("b", 1, "intent-1", ["lead-1"])
        store.created("intent-1", "msgbatch_1")
        store.settle("b", "msgbatch_1", [("lead-1", "done", "succeeded", None, 0.1, 0.2)], {})
        store.release_orphans("b")
        assert set(store.states("b")) == {"lead-2", "copy-2"}  # copy-1's leader is done
        store.close()


def test_with_the_response_cache_a_repeated_request_shares_its_leaders_failure(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    server.batch_settings = BatchSettings(processing_seconds=0.01, canceled=1.0)
    write_items(tmp_path, [{**tickets(1)[0], "id": f"copy-{n}"} for n in range(3)])
    summary = run_batch_api(server, triage(), tmp_path, cache=tmp_path / "cache.sqlite3")
    assert summary.failed == 3
    lines = out_lines(tmp_path)
    assert all("was canceled" in line["error"] for line in lines)
    assert [len(batch.results) for batch in server.batches] == [1]


# -- an API that is full, failing or unreachable for a while ------------------------------


def test_a_full_processing_queue_leaves_the_rest_for_the_next_round(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    server.batch_settings = BatchSettings(processing_seconds=0.05, queue_limit=15)
    write_items(tmp_path, tickets(25))
    summary, notes = noted_run(server, tmp_path, replace(FAST, requests_per_batch=10))
    assert summary.all_ok
    assert len(out_lines(tmp_path)) == 25
    assert all(len(batch.results) <= 10 for batch in server.batches)
    assert any("refused a batch for now: rate_limit_error" in note for note in notes)
    assert any("wait for the next round" in note for note in notes)
    assert_paid_once(server)
    assert server.paid_batch_requests == 3 * 25 + 25 // 5
    # An item whose call waits for room in the queue is not run again until it is
    # answered: a run is started once, then once per answered call (3 or 4).
    with sqlite3.connect(tmp_path / "journal.sqlite3") as db:
        (most,) = db.execute("SELECT MAX(attempts) FROM runs").fetchone()
    assert summary.batch_api is not None
    assert summary.batch_api.rounds > 4  # the queue held some calls back a round or more
    assert most <= 1 + 4


def test_past_a_full_queue_a_repeated_id_is_still_caught_and_every_line_is_written(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    server.batch_settings = BatchSettings(processing_seconds=0.05, queue_limit=5)
    items = tickets(12)
    write_items(tmp_path, [*items, {**items[10], "ticket": "another text, the same id"}])
    summary, _ = noted_run(server, tmp_path, replace(FAST, requests_per_batch=5))
    lines = out_lines(tmp_path)
    assert sorted(line["index"] for line in lines) == list(range(1, 14))
    by_index = {line["index"]: line for line in lines}
    assert by_index[13]["status"] == "failed"
    assert "repeats line 11" in by_index[13]["error"]
    assert all(by_index[i]["status"] == "ok" for i in range(1, 13))
    assert summary.failed == 1
    assert_paid_once(server)


def test_a_queue_full_of_other_batches_is_waited_out(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    server.batch_settings = BatchSettings(processing_seconds=0.3, queue_limit=10)
    client = anthropic.Anthropic(api_key=API_KEY, base_url=server.base_url)
    params = {"model": "claude-haiku-4-5", "max_tokens": 10,
              "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    client.messages.batches.create(
        requests=[{"custom_id": f"other-{n}", "params": params} for n in range(8)]  # type: ignore[misc,list-item]
    )  # another job of the same account, before this run's script
    _script(server)
    write_items(tmp_path, tickets(5))
    summary, notes = noted_run(server, tmp_path)
    assert summary.all_ok
    assert any("trying again in" in note for note in notes)
    assert_paid_once(server)


def test_a_queue_smaller_than_a_batch_gets_smaller_batches(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    server.batch_settings = BatchSettings(processing_seconds=0.02, queue_limit=4)
    write_items(tmp_path, tickets(10))
    summary, notes = noted_run(server, tmp_path, replace(FAST, requests_per_batch=10))
    assert summary.all_ok
    assert max(len(batch.results) for batch in server.batches) <= 4
    assert any("with batches of 5" in note for note in notes)
    assert_paid_once(server)


def test_a_lost_answer_to_a_create_adopts_the_batch_instead_of_creating_it_twice(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    server.fail_batches(Fault.drop_connection(), endpoint="create", on_calls=[1])
    write_items(tmp_path, tickets(10))
    summary, _ = noted_run(server, tmp_path)
    assert summary.all_ok
    assert summary.batch_api is not None
    assert len(server.batches) == summary.batch_api.rounds  # one a round: none twice
    assert_paid_once(server)


def test_polling_through_failures_and_a_failed_create_goes_on(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    server.fail_batches(Fault.overloaded(), endpoint="list", on_calls=range(2, 9))
    server.fail_batches(Fault.server_error(), endpoint="create", on_calls=[2])
    write_items(tmp_path, tickets(10))
    summary, notes = noted_run(server, tmp_path)
    assert summary.all_ok
    assert any("polling the Message Batches failed (overloaded_error" in n for n in notes)
    assert any("failed to create a batch: api_error" in note for note in notes)
    assert_paid_once(server)


def test_a_key_refused_while_polling_stops_the_run_saying_the_batches_go_on(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    _script(server)
    server.fail_batches(Fault.unauthorized(), endpoint="list")
    write_items(tmp_path, tickets(3))
    with pytest.raises(ma.MicroagentsError, match="collect them later with --resume"):
        noted_run(server, tmp_path)


# -- what a result can be, and the budget ----------------------------------------------------


def small_run(
    server: FakeAnthropicServer, folder: Path, settings: BatchSettings, **kwargs: Any
) -> tuple[BatchSummary, list[dict[str, Any]]]:
    _script(server)
    server.batch_settings = settings
    write_items(folder, tickets(5))
    summary = run_batch_api(server, triage(), folder, **kwargs)
    return summary, out_lines(folder)


def test_errored_requests_are_retried_in_the_next_round_then_escalate_on_error(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    options = BatchApiOptions(poll_interval=0.02, retry=RetryPolicy(max_attempts=2))
    settings = BatchSettings(processing_seconds=0.01, errored=1.0)
    summary, lines = small_run(server, tmp_path, settings, options=options)
    assert {line["status"] for line in lines} == {"failed"}
    assert all("errored" in line["error"] for line in lines)
    # Each rung tried twice (one round each), then the ladder's `error` trigger climbed.
    triggers = {e["trigger"] for line in lines for e in line["escalations"]}
    assert triggers == {"error"}
    assert summary.batch_api is not None
    tried = Counter(cid for batch in server.batches for cid in batch.custom_ids)
    assert set(tried.values()) == {2}


def test_expired_requests_are_resubmitted_up_to_the_limit_then_fail_the_item(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    options = BatchApiOptions(poll_interval=0.02, expired_limit=2)
    settings = BatchSettings(processing_seconds=0.01, expired=1.0)
    summary, lines = small_run(server, tmp_path, settings, options=options)
    assert {line["status"] for line in lines} == {"failed"}
    assert all("expired too many times" in line["error"] for line in lines)
    assert len(server.batches) == 3  # submitted, then again twice
    assert summary.batch_api is not None
    assert summary.batch_api.rounds == 3


def test_canceled_requests_fail_their_items_with_that_reason(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    settings = BatchSettings(processing_seconds=0.01, canceled=1.0)
    _, lines = small_run(server, tmp_path, settings)
    assert {line["status"] for line in lines} == {"failed"}
    assert all("was canceled" in line["error"] for line in lines)
    assert all(line["escalations"] == [] for line in lines)  # not a model error: no climbing
    assert len(server.batches) == 1


def test_the_first_rounds_estimate_counts_the_prompt_cache() -> None:
    # A long policy in the agents' cached prefix (the moderation example's shape): before
    # any answer, the estimate reads it from the cache on all but the first request.
    from microagents.runtime._rounds import _guess

    policy = "x" * 16_000
    marked = json.dumps(
        {
            "system": [{"type": "text", "text": policy, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "a post"}]}],
        }
    )
    usage = _guess([len(marked)] * 100, [marked])
    assert usage.cache_creation_input_tokens == pytest.approx(4_000, rel=0.01)  # written once
    assert usage.cache_read_input_tokens == pytest.approx(99 * 4_000, rel=0.01)
    assert usage.input_tokens < 100 * 50  # only the posts are fresh input
    unmarked = marked.replace(', "cache_control": {"type": "ephemeral"}', "")
    assert _guess([len(unmarked)] * 100, [unmarked]).cache_read_input_tokens == 0


def test_a_budget_the_next_round_would_cross_stops_before_submitting_it(
    server: FakeAnthropicServer, tmp_path: Path
) -> None:
    settings = BatchSettings(processing_seconds=0.01)
    free = tmp_path / "free"
    free.mkdir()
    small_run(server, free, settings)
    per_round = []
    for batch in server.batches:
        per_round.append(
            sum(
                _tiers()
                .price_of(line["result"]["message"]["model"])
                .cost(  # type: ignore[union-attr]
                    Usage(
                        input_tokens=line["result"]["message"]["usage"]["input_tokens"],
                        output_tokens=line["result"]["message"]["usage"]["output_tokens"],
                    ),
                    batch=True,
                )
                for line in batch.results.values()
            )
        )
    server.reset()
    capped = tmp_path / "capped"
    capped.mkdir()
    budget = per_round[0] + per_round[1] + per_round[2] / 4
    summary, lines = small_run(server, capped, settings, budget_usd=budget)
    assert summary.stopped_by_budget
    assert len(server.batches) == 2  # the third round was never submitted
    assert len(lines) == 5  # every item has its line: finished ones, or waiting
    assert summary.batch_api is not None
    assert summary.batch_api.cost_usd <= budget
