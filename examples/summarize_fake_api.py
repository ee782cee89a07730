"""Summarise a long sample document through the real SDK against the loopback fake API.

The fake answers as a careful extractive summariser would: a chunk's summary keeps each
meeting's header, every ``RESOLVED (K-NN)`` line verbatim and each ``Agreed:`` line; a merge
keeps the resolutions verbatim and condenses everything else into one line of counts; the
faithfulness check rejects a merge whose resolutions are not word for word in its sources. On
Haiku, a merge that holds resolution K-05 gets its figure wrong (the kind of slip a small model
makes): the check rejects it and the merge is done again on Sonnet. Tokens are 4 characters
each, prices are list prices. Never the real API: no key, no cost.

Run:  python examples/summarize_fake_api.py [DOCUMENT] [extra `microagents run` options]
      (DOCUMENT: a name in examples/documents/, default nordvik_minutes_2025)
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

from microagents.cli import main as microagents
from microagents.testing import FakeAnthropicServer, ReceivedRequest, Reply, ServerRateLimits

HERE = Path(__file__).resolve().parent
DOCUMENTS = HERE / "documents"
RESOLVED = re.compile(r"RESOLVED \(K-\d+\): [^\n]*?\.(?=\s|$)")
MEETING = re.compile(r"^Meeting (\d+) of the [^,\n]+, (\d+ \w+ \d{4})$", re.M)
AGREED = re.compile(r"^Agreed: [^\n]*$", re.M)
SPAN = re.compile(r"^- Meetings? (\d+)(?:[–-](\d+))?")
ROUTINE = re.compile(r"(\d+) routine items? agreed")
SLIP = "RESOLVED (K-05)"
ACCOUNT = "".join(
    f"[tiers.{tier}]\nrpm = 100000\ninput_tpm = 100000000\noutput_tpm = 10000000\n"
    for tier in ("haiku", "sonnet", "opus")
)


def between(text: str, tag: str) -> str:
    found = re.search(rf"<{tag}[^>]*>\n(.*?)\n</{tag}>", text, re.S)
    assert found is not None, f"no <{tag}> in the request"
    return found.group(1)


def summarize(chunk: str) -> str:
    """A chunk's key points: meeting headers, resolutions verbatim, agreed items."""
    points: list[tuple[int, str]] = []
    for meeting in MEETING.finditer(chunk):
        points.append((meeting.start(), f"- Meeting {meeting[1]} ({meeting[2]})."))
    points += [(m.start(), f"- {m[0]}") for m in RESOLVED.finditer(chunk)]
    points += [(m.start(), f"- {m[0]}") for m in AGREED.finditer(chunk)]
    return "\n".join(point for _, point in sorted(points)) or "- (no decisions in this part)"


def merge(summaries: list[str], *, slip: bool) -> str:
    """The resolutions verbatim (once each, in order), the rest as one line of counts."""
    resolutions: list[str] = []
    first = last = None
    routine = 0
    for summary in summaries:
        for line in summary.splitlines():
            if line.startswith("- RESOLVED"):
                if line not in resolutions:
                    resolutions.append(line)
            elif span := SPAN.match(line):
                low, high = int(span[1]), int(span[2] or span[1])
                first = low if first is None else min(first, low)
                last = high if last is None else max(last, high)
                if counted := ROUTINE.search(line):
                    routine += int(counted[1])
            elif line.startswith("- Agreed:"):
                routine += 1
    if slip:  # Haiku garbles one figure
        resolutions = [
            re.sub(r"(NOK|GBP) ([\d.,]+)", r"\1 9.9", r) if SLIP in r else r for r in resolutions
        ]
    head = f"- Meetings {first}–{last}: {routine} routine items agreed." if first else ""
    return "\n".join(([head] if head else []) + resolutions)


def check(sources: str, summary: str) -> Reply:
    """Faithful when every resolution is word for word in the sources, and none is lost."""
    claimed = set(RESOLVED.findall(summary))
    given = set(RESOLVED.findall(sources))
    problems = [f"'{c[:40]}…' is not word for word in the sources" for c in claimed - given]
    problems += [f"'{g[:40]}…' is missing" for g in given - claimed]
    return Reply.structured(
        {"faithful": not problems, "problems": sorted(problems), "confidence": 0.95}
    )


def answer(request: ReceivedRequest) -> Reply:
    text = request.messages_text
    if "<chunk" in text:
        return Reply.structured({"summary": summarize(between(text, "chunk"))})
    if "<sources>" in text:
        return check(between(text, "sources"), between(text, "summary"))
    summaries = re.findall(r"<summary index=\"\d+\">\n(.*?)\n</summary>", text, re.S)
    slip = "haiku" in request.model and any(SLIP in s for s in summaries)
    return Reply.structured({"summary": merge(summaries, slip=slip)})


def run(name: str, extra: list[str]) -> int:
    """`microagents run` of one document against a fresh fake API; its exit code."""
    document = (DOCUMENTS / f"{name}.txt").read_text("utf-8")
    unlimited = ServerRateLimits(10**9, 10**12, 10**12)  # an account far above this run
    # Paths given here are read from where the script was started.
    extra = [
        str(Path(a).resolve()) if b == "--out" else a
        for b, a in zip(["", *extra], extra, strict=False)
    ]
    os.environ.setdefault("MICROAGENTS_HOME", str(Path(".microagents").resolve()))
    started_in = Path.cwd()
    with (
        tempfile.TemporaryDirectory() as folder,
        FakeAnthropicServer(rate_limits=unlimited) as server,
    ):
        server.on(answer)
        os.environ["ANTHROPIC_API_KEY"] = "fake-key"
        os.environ["ANTHROPIC_BASE_URL"] = server.base_url
        items = Path(folder) / "document.jsonl"
        items.write_text(json.dumps({"id": name, "document": document}) + "\n", "utf-8")
        # The client's rate limiter starts from the first usage tier's limits until the API's
        # headers raise them; tell it the account's limits up front, as a project would.
        (Path(folder) / "microagents.toml").write_text(ACCOUNT, "utf-8")
        args = ["run", str(HERE.parent / "workflows" / "summarize_document.yaml")]
        args += ["--agents", str(HERE.parent / "agents"), "--input-file", str(items), *extra]
        os.chdir(folder)
        try:
            microagents(args)
        except SystemExit as done:
            code = int(done.code or 0)
        finally:
            os.chdir(started_in)
        # Direct calls' answers, and (with --batch-api) the messages in batch results.
        answers = [r.response for r in server.requests if r.path == "/v1/messages"]
        answers += [
            line["result"]["message"]
            for batch in server.batches
            for line in batch.results.values()
            if line["result"]["type"] == "succeeded"
        ]
        largest = max((a["usage"]["input_tokens"] + a["usage"]["cache_read_input_tokens"]
                       + a["usage"]["cache_creation_input_tokens"]
                       for a in answers if a), default=0)  # fmt: skip
        print(
            f"fake API: {server.paid_calls} paid calls, {server.paid_batch_requests} paid batch "
            f"requests, the largest {largest:,} input tokens",
            file=sys.stderr,
        )
        return code


if __name__ == "__main__":
    names = [a for a in sys.argv[1:2] if not a.startswith("-")]
    sys.exit(run(names[0] if names else "nordvik_minutes_2025", sys.argv[1 + len(names) :]))
