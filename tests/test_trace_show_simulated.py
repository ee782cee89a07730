"""`microagents trace show` on a real (simulated) run of support triage, end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from syrupy.assertion import SnapshotAssertion

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "microagents"
TICKET = {"ticket": "You billed me twice for order 7786; refund the duplicate please."}


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MICROAGENTS_HOME": str(home),
        "MICROAGENTS_SIMULATED_LATENCY_SCALE": "0",
        "COLUMNS": "120",
        "NO_COLOR": "1",
        "TZ": "UTC",
    }
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        env.pop(name, None)
    return subprocess.run(
        [str(CLI), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def stable(text: str) -> str:
    """Mask what changes from run to run: ids, clock times, durations, timeline bars."""
    text = re.sub(r"\b[0-9a-f]{32}\b", "<trace-id>", text)
    text = re.sub(r"\b[0-9a-f]{8}-\d+\b", "<run-id>", text)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "<time>", text)
    text = re.sub(r"\b\d+(\.\d+)?(ms|s|µs)\b", "<dur>", text)
    text = re.sub(r"[█·]{8,}", "<bar>", text)  # timeline bars, not the · separators
    # A masked duration's width sets its column's: one gap between columns, whatever they are.
    return re.sub(r"(?<=[^\s│]) {2,}(?=\S)", "  ", text)


def test_trace_show_renders_a_simulated_triage_run(
    tmp_path: Path, snapshot: SnapshotAssertion
) -> None:
    run_args = ["workflows/support_triage.yaml", "--input", json.dumps(TICKET)]
    ran = cli("run", *run_args, "--backend", "simulate", home=tmp_path)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["simulated"] is True
    assert f"trace {result['trace_id']}: microagents trace show {result['run_id']}" in ran.stderr

    shown = cli("trace", "show", result["run_id"], home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "simulated" in shown.stdout
    for hop in (
        "agent route (router)",
        "agent extract_billing (extractor)",
        "chat claude-haiku-4-5",
    ):
        assert hop in shown.stdout
    assert stable(shown.stdout) == snapshot

    as_json = json.loads(cli("trace", "show", result["run_id"], "--json", home=tmp_path).stdout)
    names = [span["name"] for span in as_json["spans"]]
    assert names[0] == "invoke_workflow support_triage"
    assert "invoke_agent check_billing (validator)" in names
    # `microagents run` names the service, and the Phoenix project, after the workflow.
    resource = as_json["spans"][0]["resource"]
    assert resource["service.name"] == resource["openinference.project.name"] == "support_triage"
