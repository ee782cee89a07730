"""The runtime: the engine that runs compiled workflows (the scheduler, the agent runner, tool
calls), the journal that makes runs durable, and batches over JSONL files.

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
        MessageBatchProgress as MessageBatchProgress,
    )
    from ._batch import (
        RoundsProgress as RoundsProgress,
    )
    from ._batch import (
        run_batch as run_batch,
    )
    from ._batch_api import BatchApiModel as BatchApiModel
    from ._engine import Engine as Engine
    from ._journal import (
        JournaledModel as JournaledModel,
    )
    from ._journal_store import (
        JournalStore as JournalStore,
    )
    from ._journal_store import (
        RunRecord as RunRecord,
    )
    from ._journal_store import (
        SQLiteJournal as SQLiteJournal,
    )
    from ._rounds import BatchApiOptions as BatchApiOptions
    from ._rounds import RoundDriver as RoundDriver

_EXPORTS = {
    # the engine
    "Engine": "._engine",
    # batches
    "BatchObserver": "._batch",
    "BatchProgress": "._batch",
    "BatchRunner": "._batch",
    "run_batch": "._batch",
    # Message Batches mode: run_batch(..., batch_api=BatchApiOptions(...))
    "BatchApiModel": "._batch_api",
    "BatchApiOptions": "._rounds",
    "MessageBatchProgress": "._batch",
    "RoundDriver": "._rounds",
    "RoundsProgress": "._batch",
    # the journal: durable runs, and the batches' checkpoint
    "JournaledModel": "._journal",
    "JournalStore": "._journal_store",
    "RunRecord": "._journal_store",
    "SQLiteJournal": "._journal_store",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
