"""The text-to-SQL workflow end to end: the 30 sample questions against the fake Anthropic API,
a repair after a refusal, escalation, the bounded loop, and a simulated dry run."""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

import microagents as ma
from cli_runner import run_cli
from microagents.runtime._engine import Engine
from microagents.testing import FakeAnthropicServer, ReceivedRequest, Reply

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    json.loads(line)
    for line in (ROOT / "examples" / "sql_questions.jsonl").read_text("utf-8").splitlines()
]
WRITER, REVIEWER = "SQL-writing step", "strict reviewer of SQL"
HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-6"
Writes = Callable[[ReceivedRequest], str]


def question_of(request: ReceivedRequest) -> str:
    found = re.search(r"<question>\n(.*?)\n</question>", request.messages_text, re.S)
    assert found is not None
    return found.group(1)


def reference_sql(request: ReceivedRequest) -> str:
    return next(q["sql"] for q in QUESTIONS if q["question"] == question_of(request))


def script(server: FakeAnthropicServer, writes: Writes = reference_sql) -> None:
    """The writer answers with `writes(request)`; the reviewer accepts every result."""

    def write(request: ReceivedRequest) -> Reply:
        answer = {"sql": writes(request), "explanation": "scripted", "confidence": 0.9}
        return Reply.tool_call("final_answer", answer)

    server.on(write, system_contains=WRITER)
    verdict = {"valid": True, "reasons": [], "confidence": 0.95}
    server.on(Reply.tool_call("final_answer", verdict), system_contains=REVIEWER)


def run_questions(
    server: FakeAnthropicServer, database: Path, questions: list[dict[str, Any]]
) -> list[ma.RunResult]:
    workflow = ma.Project(ROOT, database=f"sqlite:///{database}").load_workflow(
        ROOT / "workflows" / "text_to_sql.yaml"
    )
    unlimited = ma.models.RateLimits(None, None, None)
    tiers = ma.models.TierTable()
    for name in tiers.names:
        tiers = tiers.with_tier(name, limits=unlimited)
    tiers = tiers.with_tier("sonnet", model=SONNET)
    model = ma.models.anthropic_model(api_key="test-key", base_url=server.base_url, tiers=tiers)

    async def main() -> list[ma.RunResult]:
        results: list[ma.RunResult | None] = [None] * len(questions)
        async with Engine(model, tiers=tiers) as engine:
            async for index, result in engine.run_many(workflow, questions, concurrency=8):
                results[index] = result
        return [r for r in results if r is not None]

    return anyio.run(main)


def steps(result: ma.RunResult) -> list[str]:
    return [f"{n.node}:{n.status}" for n in result.nodes]


def test_the_thirty_questions_get_their_reference_answers(
    fake_anthropic: FakeAnthropicServer, shop_sqlite: Path
) -> None:
    assert len(QUESTIONS) == 30
    script(fake_anthropic)
    inputs = [{k: q[k] for k in ("id", "question", "tenant_id")} for q in QUESTIONS]

    results = run_questions(fake_anthropic, shop_sqlite, inputs)

    for question, result in zip(QUESTIONS, results, strict=True):
        assert result.ok, (question["id"], result.error)
        output = result.output
        assert output["id"] == question["id"]
        assert output["columns"] == question["answer"]["columns"], question["id"]
        assert output["rows"] == question["answer"]["rows"], question["id"]
        assert output["verdict"].valid is True
        assert steps(result) == ["schema:ok", "write:ok", "execute:ok", "check:ok"]
        assert not result.escalations
        # What ran is the guarded query: every table limited to the caller's tenant.
        assert output["sql"] == question["sql"]
        assert "WHERE orders.tenant_id = :scope_tenant_id" in output["executed_sql"] or (
            "FROM orders" not in question["sql"]
        )
        assert output["executed_sql"].count(":scope_tenant_id") >= question["sql"].count("JOIN") + 1
    # The writer saw the caller's schema only, and each question went to Haiku once.
    writer_calls = [r for r in fake_anthropic.requests if WRITER in r.system_text]
    assert len(writer_calls) == 30
    assert {r.model for r in writer_calls} == {HAIKU}
    tenant_three = next(r for r in writer_calls if "'T3-" in r.system_text)
    assert "'T1-" not in tenant_three.system_text


