"""Run the moderation batch through the real SDK against the loopback fake API, to measure it.

The fake answers each post with its label from examples/moderation.jsonl, unsure (confidence
0.62) on Haiku for a third of the hard cases (a fixed third: see `unsure`), as a small model
would be; it counts tokens (4 characters
a token), applies each model's real prompt-caching minimum, and the run is priced at list
prices. Never the real API: no key, no cost.

Run:  python examples/moderation_fake_api.py [extra `microagents run` options]
      (`--batch-api` runs it in Message Batches mode; the fake answers batches at once)
"""

from __future__ import annotations

import json
import os
import re
import sys
import zlib
from pathlib import Path

from microagents.cli import main as microagents
from microagents.graph._text import normalize_text
from microagents.testing import FakeAnthropicServer, ReceivedRequest, Reply, ServerRateLimits

HERE = Path(__file__).resolve().parent
SAMPLES = HERE / "moderation.jsonl"
SEVERITY = ["none", "low", "medium", "high"]
LABELS = {
    normalize_text(post["text"]): post["label"]
    for post in map(json.loads, SAMPLES.read_text("utf-8").splitlines())
}


def post_of(request: ReceivedRequest) -> str:
    """The post a moderator request asks about."""
    found = re.search(r"<post>\n(.*?)\n</post>", request.messages_text, re.S)
    assert found is not None, "not a moderator request"
    return found.group(1)


def unsure(text: str) -> bool:
    """Whether Haiku doubts this (normalised) post: a fixed third of the hard cases."""
    return bool(LABELS[text]["hard"]) and zlib.crc32(text.encode()) % 3 == 0


def answer(request: ReceivedRequest) -> Reply:
    """The labelled answer, at confidence 0.62 when Haiku is `unsure`, else 0.93."""
    text = post_of(request)
    label = LABELS[text]
    categories = label["categories"]
    severity = max((c["severity"] for c in categories), key=SEVERITY.index, default="none")
    return Reply.structured(
        {
            "action": label["action"],
            "severity": severity,
            "categories": categories,
            "confidence": 0.62 if "haiku" in request.model and unsure(text) else 0.93,
            "quote": text[:60] if categories else "",
            "reason": "the labelled decision",
        }
    )


def run(extra: list[str]) -> int:
    """`microagents run` of the whole sample file against a fresh fake API; its exit code."""
    unlimited = ServerRateLimits(10**9, 10**12, 10**12)  # an account far above this batch
    with FakeAnthropicServer(rate_limits=unlimited) as server:
        server.on(answer)
        os.environ["ANTHROPIC_API_KEY"] = "fake-key"
        os.environ["ANTHROPIC_BASE_URL"] = server.base_url
        args = ["run", str(HERE.parent / "workflows" / "content_moderation.yaml")]
        args += ["--input-file", str(SAMPLES), *extra]
        try:
            microagents(args)
        except SystemExit as done:
            code = int(done.code or 0)
        batch = server.paid_batch_requests
        print(
            f"fake API: {server.paid_calls} paid calls"
            + (f", {batch} paid batch requests in {len(server.batches)} batches" if batch else ""),
            file=sys.stderr,
        )
        return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
