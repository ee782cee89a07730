"""microagents: declarative workflows of small Claude agents, escalating only when needed.

The public API, grouped; everything else lives in private modules.

```python
import microagents as ma

project = ma.Project()
triage = project.load_workflow("workflows/support_triage.yaml")
print(triage.to_mermaid())
```
"""

from ._agent import CompiledAgent
from ._agent_spec import AgentSpec, EscalationSpec, Example, Trigger
from ._builder import Workflow
from ._errors import Location, MicroagentsError, Problem, SpecError
from ._graph import CompiledEdge, CompiledNode, CompiledWorkflow
from ._project import Project
from ._registry import AgentRegistry, AgentSource, FolderSource, ResolutionError
from ._tools import Tool, Tools, tool
from ._workflow_spec import EdgeSpec, NodeSpec, WorkflowSpec

__version__ = "0.1.0"

__all__ = [
    # specs: what authors write
    "AgentSpec",
    "EdgeSpec",
    "EscalationSpec",
    "Example",
    "NodeSpec",
    "Trigger",
    "WorkflowSpec",
    # building and compiling
    "CompiledAgent",
    "CompiledEdge",
    "CompiledNode",
    "CompiledWorkflow",
    "Project",
    "Workflow",
    # agents and tools
    "AgentRegistry",
    "AgentSource",
    "FolderSource",
    "Tool",
    "Tools",
    "tool",
    # errors
    "Location",
    "MicroagentsError",
    "Problem",
    "ResolutionError",
    "SpecError",
    "__version__",
]
