"""What the model layer's choices cost: escalation against running everything on Sonnet, and
prompt caching against none. Every figure comes from the loopback fake Anthropic server (its
token counts are one per four characters; its cache applies each model's real minimum prefix)
priced by `genai-prices`: costs, never times, and never the real API.

1. Support triage, 200 tickets: the router is unsure (confidence 0.5) of one ticket in five on
   Haiku and climbs to Sonnet; extractors answer through the answer tool, validators with
   native structured output. Set against the same batch with every tier on Sonnet, and against
   the floor for its escalation rate: every required call paid once, nothing repaired.
2. Prompt caching: 200 inputs of an agent whose instructions (~6,700 tokens) come before its
   first variable, on Haiku 4.5 (which caches from 4,096), at concurrency 8 — with the prompt
   cache against the same run with no cache marks.

    .venv/bin/python -m bench.model_costs [--quick]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

import microagents as ma
from microagents.runtime._batch import run_batch
from microagents.runtime._journal_store import SQLiteJournal
from microagents.testing import FakeAnthropicServer, Reply, ServerRateLimits
from microagents.testing._fake_script import ReceivedRequest

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "sk-bench-not-a-real-key"
UNLIMITED = ma.models.RateLimits(None, None, None)
CATEGORIES = ("billing", "technical", "account", "shipping")
POLICY = "".join(
    f"Rule {i}: a message that mentions topic {i} belongs to queue {i % 5}; quote it.\n"
    for i in range(320)
)


@dataclass(frozen=True, slots=True)
class Outcome:
    items: int
    ok: int
    calls: int
    cost: float
    escalations: int
    cache_hit_rate: float


def _index(request: ReceivedRequest) -> int:
    found = re.search(r"\(ref #(\d+)\)", request.messages_text)
    return int(found.group(1)) if found else 0


def _script(server: FakeAnthropicServer) -> None:
    def route(request: ReceivedRequest) -> Reply:
        index = _index(request)
        unsure = index % 5 == 0 and "haiku" in request.model
        return Reply.structured(
            {
                "category": CATEGORIES[index % 4],
                "confidence": 0.5 if unsure else 0.93,
                "reason": "The ticket asks the queue's team for something it does.",
            }
        )

    def extract(request: ReceivedRequest) -> Reply:
        found = re.search(r"Fields to extract, in this order: (\[.*?\])", request.messages_text)
        fields = json.loads(found.group(1)) if found else []
        record = {name: f"value of {name}" for name in fields}
        answer = {"record": record, "missing": [], "confidence": 0.95}
        return Reply.tool_call("final_answer", answer)

    verdict = {"valid": True, "reasons": [], "confidence": 0.95}
    server.on(route, system_contains="routing step")
    server.on(extract, system_contains="data-extraction step")
    server.on(Reply.structured(verdict), system_contains="strict reviewer")
    server.on(Reply.structured({"queue": 2, "confidence": 0.9}))


def _tiers(everything_on: str | None = None) -> ma.models.TierTable:
    tiers = ma.models.TierTable()
    for name in tiers.names:
        model = tiers.resolve(everything_on).model if everything_on else None
        tiers = tiers.with_tier(name, model=model, limits=UNLIMITED)
    return tiers


def _batch(
    workflow: ma.CompiledWorkflow,
    lines: list[dict[str, Any]],
    tiers: ma.models.TierTable,
    *,
    concurrency: int,
    prompt_cache: bool = True,
) -> Outcome:
    with (
        tempfile.TemporaryDirectory() as folder,
        FakeAnthropicServer(rate_limits=ServerRateLimits(10**9, 10**12, 10**12)) as server,
    ):
        _script(server)
        items = Path(folder) / "items.jsonl"
        items.write_text("".join(json.dumps(line) + "\n" for line in lines))
        model = ma.models.anthropic_model(
            api_key=API_KEY, base_url=server.base_url, tiers=tiers, prompt_cache=prompt_cache
        )

        store = SQLiteJournal(Path(folder) / "journal.sqlite3")

        async def main() -> ma.results.BatchSummary:
            async with ma.Engine(model, tiers=tiers, tracing=None) as engine:
                return await run_batch(
                    engine,
                    workflow,
                    items,
                    Path(folder) / "out.jsonl",
                    concurrency=concurrency,
                    store=store,
                )

        summary = anyio.run(main)
        store.close()
        escalations = sum(e.escalated for e in summary.escalation)
        return Outcome(
            len(lines),
            summary.ok,
            server.paid_calls,
            summary.cost_usd,
            escalations,
            summary.cache_hit_rate,
        )


def triage(items: int) -> dict[str, Any]:
    workflow = ma.Project(ROOT).load_workflow(ROOT / "workflows" / "support_triage.yaml")
    tickets = [
        json.loads(line)["ticket"]
        for line in (ROOT / "examples" / "tickets.jsonl").read_text().splitlines()
        if line.strip()
    ]
    lines = [{"ticket": f"{tickets[i % len(tickets)]} (ref #{i})"} for i in range(items)]
    mixed = _batch(workflow, lines, _tiers(), concurrency=16)
    sonnet = _batch(workflow, lines, _tiers("sonnet"), concurrency=16)
    # The floor: three calls an item (route, extract, check) plus one per escalation, each
    # paid once: the mixed run's own calls when none was repeated or repaired.
    required = 3 * items + mixed.escalations
    print(f"\n## support triage, {items} tickets (fake server, genai-prices list prices)")
    print(f"{'run':<32}{'ok':>6}{'calls':>8}{'escalated':>11}{'cost $':>11}{'÷ Sonnet':>10}")
    for name, outcome in (
        ("haiku first, sonnet on doubt", mixed),
        ("every node on sonnet", sonnet),
    ):
        print(
            f"{name:<32}{outcome.ok:>6}{outcome.calls:>8}{outcome.escalations:>11}"
            f"{outcome.cost:>11.4f}{outcome.cost / sonnet.cost:>10.2f}"
        )
    print(f"required calls at this escalation rate: {required} (paid: {mixed.calls})")
    return {
        "triage_cost_vs_all_sonnet": round(mixed.cost / sonnet.cost, 3),
        "triage_calls_over_required": mixed.calls - required,
        "triage_escalation_rate": round(mixed.escalations / items, 3),
    }


def caching(items: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        spec = ma.AgentSpec(
            name="classifier",
            version="1.0.0",
            description="Sort a ticket into a queue.",
            prompt=POLICY + "\n<ticket>\n{{ text }}\n</ticket>\n",
            input={"type": "object", "properties": {"text": {"type": "string"}}},
            output={
                "type": "object",
                "additionalProperties": False,
                "properties": {"queue": {"type": "integer"}, "confidence": {"type": "number"}},
                "required": ["queue", "confidence"],
            },
        )
        ticket = {"type": "object", "properties": {"ticket": {"type": "string"}}}
        workflow = (
            ma.Workflow("classify", input=ticket, output="{{ nodes.sort.output }}")
            .node("sort", agent=spec, input={"text": "{{ input.ticket }}"})
            .compile(ma.Project(Path(folder)))
        )
    lines = [{"ticket": f"message {i}: my parcel {i} has not arrived"} for i in range(items)]
    cached = _batch(workflow, lines, _tiers(), concurrency=8)
    plain = _batch(workflow, lines, _tiers(), concurrency=8, prompt_cache=False)
    print(
        f"\n## prompt caching, {items} calls of a ~6,700-token prefix on Haiku 4.5, concurrency 8"
    )
    print(f"{'run':<24}{'calls':>8}{'input read from cache':>24}{'cost $':>11}{'÷ no cache':>12}")
    for name, outcome in (("prompt cache", cached), ("no cache marks", plain)):
        print(
            f"{name:<24}{outcome.calls:>8}{outcome.cache_hit_rate:>24.1%}"
            f"{outcome.cost:>11.4f}{outcome.cost / plain.cost:>12.2f}"
        )
    return {
        "cache_hit_rate": round(cached.cache_hit_rate, 3),
        "cache_cost_vs_none": round(cached.cost / plain.cost, 3),
    }


def run(quick: bool) -> dict[str, Any]:
    items = 100 if quick else 200
    return run_sizes(triage_items=items, cache_items=items)


def run_sizes(*, triage_items: int, cache_items: int) -> dict[str, Any]:
    return {**triage(triage_items), **caching(cache_items)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.model_costs", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100 items instead of 200")
    print("RATIOS " + json.dumps(run(parser.parse_args().quick)))


if __name__ == "__main__":
    main()
