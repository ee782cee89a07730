"""The batch runner: a JSONL file of inputs through a workflow, with checkpoints and resume.

```python
async with Engine.for_backend("simulate", workflow) as engine:
    summary = await run_batch(engine, workflow, "tickets.jsonl", concurrency=32)
```

Reading. The input is read a chunk of lines at a time in a worker thread, never whole, and
the next chunk only once every line of the last one has a slot: at most a chunk plus
`concurrency` items are in memory, whatever the size of the file. A line that is not a JSON
object becomes a failed item naming its line; it does not stop the batch.

The checkpoint is the journal. Each item is a run with a stable id (`item_run_id`), so
every model and tool call of an item is recorded as it happens (see `_journal`); a finished
item is also recorded with its output line (`JournalStore.save`). "Checkpoint" below means
that record of finished items, the batch's view of the journal.

Writing. Finished items are buffered and flushed every `flush_every` items or `flush_interval`
seconds, whichever comes first, each flush in worker threads: one checkpoint transaction
(`JournalStore.save`), then one append of the output lines to the output file, which stays
open for the whole run. The checkpoint is the record of what was paid for; the output file is
its copy, in completion order. Each save also records the *watermark* — how many bytes of
the output file hold how many checkpointed lines — so that a resume after kill -9 or a power
cut can drop an unconfirmed tail and rewrite it from the checkpoint: every input line ends up
with exactly one output line, and no finished item is run (or paid for) twice.

Resuming. Without `resume` a run starts the batch over (and forgets its items' steps). With
it, items found in the checkpoint are skipped without a model call and without a new output
line (theirs is already in the output file); items that were in flight replay their recorded
steps and go on live from the first one without a record. Items waiting for a person are run
again (replaying to their question, answered or not), and the output file is rewritten
without their old ``waiting`` lines. An item is known by its ``id`` field when it has one —
so that it is recognised even if lines move — or else by its line number.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..errors import MicroagentsError
from ..graph._compiled import CompiledWorkflow
from ..models._checks import unpriced_models, uses_of_workflow
from ..models._protocol import Model
from ..models._ratelimit import RateLimitedModel, Throttling
from ..models._simulate import SimulatedModel
from ..results._results import NodeFinished, RunEvent, RunResult, jsonable
from ..results._summary import BatchStats, BatchSummary
from ._engine import DEFAULT_CONCURRENCY, Engine
from ._journal import batch_key, item_run_id
from ._journal_store import (
    BatchState,
    FinishedItem,
    JournalStore,
    Seen,
    SQLiteJournal,
    Watermark,
)

if TYPE_CHECKING:
    from ._rounds import BatchApiOptions

FLUSH_EVERY = 200
FLUSH_INTERVAL = 0.5
REWRITE_CHUNK = 1000
MAX_NOTED_PROBLEMS = 20
"""Bad lines named one by one on the observer; the rest are only counted (all are in the
output file)."""


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """A batch in flight, as a progress display sees it."""

    done: int
    failed: int
    escalated: int
    tokens: int
    cost_usd: float
    elapsed: float
    to_do: int | None
    """Items this run has to finish (lines not yet checkpointed), once counted."""
    resumed: int
    skipped_by_budget: int
    simulated: bool
    lines_read: int
    """Input lines read so far: never more than a chunk or so ahead of the items started."""
    throttling: tuple[Throttling, ...] = ()
    """What the client-side rate limiter holds back now, model by model (empty: nothing)."""
    rounds: RoundsProgress | None = None
    """Message Batches mode: the round, and the batches in flight."""


@dataclass(frozen=True, slots=True)
class MessageBatchProgress:
    """One Message Batch in flight, as the API last reported it."""

    id: str
    round: int
    status: str
    """``in_progress``, ``canceling`` or ``ended``."""
    counts: Mapping[str, int]
    """Its requests: ``processing``, ``succeeded``, ``errored``, ``canceled``, ``expired``."""


@dataclass(frozen=True, slots=True)
class RoundsProgress:
    """Where a Message Batches run stands between and during its rounds."""

    round: int
    phase: str
    """``starting``, ``running items``, ``submitting``, ``waiting for results``,
    ``collecting``, ``finishing on the standard API``; at the end ``finished``, ``detached``
    or ``stopped`` (by the budget)."""
    in_flight: tuple[MessageBatchProgress, ...]
    in_batches: int
    """Items whose runs wait for the result of a request in a Message Batch."""

    def describe(self) -> str:
        text = f"round {self.round} · {self.phase}"
        if self.in_flight:
            counts: dict[str, int] = {}
            for batch in self.in_flight:
                for kind, n in batch.counts.items():
                    counts[kind] = counts.get(kind, 0) + n
            shown = ", ".join(f"{n:,} {kind}" for kind, n in counts.items() if n)
            plural = "es" if len(self.in_flight) > 1 else ""
            text += f" · {len(self.in_flight)} Message Batch{plural} in flight" + (
                f" ({shown})" if shown else ""
            )
        if self.in_batches:
            text += f" · {self.in_batches:,} items wait for results"
        return text


class BatchObserver(Protocol):
    """Follows a batch: `update` every `interval` seconds, `note` for things a person should
    read (bad lines, the budget stopping the run, a repaired output file). Called on the event
    loop; must return quickly."""

    interval: float

    def update(self, progress: BatchProgress, **future_kwargs: Any) -> None: ...

    def note(self, message: str, **future_kwargs: Any) -> None: ...


@dataclass(frozen=True, slots=True)
class _Chunk:
    entries: list[_Entry]
    seen: Mapping[str, Seen]
    """Which of the entries' keys the checkpoint had."""
    lookup_saw: int
    """Saves completed before the lookup began: those it certainly saw."""
    blocked: frozenset[str] = frozenset()
    """Keys of waiting items still blocked on what they wait for: left as they are."""