def test_a_refused_query_goes_back_to_the_writer_and_is_repaired(
    fake_anthropic: FakeAnthropicServer, shop_sqlite: Path
) -> None:
    question = QUESTIONS[0]
    attempts = iter(["DELETE FROM orders WHERE status = 'cancelled'; SELECT 1", question["sql"]])
    script(fake_anthropic, lambda request: next(attempts))

    (result,) = run_questions(fake_anthropic, shop_sqlite, [question])

    assert result.ok, result.error
    assert result.output["rows"] == question["answer"]["rows"]
    assert steps(result) == [
        "schema:ok", "write:ok", "execute:failed", "write:ok", "execute:ok", "check:ok"
    ]  # fmt: skip
    failed = result.nodes[2]
    assert "MA601: found 2 statements" in (failed.error or "")
    retry = [r for r in fake_anthropic.requests if WRITER in r.system_text][1]
    assert "## Your previous query failed" in retry.messages_text
    assert "MA601: found 2 statements" in retry.messages_text
    assert "DELETE FROM orders" in retry.messages_text  # the previous query, to fix
    # The retry is one rung up: the writer escalates on `rejected`.
    assert [(e.trigger, e.from_tier, e.to_tier) for e in result.escalations] == [
        ("rejected", "haiku", "sonnet")
    ]
    assert retry.model == SONNET


def test_a_writer_that_keeps_failing_on_haiku_escalates_to_sonnet(
    fake_anthropic: FakeAnthropicServer, shop_sqlite: Path
) -> None:
    question = QUESTIONS[3]

    def writes(request: ReceivedRequest) -> str:
        # Haiku keeps writing a query the database cannot run; Sonnet gets it right.
        return (
            "SELECT category, SUM(revenue) FROM products"
            if request.model == HAIKU
            else (reference_sql(request))
        )

    script(fake_anthropic, writes)
    (result,) = run_questions(fake_anthropic, shop_sqlite, [question])

    assert result.ok, result.error
    assert result.output["rows"] == question["answer"]["rows"]
    assert "MA613: SQLite: no such column: revenue" in (result.nodes[2].error or "")
    tiers = [a.tier for n in result.nodes for a in n.attempts if n.node == "write"]
    assert tiers == ["haiku", "sonnet"]


def test_the_repair_loop_is_bounded(fake_anthropic: FakeAnthropicServer, shop_sqlite: Path) -> None:
    script(fake_anthropic, lambda request: "PRAGMA query_only = 0")
    (result,) = run_questions(fake_anthropic, shop_sqlite, [QUESTIONS[1]])

    assert (result.status, result.failed_node) == ("failed", "execute")
    assert "MA602: a PRAGMA statement is not allowed" in (result.error or "")
    writes = [n for n in result.nodes if n.node == "write"]
    assert [w.attempts[-1].tier for w in writes] == ["haiku", "sonnet", "opus"]
    assert collections.Counter(n.node for n in result.nodes)["execute"] == 3


def test_a_rejection_by_the_validator_sends_its_reasons_back(
    fake_anthropic: FakeAnthropicServer, shop_sqlite: Path
) -> None:
    question = QUESTIONS[10]  # revenue of delivered orders
    fake_anthropic.on(
        [
            Reply.tool_call("final_answer", {"sql": "SELECT SUM(total) AS revenue FROM orders",
                                             "explanation": "all orders", "confidence": 0.8}),
            Reply.tool_call("final_answer", {"sql": question["sql"], "explanation": "delivered",
                                             "confidence": 0.9}),
        ],
        system_contains=WRITER,
    )  # fmt: skip
    fake_anthropic.on(
        [
            Reply.tool_call("final_answer", {"valid": False, "confidence": 0.9, "reasons": [
                "The question asks for delivered orders; add WHERE status = 'delivered'."]}),
            Reply.tool_call("final_answer", {"valid": True, "reasons": [], "confidence": 0.9}),
        ],
        system_contains=REVIEWER,
    )  # fmt: skip
    (result,) = run_questions(fake_anthropic, shop_sqlite, [question])

    assert result.ok, result.error
    assert result.output["rows"] == question["answer"]["rows"]
    retry = [r for r in fake_anthropic.requests if WRITER in r.system_text][1]
    assert "add WHERE status = 'delivered'" in retry.messages_text
    assert "SELECT SUM(total) AS revenue FROM orders" in retry.messages_text


