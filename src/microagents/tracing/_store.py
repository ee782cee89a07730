"""The embedded trace store: finished spans in SQLite, and a read API for the viewers.

`SqliteSpanExporter` is an OpenTelemetry `SpanExporter`; put it behind `StoreSpanProcessor`
(or the SDK's `BatchSpanProcessor`), which queues spans (bounded) and calls `export` from its
own thread, so that writing to disk never happens on the hot path::

    provider = TracerProvider()
    provider.add_span_processor(StoreSpanProcessor(SqliteSpanExporter()))

Two tables live in ``$MICROAGENTS_HOME/traces.sqlite3`` (WAL mode, so readers never block the
writer; see `SCHEMA`): ``span_batches``, every span one export received as one JSON array, and
``runs``, one row per top-level workflow run, filled from its root span (the
``invoke_workflow`` span that carries a run id and is not a nested sub-workflow). Retention
keeps the newest
``MICROAGENTS_TRACE_KEEP_RUNS`` runs (default 1000) that are at most
``MICROAGENTS_TRACE_KEEP_DAYS`` days old (default 30).

`TraceStore` reads it back: `list_runs` for ``microagents trace list``, `get_trace` for
``microagents trace show``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from enum import Enum
from itertools import chain
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from .._settings import microagents_home
from ..errors import MicroagentsError, TraceNotFoundError
from . import _semconv as sc
from ._migrate import take_old_spans
from ._span_rows import SpanRow, light_span_row

logger = logging.getLogger("microagents.trace_store")

KEEP_RUNS_ENV = "MICROAGENTS_TRACE_KEEP_RUNS"
KEEP_DAYS_ENV = "MICROAGENTS_TRACE_KEEP_DAYS"
DEFAULT_KEEP_RUNS = 1000
DEFAULT_KEEP_DAYS = 30.0
"""Set on the run span of a sub-workflow: part of its parent's run, not a run of its own."""

