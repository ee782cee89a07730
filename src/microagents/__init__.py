"""microagents: declarative workflows of small Claude agents, escalating only when needed.

The public API, grouped; everything else lives in private modules.

```python
import microagents as ma

project = ma.Project()
triage = project.load_workflow("workflows/support_triage.yaml")
print(triage.to_mermaid())
```
"""

# Names are imported on first use (PEP 562), so that `import microagents` stays fast: the
# engine, tracing and the SDKs load only when a program touches them.
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._agent import CompiledAgent
    from ._agent_spec import AgentSpec, EscalationSpec, Example, Trigger
    from ._anthropic import AnthropicModel
    from ._api import run, run_many, run_sync, stream
    from ._backends import anthropic_model, simulated_model
    from ._batch import BatchObserver, BatchProgress, BatchRunner, run_batch
    from ._builder import Workflow
    from ._cache import CachedModel
    from ._capabilities import Capabilities
    from ._checkpoint import CheckpointStore, SQLiteCheckpointStore
    from ._compiled import CompiledEdge, CompiledNode, CompiledWorkflow
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
        RegistryError,
        ResolutionError,
        ServerError,
        SpecError,
        SqlDatabaseError,
        SqlError,
        SqlRefused,
    )
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
    from ._prices import Price
    from ._project import Project
    from ._ratelimit import RateLimitedModel, Throttling
    from ._registry import AgentRegistry, AgentSource, FolderSource
    from ._results import (
        Attempt,
        Escalated,
        Escalation,
        NodeFinished,
        NodeRun,
        NodeStarted,
        OutputDelta,
        RunEvent,
        RunFinished,
        RunResult,
        ToolCalled,
    )
    from ._retry import RetryingModel, RetryPolicy
    from ._simulate import SimulatedLatency, SimulatedModel
    from ._sql_guard import GuardedQuery, guard_sql
    from ._sql_limits import SqlLimits
    from ._sql_tools import SqlDatabase, sql_tools
    from ._store_processor import StoreSpanProcessor
    from ._summary import BatchSummary
    from ._telemetry import default_tracing, flush_traces
    from ._tiers import RateLimits, Tier, TierTable
    from ._tools import Tool, Tools, tool
    from ._trace_store import SqliteSpanExporter, TraceStore
    from ._tracing import TracedModel, Tracing
    from ._workflow_spec import EdgeSpec, NodeSpec, WorkflowSpec

_LAZY: dict[str, str] = {
    "run": "._api",
    "run_many": "._api",
    "run_sync": "._api",
    "stream": "._api",
    "AgentRegistry": "._registry",
    "AgentSource": "._registry",
    "AgentSpec": "._agent_spec",
    "AnthropicModel": "._anthropic",
    "Attempt": "._results",
    "AuthenticationError": "._errors",
    "BatchObserver": "._batch",
    "BatchProgress": "._batch",
    "BatchRunner": "._batch",
    "BatchSummary": "._summary",
    "CachedModel": "._cache",
    "Capabilities": "._capabilities",
    "CheckpointStore": "._checkpoint",
    "CompiledAgent": "._agent",
    "CompiledEdge": "._compiled",
    "CompiledNode": "._compiled",
    "CompiledWorkflow": "._compiled",
    "ContentBlock": "._model",
    "EdgeSpec": "._workflow_spec",
    "Engine": "._engine",
    "Escalated": "._results",
    "Escalation": "._results",
    "EscalationSpec": "._agent_spec",
    "Example": "._agent_spec",
    "FolderSource": "._registry",
    "InvalidRequestError": "._errors",
    "Location": "._errors",
    "Message": "._model",
    "MicroagentsError": "._errors",
    "Model": "._model",
    "ModelConnectionError": "._errors",
    "ModelError": "._errors",
    "ModelNotFoundError": "._errors",
    "ModelRequest": "._model",
    "ModelResponse": "._model",
    "ModelTimeoutError": "._errors",
    "NodeFinished": "._results",
    "NodeRun": "._results",
    "NodeSpec": "._workflow_spec",
    "NodeStarted": "._results",
    "OutputDelta": "._results",
    "OverloadedError": "._errors",
    "PermissionDeniedError": "._errors",
    "Price": "._prices",
    "Problem": "._errors",
    "Project": "._project",
    "RateLimitedError": "._errors",
    "RateLimitedModel": "._ratelimit",
    "RateLimits": "._tiers",
    "RegistryError": "._errors",
    "ResolutionError": "._registry",
    "RetryPolicy": "._retry",
    "RetryingModel": "._retry",
    "RunEvent": "._results",
    "RunFinished": "._results",
    "RunResult": "._results",
    "SQLiteCheckpointStore": "._checkpoint",
    "ServerError": "._errors",
    "SimulatedLatency": "._simulate",
    "SimulatedModel": "._simulate",
    "SpecError": "._errors",
    "SqlDatabase": "._sql_tools",
    "SqlDatabaseError": "._errors",
    "SqlError": "._errors",
    "SqlLimits": "._sql_limits",
    "SqlRefused": "._errors",
    "GuardedQuery": "._sql_guard",
    "guard_sql": "._sql_guard",
    "sql_tools": "._sql_tools",
    "SqliteSpanExporter": "._trace_store",
    "StoreSpanProcessor": "._store_processor",
    "StreamEnd": "._model",
    "StreamEvent": "._model",
    "StreamingModel": "._model",
    "TextBlock": "._model",
    "TextDelta": "._model",
    "Throttling": "._ratelimit",
    "Tier": "._tiers",
    "TierTable": "._tiers",
    "Tool": "._tools",
    "ToolCalled": "._results",
    "ToolChoice": "._model",
    "ToolDefinition": "._model",
    "ToolResultBlock": "._model",
    "ToolUseBlock": "._model",
    "Tools": "._tools",
    "TraceStore": "._trace_store",
    "TracedModel": "._tracing",
    "Tracing": "._tracing",
    "Trigger": "._agent_spec",
    "Usage": "._model",
    "Workflow": "._builder",
    "WorkflowSpec": "._workflow_spec",
    "anthropic_model": "._backends",
    "default_tracing": "._telemetry",
    "flush_traces": "._telemetry",
    "run_batch": "._batch",
    "simulated_model": "._backends",
    "tool": "._tools",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'microagents' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
    "run",
    "run_many",
    "run_sync",
    "stream",
    # models: the protocol, its messages, back-ends and the layers around them
    "AnthropicModel",
    "CachedModel",
    "Capabilities",
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
    "OutputDelta",
    "RunEvent",
    "RunFinished",
    "RunResult",
    "SQLiteCheckpointStore",
    "Throttling",
    "ToolCalled",
    "run_batch",
    # tracing
    "SqliteSpanExporter",
    "StoreSpanProcessor",
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
    # SQL: databases for the sql.* tools, and the guard on its own
    "GuardedQuery",
    "SqlDatabase",
    "SqlLimits",
    "guard_sql",
    "sql_tools",
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
    "RegistryError",
    "ResolutionError",
    "ServerError",
    "SpecError",
    "SqlDatabaseError",
    "SqlError",
    "SqlRefused",
    "__version__",
]
