"""Where Message Batches mode records its calls and batches, beside the journal.

Two tables in the journal's SQLite file (so that one file holds everything a resume needs):

- ``batch_calls``: every model call a run deferred to a Message Batch — its custom id (named
  after the run and the journal step, so the same call always has the same id), the journal
  step and request signature its result will be recorded under, the request's wire
  parameters, and where it stands: ``pending`` (not submitted yet), ``submitting`` (in a
  batch being created), ``submitted`` (in a Message Batch), ``done`` (its result is in the
  journal), ``failed`` (errored past the retry policy, expired past the limit, canceled),
  ``direct`` (made on the standard API instead, finishing a small tail of calls) or
  ``follows`` (with the response cache on: the same request as another call of the round,
  its ``same_as``, whose result it gets without being submitted);
- ``message_batches``: every Message Batch created for a microagents batch, with its round,
  size and state (``submitting``, ``in_progress``, ``canceling`` — asked to cancel through
  `microagents batches cancel`, collected as usual — or ``collected``).

A batch is created in three commits, so that a kill -9 at any moment never creates it twice:
the intent (its calls marked ``submitting`` under a provisional id), then the API call, then
its real id over the provisional one. A resume that finds an intent adopts the batch the API
lists with the same size created since, or else submits its calls again (none was paid).

Each method runs in a worker thread; every write is one synchronous transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._sqlite import StoreConnection

SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_calls (
    batch TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    signature TEXT NOT NULL,
    node TEXT NOT NULL,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    state TEXT NOT NULL,
    message_batch TEXT,
    round INTEGER NOT NULL,
    tries INTEGER NOT NULL,
    expiries INTEGER NOT NULL,
    outcome TEXT,
    error TEXT,
    cost_usd REAL,
    standard_usd REAL,
    queued REAL NOT NULL,
    waited REAL,
    cache_key TEXT,
    same_as TEXT,
    PRIMARY KEY (batch, custom_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batch_calls_by_state ON batch_calls (batch, state);
CREATE INDEX IF NOT EXISTS batch_calls_by_message_batch ON batch_calls (message_batch);
CREATE INDEX IF NOT EXISTS batch_calls_by_run ON batch_calls (batch, run_id);
CREATE TABLE IF NOT EXISTS message_batches (
    id TEXT PRIMARY KEY,
    batch TEXT NOT NULL,
    round INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    ended REAL,
    counts TEXT
);
CREATE INDEX IF NOT EXISTS message_batches_by_batch ON message_batches (batch, status);
"""


@dataclass(frozen=True, slots=True)
class CallState:
    """Where one deferred call stands, as the model layer needs it during a pass."""

    state: str
    outcome: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A call a run deferred: what goes into a Message Batch request, and where its result
    is recorded."""

    custom_id: str
    run_id: str
    step: str
    signature: str
    node: str
    model: str
    params: str
    """The request's wire parameters (JSON)."""
    cache_key: str | None = None
    """With the response cache on: where its result goes in the cache."""
    same_as: str | None = None
    """With the response cache on: the call of this round with the same request."""


@dataclass(frozen=True, slots=True)
class MessageBatchRecord:
    """A Message Batch as the store knows it."""

    id: str
    batch: str
    round: int
    requests: int
    status: str
    created: float
    ended: float | None
    counts: dict[str, int] | None

    @property
    def in_flight(self) -> bool:
        """Submitted and not collected yet (canceling included)."""
        return self.status in ("in_progress", "canceling")


@dataclass(frozen=True, slots=True)
class Submitted:
    """A call in a Message Batch, for collecting its result."""

    custom_id: str
    run_id: str
    step: str
    signature: str
    model: str
    tries: int
    expiries: int
    queued: float
    cache_key: str | None


@dataclass(frozen=True, slots=True)
class Follower:
    """A call that gets the result of the call with the same request (`same_as`)."""

    custom_id: str
    run_id: str
    step: str
    signature: str
    same_as: str
    queued: float