SCHEMA_VERSION = 3
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS span_batches (
    id INTEGER PRIMARY KEY,
    first_end_ns INTEGER NOT NULL,
    last_end_ns INTEGER NOT NULL,
    resource TEXT NOT NULL,
    spans TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS span_batches_end ON span_batches (last_end_ns);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    workflow TEXT NOT NULL,
    version TEXT,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    escalations INTEGER NOT NULL,
    simulated INTEGER NOT NULL,
    batch_index INTEGER
);
CREATE INDEX IF NOT EXISTS runs_start ON runs (start_ns);
PRAGMA user_version = {SCHEMA_VERSION};
"""
"""Format 3. ``span_batches`` holds what one export received, as one JSON array of span rows
(see `_span_rows`), with the earliest and latest end time among them: a run's spans all end
between the run's start and end, which is how a reader finds the batches that hold them.
Format 2 kept a row per trace and export, and format 1 a row per span, each with a
trace-id index: writing those rows and indexes took more CPU than everything else tracing
does (a 1.5 KB row and its index entry cost ~15 µs in SQLite; a run is ~7 spans)."""

_RUN_COLUMNS = (
    "run_id, trace_id, span_id, workflow, version, start_ns, end_ns, status, input_tokens, "
    "output_tokens, cost_usd, escalations, simulated, batch_index"
)
_RUNS_PER_INSERT = 1_000  # 14,000 parameters: under SQLite's limit of 32,766


@functools.lru_cache(maxsize=64)
def _insert_runs(count: int) -> str:
    """One statement inserting `count` runs.

    Not `executemany`: the writer thread gives up the GIL around every SQLite call and has to
    wait for the runs to hand it back (up to the interpreter's switch interval, 5 ms) each
    time; one call per run made a busy writer fall behind and drop spans.
    """
    row = f"({', '.join('?' * 14)})"
    return f"INSERT OR REPLACE INTO runs ({_RUN_COLUMNS}) VALUES {', '.join([row] * count)}"


def default_trace_path() -> Path:
    """Where the trace store lives: ``$MICROAGENTS_HOME/traces.sqlite3``."""
    return microagents_home() / "traces.sqlite3"


# -- records -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One top-level workflow run, as summarised from its root span."""

    run_id: str
    trace_id: str
    span_id: str
    """The run's root span (a trace may hold more than one run when we joined a caller's)."""
    workflow: str
    version: str | None
    start_ns: int
    end_ns: int
    status: str
    """``ok`` or ``failed``."""
    input_tokens: int
    output_tokens: int
    cost_usd: float
    escalations: int
    simulated: bool
    batch_index: int | None

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON data."""
        return {name: getattr(self, name) for name in _RUN_COLUMNS.split(", ")}


@dataclass(frozen=True, slots=True)
class SpanEvent:
    """A timestamped event on a span (an escalation, an exception, a rate-limit wait)."""

    name: str
    time_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One stored span. Attribute values are JSON data (OTel sequences come back as lists)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    """``INTERNAL``, ``CLIENT``, ... (the `SpanKind` name)."""
    start_ns: int
    end_ns: int
    status_code: str
    """``UNSET``, ``OK`` or ``ERROR``."""
    status_message: str | None
    attributes: Mapping[str, Any]
    events: tuple[SpanEvent, ...]
    resource: Mapping[str, Any]

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def to_json(self) -> dict[str, Any]:
        """The span as plain JSON data, ids in hex as OTLP/JSON writes them."""
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "kind": self.kind,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "status_code": self.status_code,
            "status_message": self.status_message,
            "attributes": dict(self.attributes),
            "events": [
                {"name": e.name, "time_ns": e.time_ns, "attributes": dict(e.attributes)}
                for e in self.events
            ],
            "resource": dict(self.resource),
        }


# -- secrets -------------------------------------------------------------------------------

_SECRET_KEY_PARTS = ("api_key", "api-key", "authorization")
_SECRET_PREFIXES = ("sk-ant-", "Bearer ")
_EMBEDDED_SECRET = re.compile(r"sk-ant-[A-Za-z0-9_\-]+|Bearer\s+[A-Za-z0-9._~+/=\-]{16,}")


_secret_keys: dict[str, bool] = {}
"""Key → whether it names a secret; spans repeat a few dozen keys, so each is checked once."""


def _is_secret_key(key: str) -> bool:
    known = _secret_keys.get(key)
    if known is None:
        if len(_secret_keys) > 10_000:
            _secret_keys.clear()
        lowered = key.lower()
        known = _secret_keys[key] = any(part in lowered for part in _SECRET_KEY_PARTS)
    return known


def _is_secret(key: str, value: object) -> bool:
    if _is_secret_key(key):
        return True
    if type(value) is str:
        return value.startswith(_SECRET_PREFIXES)
    if isinstance(value, list | tuple):
        return any(isinstance(v, str) and v.startswith(_SECRET_PREFIXES) for v in value)
    return False


def _redact(text: str) -> str:
    # The substring tests keep the common case (no secret) free of regex work on big prompts.
    if "sk-ant-" in text or "Bearer" in text:
        return _EMBEDDED_SECRET.sub("[REDACTED]", text)
    return text


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes safe to store: secret-looking ones dropped, embedded keys redacted.

    Defence in depth: the tracer never sets such attributes, but a tool's own spans, a user's
    instrumentation or an exception message quoting a request might.
    """
    cleaned: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if _is_secret(key, value):
            continue
        if isinstance(value, str):
            value = _redact(value)
        elif isinstance(value, list | tuple):
            value = [_redact(v) if isinstance(v, str) else v for v in value]
        cleaned[key] = value
    return cleaned


def _json_fallback(value: object) -> Any:
    """What JSON encoders make of what they do not know: a span's `Event`s become objects,
    enums (a `SpanKind`, which orjson knows but the standard library does not) their
    number, anything else its text."""
    if isinstance(value, Event):
        attributes = dict(value._attributes or {})
        return {"name": value.name, "time_ns": value.timestamp, "attributes": attributes}
    if isinstance(value, Enum):
        return value.value
    return str(value)


_stdlib_dumps = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=_json_fallback
).encode


