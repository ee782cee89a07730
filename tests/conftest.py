"""Shared fixtures: the repository's own folders, and a project rooted there."""

from __future__ import annotations

from pathlib import Path

import pytest

import microagents as ma

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["microagents.testing.pytest_plugin"]


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def project() -> ma.Project:
    """The repository's own agents and workflows."""
    return ma.Project(ROOT)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Embedded stores must never land in the working tree during tests.
    monkeypatch.setenv("MICROAGENTS_HOME", str(tmp_path / "home"))
