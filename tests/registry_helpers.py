"""Building registry sources in a temporary folder: agent specs, git repositories, and the
example agent package installed with pip."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import tomllib
import zipfile
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
    """Install examples/team_agents into `site` with pip, offline: build its wheel here (the
    package with its data files, and a dist-info with the entry points its pyproject.toml
    declares, as a build backend would), then `pip install --target`; return `site`."""
    project = tomllib.loads((EXAMPLE_PACKAGE / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    dist_info = f"{name.replace('-', '_')}-{version}.dist-info"
    entry_points = "".join(
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in entries.items())
        for group, entries in project["entry-points"].items()
    )
    files = {
        f"team_agents/{path.name}": path.read_bytes()
        for path in sorted((EXAMPLE_PACKAGE / "src" / "team_agents").iterdir())
        if path.is_file()
    }
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    )
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{dist_info}/entry_points.txt"] = entry_points.encode()
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in files.items()]
    files[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
    wheel = site.parent / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--disable-pip-version-check", "--target", str(site), str(wheel)],
        capture_output=True,
        check=True,
        timeout=60,
    )  # fmt: skip
    return site


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
