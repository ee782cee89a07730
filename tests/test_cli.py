from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from cli_runner import run_cli as run

ROOT = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_validate_accepts_the_built_in_agents_and_workflows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(["validate", "agents", "workflows"], capsys)
    assert code == 0, err
    assert err == ""  # no warnings either
    assert "0 invalid" in out


def test_graph_of_support_triage(
    capsys: pytest.CaptureFixture[str], snapshot: SnapshotAssertion
) -> None:
    code, out, _ = run(["graph", "workflows/support_triage.yaml"], capsys)
    assert code == 0
    assert out == snapshot


def test_graph_of_invoice_extraction_as_dot(
    capsys: pytest.CaptureFixture[str], snapshot: SnapshotAssertion
) -> None:
    code, out, _ = run(["graph", "workflows/invoice_extraction.yaml", "--format", "dot"], capsys)
    assert code == 0
    assert out == snapshot


def test_agents_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["agents", "list", "--json"], capsys)
    assert code == 0
    names = {json.loads(line)["name"] for line in out.splitlines()}
    assert {"router", "extractor", "validator"} <= names
    code, out, _ = run(["agents", "show", "router@^1"], capsys)
    assert code == 0
    assert out.startswith("# router@1.0.0 from agents/router.yaml")
    assert "# prompt rendered for the first example input" in out


def test_unknown_agent_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["agents", "show", "routr"], capsys)
    assert code == 2
    assert err == "error MA301: unknown agent 'routr'; did you mean 'router'?\n"


def test_missing_path_and_bad_tools_module(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["validate", "no/such/dir"], capsys)
    assert (code, err) == (2, "no/such/dir: error MA101: no such file or folder\n")
    code, _, err = run(["validate", "--tools", "no_such_module_xyz", "agents"], capsys)
    assert code == 2
    assert err.startswith("error: cannot import tools module 'no_such_module_xyz'")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["graph", "workflows/support_triage.yaml", "--format", "png"], capsys)
    assert code == 2
    assert "'png' is not one of 'mermaid', 'dot'" in err


def test_schema_for_editors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["schema", "workflow"], capsys)
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"].endswith("2020-12/schema")
    assert {"name", "nodes", "edges", "output"} <= set(schema["properties"])
    edge = schema["$defs"]["EdgeSpec"]
    assert "from" in edge["properties"]  # the YAML spelling, not the Python field name
    code, out, _ = run(["schema", "agent"], capsys)
    assert "input_model" not in json.loads(out)["properties"]


def test_tools_module_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "my_team_tools.py").write_text(
        "from microagents import tool\n\n"
        "@tool(name='orders.lookup')\n"
        "def lookup(order_id: str) -> dict[str, str]:\n"
        "    'Find an order.'\n"
        "    return {'order_id': order_id}\n"
    )
    agent = (ROOT / "tests/fixtures/project/agents/validator.yaml").read_text()
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "v.yaml").write_text(
        agent.replace("prompt:", "tools: [orders.lookup]\nprompt:")
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    code, _, err = run(["validate", "--tools", "my_team_tools", "agents"], capsys)
    assert (code, err) == (0, ""), err
    code, _, err = run(["validate", "agents"], capsys)
    assert code == 2
    assert "unknown tool 'orders.lookup'" in err


def test_schema_accepts_entry_as_a_string(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(["schema", "workflow"], capsys)
    entry = json.loads(out)["properties"]["entry"]
    assert {"type": "string"} in entry["anyOf"]


def test_validate_reports_a_version_published_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = (ROOT / "tests/fixtures/project/agents/validator.yaml").read_text()
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "a.yaml").write_text(agent)
    (tmp_path / "agents" / "b.yaml").write_text(agent.replace("Check a record.", "Changed."))
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["validate", "agents"], capsys)
    assert code == 2
    assert "error MA307: version: validator@1.0.0 is also defined in agents/a.yaml" in err
    assert out.endswith("1 valid, 1 invalid\n")
