"""Recorded runs as a regression suite: one pytest case per exported run, judged by a snapshot.

```python
import pytest
import microagents as ma
from microagents.testing import assert_replay, replay_cases

triage = ma.Project().load_workflow("workflows/support_triage.yaml")


@pytest.mark.parametrize("recorded", replay_cases("tests/recorded"))
def test_recorded_traffic(recorded, snapshot):
    assert_replay(recorded, triage, snapshot)
```

`microagents runs export --workflow support_triage --to tests/recorded` writes the folder. The
replay is offline (no model by default): a node whose request changed fails and shows in the
snapshot's diff, and `pytest --snapshot-update` approves a change on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _pytest.mark import ParameterSet

    from ..evals._replay import RecordedRun, ReplayReport
    from ..graph._compiled import CompiledWorkflow
    from ..models._protocol import Model


def replay_cases(folder: Path | str) -> list[ParameterSet]:
    """A `pytest.param` per ``*.json`` file in `folder` (runs `microagents runs export`
    wrote), each a `RecordedRun` with the file's name as its id, for ``parametrize``."""
    import pytest

    from ..evals._replay import load_recorded

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(
            f"no folder '{root}' of recorded runs: write one with "
            f"`microagents runs export --to {root}`"
        )
    files = sorted(root.glob("*.json"))
    return [pytest.param(load_recorded(file), id=file.stem) for file in files]


def assert_replay(
    recorded: RecordedRun,
    workflow: CompiledWorkflow,
    snapshot: Any,
    *,
    model: Model | None = None,
) -> ReplayReport:
    """Replay `recorded` through `workflow` (offline unless `model` is given) and assert that
    its outcome — status, output, and each node's status and output — equals `snapshot` (a
    syrupy ``snapshot`` fixture, or any value that compares). Returns the report."""
    import anyio

    from ..evals._replay import replay

    report = anyio.run(lambda: replay(recorded, workflow, model=model))
    assert replay_outcome(report) == snapshot
    return report


def replay_outcome(report: ReplayReport) -> dict[str, Any]:
    """What a replay gave, as plain JSON without ids or times: what a snapshot holds."""
    result = report.result
    nodes: dict[str, Any] = {}
    for run in result.nodes:
        item = f"[{run.item_index}]" if run.item_index is not None else ""
        entry: dict[str, Any] = {"status": run.status, "output": _plain(run.output)}
        if run.error:
            entry["error"] = run.error
        nodes[f"{run.node}#{run.visit}{item}"] = entry
    return {
        "input": _plain(result.input),
        "status": result.status,
        "output": _plain(result.output),
        "nodes": dict(sorted(nodes.items())),
    }


def _plain(value: Any) -> Any:
    from ..results._results import jsonable

    return jsonable(value)
