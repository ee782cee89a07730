"""`microagents run`: single inputs, simulated batches, errors, and batches killed half way."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_runner import run_cli as run
from microagents.testing import FakeAnthropicServer, Fault, ServerRateLimits
from test_batch import read_lines, write_items, write_project

ROOT = Path(__file__).resolve().parent.parent
NO_KEY = "ANTHROPIC_API_KEY is not set: export it, or run with --backend simulate"
RUN_CLI = "import sys; from microagents.cli import main; main(sys.argv[1:])"


@pytest.fixture(autouse=True)
def _instant_dry_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MICROAGENTS_SIMULATED_LATENCY_SCALE", "0")


def input_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- simulated batches, end to end ---------------------------------------------------------


def test_support_triage_on_the_sample_tickets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "triage.jsonl"
    code, stdout, err = run(
        ["run", "workflows/support_triage.yaml", "--input-file", "examples/tickets.jsonl",
         "--backend", "simulate", "--out", str(out)],
        capsys,
    )  # fmt: skip

    # Tickets that fit no queue wait for a person: the workflow doing its job, so exit 0.
    assert code == 0, err
    tickets = input_lines(ROOT / "examples" / "tickets.jsonl")
    lines = read_lines(out)
    assert sorted(line["index"] for line in lines) == list(range(1, len(tickets) + 1))
    waiting = [line for line in lines if line["status"] == "waiting"]
    for line in lines:
        assert line["simulated"] is True
        assert line["id"] == tickets[line["index"] - 1]["id"]
        if line["status"] == "waiting":
            assert line["waiting_for"]["node"] == "human_review"
            assert "Which queue owns this ticket?" in line["waiting_for"]["question"]
            continue
        assert line["status"] == "ok"
        output = line["output"]
        assert output["category"] in {"billing", "technical", "account", "shipping"}
        assert output["routing"]["category"] == output["category"]
    assert len(waiting) == 2  # the sample's two tickets for no queue
    assert stdout == ""
    ok = len(tickets) - len(waiting)
    assert f"SIMULATED support_triage: {ok} ok, 0 failed, 2 waiting for a person" in err
    assert "waiting: 2 items wait for a person: microagents runs list --status waiting" in err
    assert "route" in err  # escalation per node
    assert "haiku" in err  # usage per tier
    assert f"results: {out}" in err


def test_invoice_extraction_writes_one_record_per_invoice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "invoices.jsonl"
    code, _, err = run(
        ["run", "workflows/invoice_extraction.yaml", "--input-file", "examples/invoices.jsonl",
         "--backend", "simulate", "--out", str(out), "--concurrency", "8"],
        capsys,
    )  # fmt: skip

    invoices = input_lines(ROOT / "examples" / "invoices.jsonl")
    lines = read_lines(out)
    assert Counter(line["id"] for line in lines) == Counter(i["id"] for i in invoices)
    for line in lines:
        assert line["simulated"] is True
        assert line["status"] == "ok", line["error"]
        assert line["output"]["id"] == line["id"]
        # A record valid against the extractor's schema; which fields the simulated extractor
        # fills depends on the example nearest to the invoice text.
        assert isinstance(line["output"]["record"], dict)
        assert line["output"]["record"]
        assert isinstance(line["output"]["verdict"]["valid"], bool)
    assert code == 0, err


def test_the_default_output_file_is_beside_the_working_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(
        ["run", str(ROOT / "workflows" / "support_triage.yaml"), "--agents", str(ROOT / "agents"),
         "--input-file", str(ROOT / "examples" / "tickets.jsonl"), "--backend", "simulate"],
        capsys,
    )  # fmt: skip

    assert code == 0, err
    assert len(read_lines(tmp_path / "tickets.results.jsonl")) == 60
    assert "results: tickets.results.jsonl" in err


def test_resume_and_budget_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    args = ["run", "workflows/support_triage.yaml", "--input-file", "examples/tickets.jsonl",
            "--backend", "simulate", "--out", str(out), "--concurrency", "1"]  # fmt: skip

    code, _, err = run([*args, "--budget-usd", "0.02"], capsys)
    assert code == 1
    assert "budget reached" in err
    assert "re-run with --resume and a higher --budget-usd" in err
    first = len(read_lines(out))
    assert 0 < first < 60

    code, _, err = run([*args, "--resume"], capsys)
    assert code == 0, err
    assert f"{first} resumed" in err
    assert Counter(line["index"] for line in read_lines(out)) == Counter(range(1, 61))


# -- one input -----------------------------------------------------------------------------


def test_one_input_prints_its_result(capsys: pytest.CaptureFixture[str]) -> None:
    ticket = {"ticket": "I was charged twice for order #A-20931, please refund one."}
    code, out, err = run(
        ["run", "workflows/support_triage.yaml", "--input", json.dumps(ticket),
         "--backend", "simulate"],
        capsys,
    )  # fmt: skip

    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "ok"
    assert result["simulated"] is True
    assert result["output"]["category"] == "billing"
    assert "SIMULATED support_triage: 1 ok" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"ticket": ', "error: --input is not valid JSON: Expecting value at column 12"),
        ("[1, 2]", "error: --input must be a JSON object, not list"),
        ('{"nothing": 1}', "error: --input: input does not match the workflow's input schema: "
                           "ticket: Field required"),
    ],
)  # fmt: skip
def test_a_bad_input_exits_2_with_one_line(
    text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        ["run", "workflows/support_triage.yaml", "--input", text, "--backend", "simulate"], capsys
    )
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(message)


def test_without_an_api_key_it_says_how_to_go_on(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    code, _, err = run(["run", "workflows/support_triage.yaml", "--input", "{}"], capsys)
    assert code == 2
    assert err.strip() == f"error: {NO_KEY}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give one input with --input JSON, or a batch with --input-file FILE.jsonl"),
        (["--input", "{}", "--input-file", "x.jsonl"], "give one input with --input JSON"),
        (["--input", "{}", "--resume"], "--resume goes with --input-file"),
        (["--input-file", "no/such.jsonl"], "input file 'no/such.jsonl' does not exist"),
    ],
)
def test_usage_mistakes_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        ["run", "workflows/support_triage.yaml", "--backend", "simulate", *args], capsys
    )
    assert code == 2
    assert message in err


def test_a_broken_workflow_is_reported_by_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow = write_project(tmp_path)
    workflow.write_text(workflow.read_text().replace("labeller@^1", "nobody@^1"))
    code, _, err = run(
        ["run", str(workflow), "--agents", str(tmp_path / "agents"), "--input", '{"text": "x"}',
         "--backend", "simulate"],
        capsys,
    )  # fmt: skip
    assert code == 2
    assert re.search(r"labelling\.yaml:\d+:\d+: error MA301: nodes\.label\.agent", err)


def test_a_bad_latency_scale_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROAGENTS_SIMULATED_LATENCY_SCALE", "fast")
    code, _, err = run(
        ["run", "workflows/support_triage.yaml", "--input", "{}", "--backend", "simulate"], capsys
    )
    assert code == 2
    assert "MICROAGENTS_SIMULATED_LATENCY_SCALE must be a number >= 0" in err


# -- killed half way, in a real process, against the fake API ------------------------------

ITEMS = 60
CONCURRENCY = 4


@pytest.fixture
def slow_api() -> Iterator[FakeAnthropicServer]:
    """The fake API, unlimited but a tenth of a second per call."""
    limits = ServerRateLimits(10**7, 10**10, 10**10)
    with FakeAnthropicServer(rate_limits=limits) as server:
        server.fail(Fault.slow(0.1))
        yield server


def batch_command(tmp_path: Path, server: FakeAnthropicServer) -> tuple[list[str], dict[str, str]]:
    write_project(tmp_path)
    write_items(tmp_path / "items.jsonl", ITEMS, ids=True)
    # The client's own limits must not be what slows the batch down.
    (tmp_path / "microagents.toml").write_text(
        "[tiers.haiku]\nrpm = 10000000\ninput_tpm = 10000000000\noutput_tpm = 10000000000\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OTEL_"))}
    env.update(
        ANTHROPIC_API_KEY="test-key",
        ANTHROPIC_BASE_URL=server.base_url,
        MICROAGENTS_HOME=str(tmp_path / "home"),
    )
    command = [sys.executable, "-c", RUN_CLI, "run", "workflows/labelling.yaml",
               "--input-file", "items.jsonl", "--out", "out.jsonl",
               "--concurrency", str(CONCURRENCY), "--backend", "anthropic"]  # fmt: skip
    return command, env


def stop_half_way(
    command: list[str], env: dict[str, str], cwd: Path, how: signal.Signals
) -> tuple[int, str]:
    """Start the batch, send `how` once a quarter of it is written; the exit code and stderr."""
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out = cwd / "out.jsonl"
    deadline = time.monotonic() + 30
    while not (out.exists() and out.read_bytes().count(b"\n") >= ITEMS // 4):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the batch wrote nothing"
        time.sleep(0.005)
    process.send_signal(how)
    _, stderr = process.communicate(timeout=30)
    return process.returncode, stderr


def finished_ids(out: Path) -> set[str]:
    complete = out.read_bytes().rsplit(b"\n", 1)[0].decode()
    return {json.loads(line)["id"] for line in complete.splitlines()}


def paid_markers(server: FakeAnthropicServer) -> Counter[str]:
    paid: Counter[str] = Counter()
    for request in server.requests:
        if request.path == "/v1/messages" and request.succeeded:
            paid.update(set(re.findall(r"marker-\d+", request.messages_text)))
    return paid


def test_a_batch_killed_with_sigkill_resumes_without_paying_twice(
    tmp_path: Path, slow_api: FakeAnthropicServer
) -> None:
    command, env = batch_command(tmp_path, slow_api)

    code, _ = stop_half_way(command, env, tmp_path, signal.SIGKILL)

    assert code == -signal.SIGKILL
    before = finished_ids(tmp_path / "out.jsonl")
    assert ITEMS // 4 <= len(before) < ITEMS
    resumed = subprocess.run(
        [*command, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert resumed.returncode == 0, resumed.stderr
    lines = read_lines(tmp_path / "out.jsonl")
    assert Counter(line["index"] for line in lines) == Counter(range(1, ITEMS + 1))
    assert all(line["status"] == "ok" for line in lines)
    paid = paid_markers(slow_api)
    assert set(paid) == {f"marker-{n}" for n in range(1, ITEMS + 1)}
    for item_id in before:  # finished before the kill: never called again
        assert paid[item_id.replace("item-", "marker-")] == 1
    assert f"{len(before)} resumed" in resumed.stderr


def test_ctrl_c_checkpoints_what_finished_and_exits_130(
    tmp_path: Path, slow_api: FakeAnthropicServer
) -> None:
    command, env = batch_command(tmp_path, slow_api)

    code, stderr = stop_half_way(command, env, tmp_path, signal.SIGINT)

    assert code == 130, stderr
    assert "re-run with --resume to continue" in stderr
    assert "Traceback" not in stderr
    before = finished_ids(tmp_path / "out.jsonl")
    resumed = subprocess.run(
        [*command, "--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert resumed.returncode == 0, resumed.stderr
    assert Counter(line["index"] for line in read_lines(tmp_path / "out.jsonl")) == Counter(
        range(1, ITEMS + 1)
    )
    paid = paid_markers(slow_api)
    for item_id in before:
        assert paid[item_id.replace("item-", "marker-")] == 1
    # Only calls in flight at Ctrl-C can have been paid for and then abandoned.
    assert sum(count > 1 for count in paid.values()) <= CONCURRENCY


def test_the_default_concurrency_is_the_engines() -> None:
    from microagents.cli import _run
    from microagents.runtime._engine import DEFAULT_CONCURRENCY

    assert _run.DEFAULT_CONCURRENCY == DEFAULT_CONCURRENCY
