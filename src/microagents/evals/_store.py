"""Where evals are kept: one JSON file per eval under ``$MICROAGENTS_HOME/evals``.

A stored eval is the report's stable JSON shape, so that `microagents eval --list` lists them and
`--compare eval:ID` compares a new run against one, long after the objects that made it are gone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._settings import microagents_home
from ..errors import EvalError, suggest

EVALS_FOLDER = "evals"


@dataclass(frozen=True, slots=True)
class StoredEval:
    """One stored eval: its id, where it is, and the headline figures for a listing."""

    eval_id: str
    path: Path
    workflow: str
    variant: str
    dataset: str
    created_at: str
    overall: dict[str, Any]


def evals_folder(home: Path | None = None) -> Path:
    return (home or microagents_home()) / EVALS_FOLDER


def save_eval(report: dict[str, Any], home: Path | None = None) -> Path:
    """Write a report's JSON under its `eval_id`; returns the file."""
    folder = evals_folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{report['eval_id']}.json"
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def list_evals(home: Path | None = None) -> list[StoredEval]:
    """Every stored eval, newest first."""
    found = []
    for path in sorted(evals_folder(home).glob("*.json"), reverse=True):
        data = json.loads(path.read_text(encoding="utf-8"))
        found.append(
            StoredEval(
                data["eval_id"],
                path,
                data["workflow"],
                data["variant"],
                data["dataset"],
                data["created_at"],
                data["overall"],
            )
        )
    return found


def load_eval(eval_id: str, home: Path | None = None) -> dict[str, Any]:
    """A stored eval's JSON, by its id or a unique prefix of it."""
    stored = list_evals(home)
    matches = [s for s in stored if s.eval_id.startswith(eval_id)]
    if len(matches) != 1:
        ids = [s.eval_id for s in stored]
        what = "several evals" if matches else "no eval"
        raise EvalError(
            f"{what} under {evals_folder(home)} match '{eval_id}'; {suggest(eval_id, ids, 'evals')}"
        )
    data: dict[str, Any] = json.loads(matches[0].path.read_text(encoding="utf-8"))
    return data
