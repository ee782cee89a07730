"""Tools every project has, without registering anything."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ._tools import Tool, tool


def microagents_home() -> Path:
    """Where embedded stores live: ``$MICROAGENTS_HOME``, default ``./.microagents``."""
    return Path(os.environ.get("MICROAGENTS_HOME", ".microagents"))


@tool(name="review.enqueue")
def enqueue_for_review(item: Any, reason: str = "") -> dict[str, str]:
    """Put an item on the human review queue (a JSONL file under MICROAGENTS_HOME).

    Use it for work an agent should not decide alone: it returns a ticket id to follow up.
    """
    queue = microagents_home() / "review_queue.jsonl"
    queue.parent.mkdir(parents=True, exist_ok=True)
    ticket = f"review-{time.time_ns()}"
    record = {"id": ticket, "reason": reason, "item": item}
    with queue.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    return {"id": ticket, "status": "queued"}


BUILTIN_TOOLS: tuple[Tool, ...] = (enqueue_for_review,)