def test_one_question_from_the_command_line_against_the_fake_api(
    fake_anthropic: FakeAnthropicServer,
    shop_sqlite: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    script(fake_anthropic)
    question = QUESTIONS[0]
    code, out, err = run_cli(
        ["run", "workflows/text_to_sql.yaml", "--database", f"sqlite:///{shop_sqlite}",
         "--input", json.dumps({"question": question["question"], "tenant_id": 1})],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["output"]["rows"] == question["answer"]["rows"]


def test_a_dry_run_answers_every_question_and_says_it_is_simulated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MICROAGENTS_SIMULATED_LATENCY_SCALE", "0")
    out = tmp_path / "answers.jsonl"
    code, _, err = run_cli(
        ["run", "workflows/text_to_sql.yaml", "--backend", "simulate",
         "--database", "sqlite:///examples/shop.db",
         "--input-file", "examples/sql_questions.jsonl", "--out", str(out)],
        capsys,
    )  # fmt: skip

    assert code == 0, err
    assert "SIMULATED text_to_sql: 30 ok, 0 failed" in err
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert len(lines) == 30
    for line in lines:
        assert line["simulated"] is True
        assert line["status"] == "ok"
        # The SQL comes from the writer's examples, but it really ran, guarded and scoped.
        assert line["output"]["columns"]
        assert ":scope_tenant_id" in line["output"]["executed_sql"]


def test_a_wrong_database_is_bad_input_before_anything_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    code, _, err = run_cli(
        ["run", "workflows/text_to_sql.yaml", "--backend", "simulate",
         "--database", "sqlite:///examples/nope.db",
         "--input", '{"question": "x", "tenant_id": 1}'],
        capsys,
    )  # fmt: skip
    assert code == 2
    assert "MA611: no database file at 'examples/nope.db'" in err


def test_the_reference_answers_agree_with_a_count_by_hand(shop_script: Any) -> None:
    """Eight answers recomputed in Python from the generator's rows, not from SQL."""
    rows = shop_script.rows()
    by_id = {q["id"]: q["answer"]["rows"] for q in QUESTIONS}

    def of(table: str, tenant: int) -> list[tuple[Any, ...]]:
        return [r for r in rows[table] if r[1] == tenant]

    orders1 = of("orders", 1)
    assert by_id["Q01"] == [[sum("2025-03-01" <= o[3] < "2025-04-01" for o in orders1)]]
    assert by_id["Q02"] == [[len(of("customers", 2))]]
    statuses = collections.Counter(o[4] for o in orders1)
    assert by_id["Q10"] == [
        [s, n] for s, n in sorted(statuses.items(), key=lambda i: (-i[1], i[0]))
    ]
    delivered = sum(o[5] for o in of("orders", 2) if o[4] == "delivered")
    assert by_id["Q11"] == [[round(delivered, 2)]]
    ordered = {o[2] for o in orders1}
    assert by_id["Q13"] == [[sum(c[0] not in ordered for c in of("customers", 1))]]
    assert by_id["Q16"] == [[round(100 * statuses["returned"] / len(orders1), 1)]]
    largest = max(orders1, key=lambda o: (o[5], -o[0]))
    name = next(c[2] for c in rows["customers"] if c[0] == largest[2])
    assert by_id["Q22"] == [[largest[0], name, largest[5]]]
    tickets3 = of("support_tickets", 3)
    assert by_id["Q24"] == [[sum(t[6] == "urgent" and t[7] != "closed" for t in tickets3)]]
