"""`microagents lock`: pins written, honoured by run and validate, moved only on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

import microagents as ma
from cli_runner import run_cli
from microagents.registry._lock import LOCK_FORMAT, Lock
from registry_helpers import agent_yaml, workflow_yaml, write


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose workflow uses team/qa@^1 from a shared folder source."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MICROAGENTS_SIMULATED_LATENCY_SCALE", "0")
    write(tmp_path / "microagents.toml", 'sources = ["shared"]\n')
    write(tmp_path / "shared" / "qa_1_0.yaml", agent_yaml("team/qa", "1.0.0"))
    write(tmp_path / "workflows" / "ask.yaml", workflow_yaml("ask", "team/qa@^1"))
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_cli(list(args), capsys)


def test_lock_pins_version_source_and_hash(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "lock")
    assert (code, err) == (0, "")
    assert out == (
        "added    agent team/qa@1.0.0 from shared\n"
        "microagents.lock: 1 agents and 0 workflows pinned\n"
    )
    text = (project / "microagents.lock").read_text()
    assert text.startswith("# Written by `microagents lock`")
    (pin,) = Lock.read(project / "microagents.lock").pins
    assert (pin.kind, pin.name, str(pin.version), pin.source) == (
        "agent",
        "team/qa",
        "1.0.0",
        "shared",
    )
    assert pin.hash == ma.Project(project).registry.find("team/qa").hash
    # Locking again changes nothing, byte for byte.
    code, out, _ = cli(capsys, "lock")
    assert out == "microagents.lock: 1 agents and 0 workflows pinned (unchanged)\n"
    assert (project / "microagents.lock").read_text() == text


def test_a_new_version_is_used_only_after_an_upgrade(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "lock")
    write(project / "shared" / "qa_1_1.yaml", agent_yaml("team/qa", "1.1.0"))
    code, out, _ = cli(capsys, "agents", "show", "team/qa")
    assert code == 0
    assert out.startswith("# team/qa@1.0.0 from shared/qa_1_0.yaml\n")
    assert "# pinned by microagents.lock" in out
    code, out, _ = cli(capsys, "lock")  # a plain lock keeps pins that still fit
    assert out.endswith("(unchanged)\n")
    code, out, _ = cli(capsys, "lock", "--upgrade", "team/qa")
    assert (code, out.splitlines()[0]) == (0, "upgraded agent team/qa 1.0.0 → 1.1.0")
    code, out, _ = cli(
        capsys, "run", "workflows/ask.yaml", "--backend", "simulate", "--input", '{"question": "x"}'
    )
    assert code == 0


def test_changed_content_under_a_pinned_version_is_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "lock")
    write(project / "shared" / "qa_1_0.yaml", agent_yaml("team/qa", "1.0.0", "Answer badly."))
    code, out, err = cli(capsys, "validate", "workflows")
    assert code == 2
    assert err.startswith("workflows/ask.yaml:10:5: error MA806: nodes.ask.agent: agent ")
    assert "team/qa@1.0.0 from shared does not match microagents.lock: pinned sha256:" in err
    assert "microagents lock --upgrade team/qa" in err
    code, _, err = cli(
        capsys, "run", "workflows/ask.yaml", "--backend", "simulate", "--input", "{}"
    )
    assert (code, "MA806" in err) == (2, True)
    # Accepting the change on purpose re-pins the new content.
    code, out, _ = cli(capsys, "lock", "--upgrade", "team/qa")
    assert out.startswith("upgraded agent team/qa 1.0.0: content sha256:")
    assert cli(capsys, "validate", "workflows")[0] == 0


def test_a_locked_version_that_disappeared(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "lock")
    write(project / "shared" / "qa_1_0.yaml", agent_yaml("team/qa", "1.2.0"))
    code, _, err = cli(capsys, "validate", "workflows")
    assert code == 2
    assert (
        "error MA807: nodes.ask.agent: microagents.lock pins agent team/qa@1.0.0 from shared" in err
    )
    assert "shared offers versions: 1.2.0" in err


def test_a_reference_the_lock_does_not_cover(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "lock")
    write(project / "shared" / "other.yaml", agent_yaml("team/other", "1.0.0"))
    write(project / "workflows" / "other.yaml", workflow_yaml("other", "team/other"))
    code, _, err = cli(capsys, "validate", "workflows")
    assert code == 2
    assert (
        "error MA808: nodes.ask.agent: agent 'team/other' is not pinned in microagents.lock" in err
    )
    code, out, _ = cli(capsys, "lock")
    assert out.startswith("added    agent team/other@1.0.0 from shared\n")


def test_upgrade_everything_and_removed_pins(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "lock")
    write(project / "shared" / "qa_1_1.yaml", agent_yaml("team/qa", "1.1.0"))
    write(project / "shared" / "other.yaml", agent_yaml("team/other", "1.0.0"))
    other = write(project / "workflows" / "other.yaml", workflow_yaml("other", "team/other"))
    code, out, _ = cli(capsys, "lock", "--upgrade")
    assert (code, out.splitlines()[:2]) == (
        0,
        [
            "added    agent team/other@1.0.0 from shared",
            "upgraded agent team/qa 1.0.0 → 1.1.0",
        ],
    )
    other.unlink()
    code, out, _ = cli(capsys, "lock")
    assert out.splitlines()[0] == "removed  agent team/other@1.0.0 (no workflow uses it)"


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("format = 1\n[[agent]\n", "MA804", "is not valid TOML"),
        ("[[agent]]\nname = 'x'\n", "MA804", "has no `format = N` line"),
        ("format = 1\n[[agent]]\nname = 'team/qa'\n", "MA804", "number 1 has no `version` string"),
        (f"format = {LOCK_FORMAT + 1}\n", "MA805", "written by a newer microagents"),
    ],
)
def test_a_corrupt_or_newer_lock_file(
    project: Path, capsys: pytest.CaptureFixture[str], text: str, code: str, message: str
) -> None:
    write(project / "microagents.lock", text)
    exit_code, _, err = cli(capsys, "validate", "workflows")
    assert exit_code == 2
    assert err.startswith(f"error {code}: ")
    assert message in err


def test_lock_refuses_names_it_cannot_move(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "lock", "team/qa")
    assert (code, err) == (
        2,
        "error: NAME goes with --upgrade: microagents lock --upgrade team/qa\n",
    )
    code, _, err = cli(capsys, "lock", "--upgrade", "team/nope")
    assert code == 2
    assert "'team/nope' is not pinned and no workflow uses it; pinned: team/qa" in err
    assert not (project / "microagents.lock").exists()


def test_agents_built_in_python_need_no_pin(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "lock")
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    local = ma.AgentSpec(
        name="local", version="1.0.0", description="In code.", prompt="{{ q }}",
        input=schema, output={"type": "object"},
    )  # fmt: skip
    flow = (
        ma.Workflow("mixed", input=schema, output="{{ nodes.pinned.output }}")
        .node("own", agent=local, input={"q": "{{ input.q }}"})
        .node("pinned", agent="team/qa@^1", input={"question": "{{ input.q }}"})
        .edge("own", "pinned")
    )
    compiled = flow.compile(ma.Project(project))
    assert [a.reference for a in compiled.agents] == ["local@1.0.0", "team/qa@1.0.0"]


def test_an_unknown_name_is_unknown_even_with_a_lock(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "lock")
    code, _, err = cli(capsys, "agents", "show", "team/qq")
    assert (code, err) == (2, "error MA301: unknown agent 'team/qq'; did you mean 'team/qa'?\n")
