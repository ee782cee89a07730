"""Where durable runs are recorded: runs, their steps, and the finished items of batches.

The runtime talks to a `JournalStore` (a small protocol, so that a shared database —
PostgreSQL is the natural next one — can replace the local file when several processes work
one batch); `SQLiteJournal` is the default, one SQLite file (WAL) under ``MICROAGENTS_HOME``.

Three tables, one mechanism:

- ``steps``: the result of every model call, tool call and human answer, keyed by the run id
  and a deterministic step key, with a signature of the request that produced it;
- ``runs``: each run's input, status (``running``, ``ok``, ``failed``, ``waiting``), what it
  waits for, and how to start it again;
- ``items`` and ``batches``: a batch's finished items with their output lines and the output
  file's watermark. This is the batch runner's view of the journal (an item *is* a run,
  ``item_run_id``), not a second store: a finished item is skipped, an item in flight replays
  its steps.

Writes never block the event loop, and never commit one row at a time: `record_step` and
`record_run` queue the row and return at once (a list append); a writer thread commits
whatever is queued in one transaction every `commit_interval` seconds (5 ms by default). So
a crash (kill -9, power cut) loses at most the steps recorded in the last `commit_interval`
plus one commit — those calls are paid again on resume — and nothing older. Reads do not
wait for the queue (a resume reads what an earlier process or run committed); a caller that
must read its own writes awaits `durable()` first.
Batch items keep their own, synchronous transaction (`save`): the output file follows it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread

from .._settings import microagents_home
from .._sqlite import StoreConnection
from ..results._results import WaitingFor

JOURNAL_FILE = "journal.sqlite3"
COMMIT_INTERVAL = 0.005
LOOKUP_CHUNK = 500
"""Keys per `IN (...)` query: well under SQLite's limit on bound variables."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    started REAL NOT NULL,
    updated REAL NOT NULL,
    attempts INTEGER NOT NULL,
    waiting TEXT,
    error TEXT,
    trace TEXT,
    origin TEXT,
    batch TEXT,
    span TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, updated);