class BatchCallStore:
    """The ``batch_calls`` and ``message_batches`` tables of one journal file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._store = StoreConnection(self.path, SCHEMA, synchronous="FULL", migrate=_migrate)

    def close(self) -> None:
        self._store.close()

    # -- a pass ----------------------------------------------------------------------------

    def states(self, batch: str) -> dict[str, CallState]:
        """Every deferred call of `batch` that is not done, by custom id."""
        with self._store as db:
            rows = db.execute(
                "SELECT custom_id, state, outcome, error FROM batch_calls "
                "WHERE batch = ? AND state != 'done'",
                (batch,),
            )
            return {cid: CallState(state, outcome, error) for cid, state, outcome, error in rows}

    def still_blocked(self, batch: str, run_ids: Sequence[str]) -> set[str]:
        """Which of `run_ids` wait on a call whose result has not come (not submitted yet,
        or following one that has not): a pass need not run them."""
        blocked: set[str] = set()
        with self._store as db:
            for start in range(0, len(run_ids), 500):
                chunk = run_ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    "SELECT DISTINCT run_id FROM batch_calls WHERE batch = ? "
                    f"AND run_id IN ({marks}) AND state IN ('pending', 'follows')",
                    (batch, *chunk),
                )
                blocked.update(run_id for (run_id,) in rows)
        return blocked

    def add_pending(self, batch: str, round_: int, calls: Sequence[PendingCall]) -> None:
        now = time.time()
        with self._store as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                # A call already known (submitted, or pending again after an errored try)
                # keeps its record: only its state may move back to pending.
                db.executemany(
                    "INSERT INTO batch_calls (batch, custom_id, run_id, step, signature, node, "
                    "model, params, state, round, tries, expiries, queued, cache_key, same_as) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?) "
                    "ON CONFLICT (batch, custom_id) DO UPDATE SET state = excluded.state, "
                    "signature = excluded.signature, params = excluded.params, "
                    "cache_key = excluded.cache_key, same_as = excluded.same_as "
                    "WHERE state = 'done'",
                    [
                        (
                            batch,
                            c.custom_id,
                            c.run_id,
                            c.step,
                            c.signature,
                            c.node,
                            c.model,
                            # A follower's request is its leader's: not stored twice.
                            c.params if c.same_as is None else "",
                            "pending" if c.same_as is None else "follows",
                            round_,
                            now,
                            c.cache_key,
                            c.same_as,
                        )
                        for c in calls
                    ],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def forget(self, batch: str) -> None:
        """Start `batch` over: its calls and batches are forgotten (not canceled)."""
        with self._store as db:
            db.execute("DELETE FROM batch_calls WHERE batch = ?", (batch,))
            db.execute("DELETE FROM message_batches WHERE batch = ?", (batch,))

    # -- submitting ------------------------------------------------------------------------

    def pending(self, batch: str, limit: int) -> list[tuple[str, str, str]]:
        """Up to `limit` calls waiting to be submitted: (custom id, model, params)."""
        with self._store as db:
            rows = db.execute(
                "SELECT custom_id, model, params FROM batch_calls "
                "WHERE batch = ? AND state = 'pending' ORDER BY queued, custom_id LIMIT ?",
                (batch, limit),
            )
            return [(cid, model, params) for cid, model, params in rows]

    def count(self, batch: str, state: str) -> int:
        with self._store as db:
            row = db.execute(
                "SELECT COUNT(*) FROM batch_calls WHERE batch = ? AND state = ?", (batch, state)
            ).fetchone()
            return int(row[0])

    def last_round(self, batch: str) -> int:
        with self._store as db:
            row = db.execute(
                "SELECT COALESCE(MAX(round), 0) FROM message_batches WHERE batch = ?", (batch,)
            ).fetchone()
            return int(row[0])

    def intend(self, batch: str, round_: int, intent: str, custom_ids: Sequence[str]) -> None:
        """Record, before the API call, that these calls are going into one new batch."""
        with self._store as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO message_batches (id, batch, round, requests, status, created) "
                    "VALUES (?, ?, ?, ?, 'submitting', ?)",
                    (intent, batch, round_, len(custom_ids), time.time()),
                )
                db.executemany(
                    "UPDATE batch_calls SET state = 'submitting', message_batch = ?, "
                    "round = ? WHERE batch = ? AND custom_id = ?",
                    [(intent, round_, batch, cid) for cid in custom_ids],
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def created(self, intent: str, batch_id: str) -> None:
        """The batch behind `intent` exists, as `batch_id`: first thing after the API call."""
        with self._store as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "UPDATE message_batches SET id = ?, status = 'in_progress' WHERE id = ?",
                    (batch_id, intent),
                )
                db.execute(
                    "UPDATE batch_calls SET state = 'submitted', message_batch = ?, "
                    "tries = tries + 1 WHERE message_batch = ?",
                    (batch_id, intent),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def abandon(self, intent: str) -> None:
        """The batch behind `intent` was never created: its calls are pending again."""
        with self._store as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "UPDATE batch_calls SET state = 'pending', message_batch = NULL "
                    "WHERE message_batch = ?",
                    (intent,),
                )
                db.execute("DELETE FROM message_batches WHERE id = ?", (intent,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # -- collecting ------------------------------------------------------------------------

    def message_batches(
        self, batch: str | None = None, status: str | None = None
    ) -> list[MessageBatchRecord]:
        where, args = [], []
        if batch is not None:
            where.append("batch = ?")
            args.append(batch)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._store as db:
            rows = db.execute(
                "SELECT id, batch, round, requests, status, created, ended, counts "
                f"FROM message_batches {clause} ORDER BY created",
                args,
            ).fetchall()
        return [
            MessageBatchRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], _counts(r[7]))
            for r in rows
        ]

    def calls_of(self, batch_id: str) -> list[tuple[str, str, str, str, str | None, str | None]]:
        """The calls of one Message Batch: (custom id, run id, node, state, outcome, error)."""
        with self._store as db:
            rows = db.execute(
                "SELECT custom_id, run_id, node, state, outcome, error FROM batch_calls "
                "WHERE message_batch = ? ORDER BY custom_id",
                (batch_id,),
            ).fetchall()
        return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def cancel(self, batch_id: str) -> bool:
        """Record that `batch_id` was asked to cancel (``canceling``): collected as usual,
        its canceled requests fail their items. False if it is not in flight."""
        with self._store as db:
            changed = db.execute(
                "UPDATE message_batches SET status = 'canceling' "
                "WHERE id = ? AND status = 'in_progress'",
                (batch_id,),
            ).rowcount
        return bool(changed)

    def origins(self) -> list[tuple[str, str, str | None, str | None]]:
        """Every microagents batch with a Message Batch not collected yet: (batch key, label,
        out path, origin JSON of one of its runs), from the journal's tables in this file."""
        with self._store as db:
            rows = db.execute(
                "SELECT k.batch, COALESCE(b.label, ''), b.out_path, "
                "(SELECT origin FROM runs r WHERE r.batch = k.batch LIMIT 1) "
                "FROM (SELECT DISTINCT batch FROM message_batches WHERE status != 'collected') k "
                "LEFT JOIN batches b ON b.batch = k.batch ORDER BY k.batch"
            ).fetchall()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def submitted(self, batch_id: str) -> dict[str, Submitted]:
        with self._store as db:
            rows = db.execute(
                "SELECT custom_id, run_id, step, signature, model, tries, expiries, queued, "
                "cache_key FROM batch_calls WHERE message_batch = ? AND state = 'submitted'",
                (batch_id,),
            )
            return {r[0]: Submitted(*r) for r in rows}

    def followers(self, batch: str, batch_id: str) -> list[Follower]:
        """The calls that follow a call of `batch_id` (same request, asked once)."""
        with self._store as db:
            rows = db.execute(
                # From the calls that follow (none without the response cache), by state.
                "SELECT custom_id, run_id, step, signature, same_as, queued "
                "FROM batch_calls INDEXED BY batch_calls_by_state "
                "WHERE batch = ? AND state = 'follows' AND same_as IN "
                "(SELECT custom_id FROM batch_calls WHERE message_batch = ?)",
                (batch, batch_id),
            )
            return [Follower(*r) for r in rows]

    def duplicates(self, batch: str) -> int:
        """Calls answered with the result of the same request made once."""
        with self._store as db:
            (count,) = db.execute(
                "SELECT COUNT(*) FROM batch_calls WHERE batch = ? AND outcome = 'duplicate'",
                (batch,),
            ).fetchone()
            return int(count)

    def settle(
        self,
        batch: str,
        batch_id: str,
        outcomes: Sequence[tuple[str, str, str | None, str | None, float | None, float | None]],
        counts: dict[str, int],
    ) -> None:
        """Record what each request of `batch_id` came to — (custom id, new state, outcome,
        error, cost, standard cost) — and the batch as collected, in one transaction."""
        now = time.time()
        with self._store as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "UPDATE batch_calls SET state = ?, outcome = ?, error = ?, cost_usd = ?, "
                    "standard_usd = ?, waited = ? - queued, "
                    "expiries = expiries + (? = 'expired') "
                    "WHERE batch = ? AND custom_id = ? AND "
                    "(message_batch = ? OR state = 'follows')",
                    [
                        (state, outcome, error, cost, standard, now, outcome, batch, cid, batch_id)
                        for cid, state, outcome, error, cost, standard in outcomes
                    ],
                )
                db.execute(
                    "UPDATE message_batches SET status = 'collected', ended = ?, counts = ? "
                    "WHERE id = ?",
                    (now, json.dumps(counts), batch_id),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def costs(self, batch: str) -> tuple[float, float, int]:
        """What the batch's collected calls cost at batch rates, what they would have cost at
        standard rates, and how many there were."""
        with self._store as db:
            row = db.execute(
                "SELECT TOTAL(cost_usd), TOTAL(standard_usd), COUNT(cost_usd) FROM batch_calls "
                "WHERE batch = ? AND outcome = 'succeeded'",
                (batch,),
            ).fetchone()
            return float(row[0]), float(row[1]), int(row[2])

    def costs_by_node(self, batch: str) -> list[tuple[str, str, int, float, float]]:
        """(node, model, succeeded calls, cost at batch rates, cost at standard rates)."""
        with self._store as db:
            rows = db.execute(
                "SELECT node, model, COUNT(*), TOTAL(cost_usd), TOTAL(standard_usd) "
                "FROM batch_calls WHERE batch = ? AND outcome = 'succeeded' "
                "GROUP BY node, model ORDER BY MIN(queued), node, model",
                (batch,),
            )
            return [(n, m, int(c), float(b), float(s)) for n, m, c, b, s in rows]

    def waited(self, batch: str) -> tuple[float | None, float | None]:
        """The median and the longest time a collected call waited for its result (from
        being deferred to being collected), in seconds."""
        with self._store as db:
            (count,) = db.execute(
                "SELECT COUNT(*) FROM batch_calls WHERE batch = ? AND waited IS NOT NULL",
                (batch,),
            ).fetchone()
            if not count:
                return None, None
            (median,) = db.execute(
                "SELECT waited FROM batch_calls WHERE batch = ? AND waited IS NOT NULL "
                "ORDER BY waited LIMIT 1 OFFSET ?",
                (batch, (count - 1) // 2),
            ).fetchone()
            (longest,) = db.execute(
                "SELECT MAX(waited) FROM batch_calls WHERE batch = ?", (batch,)
            ).fetchone()
            return float(median), float(longest)

    def average_costs(self, batch: str) -> dict[str, tuple[float, float]]:
        """What a succeeded call cost on average so far, model by model, at batch and at
        standard rates (for estimating the cost of a round before submitting it)."""
        with self._store as db:
            rows = db.execute(
                "SELECT model, AVG(cost_usd), AVG(standard_usd) FROM batch_calls "
                "WHERE batch = ? AND outcome = 'succeeded' AND cost_usd IS NOT NULL "
                "GROUP BY model",
                (batch,),
            )
            return {model: (float(cost), float(standard)) for model, cost, standard in rows}

    def release_orphans(self, batch: str) -> None:
        """Forget the calls that follow one no longer to be made or awaited (none should):
        their runs defer them afresh in the next pass, rather than wait for nothing."""
        with self._store as db:
            db.execute(
                "DELETE FROM batch_calls WHERE batch = ? AND state = 'follows' AND same_as "
                "NOT IN (SELECT custom_id FROM batch_calls INDEXED BY batch_calls_by_state "
                "WHERE batch = ? AND state IN ('pending', 'submitting', 'submitted'))",
                (batch, batch),
            )

    def go_direct(self, batch: str) -> None:
        """The pending calls, and those that follow them, are made on the standard API
        instead of in a Message Batch."""
        with self._store as db:
            db.execute(
                "UPDATE batch_calls SET state = 'direct' "
                "WHERE batch = ? AND state IN ('pending', 'follows')",
                (batch,),
            )

    def round_took(self, batch: str, round_: int) -> float | None:
        """Seconds from a round's first batch being created to its last one ending."""
        with self._store as db:
            row = db.execute(
                "SELECT MAX(ended) - MIN(created) FROM message_batches "
                "WHERE batch = ? AND round = ? AND ended IS NOT NULL",
                (batch, round_),
            ).fetchone()
            return None if row[0] is None else float(row[0])

    def pending_sample(self, batch: str, model: str, limit: int) -> list[str]:
        """The wire parameters of up to `limit` pending calls of `model`."""
        with self._store as db:
            rows = db.execute(
                "SELECT params FROM batch_calls WHERE batch = ? AND state = 'pending' "
                "AND model = ? LIMIT ?",
                (batch, model, limit),
            )
            return [params for (params,) in rows]

    def pending_sizes(self, batch: str) -> list[tuple[str, int]]:
        """(model, size of the request's parameters in bytes) of every pending call."""
        with self._store as db:
            rows = db.execute(
                "SELECT model, LENGTH(params) FROM batch_calls "
                "WHERE batch = ? AND state = 'pending'",
                (batch,),
            )
            return [(model, int(size)) for model, size in rows]


def _migrate(db: sqlite3.Connection) -> None:
    """Journal files made before the response cache worked in batch mode lack two columns."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(batch_calls)")}
    for column in ("cache_key", "same_as"):
        if column not in columns:
            db.execute(f"ALTER TABLE batch_calls ADD COLUMN {column} TEXT")


def _counts(text: str | None) -> dict[str, int] | None:
    if text is None:
        return None
    value: Any = json.loads(text)
    return {str(k): int(v) for k, v in value.items()}
