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
from ._anthropic import AnthropicModel
from ._backends import anthropic_model, simulated_model
from ._batch import BatchObserver, BatchProgress, BatchRunner, run_batch
from ._builder import Workflow
from ._cache import CachedModel
from ._checkpoint import CheckpointStore, SQLiteCheckpointStore
from ._engine import Engine
from ._errors import (
    AuthenticationError,
    InvalidRequestError,
    Location,
    MicroagentsError,
    ModelConnectionError,
    ModelError,
    ModelNotFoundError,
    ModelTimeoutError,
    OverloadedError,
    PermissionDeniedError,
    Problem,
    RateLimitedError,
    ServerError,
    SpecError,
)
from ._graph import CompiledEdge, CompiledNode, CompiledWorkflow
from ._model import (
    ContentBlock,
    Message,
    Model,
    ModelRequest,
    ModelResponse,
    StreamEnd,
    StreamEvent,
    StreamingModel,
    TextBlock,
    TextDelta,
    ToolChoice,
    ToolDefinition,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from ._project import Project
from ._ratelimit import RateLimitedModel
from ._registry import AgentRegistry, AgentSource, FolderSource, ResolutionError
from ._results import (
    Attempt,
    Escalated,
    Escalation,
    NodeFinished,
    NodeRun,
    NodeStarted,
    RunEvent,
    RunFinished,
    RunResult,
    ToolCalled,
)
from ._retry import RetryingModel, RetryPolicy
from ._simulate import SimulatedLatency, SimulatedModel
from ._summary import BatchSummary
from ._telemetry import default_tracing, flush_traces
from ._tiers import Price, RateLimits, Tier, TierTable
from ._tools import Tool, Tools, tool
from ._trace_store import SqliteSpanExporter, TraceStore
from ._tracing import TracedModel, Tracing
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
    # models: the protocol, its messages, back-ends and the layers around them
    "AnthropicModel",
    "CachedModel",
    "ContentBlock",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "Price",
    "RateLimitedModel",
    "RateLimits",
    "RetryPolicy",
    "RetryingModel",
    "SimulatedLatency",
    "SimulatedModel",
    "StreamEnd",
    "StreamEvent",
    "StreamingModel",
    "TextBlock",
    "TextDelta",
    "Tier",
    "TierTable",
    "ToolChoice",
    "ToolDefinition",
    "ToolResultBlock",
    "ToolUseBlock",
    "Usage",
    "anthropic_model",
    "simulated_model",
    # running: the engine, batches, results and the events a stream sees
    "Attempt",
    "BatchObserver",
    "BatchProgress",
    "BatchRunner",
    "BatchSummary",
    "CheckpointStore",
    "Engine",
    "Escalated",
    "Escalation",
    "NodeFinished",
    "NodeRun",
    "NodeStarted",
    "RunEvent",
    "RunFinished",
    "RunResult",
    "SQLiteCheckpointStore",
    "ToolCalled",
    "run_batch",
    # tracing
    "SqliteSpanExporter",
    "TraceStore",
    "TracedModel",
    "Tracing",
    "default_tracing",
    "flush_traces",
    # agents and tools
    "AgentRegistry",
    "AgentSource",
    "FolderSource",
    "Tool",
    "Tools",
    "tool",
    # errors
    "AuthenticationError",
    "InvalidRequestError",
    "Location",
    "MicroagentsError",
    "ModelConnectionError",
    "ModelError",
    "ModelNotFoundError",
    "ModelTimeoutError",
    "OverloadedError",
    "PermissionDeniedError",
    "Problem",
    "RateLimitedError",
    "ResolutionError",
    "ServerError",
    "SpecError",
    "__version__",
]