def _dumps(value: Any) -> bytes:
    """Compact JSON. orjson encodes a run's spans several times faster than the standard
    library; what it refuses (an integer beyond 64 bits, say) goes to the standard library
    instead."""
    try:
        return orjson.dumps(value, default=_json_fallback)
    except orjson.JSONEncodeError:
        return _stdlib_dumps(value).encode()


_plain_keys: set[str] = set()
"""Attribute keys already checked and found not to name a secret (spans repeat a few
dozen keys)."""


def _keys_are_plain(rows: Sequence[SpanRow]) -> bool:
    keys = set().union(*[row[7] for row in rows])
    if keys <= _plain_keys:
        return True
    if any(_is_secret_key(key) for key in keys):
        return False
    if len(_plain_keys) > 10_000:
        _plain_keys.clear()
    _plain_keys.update(keys)
    return True


def _encode_spans(spans: Sequence[ReadableSpan]) -> tuple[list[SpanRow], bytes]:
    """The spans' rows, and the rows as one JSON array with secrets removed.

    Our own spans are read in C (`light_span_row`) and encoded by orjson. Checking every
    key and value for secrets cost more than that, so the common case is checked in bulk:
    the batch's attribute keys (one set) against the keys known to be plain, and the encoded
    text for the start of a key or a token (`_SECRET_PREFIXES`). Only a batch that fails
    either check is encoded again, value by value (`_clean`).
    """
    try:
        rows: list[Any] = list(map(light_span_row, spans))
    except AttributeError:  # not all ours: an application's own spans share our provider
        rows = [_span_row(span) for span in spans]
    if _keys_are_plain(rows):
        encoded = _dumps(rows)
        if b"sk-ant-" not in encoded and b"Bearer" not in encoded:
            return rows, encoded
    return rows, _dumps([_cleaned_row(row) for row in rows])


def _span_row(span: ReadableSpan) -> SpanRow:
    """A span's row, for spans that are not ours (the SDK's, in an application's provider).

    ReadableSpan's fields, not its properties: each property call (and the read-only view
    `attributes` wraps around the dict) cost more than the rest of this function together.
    """
    try:
        return light_span_row(span)
    except AttributeError:
        pass
    context = span._context
    parent = span._parent
    status = span._status
    attributes = span._attributes
    if type(attributes) is not dict:  # the SDK's BoundedAttributes, or None
        attributes = dict(attributes or {})
    start = span._start_time or 0
    return (
        (
            format(context.trace_id, "032x") if context else "",
            context.span_id if context else 0,
            parent.span_id if parent else None,
        ),
        span._name,
        span._kind.value,
        start,
        span._end_time or start,
        status.status_code.value,
        status.description or None,
        attributes,
        [_json_fallback(event) for event in span._events],
    )


def _cleaned_row(row: SpanRow) -> SpanRow:
    ids, name, kind, start, end, code, message, attributes, events = row
    return (
        ids,
        name,
        kind,
        start,
        end,
        code,
        _redact(message) if message else message,
        _clean(attributes),
        [
            _cleaned_event(event if isinstance(event, dict) else _json_fallback(event))
            for event in events
        ],
    )


def _cleaned_event(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "attributes": _clean(event["attributes"])}


# -- the exporter --------------------------------------------------------------------------


def _limit_from_env(name: str, default: float, *, whole: bool) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = -1
    if not 0 <= value < float("inf"):  # also refuses NaN
        what = "a whole number" if whole else "a number"
        raise MicroagentsError(f"{name} must be {what} ≥ 0 (0 turns that limit off), not {raw!r}")
    return value


