"""The runtime: the engine that runs compiled workflows (the scheduler, the agent runner, tool
calls), and batches over JSONL files with their checkpoints.

Imports: `tracing`, `results`, `models`, `graph`, `spec` and below."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._batch import (
        BatchObserver as BatchObserver,
    )
    from ._batch import (
        BatchProgress as BatchProgress,
    )
    from ._batch import (
        BatchRunner as BatchRunner,
    )
    from ._batch import (
        run_batch as run_batch,
    )
    from ._checkpoint import (
        CheckpointStore as CheckpointStore,
    )
    from ._checkpoint import (
        SQLiteCheckpointStore as SQLiteCheckpointStore,
    )
    from ._engine import Engine as Engine

_EXPORTS = {
    # the engine
    "Engine": "._engine",
    # batches
    "BatchObserver": "._batch",
    "BatchProgress": "._batch",
    "BatchRunner": "._batch",
    "run_batch": "._batch",
    # checkpoints
    "CheckpointStore": "._checkpoint",
    "SQLiteCheckpointStore": "._checkpoint",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
