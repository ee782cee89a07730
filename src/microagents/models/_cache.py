"""An opt-in exact-match response cache in SQLite, as a wrapper around any `Model`.

Keyed by a stable hash of everything that shapes the answer (model, system, messages, tools,
tool choice, limits); only deterministic requests (temperature 0) are cached. A hit costs
nothing, is marked `cached`, and makes no call. SQLite work runs in a worker thread so that
the event loop never blocks on disk.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import anyio.to_thread

from .._sqlite import StoreConnection
from ._protocol import (
    ContentBlock,
    Model,
    ModelRequest,
    ModelResponse,
    StreamEvent,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    aclose_inner,
    stream_of,
)

EVICT_EVERY = 100

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    response TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_created ON responses (created);
"""


def request_key(request: ModelRequest) -> str:
    """A stable hash of the parts of a request that decide its answer."""
    canonical = {
        "model": request.model,
        "system": request.system,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "tools": request.tools,
        "tool_choice": request.tool_choice,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "stop_sequences": request.stop_sequences,
        "output_format": request.output_format,
        "effort": request.effort,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


class CachedModel:
    """Answers repeated temperature-0 requests from SQLite instead of calling `inner`.

    ```python
    model = CachedModel(AnthropicModel(), path=".microagents/cache.sqlite3", ttl=86400)
    ```
    """

    def __init__(
        self,
        inner: Model,
        path: Path | str,
        *,
        ttl: float | None = 7 * 24 * 3600,
        max_entries: int = 100_000,
    ) -> None:
        self.inner = inner
        self.path = Path(path)
        self.ttl = ttl
        self.max_entries = max_entries
        self._store = StoreConnection(self.path, SCHEMA)
        self.hits = 0
        self.misses = 0
        self._puts = 0

    async def complete(self, request: ModelRequest) -> ModelResponse:
        if request.temperature != 0:
            return await self.inner.complete(request)
        key = request_key(request)
        found = await anyio.to_thread.run_sync(self._get, key)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        response = await self.inner.complete(request)
        if response.stop_reason != "max_tokens" and not response.simulated:
            await anyio.to_thread.run_sync(self._put, key, response)
        return response

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Streams are not cached: a listener wants the text as a model produces it."""
        return stream_of(self.inner, request)

    async def aclose(self) -> None:
        """Close the database and the wrapped model."""
        self.close()
        await aclose_inner(self.inner)

    def close(self) -> None:
        self._store.close()

    # -- storage (in a worker thread) -------------------------------------------------------

    def put_many(self, answers: Sequence[tuple[str, ModelResponse]]) -> None:
        """Cache answers got elsewhere (a Message Batch's results), by key (`request_key`).
        Blocking: call it from a worker thread."""
        for key, response in answers:
            if response.stop_reason != "max_tokens" and not response.simulated:
                self._put(key, response)

    def _get(self, key: str) -> ModelResponse | None:
        with self._store as db:
            row = db.execute(
                "SELECT created, response FROM responses WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        created, text = row
        if self.ttl is not None and time.time() - created > self.ttl:
            return None
        return replace(_decode(json.loads(text)), cached=True, cost_usd=0.0, latency=0.0)

    def _put(self, key: str, response: ModelResponse) -> None:
        with self._store as db:
            db.execute(
                "INSERT OR REPLACE INTO responses (key, created, response) VALUES (?, ?, ?)",
                (key, time.time(), json.dumps(_encode(response))),
            )
            self._puts += 1
            if self._puts % EVICT_EVERY:
                return
            # Counting is a scan: check the bound every EVICT_EVERY writes, not on each one.
            (count,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
            if count > self.max_entries:
                db.execute(
                    "DELETE FROM responses WHERE key IN "
                    "(SELECT key FROM responses ORDER BY created LIMIT ?)",
                    (count - self.max_entries,),
                )


def _plain(value: Any) -> Any:
    """JSON for the request's dataclasses and read-only mappings (no deep copies)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} cannot be part of a cache key")


def _encode(response: ModelResponse) -> dict[str, Any]:
    return {
        "content": [asdict(b) for b in response.content],
        "stop_reason": response.stop_reason,
        "usage": asdict(response.usage),
        "model": response.model,
        "request_id": response.request_id,
    }


def _decode(data: dict[str, Any]) -> ModelResponse:
    content: list[ContentBlock] = []
    for block in data["content"]:
        kind = block.pop("type")
        if kind == "text":
            content.append(TextBlock(**block))
        elif kind == "tool_use":
            content.append(ToolUseBlock(**block))
        else:
            content.append(ToolResultBlock(**block))
    return ModelResponse(
        content=tuple(content),
        stop_reason=data["stop_reason"],
        usage=Usage(**data["usage"]),
        model=data["model"],
        request_id=data["request_id"],
    )
