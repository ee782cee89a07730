"""Evals: score a workflow on a labelled dataset, compare two variants, sweep tiers.

A dataset is JSONL, one case a line: an input, and expected values for the workflow's output
and for nodes' outputs, with matchers (exact, one-of, set, numeric tolerance, regex, a
model-graded rubric). `evaluate` runs it through an `Engine` — any back-end — and gives an
`EvalReport` (per node accuracy, escalation rate, cost, latency; confusion matrices for
routers; failing cases with their trace ids). `compare_reports` judges B against A with
paired-bootstrap intervals; `sweep_tiers` pins each agent node to each rung of its ladder and
says where the cheapest tier is enough. `replay` re-runs a recorded run through the workflow
as it is now, calling the model only where a request changed, and says what changed.

```python
import anyio
import microagents as ma
from microagents.evals import evaluate, load_dataset

triage = ma.Project().load_workflow("workflows/support_triage.yaml")
dataset = load_dataset("examples/datasets/support_triage.jsonl")


async def main() -> None:
    async with ma.Engine.for_backend("simulate", triage) as engine:
        report = await evaluate(triage, dataset, engine=engine)
    print(report.node("route").accuracy)


anyio.run(main)
```

Imports: the runtime and everything below it; nothing imports it but the CLI and
`microagents.testing` (recorded runs as snapshot cases).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._compare import Comparison as Comparison
    from ._compare import Delta as Delta
    from ._compare import compare_reports as compare_reports
    from ._dataset import Case as Case
    from ._dataset import Dataset as Dataset
    from ._dataset import load_dataset as load_dataset
    from ._evaluate import evaluate as evaluate
    from ._html import render_html as render_html
    from ._judge import ModelGrader as ModelGrader
    from ._matchers import Approx as Approx
    from ._matchers import Exact as Exact
    from ._matchers import FieldCheck as FieldCheck
    from ._matchers import Fields as Fields
    from ._matchers import Judge as Judge
    from ._matchers import OneOf as OneOf
    from ._matchers import Regex as Regex
    from ._matchers import SetOf as SetOf
    from ._replay import NodeReplay as NodeReplay
    from ._replay import RecordedRun as RecordedRun
    from ._replay import ReplayReport as ReplayReport
    from ._replay import export_run as export_run
    from ._replay import load_recorded as load_recorded
    from ._replay import recorded_run as recorded_run
    from ._replay import replay as replay
    from ._report import CaseResult as CaseResult
    from ._report import Confusion as Confusion
    from ._report import EvalReport as EvalReport
    from ._report import NodeReport as NodeReport
    from ._store import StoredEval as StoredEval
    from ._store import list_evals as list_evals
    from ._store import load_eval as load_eval
    from ._store import save_eval as save_eval
    from ._sweep import SweepOption as SweepOption
    from ._sweep import SweepReport as SweepReport
    from ._sweep import pin as pin
    from ._sweep import sweep_tiers as sweep_tiers

_EXPORTS = {
    # datasets and matchers
    "Approx": "._matchers",
    "Case": "._dataset",
    "Dataset": "._dataset",
    "Exact": "._matchers",
    "FieldCheck": "._matchers",
    "Fields": "._matchers",
    "Judge": "._matchers",
    "load_dataset": "._dataset",
    "ModelGrader": "._judge",
    "OneOf": "._matchers",
    "Regex": "._matchers",
    "SetOf": "._matchers",
    # running and reporting
    "CaseResult": "._report",
    "Confusion": "._report",
    "EvalReport": "._report",
    "evaluate": "._evaluate",
    "NodeReport": "._report",
    "render_html": "._html",
    # comparing and sweeping
    "compare_reports": "._compare",
    "Comparison": "._compare",
    "Delta": "._compare",
    "pin": "._sweep",
    "sweep_tiers": "._sweep",
    "SweepOption": "._sweep",
    "SweepReport": "._sweep",
    # replaying recorded runs
    "export_run": "._replay",
    "load_recorded": "._replay",
    "NodeReplay": "._replay",
    "recorded_run": "._replay",
    "RecordedRun": "._replay",
    "replay": "._replay",
    "ReplayReport": "._replay",
    # the store
    "list_evals": "._store",
    "load_eval": "._store",
    "save_eval": "._store",
    "StoredEval": "._store",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
