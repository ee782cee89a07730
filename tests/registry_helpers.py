"""Building registry sources in a temporary folder: agent specs, git repositories, and an
installed agent package (a ``.dist-info`` beside the package, as pip lays it out)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PACKAGE = ROOT / "examples" / "team_agents"

# Hermetic git: no system or user configuration, a fixed identity, `main` as first branch.
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def agent_yaml(name: str, version: str, description: str = "Answer a question.") -> str:
    """A small valid agent spec with an inline prompt."""
    return (
        f"name: {name}\nversion: {version}\ndescription: {description}\n"
        'prompt: "Answer: {{ question }}"\n'
        "input:\n  type: object\n  properties: {question: {type: string}}\n"
        "  required: [question]\n"
        "output:\n  type: object\n  properties: {answer: {type: string}}\n  required: [answer]\n"
        "examples:\n  - input: {question: two plus two}\n    output: {answer: four}\n"
    )


def workflow_yaml(name: str, agent: str, version: str = "1.0.0") -> str:
    """A one-node workflow that asks `agent` the input's question."""
    return (
        f"name: {name}\nversion: {version}\ndescription: Ask one agent.\n"
        "input:\n  type: object\n  properties: {question: {type: string}}\n"
        "  required: [question]\n"
        f"nodes:\n  ask:\n    agent: {agent}\n"
        '    input: {question: "{{ input.question }}"}\n'
        'output: "{{ nodes.ask.output }}"\n'
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=repo,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def install_example_package(site: Path) -> Path:
    """Install examples/team_agents into `site` as pip would (package + dist-info with its
    entry points), without a build backend or the network; return `site`."""
    pyproject = tomllib.loads((EXAMPLE_PACKAGE / "pyproject.toml").read_text())
    project = pyproject["project"]
    shutil.copytree(EXAMPLE_PACKAGE / "src" / "team_agents", site / "team_agents")
    dist_info = site / f"team_agents-{project['version']}.dist-info"
    write(
        dist_info / "METADATA",
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
    )
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in entries.items()]
    write(dist_info / "entry_points.txt", "\n".join(lines) + "\n")
    return site
