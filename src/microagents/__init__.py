"""microagents: declarative workflows of small Claude agents, escalating only when needed.

The top level is for workflow authors and the code that runs workflows; everything else has
a namespace of its own, for its own audience:

- `microagents.models` — the model protocol and its messages, back-ends and the layers around
  them (retries, rate limits, the response cache), tiers, prices and capabilities;
- `microagents.results` — run results, their events, batch summaries;
- `microagents.runtime` — the engine, batches and their checkpoints;
- `microagents.tracing` — OpenTelemetry setup, the embedded trace store;
- `microagents.registry` — agent sources and the registry;
- `microagents.sql` — the SQL guard and the read-only database tools;
- `microagents.evals` — datasets, evals, comparisons of two variants, tier sweeps;
- `microagents.errors` — the one exception hierarchy;
- `microagents.testing` — fakes for tests: a fake model, the loopback fake Anthropic server.

```python
import microagents as ma

project = ma.Project()
triage = project.load_workflow("workflows/support_triage.yaml")
result = ma.run_sync(triage, {"ticket": "I was charged twice"}, backend="simulate")
```
"""

# Names are imported on first use, so that `import microagents` stays fast: the engine,
# tracing and the SDKs load only when a program touches them.
from typing import TYPE_CHECKING

from ._about import __version__ as __version__
from ._lazy import lazy_exports

if TYPE_CHECKING:
    from . import (
        errors as errors,
    )
    from . import (
        evals as evals,
    )
    from . import (
        models as models,
    )
    from . import (
        registry as registry,
    )
    from . import (
        results as results,
    )
    from . import (
        runtime as runtime,
    )
    from . import (
        sql as sql,
    )
    from . import (
        testing as testing,
    )
    from . import (
        tracing as tracing,
    )
    from ._api import run as run
    from ._api import run_many as run_many
    from ._api import run_sync as run_sync
    from ._api import stream as stream
    from .errors import (
        MicroagentsError as MicroagentsError,
    )
    from .errors import (
        ModelError as ModelError,
    )
    from .errors import (
        RunError as RunError,
    )
    from .errors import (
        SpecError as SpecError,
    )
    from .graph._agent import CompiledAgent as CompiledAgent
    from .graph._compiled import CompiledEdge as CompiledEdge
    from .graph._compiled import CompiledNode as CompiledNode
    from .graph._compiled import CompiledWorkflow as CompiledWorkflow
    from .graph._tools import Tool as Tool
    from .graph._tools import Tools as Tools
    from .graph._tools import tool as tool
    from .project._builder import Workflow as Workflow
    from .project._project import Project as Project
    from .results._results import RunEvent as RunEvent
    from .results._results import RunResult as RunResult
    from .runtime._batch import run_batch as run_batch
    from .runtime._engine import Engine as Engine
    from .spec._agent_spec import (
        AgentSpec as AgentSpec,
    )
    from .spec._agent_spec import (
        EscalationSpec as EscalationSpec,
    )
    from .spec._agent_spec import (
        Example as Example,
    )
    from .spec._agent_spec import (
        Trigger as Trigger,
    )
    from .spec._workflow_spec import (
        EdgeSpec as EdgeSpec,
    )
    from .spec._workflow_spec import (
        NodeSpec as NodeSpec,
    )
    from .spec._workflow_spec import (
        WorkflowSpec as WorkflowSpec,
    )

_EXPORTS = {
    # specs: what authors write
    "AgentSpec": ".spec._agent_spec",
    "EdgeSpec": ".spec._workflow_spec",
    "EscalationSpec": ".spec._agent_spec",
    "Example": ".spec._agent_spec",
    "NodeSpec": ".spec._workflow_spec",
    "Trigger": ".spec._agent_spec",
    "WorkflowSpec": ".spec._workflow_spec",
    # building and compiling
    "CompiledAgent": ".graph._agent",
    "CompiledEdge": ".graph._compiled",
    "CompiledNode": ".graph._compiled",
    "CompiledWorkflow": ".graph._compiled",
    "Project": ".project._project",
    "Workflow": ".project._builder",
    # tools
    "Tool": ".graph._tools",
    "tool": ".graph._tools",
    "Tools": ".graph._tools",
    # running
    "Engine": ".runtime._engine",
    "run": "._api",
    "run_batch": ".runtime._batch",
    "run_many": "._api",
    "run_sync": "._api",
    "RunEvent": ".results._results",
    "RunResult": ".results._results",
    "stream": "._api",
    # errors: the root and the families an author meets (all of them: microagents.errors)
    "MicroagentsError": ".errors",
    "ModelError": ".errors",
    "RunError": ".errors",
    "SpecError": ".errors",
}
NAMESPACES = (
    "errors",
    "evals",
    "mcp",
    "models",
    "registry",
    "results",
    "runtime",
    "sql",
    "testing",
    "tracing",
)
"""The public namespaces, each for its own audience; `microagents.models` and so on (loaded
on first use, like the names above)."""

_names, _getattr, _dir = lazy_exports(__name__, _EXPORTS)
__all__ = [*_names, "__version__"]


def __getattr__(name: str) -> object:
    if name in NAMESPACES:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    return _getattr(name)


def __dir__() -> list[str]:
    return sorted([*__all__, *NAMESPACES])