@dataclass(slots=True)
class _Entry:
    index: int
    """1-based line number in the input file."""
    key: str
    item_id: Any
    value: dict[str, Any] | None
    error: str | None


def default_out_path(input_path: Path | str) -> Path:
    """``<input stem>.results.jsonl`` in the working folder."""
    return Path(f"{Path(input_path).stem}.results.jsonl")


class BatchRunner:
    """One run of a batch. `run` it once; `summary()` tells how far it got, even after it
    was interrupted."""

    def __init__(
        self,
        engine: Engine,
        workflow: CompiledWorkflow,
        input_path: Path | str,
        out_path: Path | str | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        resume: bool = False,
        budget_usd: float | None = None,
        store: JournalStore | None = None,
        observer: BatchObserver | None = None,
        simulated: bool | None = None,
        flush_every: int = FLUSH_EVERY,
        flush_interval: float = FLUSH_INTERVAL,
        in_rounds: bool = False,
        still_blocked: Callable[[list[str]], set[str]] | None = None,
    ) -> None:
        """`in_rounds`: this is one pass of a Message Batches run (`_rounds`), whose driver
        reports progress (the observer hears only notes) and runs the items waiting for a
        batch result again each pass, silently — except those `still_blocked` names (given
        waiting items' run ids, those whose awaited result has not come: blocking, it runs in
        a worker thread), which keep their lines and are not run."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.engine = engine
        self.workflow = workflow
        self.input_path = Path(input_path)
        self.out_path = Path(out_path) if out_path is not None else default_out_path(input_path)
        if self.out_path.resolve() == self.input_path.resolve():
            raise MicroagentsError(
                f"the output file '{self.out_path}' is the input file; choose another --out"
            )
        if budget_usd is not None:
            unpriced = unpriced_models(uses_of_workflow(workflow), engine.tiers)
            if unpriced:
                raise MicroagentsError(
                    f"a budget cannot be enforced: {', '.join(unpriced)} "
                    f"{'has' if len(unpriced) == 1 else 'have'} no known price, so what "
                    "its calls cost is unknown; give a price in the project file "
                    f'([tool.microagents.models."{unpriced[0]}"] '
                    "price = {input = ..., output = ...}, USD per million tokens) "
                    "or run without a budget"
                )
        self.concurrency = concurrency
        self.resume = resume
        self.budget_usd = budget_usd
        self.observer = observer
        self.in_rounds = in_rounds
        self.still_blocked = still_blocked
        if simulated is None:
            simulated = layer_of(engine.model, SimulatedModel) is not None
        self.simulated = simulated
        self._limiter = layer_of(engine.model, RateLimitedModel)
        self.batch = batch_key(workflow, self.input_path)
        self.stats = BatchStats(simulated=self.simulated)
        self._store = store
        self._flush_every = max(1, flush_every)
        self._flush_interval = flush_interval
        # Chunks of about `concurrency` lines, one read ahead while one is dispatched: enough
        # to keep every slot busy, and at most ~3x `concurrency` lines in memory.
        self._chunk = min(1024, max(32, concurrency))
        self._state = BatchState()
        self._spent = 0.0
        self._in_flight = 0
        self._stopped_by_budget = False
        self._problems = 0
        self._lines: int | None = None
        self._started = time.perf_counter()
        self._completed = False
        self._reader: _LineReader | None = None
        self._on_event = self._event_sink() if budget_usd is not None else None

    # -- the run ---------------------------------------------------------------------------

    async def run(self) -> BatchSummary:
        """Run the batch; return its summary. Cancelling it (Ctrl-C) still checkpoints and
        writes every item that had finished."""
        self._started = time.perf_counter()
        # The engine's journal, so that items' steps and items are one record.
        store = self._store or self.engine.journal or SQLiteJournal()
        owned = self._store is None and self.engine.journal is None
        reader = self._reader = _LineReader(self.input_path)
        await anyio.to_thread.run_sync(reader.open)
        try:
            label = f"{self.workflow.name}@{self.workflow.spec.version} < {self.input_path}"
            state = await store.open(self.batch, resume=self.resume, label=label)
            self._state = state
            self._spent = state.cost_usd
            self.stats.resumed_ok, self.stats.resumed_failed = state.ok, state.failed
            self.stats.resumed_cost_usd = state.cost_usd
            if state.discarded:
                self._note(
                    f"starting the batch over: forgot {state.discarded} checkpointed results of "
                    "an earlier run (add --resume to continue one instead)"
                )
            output, written = await self._prepare_output(store, state)
            sink = _Sink(store, self.batch, output, state.last_seq, written, self._flush_every)
            try:
                async with anyio.create_task_group() as group:
                    group.start_soon(sink.flush_in_background, self._flush_interval)
                    if self.observer is not None and not self.in_rounds:
                        group.start_soon(self._count_lines)
                        group.start_soon(self._report, self.observer)
                    await self._feed(reader, store, sink)
                    group.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await sink.close()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(reader.close)
                if owned:
                    await store.aclose()
        self._completed = True
        if self._stopped_by_budget:
            self._note(
                f"stopped by the budget: {self.stats.skipped_by_budget} items not started; "
                "re-run with --resume and a higher --budget-usd to continue"
            )
        return self.summary()

    def summary(self) -> BatchSummary:
        """The batch so far (marked interrupted unless `run` completed)."""
        return self.stats.summary(
            workflow=self.workflow.name,
            elapsed=time.perf_counter() - self._started,
            out_path=str(self.out_path),
            budget_usd=self.budget_usd,
            stopped_by_budget=self._stopped_by_budget,
            interrupted=not self._completed,
        )

    @property
    def finished_before(self) -> int:
        """Items the checkpoint had finished when this run opened it (0 until then)."""
        return self._state.finished

    def progress(self) -> BatchProgress:
        """Where the batch stands now."""
        stats = self.stats
        to_do = None if self._lines is None else max(0, self._lines - self._state.finished)
        return BatchProgress(
            done=stats.done,
            failed=stats.failed,
            escalated=stats.escalated_items,
            tokens=stats.tokens,
            cost_usd=stats.cost_usd,
            elapsed=time.perf_counter() - self._started,
            to_do=to_do,
            resumed=stats.resumed,
            skipped_by_budget=stats.skipped_by_budget,
            simulated=stats.simulated,
            lines_read=self._reader.lines_read if self._reader is not None else 0,
            throttling=self._limiter.throttling() if self._limiter is not None else (),
        )

    # -- reading and dispatching -----------------------------------------------------------

    async def _feed(self, reader: _LineReader, store: JournalStore, sink: _Sink) -> None:
        slots = anyio.Semaphore(self.concurrency)
        send, receive = anyio.create_memory_object_stream[_Chunk](1)
        # Items go to `concurrency` workers, not to a task each: spawning a task per item cost
        # more than the rest of the batch runner's own work per item.
        hand_over, take = anyio.create_memory_object_stream[_Entry]()
        async with anyio.create_task_group() as running:
            running.start_soon(self._read_ahead, reader, store, sink, send)
            for _ in range(self.concurrency):
                running.start_soon(self._work, take.clone(), slots, sink)
            take.close()
            async with receive, hand_over:
                async for chunk in receive:
                    sink.forget_saved_before(chunk.lookup_saw)
                    for entry in chunk.entries:
                        await self._dispatch(entry, chunk, slots, hand_over, sink)

    async def _work(
        self, take: MemoryObjectReceiveStream[_Entry], slots: anyio.Semaphore, sink: _Sink
    ) -> None:
        async with take:
            async for entry in take:
                await self._run_one(entry, slots, sink)

    async def _read_ahead(
        self,
        reader: _LineReader,
        store: JournalStore,
        sink: _Sink,
        send: MemoryObjectSendStream[_Chunk],
    ) -> None:
        """Read the next chunk, and look up which of its items are checkpointed, while the
        items of the last one are being dispatched."""
        resuming = self._state.finished > 0 or self._state.waiting > 0
        async with send:
            while True:
                entries = await anyio.to_thread.run_sync(reader.read, self._chunk)
                if not entries:
                    return
                # Items with an id may repeat one met earlier in this run; look those up too,
                # and, resuming, whether such a repeat was refused already (keyed by line).
                keys = [e.key for e in entries if resuming or e.item_id is not None]
                if resuming:
                    keys += [f"line:{e.index}" for e in entries if e.item_id is not None]
                saw = sink.saves
                seen = await store.lookup(self.batch, keys) if keys else {}
                blocked = await self._blocked(seen)
                try:
                    await send.send(_Chunk(entries, seen, saw, blocked))
                except anyio.BrokenResourceError:
                    # The dispatcher stopped taking chunks: cancelled (Ctrl-C) or stopped by
                    # the budget. Not an error of the batch: its cancellation, if any, follows.
                    return

    async def _blocked(self, seen: Mapping[str, Seen]) -> frozenset[str]:
        """The keys of waiting items that `still_blocked` says to leave as they are."""
        if self.still_blocked is None:
            return frozenset()
        waiting = {
            item_run_id(self.batch, key): key
            for key, found in seen.items()
            if found.status == "waiting" and found.line is not None
        }
        if not waiting:
            return frozenset()
        still = await anyio.to_thread.run_sync(self.still_blocked, list(waiting))
        return frozenset(waiting[run_id] for run_id in still)

    async def _dispatch(
        self,
        entry: _Entry,
        chunk: _Chunk,
        slots: anyio.Semaphore,
        hand_over: MemoryObjectSendStream[_Entry],
        sink: _Sink,
    ) -> None:
        first = sink.first_index(entry.key)
        found = chunk.seen.get(entry.key)
        if (
            found is not None
            and found.line is not None
            and found.index == entry.index  # not a later line repeating its id
            and entry.key in chunk.blocked
        ):
            # Running it would replay its journal to the same wait: its line stays.
            self.stats.in_batches += 1
            if entry.item_id is not None:
                sink.open[entry.key] = entry.index  # so that a repeat of its id is caught
            await sink.add(entry.key, entry.index, "waiting", 0.0, found.line)
            return
        if first is None and found is not None and found.status != "waiting":
            if found.seq <= self._state.last_seq:
                self.stats.resumed += 1  # finished by an earlier run: already in the output
                return
            first = found.index  # finished earlier in this run: the id repeats
        if self._stopped_by_budget:
            self.stats.skipped_by_budget += 1
            return
        if entry.error is not None:
            self._problem(entry.error)
            self.stats.add_failure(malformed=True)
            await sink.add(entry.key, entry.index, "failed", 0.0, self._line(entry, entry.error))
            return
        if first is not None and first != entry.index:
            written = chunk.seen.get(f"line:{entry.index}")
            if written is not None and written.seq <= self._state.last_seq:
                # Refused by an earlier pass of the same batch (its first item was still
                # waiting then, and is again): its line is in the output already.
                self.stats.resumed += 1
                return
            where = f"{self.input_path.name}:{entry.index}"
            message = f"{where}: id {entry.item_id!r} repeats line {first}"
            self._problem(message)
            self.stats.add_failure(duplicate=True)
            # Keyed by line: the checkpoint keeps the first item under the id.
            line = self._line(entry, f"{message}; ids must be unique in a batch")
            await sink.add(f"line:{entry.index}", entry.index, "failed", 0.0, line)
            return
        await slots.acquire()
        # Checked with a slot in hand: the items that just finished have added their cost.
        if self.budget_usd is not None and self._spent >= self.budget_usd:
            slots.release()
            self._stopped_by_budget = True
            self.stats.skipped_by_budget += 1
            self._note(
                f"budget reached: ${self._spent:.4f} spent of ${self.budget_usd:g}; not starting "
                f"new items ({self._in_flight} in flight will finish)"
            )
            return
        if entry.item_id is not None:
            sink.open[entry.key] = entry.index
        self._in_flight += 1
        await hand_over.send(entry)  # a worker is free: this slot's last item has finished

    async def _run_one(self, entry: _Entry, slots: anyio.Semaphore, sink: _Sink) -> None:
        try:
            assert entry.value is not None
            try:
                # An item is a run with a stable id: resumed, it replays what it recorded.
                result = await self.engine.run(
                    self.workflow,
                    entry.value,
                    labels={"batch_index": str(entry.index), "batch": self.batch},
                    on_event=self._on_event,
                    run_id=item_run_id(self.batch, entry.key),
                    resume=self.resume,
                )
            except Exception as exc:  # a bug; the batch goes on, the item says what happened
                self.stats.add_failure()
                error = (
                    f"internal error: {type(exc).__name__}: {exc}. This is a bug in microagents;"
                    " please report it"
                )
                await sink.add(entry.key, entry.index, "failed", 0.0, self._line(entry, error))
                return
            self.stats.add_result(result)
            if self._on_event is None:
                self._spent += result.cost_usd
            line = self._result_line(entry, result)
            await sink.add(entry.key, entry.index, result.status, result.cost_usd, line)
        finally:
            self._in_flight -= 1
            slots.release()

    def _event_sink(self) -> Callable[[RunEvent], None]:
        """With a budget, spending is counted node by node, so that the budget stops new
        items as soon as it is reached rather than when whole runs finish."""
        chained = self.engine.on_event

        def on_event(event: RunEvent) -> None:
            if isinstance(event, NodeFinished):
                self._spent += event.run.cost_usd
            if chained is not None:
                chained(event)

        return on_event

    # -- output lines ----------------------------------------------------------------------

    def _result_line(self, entry: _Entry, result: RunResult) -> str:
        return _dumps(
            {
                "index": entry.index,
                "id": entry.item_id,
                "status": result.status,
                "output": jsonable(result.output),
                "error": result.error,
                "failed_node": result.failed_node,
                "escalations": [
                    {"node": e.node, "trigger": e.trigger, "from": e.from_tier, "to": e.to_tier}
                    for e in result.escalations
                ],
                "cost_usd": round(result.cost_usd, 8),
                "simulated": result.simulated or self.simulated,
                # Where to look next: `microagents trace show RUN_ID`.
                "run_id": result.run_id,
                "trace_id": result.trace_id,
                # Answer it with `microagents runs resume RUN_ID --answer`, then --resume.
                **({"waiting_for": result.waiting_for.to_json()} if result.waiting_for else {}),
            }
        )

    def _line(self, entry: _Entry, error: str) -> str:
        return _dumps(
            {
                "index": entry.index,
                "id": entry.item_id,
                "status": "failed",
                "output": None,
                "error": error,
                "failed_node": None,
                "escalations": [],
                "cost_usd": 0.0,
                "simulated": self.simulated,
                "run_id": None,
                "trace_id": None,
            }
        )

    async def _prepare_output(
        self, store: JournalStore, state: BatchState
    ) -> tuple[_OutputFile, Watermark]:
        """Open the output file so that it holds exactly the checkpointed lines."""
        output = _OutputFile(self.out_path)
        path = str(self.out_path.resolve())
        if state.finished == 0 and state.waiting == 0:
            await anyio.to_thread.run_sync(output.open, 0)  # nothing in it is ours
            return output, Watermark(path, 0, state.last_seq)
        size = await anyio.to_thread.run_sync(output.existing_size)
        written = state.written
        keep, after = 0, 0
        if state.waiting:
            # Waiting items get their final lines in this run: rewrite the file without
            # their `waiting` lines, so that every input still has exactly one line.
            if not self.in_rounds:
                self._note(f"{state.waiting} items were waiting: running them again")
        elif written is not None and written.out_path == path and size >= written.out_size:
            # The usual case: drop what was written after the last confirmed save (a kill
            # between a save and its lines) and rewrite it from the checkpoint.
            keep, after = written.out_size, written.seq
        elif written is not None:
            self._note(
                f"{self.out_path} is not the output file of the earlier run, or is shorter than "
                f"it was: rewriting all {state.finished} checkpointed results into it"
            )
        await anyio.to_thread.run_sync(output.open, keep)
        try:
            restored = 0
            while True:
                rows = await store.lines(self.batch, after, REWRITE_CHUNK)
                if not rows:
                    break
                await anyio.to_thread.run_sync(output.append, [line for _, line in rows])
                after = rows[-1][0]
                restored += len(rows)
            watermark = Watermark(path, output.size, after)
            await store.save(self.batch, [], watermark)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(output.close)
            raise
        if restored and keep:
            self._note(f"restored {restored} checkpointed results that the output file lacked")
        return output, watermark

    # -- progress --------------------------------------------------------------------------

    async def _count_lines(self) -> None:
        self._lines = await anyio.to_thread.run_sync(count_lines, self.input_path)

    async def _report(self, observer: BatchObserver) -> None:
        while True:
            await anyio.sleep(observer.interval)
            observer.update(self.progress())

    def _note(self, message: str) -> None:
        if self.observer is not None:
            self.observer.note(message)

    def _problem(self, message: str) -> None:
        self._problems += 1
        if self._problems <= MAX_NOTED_PROBLEMS:
            self._note(message)
        elif self._problems == MAX_NOTED_PROBLEMS + 1:
            self._note("more bad lines follow; each is a failed line in the output file")


async def run_batch(
    engine: Engine,
    workflow: CompiledWorkflow,
    input_path: Path | str,
    out_path: Path | str | None = None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    resume: bool = False,
    budget_usd: float | None = None,
    store: JournalStore | None = None,
    observer: BatchObserver | None = None,
    batch_api: bool | BatchApiOptions = False,
) -> BatchSummary:
    """Run `workflow` on every line of the JSONL file `input_path`, writing one result line
    per input line to `out_path` (default ``<input stem>.results.jsonl``); see `BatchRunner`.

    With `batch_api` (True, or `BatchApiOptions`), in Message Batches mode: at batch prices,
    in rounds, on an engine whose back-end is `BatchApiModel` (see `_rounds`)."""
    if batch_api is not False:
        from ._rounds import BatchApiOptions, RoundDriver

        driver = RoundDriver(
            engine,
            workflow,
            input_path,
            out_path,
            concurrency=concurrency,
            resume=resume,
            budget_usd=budget_usd,
            store=store,
            observer=observer,
            options=batch_api if isinstance(batch_api, BatchApiOptions) else None,
        )
        return await driver.run()
    runner = BatchRunner(
        engine,
        workflow,
        input_path,
        out_path,
        concurrency=concurrency,
        resume=resume,
        budget_usd=budget_usd,
        store=store,
        observer=observer,
    )
    return await runner.run()


# -- the checkpoint and the output file, flushed together ----------------------------------


class _Sink:
    """Finished items on their way to the checkpoint and the output file.

    Items never wait for a flush: a background task flushes when `every` items are pending
    or `interval` seconds have passed. Only when flushing falls 4x behind does `add` wait.
    """

    def __init__(
        self,
        store: JournalStore,
        batch: str,
        output: _OutputFile,
        last_seq: int,
        written: Watermark,
        every: int,
    ) -> None:
        self.store = store
        self.batch = batch
        self.output = output
        self.every = every
        self.limit = 4 * every
        self.written = written
        self.saved_written = written
        self.pending: list[FinishedItem] = []
        self.saves = 0
        self.open: dict[str, int] = {}
        """Keys (with an id) of items running, or finished but not saved → line number."""
        self._recent: dict[str, tuple[int, int]] = {}
        """Keys saved lately → (line number, the save's number), until every lookup that may
        have missed them is dispatched."""
        self._seq = last_seq
        self._lock = anyio.Lock()
        self._due = anyio.Event()
        self._flushed = anyio.Event()

    def first_index(self, key: str) -> int | None:
        """The line of an item with `key` that this run started and a lookup may miss."""
        index = self.open.get(key)
        if index is None and key in self._recent:
            index = self._recent[key][0]
        return index

    def forget_saved_before(self, saw: int) -> None:
        if self._recent:
            self._recent = {k: v for k, v in self._recent.items() if v[1] > saw}

    async def add(self, key: str, index: int, status: str, cost: float, line: str) -> None:
        while len(self.pending) >= self.limit:
            self._due.set()
            await self._flushed.wait()
        self._seq += 1
        self.pending.append(FinishedItem(key, index, status, cost, line, self._seq))
        if len(self.pending) >= self.every:
            self._due.set()

    async def flush(self) -> None:
        async with self._lock:
            if not self.pending:
                return
            items, self.pending = self.pending, []
            # Once saved, the lines must follow, even if the run is being cancelled.
            with anyio.CancelScope(shield=True):
                await self.store.save(self.batch, items, self.written)
                self.saved_written = self.written
                self.saves += 1
                for item in items:
                    index = self.open.pop(item.key, None)
                    if index is not None:
                        self._recent[item.key] = (index, self.saves)
                size = await anyio.to_thread.run_sync(
                    self.output.append, [item.line for item in items]
                )
            self.written = Watermark(self.written.out_path, size, items[-1].seq)
            self._flushed.set()
            self._flushed = anyio.Event()

    async def flush_in_background(self, interval: float) -> None:
        while True:
            with anyio.move_on_after(interval):
                await self._due.wait()
            self._due = anyio.Event()
            await self.flush()

    async def close(self) -> None:
        try:
            await self.flush()
            if self.written != self.saved_written:
                await self.store.save(self.batch, [], self.written)
                self.saved_written = self.written
        finally:
            await anyio.to_thread.run_sync(self.output.close)


# -- file access (each method runs in a worker thread) -------------------------------------


class _LineReader:
    """Reads the input a chunk of lines at a time; blank lines are not items."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self.lines_read = 0

    def open(self) -> None:
        try:
            self._file = self.path.open("rb")
        except FileNotFoundError:
            raise MicroagentsError(f"input file '{self.path}' does not exist") from None
        except OSError as exc:
            raise MicroagentsError(f"cannot read input file '{self.path}': {exc}") from None

    def read(self, count: int) -> list[_Entry]:
        assert self._file is not None
        entries: list[_Entry] = []
        while len(entries) < count:
            raw = self._file.readline()
            if not raw:
                break
            self.lines_read += 1
            if raw.isspace():
                continue
            entries.append(_parse(raw, self.lines_read, self.path.name))
        return entries

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _parse(raw: bytes, index: int, name: str) -> _Entry:
    key = f"line:{index}"
    try:
        text = raw.decode("utf-8-sig" if index == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        return _Entry(index, key, None, None, f"{name}:{index}: not UTF-8 text ({exc.reason})")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"{name}:{index}: not valid JSON: {exc.msg} (column {exc.colno})"
        return _Entry(index, key, None, None, problem)
    if not isinstance(value, dict):
        problem = f"{name}:{index}: expected a JSON object, got {_json_kind(value)}"
        return _Entry(index, key, None, None, problem)
    item_id = value.get("id")
    if isinstance(item_id, bool) or not isinstance(item_id, str | int) or item_id == "":
        return _Entry(index, key, None, value, None)
    # json.dumps keeps "7" and 7 apart.
    return _Entry(index, f"id:{json.dumps(item_id)}", item_id, value, None)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


class _OutputFile:
    """The output file, open for appending for the whole run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._file: IO[bytes] | None = None

    def existing_size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def open(self, keep: int) -> None:
        """Open for appending after the first `keep` bytes (dropping the rest)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = self.path.open("ab")
            handle.truncate(keep)
        except OSError as exc:
            raise MicroagentsError(f"cannot write the output file '{self.path}': {exc}") from None
        self._file = handle
        self.size = keep

    def append(self, lines: list[str]) -> int:
        assert self._file is not None
        data = "".join(f"{line}\n" for line in lines).encode()
        self._file.write(data)
        # Into the OS now: a killed process loses nothing it has written.
        self._file.flush()
        self.size += len(data)
        return self.size

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def count_lines(path: Path) -> int | None:
    """Lines in a regular file (blank ones included), read in blocks; None for a pipe."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        count = 0
        last = b"\n"
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                count += block.count(b"\n")
                last = block[-1:]
        return count + (last != b"\n")
    except OSError:
        return None


# One encoder for every line: json.dumps with options builds a new one on each call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def _dumps(record: Mapping[str, Any]) -> str:
    return _ENCODER.encode(record)


_Layer = TypeVar("_Layer")


def layer_of(model: Model, kind: type[_Layer]) -> _Layer | None:
    """The layer of type `kind` in `model`'s stack of wrappers, if there is one."""
    seen: Any = model
    for _ in range(16):  # wrappers keep the next layer in `inner`
        if isinstance(seen, kind):
            return seen
        seen = getattr(seen, "inner", None)
        if seen is None:
            return None
    return None
