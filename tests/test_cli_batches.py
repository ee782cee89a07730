"""`microagents batches list|show|cancel|collect` against the fake server's batches API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.model_costs import _script

from cli_runner import run_cli
from microagents.testing import BatchSettings, FakeAnthropicServer, Fault
from test_batch_api import API_KEY, ROOT, by_id, out_lines, tickets, write_items


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer(batches=BatchSettings(processing_seconds=0.05)) as running:
        _script(running)
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", running.base_url)
        monkeypatch.setenv("MICROAGENTS_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("MICROAGENTS_BATCH_POLL_SECONDS", "0.02")
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        write_items(tmp_path, tickets(4))
        yield running


def detached_run(folder: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Run the sample workflow detached; the id of the Message Batch it submitted."""
    code, _, err = run_cli(
        [
            "run",
            str(ROOT / "workflows" / "support_triage.yaml"),
            "--input-file",
            str(folder / "items.jsonl"),
            "--out",
            str(folder / "out.jsonl"),
            "--batch-api",
            "--detach",
        ],
        capsys,
    )
    assert code == 0, err
    code, out, err = run_cli(["batches", "list", "--json"], capsys)
    assert code == 0, err
    (listed,) = [json.loads(line) for line in out.splitlines()]
    return str(listed["id"])


def test_list_shows_the_api_counts_and_state(
    server: FakeAnthropicServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch_id = detached_run(tmp_path, capsys)
    code, out, err = run_cli(["batches", "list", "--json"], capsys)
    assert code == 0, err
    (view,) = [json.loads(line) for line in out.splitlines()]
    assert view["id"] == batch_id == server.batches[0].id
    assert view["recorded"] == "in_progress"
    assert view["status"] in ("in_progress", "ended")
    assert sum(view["counts"].values()) == view["requests"] == 4
    code, out, _ = run_cli(["batches", "list"], capsys)
    assert code == 0
    assert batch_id in out
    assert "round 1" in out


def test_show_lists_the_calls_and_their_states(
    server: FakeAnthropicServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch_id = detached_run(tmp_path, capsys)
    code, out, err = run_cli(["batches", "show", batch_id, "--json"], capsys)
    assert code == 0, err
    view = json.loads(out)
    assert len(view["calls"]) == 4
    assert {call["state"] for call in view["calls"]} == {"submitted"}
    code, out, _ = run_cli(["batches", "show", batch_id], capsys)
    assert code == 0
    assert "calls: 4 submitted" in out
    code, _, err = run_cli(["batches", "show", "msgbatch_nope"], capsys)
    assert code == 2
    assert "knows no Message Batch" in err


def test_cancel_cancels_through_the_api_and_collect_fails_the_items(
    server: FakeAnthropicServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.batch_settings = BatchSettings(processing_seconds=30)
    batch_id = detached_run(tmp_path, capsys)
    code, out, err = run_cli(["batches", "cancel", batch_id], capsys)
    assert code == 0, err
    assert "cancel requested" in out
    assert server.batches[0].cancel_requested is not None
    code, out, _ = run_cli(["batches", "list", "--json"], capsys)
    assert json.loads(out)["recorded"] == "canceling"
    code, _, err = run_cli(["batches", "collect"], capsys)
    assert code == 1, err  # every request was canceled: every item fails
    assert {line["status"] for line in out_lines(tmp_path)} == {"failed"}
    code, _, err = run_cli(["batches", "cancel", batch_id], capsys)
    assert code == 2
    assert "collected" in err


def test_collect_finishes_the_batches_in_flight_like_resume(
    server: FakeAnthropicServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    detached_run(tmp_path, capsys)
    code, _, err = run_cli(["batches", "collect"], capsys)
    assert code == 0, err
    lines = out_lines(tmp_path)
    assert len(lines) == 4
    assert "waiting" not in {line["status"] for line in lines}
    assert len(by_id(lines)) == 4
    code, _, err = run_cli(["batches", "collect"], capsys)
    assert code == 0
    assert "no Message Batches in flight" in err


def test_collect_goes_on_as_the_run_was_started_from_any_folder(
    server: FakeAnthropicServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(
        ["run", str(ROOT / "workflows" / "support_triage.yaml"), "--input-file", "items.jsonl",
         "--out", "out.jsonl", "--batch-api", "--detach", "--standard-tail", "100",
         "--agents", str(ROOT / "agents")],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The account's limits, for the standard tail's rate limiter (defaults are tier 1's).
    (elsewhere / "microagents.toml").write_text(
        "".join(
            f"[tiers.{tier}]\nrpm = 100000\ninput_tpm = 100000000\noutput_tpm = 10000000\n"
            for tier in ("haiku", "sonnet", "opus")
        )
    )
    monkeypatch.chdir(elsewhere)  # a relative input path, collected from another folder
    code, _, err = run_cli(["batches", "collect"], capsys)
    assert code == 0, err
    assert len(out_lines(tmp_path)) == 4
    # The run's --standard-tail holds for its collection: round 2 went to the standard API.
    assert len(server.batches) == 1
    assert server.paid_calls > 0
    assert "making them on the standard API" in err


def test_runs_waiting_for_a_batch_say_so_and_how_to_collect(
    server: FakeAnthropicServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    detached_run(tmp_path, capsys)
    code, out, _ = run_cli(["runs", "list", "--status", "waiting"], capsys)
    assert code == 0
    listed = out.splitlines()
    assert len(listed) == 4
    assert all(line.endswith("waits at route for a Message Batch result") for line in listed)
    code, out, _ = run_cli(["runs", "show", listed[0].split()[0]], capsys)
    assert code == 0
    assert "collect it: microagents batches collect" in out
    assert "--answer" not in out


def test_an_error_while_polling_is_said_plainly_not_as_an_internal_error(
    server: FakeAnthropicServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.fail_batches(Fault.unauthorized(), endpoint="list")
    code, _, err = run_cli(
        ["run", str(ROOT / "workflows" / "support_triage.yaml"), "--input-file",
         str(tmp_path / "items.jsonl"), "--out", str(tmp_path / "out.jsonl"), "--batch-api"],
        capsys,
    )  # fmt: skip
    assert code == 2
    assert "internal error" not in err
    assert "authentication_error" in err
    assert "collect them later with --resume" in err
