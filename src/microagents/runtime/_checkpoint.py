"""Checkpoints of batch runs: which items finished, with their output lines.

The batch runner talks to a `CheckpointStore` (a small protocol, so that a shared store can
replace the local one when a batch is spread over machines); `SQLiteCheckpointStore` is the
default, one file under ``MICROAGENTS_HOME``.

A batch is identified by a key the runner derives from the workflow's content and the input
file's path; an item by its ``id`` field, or by its line number. Each finished item is a row
holding its output line, so the checkpoint — not the output file — is the record of what was
paid for: a resume skips those items and can rewrite any output line that a crash lost.

The store never commits one item at a time: the runner hands it whole batches of rows, and
each `save` is one transaction in a worker thread, so the event loop never waits on disk.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio.to_thread

from .._settings import microagents_home
from .._sqlite import StoreConnection

if TYPE_CHECKING:
    from ..graph._compiled import CompiledWorkflow

CHECKPOINT_FILE = "checkpoints.sqlite3"
LOOKUP_CHUNK = 500
"""Keys per `IN (...)` query: well under SQLite's limit on bound variables."""

SCHEMA = """
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


@dataclass(frozen=True, slots=True)
class FinishedItem:
    """One finished item: its key, line number, outcome, cost and output line (JSON)."""

    key: str
    index: int
    status: str
    cost_usd: float
    line: str
    seq: int
    """Order of checkpointing within the batch, assigned by the runner (1, 2, ...)."""


@dataclass(frozen=True, slots=True)
class Watermark:
    """How much of the output file is known to hold checkpointed lines: the first
    `out_size` bytes of `out_path` hold exactly the items with ``seq <= seq``."""

    out_path: str
    out_size: int
    seq: int


@dataclass(frozen=True, slots=True)
class Seen:
    """A checkpointed item as a lookup finds it."""

    index: int
    seq: int


@dataclass(frozen=True, slots=True)
class BatchState:
    """What the checkpoint holds for a batch when a run opens it."""

    finished: int = 0
    ok: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    last_seq: int = 0
    written: Watermark | None = None
    discarded: int = 0
    """Items of an earlier run dropped because this run did not resume it."""


class CheckpointStore(Protocol):
    """Where a batch runner records finished items. Every method may be called from the event
    loop; an implementation must not block it."""

    async def open(self, batch: str, *, resume: bool, label: str = "") -> BatchState:
        """Start a run of `batch`: keep its items (`resume`) or forget them."""
        ...

    async def lookup(self, batch: str, keys: Sequence[str]) -> Mapping[str, Seen]:
        """Which of `keys` are checkpointed."""
        ...

    async def save(
        self, batch: str, items: Sequence[FinishedItem], written: Watermark | None
    ) -> None:
        """Record `items` and the output watermark, all or nothing."""
        ...

    async def lines(self, batch: str, after_seq: int, limit: int) -> Sequence[tuple[int, str]]:
        """Up to `limit` ``(seq, line)`` pairs with ``seq > after_seq``, in seq order."""
        ...

    async def aclose(self) -> None:
        """Release the store."""
        ...


class SQLiteCheckpointStore:
    """The default `CheckpointStore`: one SQLite file (WAL mode) under ``MICROAGENTS_HOME``.

    ```python
    store = SQLiteCheckpointStore()  # $MICROAGENTS_HOME/checkpoints.sqlite3
    summary = await run_batch(engine, workflow, "items.jsonl", store=store)
    ```
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else microagents_home() / CHECKPOINT_FILE
        self._store = StoreConnection(self.path, SCHEMA, synchronous="FULL")

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
        self._store.close()

    # -- in a worker thread ----------------------------------------------------------------

    def _open(self, batch: str, resume: bool, label: str) -> BatchState:
        with self._store as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                finished, ok, failed, cost, last_seq = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(status = 'ok'), 0), "
                    "COALESCE(SUM(status = 'failed'), 0), TOTAL(cost_usd), "
                    "COALESCE(MAX(seq), 0) FROM items WHERE batch = ?",
                    (batch,),
                ).fetchone()
                meta = db.execute(
                    "SELECT out_path, out_size, written_seq FROM batches WHERE batch = ?",
                    (batch,),
                ).fetchone()
                if not resume:
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
        return BatchState(finished, ok, failed, cost, last_seq, written)

    def _lookup(self, batch: str, keys: list[str]) -> dict[str, Seen]:
        found: dict[str, Seen] = {}
        with self._store as db:
            for start in range(0, len(keys), LOOKUP_CHUNK):
                chunk = keys[start : start + LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    f"SELECT key, idx, seq FROM items WHERE batch = ? AND key IN ({marks})",
                    (batch, *chunk),
                )
                for key, index, seq in rows:
                    found[key] = Seen(index, seq)
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
                "SELECT seq, line FROM items WHERE batch = ? AND seq > ? ORDER BY seq LIMIT ?",
                (batch, after_seq, limit),
            )
            return [(seq, line) for seq, line in rows]


def batch_key(workflow: CompiledWorkflow, input_path: Path | str) -> str:
    """The checkpoint key of running `workflow` over `input_path`: a change to the workflow,
    to a sub-workflow or to an agent (prompt included) starts a new batch, so that a resume
    never mixes results of different specs."""
    content = {"workflow": _fingerprint(workflow), "input": str(Path(input_path).resolve())}
    text = json.dumps(content, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _fingerprint(workflow: CompiledWorkflow) -> dict[str, object]:
    return {
        "name": workflow.name,
        "version": workflow.spec.version,
        "spec": workflow.spec.model_dump(mode="json"),
        "agents": {
            # The pydantic classes of a Python-defined agent are already in its JSON schemas.
            agent.reference: [
                agent.spec.model_dump(mode="json", exclude={"input_model", "output_model"}),
                agent.prompt_source,
            ]
            for agent in workflow.agents
        },
        "subworkflows": {
            node_id: _fingerprint(node.workflow)
            for node_id, node in workflow.nodes.items()
            if node.workflow is not None
        },
    }
