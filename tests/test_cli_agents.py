"""`microagents agents list|show|search|new|package`: discovery and publishing."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from syrupy.assertion import SnapshotAssertion

from cli_runner import run_cli
from registry_helpers import EXAMPLE_PACKAGE, agent_yaml, workflow_yaml, write


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Own agents in ./agents, the team's in ./team (a later source), and one workflow."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "microagents.toml", 'sources = ["agents", "team"]\n')
    write(tmp_path / "agents" / "qa.yaml", agent_yaml("team/qa", "0.9.0", "Our own answerer."))
    write(tmp_path / "team" / "qa.yaml", agent_yaml("team/qa", "1.0.0"))
    write(
        tmp_path / "team" / "sum1.yaml", agent_yaml("team/summarizer", "1.0.0", "Summarize a text.")
    )
    write(
        tmp_path / "team" / "sum2.yaml", agent_yaml("team/summarizer", "1.2.0", "Summarize a text.")
    )
    write(tmp_path / "workflows" / "ask.yaml", workflow_yaml("ask", "team/qa"))
    return tmp_path


def test_list_shows_each_name_once_with_its_versions_and_source(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["agents", "list", "--json"], capsys)
    assert (code, err) == (0, "")
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["name"], r["versions"], r["source"]) for r in records] == [
        ("team/qa", ["0.9.0"], "agents"),
        ("team/summarizer", ["1.0.0", "1.2.0"], "team"),
    ]
    code, out, _ = run_cli(["agents", "list"], capsys)
    assert out.splitlines()[0].split() == [
        "name", "versions", "model", "tools", "description", "source",
    ]  # fmt: skip
    assert "1.0.0, 1.2.0" in out


def test_list_one_source(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["agents", "list", "--source", "team", "--json"], capsys)
    assert code == 0
    # --source puts `team` first, so its team/qa now wins over ./agents.
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["name"], r["versions"], r["source"]) for r in records] == [
        ("team/qa", ["1.0.0"], "team"),
        ("team/summarizer", ["1.0.0", "1.2.0"], "team"),
    ]


def test_show_says_which_source_won_and_who_uses_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["agents", "show", "team/qa"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == ["# team/qa@0.9.0 from agents/qa.yaml", "# source: agents (wins over team)"]
    assert lines[2].startswith("# versions: 0.9.0; content hash sha256:")
    assert "input:\n  type: object\n" in out  # the schemas
    assert "examples:\n" in out
    assert "# prompt rendered for the first example input\nAnswer: two plus two\n" in out
    assert out.endswith("# used by\nworkflows/ask.yaml: nodes.ask (team/qa)\n")
    code, out, _ = run_cli(["agents", "show", "team/summarizer@~1.0"], capsys)
    assert out.startswith("# team/summarizer@1.0.0 from team/sum1.yaml\n")
    assert out.endswith("# used by\nno workflow in workflows\n")


def test_show_a_range_that_matches_nothing_lists_the_versions(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["agents", "show", "team/summarizer@^2"], capsys)
    assert (code, err) == (
        2,
        "error MA301: no version of agent 'team/summarizer' matches '^2'; "
        "available: 1.0.0, 1.2.0\n",
    )


def test_search_matches_every_word_in_names_and_descriptions(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(["agents", "search", "SUMMARIZE", "text", "--json"], capsys)
    assert [json.loads(line)["name"] for line in out.splitlines()] == ["team/summarizer"]
    code, _, err = run_cli(["agents", "search", "translate"], capsys)
    assert code == 2
    assert "no agent's name or description contains 'translate'" in err


def test_new_scaffolds_an_agent_whose_test_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(["agents", "new", "team/triage"], capsys)
    assert code == 0
    assert out.splitlines()[:3] == [
        "created  agents/triage.yaml",
        "created  agents/triage.j2",
        "created  tests/test_triage_agent.py",
    ]
    code, out, err = run_cli(["validate", "agents"], capsys)
    assert (code, err) == (0, "")
    # The generated test runs as it would under pytest.
    spec = importlib.util.spec_from_file_location(
        "scaffolded", tmp_path / "tests" / "test_triage_agent.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_triage_compiles_and_renders_its_example()
    code, _, err = run_cli(["agents", "new", "team/triage"], capsys)
    assert code == 2
    assert "tests/test_triage_agent.py already exist; choose another name" in err
    code, _, err = run_cli(["agents", "new", "Team/Triage"], capsys)
    assert code == 2
    assert "'Team/Triage' is not an agent name" in err


def test_package_checks_the_example_layout(
    capsys: pytest.CaptureFixture[str], snapshot: SnapshotAssertion
) -> None:
    code, out, err = run_cli(["agents", "package", str(EXAMPLE_PACKAGE)], capsys)
    assert (code, err) == (0, "")
    assert out.replace(str(EXAMPLE_PACKAGE), "examples/team_agents") == snapshot


def test_package_without_an_entry_point_prints_the_snippet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tmp_path / "billing-agents"
    shutil.copytree(EXAMPLE_PACKAGE / "src" / "team_agents", package / "src" / "billing_agents")
    write(package / "src" / "billing_agents" / "bare.yaml", agent_yaml("bare", "1.0.0"))
    write(package / "pyproject.toml", '[project]\nname = "billing-agents"\nversion = "1.0.0"\n')
    code, out, err = run_cli(["agents", "package", str(package)], capsys)
    assert code == 2
    assert 'error MA809: no [project.entry-points."microagents.agents"] table' in err
    assert out.endswith('[project.entry-points."microagents.agents"]\nbilling = "billing_agents"\n')
    write(
        package / "pyproject.toml",
        '[project]\nname = "billing-agents"\n'
        '[project.entry-points."microagents.agents"]\nbilling = "billing_agents"\n',
    )
    code, out, err = run_cli(["agents", "package", str(package)], capsys)
    assert code == 0
    assert "warning MA809: name: 'bare' has no namespace" in err
    assert "agent     bare@1.0.0" in out
