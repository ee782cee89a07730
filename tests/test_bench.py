"""The benchmark harness still runs against the current API (tiny sizes, no timing asserted).

Benchmarks are never timed inside the suite; this only keeps `python -m bench` from breaking
unnoticed when the library changes under it.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from bench import batch_scale, concurrency, http_e2e, model_costs, overhead, scale, tracing_cost
from bench._workload import (
    ANSWERS,
    TICKET,
    InstantModel,
    plain_triage,
    store_provider,
    triage_workflow,
)

import microagents as ma
from microagents.testing import BatchSettings, FakeAnthropicServer, Reply, ServerRateLimits


def test_overhead_contenders_run_and_the_store_gets_every_span() -> None:
    anyio.run(overhead.plain_asyncio, 3)
    anyio.run(overhead.microagents_runs(None), 3)
    exporter, provider, processor = store_provider()
    traced = overhead.microagents_runs(
        ma.tracing.Tracing.from_provider(provider), provider.force_flush
    )
    anyio.run(traced, 4)
    provider.shutdown()
    assert exporter.stored == 4 * 7  # a run, 3 node visits, 3 model calls
    assert processor.dropped == 0


def test_tracing_cost_parts_run_and_only_the_last_writes(tmp_path: Path) -> None:
    for exporter_type in (tracing_cost._DiscardingExporter, tracing_cost._EncodingExporter):
        exporter = exporter_type(tmp_path / "unused.sqlite3")
        anyio.run(tracing_cost._through_store_processor(exporter), 3)
    assert not (tmp_path / "unused.sqlite3").exists()
    anyio.run(
        tracing_cost._through_store_processor(ma.tracing.SqliteSpanExporter(tmp_path / "t.db")), 3
    )
    assert ma.tracing.TraceStore(tmp_path / "t.db").count_runs() == 3


def test_concurrency_contenders_run() -> None:
    anyio.run(concurrency.plain_asyncio(), 5)
    anyio.run(concurrency.microagents_run_many(), 5)


def test_scale_children_write_one_line_per_item(tmp_path: Path) -> None:
    (tmp_path / "batch").mkdir()
    (tmp_path / "plain").mkdir()
    batch = scale.child_batch(120, 0.0, tmp_path / "batch")
    plain = scale.child_plain(120, 0.001, tmp_path / "plain")
    assert batch["rss_end"] > 0
    assert plain["wall"] > 0
    for contender in ("batch", "plain"):
        lines = (tmp_path / contender / "out.jsonl").read_text().splitlines()
        assert len(lines) == 120


def test_batch_scale_contenders_write_one_line_per_item(tmp_path: Path) -> None:
    with FakeAnthropicServer(batches=BatchSettings(processing_seconds=0.02)) as server:
        server.on(Reply.structured(ANSWERS["router"]), message_contains="Route:")
        for mode in ("batch", "standard"):
            (tmp_path / mode).mkdir()
            figures = batch_scale.child(mode, 40, server.base_url, tmp_path / mode)
            assert figures["cpu"] > 0
            assert figures["rounds"] == (1 if mode == "batch" else 0)
            assert len((tmp_path / mode / "out.jsonl").read_text().splitlines()) == 40


def test_http_contenders_run_against_the_fake_server() -> None:
    unlimited = ServerRateLimits(10**9, 10**12, 10**12)
    with FakeAnthropicServer(rate_limits=unlimited) as server:
        for agent, prefix in http_e2e.PROMPTS.items():
            server.on(Reply.structured(ANSWERS[agent]), message_contains=prefix)
        anyio.run(http_e2e.bare_sdk(server.base_url), 2)
        no_limits = ma.models.RateLimits(None, None, None)
        tiers = ma.models.TierTable.load().with_tier("haiku", limits=no_limits)
        model = ma.models.anthropic_model(
            api_key=http_e2e.API_KEY, base_url=server.base_url, tiers=tiers
        )
        anyio.run(http_e2e.microagents_runs(model), 2)
        assert len(server.requests) == 2 * 3 * 2


@pytest.mark.parametrize("runs", [1, 3])
def test_the_floor_and_the_workflow_agree_on_the_answer(runs: int) -> None:
    async def both() -> tuple[bool, bool]:
        verdict = await plain_triage(InstantModel())
        async with ma.Engine(InstantModel()) as engine:
            results = [await engine.run(triage_workflow(), TICKET) for _ in range(runs)]
        return verdict.valid, all(r.ok and r.output.valid for r in results)

    assert anyio.run(both) == (True, True)


def test_model_costs_measure_escalation_and_caching() -> None:
    ratios = model_costs.run_sizes(triage_items=10, cache_items=12)
    assert ratios["triage_calls_over_required"] == 0
    assert ratios["triage_escalation_rate"] == 0.2
    assert 0 < ratios["triage_cost_vs_all_sonnet"] < 1
    assert ratios["cache_hit_rate"] > 0.5
    assert 0 < ratios["cache_cost_vs_none"] < 1


def test_the_phoenix_checks_runs_escalate_as_its_checks_expect() -> None:
    """The Phoenix check (run by hand: it needs Phoenix) scripts the fake API so that the
    triage router climbs a tier and the SQL writer runs twice; keep that true."""
    from bench import phoenix_check

    unlimited = ServerRateLimits(10**9, 10**12, 10**12)
    project = ma.Project(
        phoenix_check.ROOT, database=f"sqlite:///{phoenix_check.ROOT / 'examples' / 'shop.db'}"
    )
    with FakeAnthropicServer(rate_limits=unlimited) as server:
        phoenix_check.script(server)
        model = ma.models.anthropic_model(api_key="not-a-real-key", base_url=server.base_url)

        async def both() -> list[ma.RunResult]:
            async with ma.Engine(model, tracing=None) as engine:
                return [
                    await engine.run(
                        project.load_workflow("workflows/support_triage.yaml"),
                        {"ticket": phoenix_check.TICKET},
                    ),
                    await engine.run(
                        project.load_workflow("workflows/text_to_sql.yaml"),
                        {"question": phoenix_check.SQL_QUESTION["question"], "tenant_id": 1},
                    ),
                ]

        triage, sql = anyio.run(both)
    assert triage.ok, triage.error
    assert sql.ok, sql.error
    assert [(e.node, e.trigger) for e in triage.escalations] == [("route", "low_confidence")]
    assert [(e.node, e.visit, e.trigger) for e in sql.escalations] == [("write", 2, "rejected")]
    assert phoenix_check.flat({"llm": {"input_messages": [{"message": {"role": "system"}}]}}) == {
        "llm.input_messages.0.message.role": "system"
    }
