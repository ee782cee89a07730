"""The SQL agents' prompts as the model sees them, and the text-to-SQL graph, as snapshots."""

from __future__ import annotations

from pathlib import Path

from syrupy.assertion import SnapshotAssertion

import microagents as ma

ROOT = Path(__file__).resolve().parent.parent
TABLES = (
    "orders(id INTEGER PK; tenant_id INTEGER (scoped); customer_id INTEGER -> customers.id; "
    "order_date TEXT e.g. '2024-01-11'; status TEXT one of 'cancelled', 'delivered'; total REAL)"
)


def test_the_writer_prompt_first_after_a_refusal_and_after_a_rejection(
    snapshot: SnapshotAssertion,
) -> None:
    writer = ma.Project(ROOT).registry.resolve("sql_writer")
    first = {"question": "How many orders were cancelled?", "tables": TABLES, "dialect": "sqlite"}
    assert writer.system_template is not None
    assert writer.system_template.render(first) == snapshot(name="system")
    assert writer.render_prompt(first) == snapshot(name="first")
    retry = {
        **first,
        "previous_sql": "DELETE FROM orders WHERE status = 'cancelled'",
        "error": "sql.query failed: SqlRefused: MA602: a DELETE statement is not allowed",
        "feedback": ["The question asks for a count, not a list of orders."],
    }
    # A failure is about the latest query; a reviewer's older reasons would mislead: left out.
    assert writer.render_prompt(retry) == snapshot(name="retry")
    rejected = {**retry, "error": None}
    assert writer.render_prompt(rejected) == snapshot(name="rejected")


def test_the_validator_prompt(snapshot: SnapshotAssertion) -> None:
    validator = ma.Project(ROOT).registry.resolve("sql_validator")
    rendered = validator.render_prompt(
        {
            "question": "How many orders were cancelled?",
            "sql": "SELECT COUNT(*) AS orders FROM orders WHERE status = 'cancelled'",
            "explanation": "Counts the cancelled orders.",
            "columns": ["orders"],
            "rows": [[76]],
            "truncated": False,
        }
    )
    assert rendered == snapshot


def test_the_text_to_sql_graph(snapshot: SnapshotAssertion) -> None:
    workflow = ma.Project(ROOT).load_workflow(ROOT / "workflows" / "text_to_sql.yaml")
    assert workflow.to_mermaid() == snapshot
