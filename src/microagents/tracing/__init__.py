"""Tracing: one OpenTelemetry span per hop (run, node, model call, tool call) with the GenAI
semantic conventions, exported to the embedded trace store and any OTLP viewer.

Imports: `results`, `models`, `graph` and below; the runtime calls it, never the reverse."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._processor import StoreSpanProcessor as StoreSpanProcessor
    from ._setup import default_tracing as default_tracing
    from ._setup import flush_traces as flush_traces
    from ._store import SqliteSpanExporter as SqliteSpanExporter
    from ._store import TraceStore as TraceStore
    from ._tracing import TracedModel as TracedModel
    from ._tracing import Tracing as Tracing

_EXPORTS = {
    # setting it up
    "default_tracing": "._setup",
    "flush_traces": "._setup",
    "Tracing": "._tracing",
    # the model-call spans
    "TracedModel": "._tracing",
    # the embedded store
    "SqliteSpanExporter": "._store",
    "StoreSpanProcessor": "._processor",
    "TraceStore": "._store",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
