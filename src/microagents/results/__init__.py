"""What runs produce: a `RunResult` per run (its nodes, attempts, escalations, usage and
cost), the events a run emits as it goes, and the summary of a batch.

Imports: `models` (usage counts) and below."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._results import (
        Attempt as Attempt,
    )
    from ._results import (
        Escalated as Escalated,
    )
    from ._results import (
        Escalation as Escalation,
    )
    from ._results import (
        EventSink as EventSink,
    )
    from ._results import (
        NodeFinished as NodeFinished,
    )
    from ._results import (
        NodeRun as NodeRun,
    )
    from ._results import (
        NodeStarted as NodeStarted,
    )
    from ._results import (
        OutputDelta as OutputDelta,
    )
    from ._results import (
        RunEvent as RunEvent,
    )
    from ._results import (
        RunFinished as RunFinished,
    )
    from ._results import (
        RunResult as RunResult,
    )
    from ._results import (
        ToolCalled as ToolCalled,
    )
    from ._results import (
        WaitingFor as WaitingFor,
    )
    from ._summary import (
        BatchSummary as BatchSummary,
    )
    from ._summary import (
        NodeEscalation as NodeEscalation,
    )
    from ._summary import (
        TierTotals as TierTotals,
    )

_EXPORTS = {
    # one run
    "Attempt": "._results",
    "Escalation": "._results",
    "NodeRun": "._results",
    "RunResult": "._results",
    "WaitingFor": "._results",
    # events, as they happen
    "Escalated": "._results",
    "EventSink": "._results",
    "NodeFinished": "._results",
    "NodeStarted": "._results",
    "OutputDelta": "._results",
    "RunEvent": "._results",
    "RunFinished": "._results",
    "ToolCalled": "._results",
    # batches
    "BatchSummary": "._summary",
    "NodeEscalation": "._summary",
    "TierTotals": "._summary",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
