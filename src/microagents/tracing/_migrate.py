"""Bringing a trace store written by an older microagents up to the current format.

Format 1 kept one row per span (table ``spans``), format 2 one row per trace and export
(``span_batches`` with a trace id column, span ids in hex and kinds and status codes by
name). Both become format-3 span batches (see `_trace_store.SCHEMA`); the runs table has
not changed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

import orjson
from opentelemetry.trace import SpanKind, StatusCode

Batch = tuple[int, int, str, str]
"""A format-3 ``span_batches`` row: first end, last end, resource, spans."""

_KINDS = {kind.name: kind.value for kind in SpanKind}
_CODES = {code.name: code.value for code in StatusCode}


def take_old_spans(connection: sqlite3.Connection, version: int) -> list[Batch]:
    """The spans of a format-1 or format-2 store as format-3 batches, with their old table
    dropped (inside the caller's transaction); nothing for any other format."""
    if version == 1:
        rows = connection.execute(
            "SELECT trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, "
            "status_code, status_message, attributes, events, resource FROM spans"
        ).fetchall()
        groups: dict[tuple[str, str], list[list[Any]]] = {}
        for trace_id, *span, attributes, events, resource in rows:
            array = [*span, json.loads(attributes), json.loads(events)]
            groups.setdefault((trace_id, resource), []).append(array)
        connection.execute("DROP TABLE spans")
        return [_batch(trace, resource, arrays) for (trace, resource), arrays in groups.items()]
    if version == 2:
        old = connection.execute("SELECT trace_id, resource, spans FROM span_batches").fetchall()
        connection.execute("DROP TABLE span_batches")
        return [_batch(trace, resource, json.loads(spans)) for trace, resource, spans in old]
    return []


def _batch(trace_id: str, resource: str, arrays: Iterable[list[Any]]) -> Batch:
    """One batch from format-2 span arrays: (span id, parent id, name, kind, start, end,
    status code, status message, attributes, events), ids in hex, kind and code by name."""
    rows = [
        [
            [trace_id, int(span_id, 16), int(parent_id, 16) if parent_id else None],
            name,
            _KINDS.get(kind, SpanKind.INTERNAL.value),
            start,
            end,
            _CODES.get(code, StatusCode.UNSET.value),
            message,
            attributes,
            events,
        ]
        for span_id, parent_id, name, kind, start, end, code, message, attributes, events in arrays
    ]
    ends = [row[4] for row in rows] or [0]
    return (min(ends), max(ends), resource, orjson.dumps(rows).decode())
