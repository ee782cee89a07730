"""Replay: a recorded run's input through the current workflow, paying only for what changed.

The run's recorded steps (the journal's, or a file `export_run` wrote) answer every model call
whose request is unchanged — same step key, same request signature — and every tool call with
the same arguments; a call whose request changed (an edited prompt, a new model, different
input because an earlier node now answers differently) goes to the model. The layering is the
journal's own: `JournaledModel` over a `RunJournal` whose lookup replays a match and lets a
mismatch through, without the resume's "stop at the first change".

Twice, in fact: once with every recorded answer taken by step key alone (what the run gave
when it was recorded, as the current workflow reads the recorded answers; no call), and once
as above; `ReplayReport` compares the two node by node.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..errors import EvalError, ModelError, NodeError, RunNotFound
from ..graph._compiled import CompiledWorkflow
from ..models._protocol import Model, ModelRequest, ModelResponse
from ..models._tiers import TierTable
from ..results._results import NodeRun, RunResult, jsonable
from ..runtime._engine import Engine
from ..runtime._journal import CURRENT_RUN, JournaledModel, RunJournal, _what_changed
from ..runtime._journal_store import JournalStore, SQLiteJournal, StepRecord
from ..tracing._tracing import Tracing

EXPORT_SCHEMA = 1


@dataclass(frozen=True, slots=True)
class RecordedRun:
    """A run as recorded: its id, workflow, input, origin and steps (model and tool results)."""

    run_id: str
    workflow: str
    input: Mapping[str, Any]
    steps: Mapping[str, StepRecord]
    origin: Mapping[str, Any] = field(default_factory=dict)
    status: str = "ok"

    def to_json(self) -> dict[str, Any]:
        """The run as `export_run` writes it (`load_recorded` reads it back)."""
        return {
            "schema": EXPORT_SCHEMA,
            "run_id": self.run_id,
            "workflow": self.workflow,
            "status": self.status,
            "input": jsonable(self.input),
            "origin": jsonable(self.origin),
            "steps": [
                {"key": s.key, "kind": s.kind, "request": s.request, "result": s.result}
                for s in sorted(self.steps.values(), key=lambda s: s.key)
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordedRun:
        steps = {
            s["key"]: StepRecord(s["key"], s["kind"], s["request"], s["result"])
            for s in data["steps"]
        }
        return cls(
            run_id=data["run_id"],
            workflow=data["workflow"],
            input=data["input"],
            steps=steps,
            origin=data.get("origin", {}),
            status=data.get("status", "ok"),
        )


async def recorded_run(run_id: str, journal: JournalStore | None = None) -> RecordedRun:
    """The run `run_id` (or the one run whose id starts with it) from the journal (default:
    ``$MICROAGENTS_HOME/journal.sqlite3``); `RunNotFound` if there is none."""
    store = journal or SQLiteJournal()
    try:
        await store.durable()
        record = await store.run(run_id)
        if record is None:
            raise RunNotFound(run_id)
        steps = await store.steps(record.run_id)
    finally:
        if journal is None:
            await store.aclose()
    return RecordedRun(
        record.run_id, record.workflow, record.input, steps, record.origin, record.status
    )


def export_run(run: RecordedRun, folder: Path | str) -> Path:
    """Write `run` to ``FOLDER/RUN_ID.json`` (a case for `microagents.testing.replay_cases`)."""
    path = Path(folder) / f"{run.run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(run.to_json(), indent=2, ensure_ascii=False, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def load_recorded(path: Path | str) -> RecordedRun:
    """A run `export_run` wrote."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return RecordedRun.from_json(data)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise EvalError(
            f"{file}: not a recorded run ({exc}); write one with `microagents runs export`"
        ) from None