class SqliteSpanExporter(SpanExporter):
    """Writes finished spans to the embedded SQLite trace store, one transaction per batch.

    `keep_runs` and `keep_days` default to ``$MICROAGENTS_TRACE_KEEP_RUNS`` (1000) and
    ``$MICROAGENTS_TRACE_KEEP_DAYS`` (30); 0 turns a limit off. Retention is applied on the
    first export and then every `prune_every` exports. Thread-safe: `SimpleSpanProcessor` may
    call `export` from any thread ending a span.

    ```python
    provider.add_span_processor(StoreSpanProcessor(SqliteSpanExporter()))
    ```
    """

    prune_every = 16

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        keep_runs: int | None = None,
        keep_days: float | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else default_trace_path()
        if keep_runs is None:
            keep_runs = int(_limit_from_env(KEEP_RUNS_ENV, DEFAULT_KEEP_RUNS, whole=True))
        if keep_days is None:
            keep_days = _limit_from_env(KEEP_DAYS_ENV, DEFAULT_KEEP_DAYS, whole=False)
        self.keep_runs = keep_runs
        self.keep_days = keep_days
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._exports = 0
        self._closed = False
        # All spans of a provider share one Resource: serialise it once, not once per span.
        self._resource: tuple[Resource, str] | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Store a batch of finished spans (and the runs their root spans finish)."""
        if self._closed:
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        # Serialise outside the lock: only the database work needs to be one at a time.
        batch, run_rows = self.rows_for(spans)
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            try:
                db = self._db()
                # IMMEDIATE takes the write lock up front: two processes writing the same
                # store wait for each other (busy timeout) instead of failing on upgrade.
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.execute(
                        "INSERT INTO span_batches (first_end_ns, last_end_ns, resource, spans) "
                        "VALUES (?, ?, ?, ?)",
                        batch,
                    )
                    for start in range(0, len(run_rows), _RUNS_PER_INSERT):
                        chunk = run_rows[start : start + _RUNS_PER_INSERT]
                        db.execute(_insert_runs(len(chunk)), list(chain.from_iterable(chunk)))
                    if self._exports % self.prune_every == 0:
                        self._prune(db)
                except BaseException:
                    _rollback(db)
                    raise
                db.execute("COMMIT")
            except (sqlite3.Error, OSError) as exc:
                # Tracing must never break a run: report it and let the processor go on.
                logger.warning("could not store %d spans in %s: %s", len(spans), self.path, exc)
                return SpanExportResult.FAILURE
            self._exports += 1
        return SpanExportResult.SUCCESS

    def rows_for(
        self, spans: Sequence[ReadableSpan]
    ) -> tuple[tuple[int, int, str, str], list[tuple[Any, ...]]]:
        """The ``span_batches`` row and the ``runs`` rows that `export` writes for `spans`."""
        rows, encoded = _encode_spans(spans)
        ends = [row[4] for row in rows]
        resource = self._resource_json(spans[0].resource)
        batch = (min(ends), max(ends), resource, encoded.decode())
        run_rows = [
            run for row in rows if sc.RUN_ID in row[7] and (run := _run_row(row)) is not None
        ]
        return batch, run_rows

    def prune(self) -> int:
        """Apply retention now; returns how many runs were deleted."""
        with self._lock:
            if self._closed:
                return 0
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                deleted = self._prune(db)
            except BaseException:
                _rollback(db)
                raise
            db.execute("COMMIT")
            return deleted

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing to flush: every `export` has committed before it returns."""
        return True

    def shutdown(self) -> None:
        """Close the database; later exports fail (as the SDK expects) instead of reopening."""
        with self._lock:
            self._closed = True
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # -- internals (called with the lock held) ----------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = _connect(self.path, create=True)
            # 16 MB rather than SQLite's 2 MB, which holds only ~30 of the store's 64 KB
            # pages: the runs table and its index stay cached between writes.
            self._connection.execute("PRAGMA cache_size = -16384")
        return self._connection

    def _prune(self, db: sqlite3.Connection) -> int:
        """Delete runs beyond the limits, then the span batches that ended before them.

        Runs are ordered by start time, so one boundary serves both limits. Every span of a
        run kept ends after that run started, so a batch whose last span ended before the
        boundary holds none of them; a batch that straddles it goes at a later prune, and
        traces without a run (a process killed before its root span ended) go once they are
        older than the boundary too. Both deletes are index ranges over what goes, not scans
        of what stays.
        """
        boundary = 0
        if self.keep_days:
            boundary = time.time_ns() - int(self.keep_days * 86_400 * 1e9)
        if self.keep_runs:
            row = db.execute(
                "SELECT start_ns FROM runs ORDER BY start_ns DESC LIMIT 1 OFFSET ?",
                (self.keep_runs - 1,),
            ).fetchone()
            if row is not None:
                boundary = max(boundary, row[0])
        if not boundary:
            return 0
        deleted = db.execute("DELETE FROM runs WHERE start_ns < ?", (boundary,)).rowcount
        # A batch that ended before the oldest run kept started holds none of its spans.
        db.execute("DELETE FROM span_batches WHERE last_end_ns < ?", (boundary,))
        return deleted

    def _resource_json(self, resource: Resource) -> str:
        cached = self._resource
        if cached is None or cached[0] is not resource:
            cached = (resource, _dumps(_clean(resource.attributes)).decode())
            self._resource = cached
        return cached[1]