CREATE INDEX IF NOT EXISTS runs_by_batch ON runs (batch);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT,
    recorded REAL NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS batches (
    batch TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    created REAL NOT NULL,
    out_path TEXT,
    out_size INTEGER,
    written_seq INTEGER
);
CREATE TABLE IF NOT EXISTS items (
    batch TEXT NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    status TEXT NOT NULL,
    cost_usd REAL NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (batch, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_by_seq ON items (batch, seq);
"""


# -- what is recorded ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One recorded step: its kind (``model``, ``tool``, ``human``), the signature of its
    request, and its result (JSON); None for a tool that started and never finished."""

    key: str
    kind: str
    request: str
    result: str | None
    attempt: int = 1
    """The attempt of the run that recorded it: a later attempt replayed it."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as the journal knows it."""

    run_id: str
    workflow: str
    status: str
    input: Mapping[str, Any]
    started: float
    updated: float
    attempts: int = 1
    """How many times the run was started (1, then one more per resume)."""
    waiting: WaitingFor | None = None
    error: str | None = None
    trace: str | None = None
    """The trace id of the last attempt (a resumed run is traced anew)."""
    span: str | None = None
    """The span id (hex) of the last attempt's run span: a resumed run's span links to it."""
    origin: Mapping[str, Any] = field(default_factory=dict)
    """How the run was started (the workflow file, back-end, options), for `runs resume`."""
    batch: str | None = None


# -- batches: the finished items ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FinishedItem:
    """One finished item: its key, line number, outcome, cost and output line (JSON)."""

    key: str
    index: int
    status: str
    cost_usd: float
    line: str
    seq: int
    """Order of recording within the batch, assigned by the runner (1, 2, ...)."""


@dataclass(frozen=True, slots=True)
class Watermark:
    """How much of the output file is known to hold recorded lines: the first `out_size`
    bytes of `out_path` hold exactly the items with ``seq <= seq``."""

    out_path: str
    out_size: int
    seq: int


@dataclass(frozen=True, slots=True)
class Seen:
    """A recorded item as a lookup finds it."""

    index: int
    seq: int
    status: str = "ok"
    line: str | None = None
    """A waiting item's output line (a pass may leave the item as it is)."""


@dataclass(frozen=True, slots=True)
class BatchState:
    """What the journal holds for a batch when a run opens it."""

    finished: int = 0
    ok: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    last_seq: int = 0
    written: Watermark | None = None
    discarded: int = 0
    """Items of an earlier run dropped because this run did not resume it."""
    waiting: int = 0
    """Items whose runs wait for a person: their lines are rewritten once they finish."""


class JournalStore(Protocol):
    """Where durable runs are recorded. The `record_*` methods are called on the event loop
    and must return at once (queue the write); the async ones may wait for the store."""

    def record_step(
        self,
        run_id: str,
        key: str,
        kind: str,
        request: str | Callable[[], str],
        result: str | Callable[[], str] | None,
        attempt: int = 1,
    ) -> None:
        """Record one step's request signature and result (a callable is called off the
        event loop), made by the run's `attempt` (1, then one more per resume)."""
        ...

    def record_run(self, run: RunRecord) -> None:
        """Insert or update a run."""
        ...

    async def durable(self) -> None:
        """Return once every write recorded so far is committed."""
        ...

    async def steps(self, run_id: str) -> Mapping[str, StepRecord]:
        """Every step recorded for `run_id`, by key."""
        ...

    async def run(self, run_id: str) -> RunRecord | None:
        """The run with this id (or the one run whose id starts with it)."""
        ...

    async def resumable(self, run_id: str) -> tuple[RunRecord | None, Mapping[str, StepRecord]]:
        """`run(run_id)` and, when found, its `steps`: what a resume reads, in one round trip."""
        ...

    async def runs(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 50
    ) -> Sequence[RunRecord]:
        """The latest runs, newest first."""
        ...

    async def open(self, batch: str, *, resume: bool, label: str = "") -> BatchState:
        """Start a run of `batch`: keep its items and their runs' steps (`resume`), or forget
        them."""
        ...

    async def lookup(self, batch: str, keys: Sequence[str]) -> Mapping[str, Seen]:
        """Which of `keys` are recorded as finished (or waiting)."""
        ...

    async def save(
        self, batch: str, items: Sequence[FinishedItem], written: Watermark | None
    ) -> None:
        """Record `items` and the output watermark, all or nothing."""
        ...

    async def lines(self, batch: str, after_seq: int, limit: int) -> Sequence[tuple[int, str]]:
        """Up to `limit` ``(seq, line)`` pairs with ``seq > after_seq``, in seq order, of
        items that are not waiting."""
        ...

    async def aclose(self) -> None:
        """Commit what is queued and release the store."""
        ...


class SQLiteJournal:
    """The default `JournalStore`: one SQLite file (WAL mode) under ``MICROAGENTS_HOME``.

    ```python
    journal = SQLiteJournal()  # $MICROAGENTS_HOME/journal.sqlite3
    engine = Engine(model, journal=journal)
    ```
    """

    def __init__(
        self, path: Path | str | None = None, *, commit_interval: float = COMMIT_INTERVAL
    ) -> None:
        self.path = Path(path) if path is not None else microagents_home() / JOURNAL_FILE
        # NORMAL in WAL survives a process crash; a batch's item saves sync (FULL) apiece.
        self._store = StoreConnection(self.path, SCHEMA, migrate=_migrate)
        self._writer = _Writer(self._store, commit_interval)

    # -- writes, queued --------------------------------------------------------------------

    def record_step(
        self,
        run_id: str,
        key: str,
        kind: str,
        request: str | Callable[[], str],
        result: str | Callable[[], str] | None,
        attempt: int = 1,
    ) -> None:
        self._writer.put(_STEP_SQL, (run_id, key, kind, request, result, time.time(), attempt))

    def record_run(self, run: RunRecord) -> None:
        waiting = json.dumps(_waiting_json(run.waiting)) if run.waiting is not None else None
        row = (
            run.run_id,
            run.workflow,
            run.status,
            lambda: json.dumps(run.input, ensure_ascii=False, default=str),
            run.started,
            run.updated,
            run.attempts,
            waiting,
            run.error,
            run.trace,
            lambda: json.dumps(run.origin, default=str),
            run.batch,
            run.span,
        )
        self._writer.put(_RUN_SQL, row)

    async def durable(self) -> None:
        await anyio.to_thread.run_sync(self._writer.wait)

    # -- reads -----------------------------------------------------------------------------

    async def steps(self, run_id: str) -> Mapping[str, StepRecord]:
        return await anyio.to_thread.run_sync(self._steps, run_id)

    async def run(self, run_id: str) -> RunRecord | None:
        return await anyio.to_thread.run_sync(self._run, run_id)

    async def resumable(self, run_id: str) -> tuple[RunRecord | None, Mapping[str, StepRecord]]:
        # One trip to a worker thread, not two: the trip costs more than both queries.
        return await anyio.to_thread.run_sync(self._resumable, run_id)

    def _resumable(self, run_id: str) -> tuple[RunRecord | None, dict[str, StepRecord]]:
        found = self._run(run_id)
        return found, self._steps(found.run_id) if found is not None else {}

    async def runs(
        self, *, status: str | None = None, workflow: str | None = None, limit: int = 50
    ) -> Sequence[RunRecord]:
        return await anyio.to_thread.run_sync(self._runs, status, workflow, limit)

    def _steps(self, run_id: str) -> dict[str, StepRecord]:
        with self._store as db:
            rows = db.execute(
                "SELECT key, kind, request, result, attempt FROM steps WHERE run_id = ?", (run_id,)
            )
            return {row[0]: StepRecord(*row) for row in rows}

    def _run(self, run_id: str) -> RunRecord | None:
        """The run `run_id` names, exactly or as the unique prefix of one (a short id)."""
        with self._store as db:
            row = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is not None:
                return _run_record(row)
            # A range on the primary key, not LIKE: LIKE cannot use the index, and a batch
            # looks up every item's run on each pass (a full scan each made a pass quadratic).
            rows = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id > ? AND run_id < ? LIMIT 2",
                (run_id, run_id + "\U0010ffff"),
            ).fetchall()
        return _run_record(rows[0]) if len(rows) == 1 else None

    def _runs(self, status: str | None, workflow: str | None, limit: int) -> list[RunRecord]:
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if workflow is not None:
            where.append("workflow = ?")
            args.append(workflow)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._store as db:
            rows = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs {clause} ORDER BY updated DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [_run_record(row) for row in rows]

    # -- batches ---------------------------------------------------------------------------

    async def open(self, batch: str, *, resume: bool, label: str = "") -> BatchState:
        return await anyio.to_thread.run_sync(self._open, batch, resume, label)

    async def lookup(self, batch: str, keys: Sequence[str]) -> Mapping[str, Seen]:
        if not keys:
            return {}
        return await anyio.to_thread.run_sync(self._lookup, batch, list(keys))

    async def save(
        self, batch: str, items: Sequence[FinishedItem], written: Watermark | None
    ) -> None:
        await anyio.to_thread.run_sync(self._save, batch, list(items), written)

    async def lines(self, batch: str, after_seq: int, limit: int) -> Sequence[tuple[int, str]]:
        return await anyio.to_thread.run_sync(self._lines, batch, after_seq, limit)

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.close)

    def close(self) -> None:
        self._writer.close()
        self._store.close()

    def _open(self, batch: str, resume: bool, label: str) -> BatchState:
        self._writer.wait()
        with self._store as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                finished, ok, failed, waiting, cost, last_seq = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(status = 'ok'), 0), "
                    "COALESCE(SUM(status = 'failed'), 0), COALESCE(SUM(status = 'waiting'), 0), "
                    # A waiting item runs again and reports its whole cost then (replayed
                    # steps included), so what it cost so far is not counted twice.
                    "TOTAL(CASE WHEN status != 'waiting' THEN cost_usd END), "
                    "COALESCE(MAX(seq), 0) FROM items WHERE batch = ?",
                    (batch,),
                ).fetchone()
                meta = db.execute(
                    "SELECT out_path, out_size, written_seq FROM batches WHERE batch = ?",
                    (batch,),
                ).fetchone()
                if not resume:
                    # Starting over: the items' runs start over too, steps and all.
                    db.execute(
                        "DELETE FROM steps WHERE run_id IN "
                        "(SELECT run_id FROM runs WHERE batch = ?)",
                        (batch,),
                    )
                    db.execute("DELETE FROM runs WHERE batch = ?", (batch,))
                    db.execute("DELETE FROM items WHERE batch = ?", (batch,))
                    db.execute("DELETE FROM batches WHERE batch = ?", (batch,))
                    meta = None
                db.execute(
                    "INSERT OR IGNORE INTO batches (batch, label, created) VALUES (?, ?, ?)",
                    (batch, label, time.time()),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if not resume:
            return BatchState(discarded=finished)
        written = None
        if meta is not None and meta[0] is not None:
            written = Watermark(meta[0], meta[1], meta[2])
        done = finished - waiting
        return BatchState(done, ok, failed, cost, last_seq, written, waiting=waiting)

    def _lookup(self, batch: str, keys: list[str]) -> dict[str, Seen]:
        found: dict[str, Seen] = {}
        with self._store as db:
            for start in range(0, len(keys), LOOKUP_CHUNK):
                chunk = keys[start : start + LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    "SELECT key, idx, seq, status, CASE WHEN status = 'waiting' THEN line END "
                    f"FROM items WHERE batch = ? AND key IN ({marks})",
                    (batch, *chunk),
                )
                for key, index, seq, status, line in rows:
                    found[key] = Seen(index, seq, status, line)
        return found

    def _save(self, batch: str, items: list[FinishedItem], written: Watermark | None) -> None:
        with self._store as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT OR REPLACE INTO items (batch, key, seq, idx, status, cost_usd, line) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(batch, i.key, i.seq, i.index, i.status, i.cost_usd, i.line) for i in items],
                )
                if written is not None:
                    db.execute(
                        "UPDATE batches SET out_path = ?, out_size = ?, written_seq = ? "
                        "WHERE batch = ?",
                        (written.out_path, written.out_size, written.seq, batch),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _lines(self, batch: str, after_seq: int, limit: int) -> list[tuple[int, str]]:
        with self._store as db:
            rows = db.execute(
                "SELECT seq, line FROM items WHERE batch = ? AND seq > ? AND status != 'waiting' "
                "ORDER BY seq LIMIT ?",
                (batch, after_seq, limit),
            )
            return [(seq, line) for seq, line in rows]


_STEP_SQL = (
    "INSERT OR REPLACE INTO steps (run_id, key, kind, request, result, recorded, attempt) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_RUN_COLUMNS = (
    "run_id, workflow, status, input, started, updated, attempts, waiting, error, trace, "
    "origin, batch, span"
)
_RUN_SQL = (
    f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, updated = excluded.updated, "
    "attempts = excluded.attempts, waiting = excluded.waiting, error = excluded.error, "
    "trace = COALESCE(excluded.trace, trace), origin = excluded.origin, "
    "span = COALESCE(excluded.span, span)"
)
_ADDED_COLUMNS = {"runs": {"span": "TEXT"}, "steps": {"attempt": "INTEGER NOT NULL DEFAULT 1"}}
"""Columns newer than the journal's first release: added to a file that lacks them."""


def _migrate(db: sqlite3.Connection) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _waiting_json(waiting: WaitingFor) -> dict[str, Any]:
    return {**waiting.to_json(), "step": waiting.step}


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    (run_id, workflow, status, run_input, started, updated, attempts, waiting, error, trace,
     origin, batch, span) = row  # fmt: skip
    waiting_for = None
    if waiting is not None:
        data = json.loads(waiting)
        waiting_for = WaitingFor(
            data["node"], data["question"], data["schema"], data["step"],
            data.get("kind", "answer"),
        )  # fmt: skip
    return RunRecord(
        run_id=run_id,
        workflow=workflow,
        status=status,
        input=json.loads(run_input),
        started=started,
        updated=updated,
        attempts=attempts,
        waiting=waiting_for,
        error=error,
        trace=trace,
        origin=json.loads(origin) if origin else {},
        batch=batch,
        span=span,
    )


class _Writer:
    """One thread that commits queued rows in groups: a transaction per `interval`, not per
    row, and never on the event loop. Encoding (the callables in a row) happens here too."""

    def __init__(self, store: StoreConnection, interval: float) -> None:
        self._store = store
        self._interval = interval
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._queued = 0
        self._committed = 0
        self._closed = False
        self._failure: BaseException | None = None
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def put(self, sql: str, row: tuple[Any, ...]) -> None:
        with self._wake:
            if self._failure is not None:
                raise RuntimeError(f"the journal cannot be written: {self._failure}")
            self._pending.append((sql, row))
            self._queued += 1
            if self._thread is None:
                # Owned by the store and joined by `close`; a daemon only so that a program
                # that never closes its engine still exits (losing the last few ms of writes).
                self._thread = threading.Thread(
                    target=self._loop, name="microagents-journal", daemon=True
                )
                self._thread.start()
            elif len(self._pending) == 1:
                self._wake.notify_all()

    def wait(self) -> None:
        """Block until every row queued before this call is committed."""
        with self._wake:
            target = self._queued
            while self._committed < target and self._failure is None and self._thread:
                self._wake.notify_all()
                self._wake.wait(0.1)
            if self._failure is not None:
                raise RuntimeError(f"the journal cannot be written: {self._failure}")

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._wake:
            # Closed, then written to again (a store shared by engines one after another):
            # the next write starts a new thread.
            self._thread = None
            self._closed = False

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if not self._pending:
                    return
            # Let a group gather: one transaction for every row of the next few ms.
            time.sleep(self._interval)
            with self._wake:
                rows, self._pending = self._pending, []
                upto = self._queued
            try:
                self._commit(rows)
            except BaseException as exc:
                with self._wake:
                    self._failure = exc
                    self._wake.notify_all()
                return
            with self._wake:
                self._committed = upto
                self._wake.notify_all()

    def _commit(self, rows: list[tuple[str, tuple[Any, ...]]]) -> None:
        # One executemany per statement, each statement's rows in the order queued: rows of
        # different statements touch different tables (runs, steps), so their relative order
        # does not matter, and alternating runs and steps would cost an executemany a row.
        groups: dict[str, list[tuple[Any, ...]]] = {}
        for sql, row in rows:
            encoded = tuple(v() if callable(v) else v for v in row)
            group = groups.get(sql)
            if group is None:
                groups[sql] = [encoded]
            else:
                group.append(encoded)
        with self._store as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, group in groups.items():
                    db.executemany(sql, group)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