# -- the report --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeReplay:
    """One node visit, as recorded and as replayed: its outputs, and how its calls were
    answered (``replayed`` from the record, ``live`` calls to the model and their cost)."""

    node: str
    visit: int
    item_index: int | None
    recorded_status: str | None
    status: str | None
    recorded_output: Any
    """The output as recorded, as JSON (None if the node did not run then)."""
    output: Any
    """The output now, as JSON (None if the node did not run now)."""
    replayed: int = 0
    live: int = 0
    live_cost_usd: float = 0.0
    changed_request: str | None = None
    """What changed in this node's own request (``the system prompt``...), if it did."""

    @property
    def changed(self) -> bool:
        """Whether the node's status or output differs from the recorded one."""
        return self.status != self.recorded_status or _canon(self.output) != _canon(
            self.recorded_output
        )

    @property
    def label(self) -> str:
        item = f"[{self.item_index}]" if self.item_index is not None else ""
        return f"{self.node}#{self.visit}{item}"

    def diff(self) -> str:
        """A unified diff of the recorded output against the new one (JSON, keys sorted)."""
        if not self.changed:
            return ""
        before = _pretty(self.recorded_output, self.recorded_status).splitlines()
        after = _pretty(self.output, self.status).splitlines()
        lines = difflib.unified_diff(before, after, "recorded", "replayed", lineterm="")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "visit": self.visit,
            "item_index": self.item_index,
            "changed": self.changed,
            "changed_request": self.changed_request,
            "recorded_status": self.recorded_status,
            "status": self.status,
            "recorded_output": jsonable(self.recorded_output),
            "output": jsonable(self.output),
            "replayed": self.replayed,
            "live": self.live,
            "live_cost_usd": self.live_cost_usd,
        }


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What replaying a recorded run through the current workflow changed, node by node."""

    run_id: str
    workflow: str
    recorded: RunResult
    """The current workflow on the recorded answers alone (what the run gave)."""
    result: RunResult
    """The replay: recorded answers where the request is unchanged, live calls elsewhere."""
    nodes: tuple[NodeReplay, ...]

    @property
    def changed(self) -> bool:
        """Whether any node, or the run's output or status, differs from the recording."""
        return self.output_changed or any(node.changed for node in self.nodes)

    @property
    def output_changed(self) -> bool:
        return self.result.status != self.recorded.status or _canon(self.result.output) != _canon(
            self.recorded.output
        )

    @property
    def live_calls(self) -> int:
        return sum(node.live for node in self.nodes)

    @property
    def replayed_calls(self) -> int:
        return sum(node.replayed for node in self.nodes)

    @property
    def live_cost_usd(self) -> float:
        return sum(node.live_cost_usd for node in self.nodes)

    def node(self, node_id: str) -> NodeReplay:
        """The first visit of `node_id`."""
        for node in self.nodes:
            if node.node == node_id:
                return node
        names = ", ".join(sorted({n.node for n in self.nodes}))
        raise KeyError(f"no node '{node_id}' in the replay of {self.run_id} (nodes: {names})")

    def to_json(self) -> dict[str, Any]:
        """A stable shape (``schema: 1``) for CI and for snapshots."""
        return {
            "schema": 1,
            "run_id": self.run_id,
            "workflow": self.workflow,
            "changed": self.changed,
            "recorded": {"status": self.recorded.status, "output": jsonable(self.recorded.output)},
            "replayed": {"status": self.result.status, "output": jsonable(self.result.output)},
            "live_calls": self.live_calls,
            "replayed_calls": self.replayed_calls,
            "live_cost_usd": self.live_cost_usd,
            "nodes": [node.to_json() for node in self.nodes],
        }


# -- replaying ---------------------------------------------------------------------------------


async def replay(
    run: str | RecordedRun,
    workflow: CompiledWorkflow,
    *,
    model: Model | None = None,
    journal: JournalStore | None = None,
    tiers: TierTable | None = None,
    tracing: Tracing | None = None,
) -> ReplayReport:
    """Re-run a recorded run's input through `workflow` as it is now, answering from the run's
    recorded responses where a request is unchanged and from `model` where it changed.

    ```python
    report = await replay(run_id, workflow, model=anthropic_model())
    for node in report.nodes:
        print(node.label, "changed" if node.changed else "same", node.live, node.diff())
    ```

    `run` is a run id in `journal` (default: the journal under ``MICROAGENTS_HOME``) or a
    `RecordedRun` (`load_recorded` of an exported file). Tool calls with the recorded
    arguments replay too; others run. `model` is not closed; without one the replay is offline
    and a node whose request changed fails, saying so."""
    recorded = run if isinstance(run, RecordedRun) else await recorded_run(run, journal)
    tiers = tiers or TierTable.load()
    store = cast(JournalStore, _NoStore())
    before_journal = _ReplayJournal(store, recorded, by_key_only=True)
    before = await _run_on(workflow, recorded, _NoCall(_NOT_RECORDED), before_journal, tiers, None)
    live = _Counting(model if model is not None else _NoCall(_OFFLINE))
    after_journal = _ReplayJournal(store, recorded, by_key_only=False)
    after = await _run_on(workflow, recorded, live, after_journal, tiers, tracing)
    return ReplayReport(
        recorded.run_id, workflow.name, before, after, _compare(before, after, after_journal, live)
    )