def _run_row(row: SpanRow) -> tuple[Any, ...] | None:
    """The runs-table row for a top-level run's root span; None for any other span."""
    (trace_id, span_id, _), name, _, start, end, code, _, attributes, _ = row
    run_id = attributes.get(sc.RUN_ID)
    if run_id is None or attributes.get(sc.RUN_NESTED):
        return None
    status = attributes.get(sc.RUN_STATUS)
    if status is None:
        status = "failed" if code == StatusCode.ERROR.value else "ok"
    batch_index = attributes.get(sc.BATCH_INDEX)
    return (
        str(run_id),
        trace_id,
        format(span_id, "016x"),
        str(attributes.get(sc.WORKFLOW_NAME, name.removeprefix(f"{sc.OP_WORKFLOW} "))),
        _str_or_none(attributes.get(sc.WORKFLOW_VERSION)),
        start,
        end,
        str(status),
        _int(attributes.get(sc.USAGE_INPUT_TOKENS)),
        _int(attributes.get(sc.USAGE_OUTPUT_TOKENS)),
        _float(attributes.get(sc.COST_USD)),
        _int(attributes.get(sc.ESCALATION_COUNT)),
        bool(attributes.get(sc.SIMULATED, False)),
        batch_index if isinstance(batch_index, int) else None,
    )


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _rollback(db: sqlite3.Connection) -> None:
    # SQLite rolls back by itself on some errors (a full disk): a second ROLLBACK would fail
    # and hide the error that matters.
    if db.in_transaction:
        db.execute("ROLLBACK")


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    # Autocommit mode with explicit BEGIN/COMMIT: exactly one transaction per batch.
    connection = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    try:
        # A reader leaves a store as it is; it creates the tables only in a file that has
        # none (so that its queries find empty tables rather than fail).
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise MicroagentsError(
                f"the trace store {path} was written by a newer microagents (format "
                f"{version}; this version reads format {SCHEMA_VERSION}): upgrade microagents, "
                "or set MICROAGENTS_HOME to keep this version's traces elsewhere"
            )
        if create or version != SCHEMA_VERSION:
            # Big pages for a new store (only possible before its first table and WAL mode):
            # a batch is one ~1 MB value, which SQLite writes ~4x faster as 64 KB overflow
            # pages than as 4 KB ones.
            connection.execute("PRAGMA page_size = 65536")
            connection.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across application crashes in WAL mode; only a power loss
            # can lose the last transactions: fine for traces, and much faster than FULL.
            connection.execute("PRAGMA synchronous=NORMAL")
            _upgrade(connection)
    except BaseException:
        connection.close()
        raise
    return connection


