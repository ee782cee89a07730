"""Tools every project has, without registering anything."""

from __future__ import annotations

import json
import time
from typing import Any

from .._settings import microagents_home
from ._text import TEXT_TOOLS
from ._tools import Tool, tool


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


BUILTIN_TOOLS: tuple[Tool, ...] = (enqueue_for_review, *TEXT_TOOLS)
