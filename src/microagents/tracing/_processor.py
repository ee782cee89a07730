"""The span processor in front of the embedded trace store: a bounded queue and one writer
thread, so that storing spans never happens on the hot path.

It does what the SDK's `BatchSpanProcessor` does, for less per span: a run's hops reach it
with one deque append each (the SDK's processor also checks the process id, updates metrics
and takes a lock per span), and it writes when enough spans have queued or a second has
passed.

    provider.add_span_processor(StoreSpanProcessor(SqliteSpanExporter()))
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ._store import SqliteSpanExporter

logger = logging.getLogger("microagents.trace_store")

DEFAULT_QUEUE_SIZE = 16_384
"""Spans held at most (so a stalled disk cannot eat memory): enough that a burst of fast
runs does not drop spans before the writer catches up."""
DEFAULT_WAKE_AFTER = 256
"""The writer wakes as soon as this many spans have queued: few enough that they are still
in the CPU's caches (waking after 2,048 cost the runs ~15% more than after 256)."""
DEFAULT_MAX_BATCH = 4_096
"""Spans per write at most. The writer takes everything queued, up to this: when the runs
keep the interpreter busy, each SQLite call costs the writer a wait for the GIL (up to the
switch interval, 5 ms), so it has to write more per transaction to keep up."""
DEFAULT_INTERVAL_S = 1.0
"""The longest a span waits in the queue when few arrive."""


class StoreSpanProcessor(SpanProcessor):
    """Queues finished spans (bounded; when full, new spans are dropped and counted in
    `dropped`) and stores them from a background thread. Nothing is lost on a normal exit:
    the provider's shutdown (at exit) and `force_flush` (on Ctrl-C) write what is queued."""

    def __init__(
        self,
        exporter: SqliteSpanExporter,
        *,
        max_queue_size: int = DEFAULT_QUEUE_SIZE,
        wake_after: int = DEFAULT_WAKE_AFTER,
        max_batch: int = DEFAULT_MAX_BATCH,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.exporter = exporter
        self.max_queue_size = max_queue_size
        self.wake_after = wake_after
        self.max_batch = max_batch
        self.interval_s = interval_s
        self.dropped = 0
        self._shutdown = False
        self._start_writer()
        if hasattr(os, "register_at_fork"):
            # A forked child gets an empty queue and its own writer (threads do not fork).
            this = weakref.WeakMethod(self._start_writer)
            os.register_at_fork(after_in_child=lambda: (method := this()) and method())

    def _start_writer(self) -> None:
        self._queue: deque[ReadableSpan] = deque()
        self._wake = threading.Event()
        self._writing = threading.Lock()
        self._writer = threading.Thread(
            target=self._write_forever, name="microagents-trace-store", daemon=True
        )
        self._writer.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        """Queue a span the SDK ended (the tracer's own spans come through `enqueue`)."""
        context = span.context
        if context is not None and context.trace_flags.sampled:
            self.enqueue(span)

    def enqueue(self, span: ReadableSpan) -> None:
        """Queue a sampled span: the hot path, a few list operations."""
        queue = self._queue
        if len(queue) >= self.max_queue_size:
            self._drop()
            return
        queue.append(span)
        if len(queue) == self.wake_after:
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Store everything queued now, in the calling thread."""
        if self._shutdown:
            return False
        self._write_queued()
        return True

    def shutdown(self) -> None:
        """Store what is queued, stop the writer and close the store."""
        if self._shutdown:
            return
        self._shutdown = True
        self._wake.set()
        self._writer.join(timeout=30)
        self._write_queued()
        self.exporter.shutdown()

    # -- the writer -------------------------------------------------------------------------

    def _write_forever(self) -> None:
        while not self._shutdown:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self._write_queued()

    def _write_queued(self) -> None:
        with self._writing:
            queue = self._queue
            while queue:
                take = queue.popleft
                batch = [take() for _ in range(min(len(queue), self.max_batch))]
                try:
                    self.exporter.export(batch)
                except Exception:  # tracing must never take the process down
                    logger.exception("could not store %d spans", len(batch))

    def _drop(self) -> None:
        self.dropped += 1
        if self.dropped in (1, 1_000) or self.dropped % 100_000 == 0:
            logger.warning(
                "the trace store's queue is full (%d spans): %d spans dropped so far; its "
                "writer cannot keep up with the runs (docs/tracing.md: sample fewer runs)",
                self.max_queue_size,
                self.dropped,
            )