def _upgrade(connection: sqlite3.Connection) -> None:
    """Create the tables, or bring a store of an older format up to this one, in one
    transaction (a second process doing the same waits, then finds nothing left to do)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version != SCHEMA_VERSION:
            carried = take_old_spans(connection, version)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.executemany(
                "INSERT INTO span_batches (first_end_ns, last_end_ns, resource, spans) "
                "VALUES (?, ?, ?, ?)",
                carried,
            )
    except BaseException:
        _rollback(connection)
        raise
    connection.execute("COMMIT")


# -- reading -------------------------------------------------------------------------------

_STATUS_ALIASES = {"ok": "ok", "failed": "failed", "error": "failed"}
_HEX = re.compile(r"[0-9a-fA-F]{1,32}")


class TraceStore:
    """Reads runs and traces back from the embedded trace store.

    ```python
    store = TraceStore()
    for run in store.list_runs(status="failed", limit=10):
        spans = store.get_trace(run.run_id)
    ```
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_trace_path()

    def list_runs(
        self, workflow: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """The newest runs first, optionally of one workflow or one status (``error`` is
        accepted for ``failed``)."""
        clauses: list[str] = []
        params: list[Any] = []
        if workflow is not None:
            clauses.append("workflow = ?")
            params.append(workflow)
        if status is not None:
            if status not in _STATUS_ALIASES:
                raise MicroagentsError(f"unknown run status {status!r}; use ok or failed")
            clauses.append("status = ?")
            params.append(_STATUS_ALIASES[status])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read() as db:
            if db is None:
                return []
            rows = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs {where} "
                "ORDER BY start_ns DESC, run_id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_run_record(row) for row in rows]

    def count_runs(self) -> int:
        """How many runs the store holds."""
        with self._read() as db:
            return 0 if db is None else int(db.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def get_run(self, run_id_or_trace_id: str) -> RunRecord | None:
        """The run a reference names; None when it names a trace that has no (finished) run.

        Raises `TraceNotFoundError` when it names nothing, or a prefix that is ambiguous.
        """
        with self._read() as db:
            run, _ = self._resolve(db, run_id_or_trace_id)
        return run

    def get_trace(self, run_id_or_trace_id: str) -> list[SpanRecord]:
        """The spans of a run (its root span and everything under it) in start order.

        Accepts a run id, a trace id, or an unambiguous prefix of either (run ids first).
        Raises `TraceNotFoundError` otherwise.
        """
        with self._read() as db:
            run, trace_id = self._resolve(db, run_id_or_trace_id)
            assert db is not None  # _resolve raised if the store does not exist
            if run is not None:
                # Every span of the run ended between its start and its end (with a minute
                # of slack for a wall clock set back during the run); of those batches, only
                # the ones whose text names the trace are decoded.
                rows = db.execute(
                    "SELECT spans, resource FROM span_batches "
                    "WHERE last_end_ns >= ? AND first_end_ns <= ? AND instr(spans, ?) > 0",
                    (
                        run.start_ns - _CLOCK_SLACK_NS,
                        run.end_ns + _CLOCK_SLACK_NS,
                        f'["{trace_id}"',
                    ),
                ).fetchall()
            else:
                rows = _batches_mentioning(db, f'["{trace_id}"')
        by_id: dict[str, SpanRecord] = {}
        for encoded, resource in rows:
            resource_attributes = json.loads(resource)
            for row in orjson.loads(encoded):
                if row[0][0] == trace_id:
                    span = _span_record(row, resource_attributes)
                    by_id[span.span_id] = span  # an export retried after a failure repeats
        spans = list(by_id.values())
        if run is not None:
            spans = _subtree(spans, run.span_id)
        # Parents before children when they start in the same nanosecond.
        spans.sort(key=lambda s: (s.start_ns, -s.end_ns))
        return spans

    # -- internals --------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection | None]:
        if not self.path.exists():
            # Reading must not create a store (nor its folder) as a side effect.
            yield None
            return
        try:
            with closing(_connect(self.path, create=False)) as db:
                yield db
        except sqlite3.DatabaseError as exc:
            raise MicroagentsError(
                f"cannot read the trace store {self.path}: {exc}; move or delete the file "
                "and the next run starts a new one"
            ) from exc

    def _resolve(
        self, db: sqlite3.Connection | None, reference: str
    ) -> tuple[RunRecord | None, str]:
        reference = reference.strip()
        if db is None or not reference:
            raise self._not_found(reference, db)
        # substr() rather than LIKE: run ids are case-sensitive and may contain '_' or '%'.
        rows = db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE substr(run_id, 1, ?) = ? "
            "ORDER BY run_id = ? DESC, start_ns DESC LIMIT 6",
            (len(reference), reference, reference),
        ).fetchall()
        runs = [_run_record(row) for row in rows]
        exact = [run for run in runs if run.run_id == reference]
        if exact or len(runs) == 1:
            run = (exact or runs)[0]
            return run, run.trace_id
        if runs:
            shown = ", ".join(run.run_id for run in runs[:5])
            raise TraceNotFoundError(
                f"run id prefix '{reference}' is ambiguous: it matches {shown}"
                f"{' and more' if len(runs) > 5 else ''}; give more of the id"
            )
        trace_ids: list[str] = []
        if _HEX.fullmatch(reference):
            low = reference.lower()
            trace_ids = [
                row[0]
                for row in db.execute(
                    # A range on the index: every hex id with this prefix sorts in
                    # [low, low + 'g'), since 'g' sorts after every hex digit.
                    "SELECT DISTINCT trace_id FROM runs "
                    "WHERE trace_id >= ? AND trace_id < ? LIMIT 2",
                    (low, low + "g"),
                )
            ]
            if not trace_ids:  # a trace with no finished run: look through the spans
                trace_ids = _trace_ids_with_prefix(db, low)
        if len(trace_ids) == 1:
            runs_in_trace = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE trace_id = ?", (trace_ids[0],)
            ).fetchall()
            # One run per trace is the rule; a joined caller's trace may hold several.
            only = _run_record(runs_in_trace[0]) if len(runs_in_trace) == 1 else None
            return only, trace_ids[0]
        if trace_ids:
            raise TraceNotFoundError(
                f"trace id prefix '{reference}' is ambiguous; give more of the id"
            )
        raise self._not_found(reference, db)

    def _not_found(self, reference: str, db: sqlite3.Connection | None) -> TraceNotFoundError:
        empty = db is None or db.execute("SELECT 1 FROM span_batches LIMIT 1").fetchone() is None
        if empty:
            return TraceNotFoundError(
                f"no run '{reference}': the trace store {self.path} is empty; run a workflow "
                "first (set MICROAGENTS_HOME if its traces were stored elsewhere)"
            )
        return TraceNotFoundError(
            f"no run or trace '{reference}' in the trace store {self.path}; "
            "`microagents trace list` shows the runs it has"
        )


