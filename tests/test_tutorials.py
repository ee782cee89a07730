"""The tutorials' commands run as written: each `$ ` line of a ```console block, from a folder
laid out like the repository, must succeed, and what the page shows of its output must hold."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import run_cli

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```console\n(.*?)```", re.S)
# Lines that change from run to run (times) or with concurrency (latencies, progress).
VOLATILE = re.compile(r" in \d+\.\d s$|^latency |^\[")


def commands(page: Path) -> list[tuple[str, list[str]]]:
    """Each command of the page with the output lines it shows."""
    found: list[tuple[str, list[str]]] = []
    for block in BLOCK.findall(page.read_text("utf-8")):
        for line in block.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], []))
            elif found:
                found[-1][1].append(line)
    return found


def shown(line: str) -> str:
    return VOLATILE.sub("", line.rstrip())


@pytest.mark.parametrize("page", ["moderation.md", "summarization.md"])
def test_the_tutorial_commands_run_as_shown(
    page: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for folder in ("agents", "workflows", "examples"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MICROAGENTS_SIMULATED_LATENCY_SCALE", "0")
    for command, expected in commands(ROOT / "docs" / "tutorials" / page):
        words = shlex.split(command)
        if words[0] == "microagents":
            code, out, err = run_cli(words[1:], capsys)
        else:
            assert words[0] == "python", command
            done = subprocess.run(
                [sys.executable, *words[1:]], capture_output=True, text=True, check=False
            )
            code, out, err = done.returncode, done.stdout, done.stderr
        assert code == 0, f"{command}\n{err}"
        actual = {shown(line) for line in (out + err).splitlines()}
        for line in expected:
            # Costs and token counts are exact on the simulated back-end and checked there;
            # against the fake API the headline and the escalation table are.
            if " ok, " in line or re.match(r"ok |\d+ valid|flowchart", line):
                assert shown(line) in actual, f"{command}: {line!r} not in\n{out}{err}"
