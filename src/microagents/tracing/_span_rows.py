"""The row a span becomes in the embedded trace store, and how our own spans give it in C.

A span row is a tuple (JSON array once stored)::

    ((trace_id_hex, span_id, parent_span_id or None), name, kind, start_ns, end_ns,
     status_code, status_message or None, attributes, events)

with the kind and status code as the numbers OpenTelemetry gives them (`SpanKind.CLIENT` is
3, `StatusCode.ERROR` is 2) and each event as ``{name, time_ns, attributes}``. The tracer's
spans keep exactly these fields (see `_tracing._LightSpan`), so the exporter reads a row
with one `attrgetter` call, in C, instead of ten property calls.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

SpanRow = tuple[
    tuple[str, int, int | None],
    str,
    int,
    int,
    int,
    int,
    str | None,
    dict[str, Any],
    Any,
]

light_span_row = attrgetter(
    "_ids",
    "_name",
    "_kind",
    "_start_time",
    "_end_time",
    "_status_code",
    "_status_message",
    "_attributes",
    "_events",
)
"""The row of one of the tracer's own spans (its kind is a `SpanKind`, which orjson writes
as its number; its events are SDK `Event`s, which the encoder turns into objects)."""