def _run_record(row: Sequence[Any]) -> RunRecord:
    values = list(row)
    values[12] = bool(values[12])
    return RunRecord(*values)


_CLOCK_SLACK_NS = 60 * 10**9


def _batches_mentioning(db: sqlite3.Connection, text: str) -> list[tuple[str, str]]:
    """The span batches whose JSON contains `text` (a scan: for traces with no run)."""
    return db.execute(
        "SELECT spans, resource FROM span_batches WHERE instr(spans, ?) > 0", (text,)
    ).fetchall()


def _trace_ids_with_prefix(db: sqlite3.Connection, prefix: str) -> list[str]:
    """Up to two trace ids starting with `prefix` among the stored spans."""
    found: set[str] = set()
    for encoded, _ in _batches_mentioning(db, f'["{prefix}'):
        found.update(row[0][0] for row in orjson.loads(encoded) if row[0][0].startswith(prefix))
        if len(found) > 1:
            break
    return sorted(found)[:2]


_KIND_NAMES = {kind.value: kind.name for kind in SpanKind}
_STATUS_NAMES = {code.value: code.name for code in StatusCode}


def _span_record(row: list[Any], resource: Mapping[str, Any]) -> SpanRecord:
    (trace_id, span_id, parent_id), name, kind, start, end, code, message, attributes, events = row
    return SpanRecord(
        trace_id=trace_id,
        span_id=format(span_id, "016x"),
        parent_span_id=None if parent_id is None else format(parent_id, "016x"),
        name=name,
        kind=_KIND_NAMES.get(kind, str(kind)),
        start_ns=start,
        end_ns=end,
        status_code=_STATUS_NAMES.get(code, str(code)),
        status_message=message,
        attributes=attributes,
        events=tuple(SpanEvent(e["name"], e["time_ns"], e.get("attributes", {})) for e in events),
        resource=resource,
    )


def _subtree(spans: list[SpanRecord], root_span_id: str) -> list[SpanRecord]:
    children: dict[str | None, list[SpanRecord]] = {}
    for span in spans:
        children.setdefault(span.parent_span_id, []).append(span)
    found = [s for s in spans if s.span_id == root_span_id]
    index = 0
    while index < len(found):
        found.extend(children.get(found[index].span_id, ()))
        index += 1
    return found