async def _run_on(
    workflow: CompiledWorkflow,
    recorded: RecordedRun,
    model: Model,
    journal: _ReplayJournal,
    tiers: TierTable,
    tracing: Tracing | None,
) -> RunResult:
    # No journal on the engine: this run is not recorded; `journal` only answers.
    engine = Engine(JournaledModel(_Unclosed(model)), tiers=tiers, tracing=tracing)
    token = CURRENT_RUN.set(journal)
    try:
        return await engine.run(workflow, recorded.input)
    finally:
        CURRENT_RUN.reset(token)
        await engine.aclose()


class _ReplayJournal(RunJournal):
    """Answers from a recorded run: every step whose request is unchanged (or, `by_key_only`,
    every recorded step), never diverging; records nothing."""

    def __init__(self, store: JournalStore, run: RecordedRun, *, by_key_only: bool) -> None:
        super().__init__(store, run.run_id, run.steps)
        self.by_key_only = by_key_only
        self.hits: Counter[str] = Counter()
        self.live_tools: Counter[str] = Counter()
        self.changed: dict[str, str] = {}

    def lookup(self, key: str, node: str, signature: str) -> StepRecord | None:
        found = self.recorded.get(key)
        tool = not signature.startswith("o:")
        if found is not None and (self.by_key_only or found.request == signature):
            if found.result is not None:
                self.hits[node] += 1
                return found
        elif found is not None:
            self.changed.setdefault(node, _what_changed(found.request, signature))
        if self.by_key_only and tool:
            raise NodeError(f"node '{node}' makes a tool call the recorded run did not ({key})")
        if tool:
            self.live_tools[node] += 1
        return None

    def record(
        self, key: str, kind: str, signature: str | Callable[[], str], result: object
    ) -> None:
        """A replay is not recorded."""


class _Counting:
    """The live model, counting the calls and their cost per node."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.cost: dict[str, float] = {}

    async def complete(self, request: ModelRequest) -> ModelResponse:
        response = await self.inner.complete(request)
        node = request.metadata.get("node", "")
        self.calls[node] += 1
        self.cost[node] = self.cost.get(node, 0.0) + (response.cost_usd or 0.0)
        return response


class _Unclosed:
    """`inner` without its `aclose`: the caller's model outlives the replay's engines."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner

    async def complete(self, request: ModelRequest) -> ModelResponse:
        return await self.inner.complete(request)


_NOT_RECORDED = "node '{node}' makes a model call the recorded run did not"
_OFFLINE = (
    "node '{node}' makes a model call the recorded run did not make (its request changed, or "
    "an earlier node's output did): replay with a model to call it"
)


class _NoCall:
    """A model that makes no call: a step the run did not record fails its node."""

    def __init__(self, message: str) -> None:
        self.message = message

    async def complete(self, request: ModelRequest) -> ModelResponse:
        raise ModelError(self.message.format(node=request.metadata.get("node", "?")))


class _NoStore:
    """The store a replay's journal holds: it records nothing, so there is nothing to wait
    for (`journaled_tool_call` awaits `durable` before a tool that is not idempotent)."""

    async def durable(self) -> None:
        return None


def _compare(
    before: RunResult, after: RunResult, journal: _ReplayJournal, live: _Counting
) -> tuple[NodeReplay, ...]:
    def key(run: NodeRun) -> tuple[str, int, int]:
        return (run.node, run.visit, -1 if run.item_index is None else run.item_index)

    old = {key(n): n for n in before.nodes}
    new = {key(n): n for n in after.nodes}
    order = [key(n) for n in after.nodes] + [
        k for k in (key(n) for n in before.nodes) if k not in new
    ]
    seen: set[str] = set()
    nodes = []
    for k in order:
        was, now = old.get(k), new.get(k)
        name = k[0]
        first = name not in seen  # counters are per node: credit them to its first visit
        seen.add(name)
        nodes.append(
            NodeReplay(
                node=name,
                visit=k[1],
                item_index=None if k[2] == -1 else k[2],
                recorded_status=was.status if was is not None else None,
                status=now.status if now is not None else None,
                recorded_output=jsonable(was.output) if was is not None else None,
                output=jsonable(now.output) if now is not None else None,
                replayed=journal.hits[name] if first else 0,
                live=live.calls[name] + journal.live_tools[name] if first else 0,
                live_cost_usd=live.cost.get(name, 0.0) if first else 0.0,
                changed_request=journal.changed.get(name) if first else None,
            )
        )
    return tuple(nodes)


def _canon(value: Any) -> str:
    return json.dumps(jsonable(value), sort_keys=True, default=str)


def _pretty(value: Any, status: str | None) -> str:
    if status is None:
        return "(not run)"
    text = json.dumps(jsonable(value), indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return text if status == "ok" else f"({status})\n{text}"
