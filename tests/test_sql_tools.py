"""The SQL tools: read-only connections, limits, the schema summary, and row scoping."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

import microagents as ma
from microagents.runtime._tool_calls import call_tool
from microagents.sql._connect import plain, pyformat
from sql_corpus.cross_tenant import CROSS_TENANT

WRITES = [
    "DELETE FROM orders",
    "UPDATE orders SET total = 0",
    "INSERT INTO customers (id, tenant_id, name, email, country, segment, created_at) "
    "VALUES (9999, 1, 'x', 'x', 'x', 'x', 'x')",
    "DROP TABLE support_tickets",
    "CREATE TABLE owned (a INTEGER)",
    "ALTER TABLE orders ADD COLUMN owned INTEGER",
    "CREATE INDEX owned ON orders (total)",
    "PRAGMA query_only = 0",
    "PRAGMA journal_mode = DELETE",
    "ATTACH DATABASE 'owned.db' AS owned",
    "COPY orders TO 'owned.csv'",
    "INSTALL httpfs",
    "SET enable_external_access = true",
]


def url(path: Path) -> str:
    return f"{'duckdb' if path.suffix == '.duckdb' else 'sqlite'}:///{path}"


@pytest.fixture(params=["sqlite", "duckdb"])
def shop(request: pytest.FixtureRequest) -> Path:
    path: Path = request.getfixturevalue(f"shop_{request.param}")
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_with_the_guard_off_every_write_fails_and_the_file_is_unchanged(
    shop: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(shop.parent)  # where ATTACH, COPY and VACUUM INTO would write
    before = digest(shop)
    database = ma.sql.SqlDatabase(url(shop), guard=False)
    _, query = ma.sql.sql_tools(database)
    for statement in WRITES:
        outcome = anyio.run(call_tool, query, {"sql": statement})
        assert outcome.error is not None, statement
        assert "MA613" in outcome.error
        if shop.suffix == ".db":
            assert "authoriz" in outcome.error or "syntax error" in outcome.error
    # VACUUM rewrites a SQLite file; DuckDB accepts it on a read-only database as a no-op.
    vacuum = anyio.run(call_tool, query, {"sql": "VACUUM"})
    assert vacuum.error is not None or shop.suffix == ".duckdb"
    database.close()
    assert digest(shop) == before
    assert sorted(p.name for p in shop.parent.iterdir()) == [shop.name]
    assert database.query("SELECT count(*) FROM orders").rows == [[1336]]
    with pytest.raises(ma.errors.SqlError, match="row scoping needs the guard"):
        database.query("SELECT count(*) FROM orders", {"tenant_id": 1})


def test_a_query_past_its_time_limit_is_stopped(shop: Path) -> None:
    database = ma.sql.SqlDatabase(url(shop), timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(ma.errors.SqlDatabaseError, match=r"ran longer than 0\.3 s") as slow:
        database.query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
        )
    assert slow.value.code == "MA612"
    assert time.perf_counter() - started < 3
    assert database.query("SELECT 1 AS one").rows == [[1]]  # the connection still works


def test_rows_past_the_limit_are_cut_with_a_note(shop: Path) -> None:
    rows = ma.sql.SqlDatabase(url(shop), row_limit=25).query("SELECT id FROM orders ORDER BY id")
    assert (rows.row_count, rows.truncated) == (25, True)
    assert rows.rows[-1] == [25]
    assert rows.columns == ["id"]
    assert "only the first 25 rows" in rows.note
    whole = ma.sql.SqlDatabase(url(shop), row_limit=25).query("SELECT count(*) AS n FROM orders")
    assert (whole.truncated, whole.note) == (False, "")


def test_the_schema_summary_is_compact_scoped_and_cached(shop: Path) -> None:
    database = ma.sql.SqlDatabase(url(shop))
    schema = database.schema({"tenant_id": 3})
    assert schema.dialect == shop.suffix.replace(".db", "sqlite").lstrip(".")
    assert schema.tables == ["customers", "order_items", "orders", "products", "support_tickets"]
    lines = schema.text.splitlines()
    assert lines[2].startswith("orders(id INTEGER PK; tenant_id INTEGER (scoped); ")
    assert "customer_id INTEGER -> customers.id" in lines[2]
    assert "status " in lines[2]
    assert "one of 'cancelled', 'delivered', 'processing', 'returned', 'shipped'" in lines[2]
    assert "never filter on the scoped columns" in lines[-1]
    # Small enough for a Haiku prompt: about 400 tokens for five tables.
    assert len(schema.text) < 2_000
    # Sample values are the caller's: tenant 3's SKUs only.
    assert "'T3-" in schema.text
    assert "'T1-" not in schema.text
    assert "'T1-" in database.schema({"tenant_id": 1}).text
    assert database.schema({"tenant_id": 3}) is schema


def only_tenant(shop: Path, tenant: int, into: Path) -> Path:
    """A copy of the shop holding one tenant's rows: what a scoped query may see."""
    if shop.suffix == ".db":
        copy = sqlite3.connect(into / "one.db")
        sqlite3.connect(shop).backup(copy)
        execute = copy.execute
    else:
        import duckdb

        (into / "one.duckdb").write_bytes(shop.read_bytes())
        copy = duckdb.connect(str(into / "one.duckdb"))  # type: ignore[assignment]
        execute = copy.execute
    for table in ("order_items", "support_tickets", "orders", "customers", "products"):
        execute(f"DELETE FROM {table} WHERE tenant_id <> {tenant}")
    copy.commit()
    copy.close()
    return into / ("one.db" if shop.suffix == ".db" else "one.duckdb")


def test_scoped_queries_see_only_the_callers_rows(shop: Path, tmp_path: Path) -> None:
    assert len(CROSS_TENANT) >= 20
    own = ma.sql.SqlDatabase(url(only_tenant(shop, 1, tmp_path)), row_limit=10_000, guard=False)
    database = ma.sql.SqlDatabase(url(shop), row_limit=10_000)

    def ordered(rows: list[list[Any]]) -> list[list[Any]]:
        return sorted(rows, key=repr)

    for sql in CROSS_TENANT:
        scoped = database.query(sql, {"tenant_id": 1})
        assert ordered(scoped.rows) == ordered(own.query(sql).rows), sql
        for row in scoped.rows:  # no value of another tenant slips through
            for column, value in zip(scoped.columns, row, strict=True):
                if column == "tenant_id":
                    assert value == 1, sql
    # And unscoped, the same queries do reach the other tenants: the corpus means it.
    assert database.query(CROSS_TENANT[0]).row_count > 0


def test_sqlite_in_tablename_cannot_reach_another_tenant_or_the_catalog(shop_sqlite: Path) -> None:
    """SQLite reads `x IN tablename` as `x IN (SELECT * FROM tablename)`. The guard used to see
    a column there: scoped to tenant 1, these confirmed tenant 2's customer 141 and counted
    tenant 2's orders, and read sqlite_master past a `tables` allow-list."""
    database = ma.sql.SqlDatabase(url(shop_sqlite))
    tenant_two = (
        "(141, 2, 'Chloe Moss', 'chloe.moss141@example.com', 'US', 'business', '2024-02-11')"
    )
    attacks = [
        f"SELECT count(*) FROM (SELECT 1) WHERE {tenant_two} IN customers",
        f"SELECT count(*) FROM (SELECT 1) WHERE {tenant_two} IN main.customers",
        "WITH t(n) AS (VALUES (684), (685)) SELECT count(*) FROM t WHERE (n) IN orders",
    ]
    # Unguarded, the first does find tenant 2's customer: the form is real.
    raw = ma.sql.SqlDatabase(url(shop_sqlite), guard=False)
    assert raw.query(attacks[0]).rows == [[1]]
    for sql in attacks:
        with pytest.raises(
            ma.errors.SqlRefused, match="IN a table or function without parentheses"
        ):
            database.query(sql, {"tenant_id": 1})
    allow_listed = ma.sql.SqlDatabase(url(shop_sqlite), tables=["orders"])
    with pytest.raises(ma.errors.SqlRefused) as catalog:
        allow_listed.query("SELECT count(*) FROM orders WHERE 'orders' IN sqlite_master")
    assert catalog.value.code == "MA608"
    for db in (database, raw, allow_listed):
        db.close()


OWN_CLAUSES = [
    (("sqlite", "duckdb"), "SELECT o.id, c.name FROM (orders o JOIN customers c "
                           "ON c.id = o.customer_id) WHERE o.total > 100"),
    (("sqlite", "duckdb"), "SELECT o.id, t.id FROM orders o LEFT JOIN (customers c JOIN "
                           "support_tickets t ON t.customer_id = c.id) ON c.id = o.customer_id"),
    (("duckdb",), "SELECT * FROM orders PIVOT (count(*) FOR status IN ('delivered', "
                  "'cancelled') GROUP BY customer_id)"),
    (("duckdb",), "SELECT count(*), sum(total) FROM orders TABLESAMPLE (100 PERCENT)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [(dialect, sql) for dialects, sql in OWN_CLAUSES for dialect in dialects],
    ids=lambda v: str(v)[:40],
)
def test_a_tables_own_clauses_survive_scoping(
    request: pytest.FixtureRequest, tmp_path: Path, dialect: str, sql: str
) -> None:
    """The scoping rewrite used to drop a parenthesised join, PIVOT and TABLESAMPLE."""
    shop: Path = request.getfixturevalue(f"shop_{dialect}")
    own = ma.sql.SqlDatabase(url(only_tenant(shop, 1, tmp_path)), row_limit=10_000, guard=False)
    scoped = ma.sql.SqlDatabase(url(shop), row_limit=10_000).query(sql, {"tenant_id": 1})
    assert scoped.row_count > 0
    assert sorted(scoped.rows, key=repr) == sorted(own.query(sql).rows, key=repr)


def test_tool_errors_go_back_as_text_an_agent_can_act_on(shop_sqlite: Path) -> None:
    schema_tool, query_tool = ma.sql.sql_tools(url(shop_sqlite))
    refused = anyio.run(call_tool, query_tool, {"sql": "DELETE FROM orders"})
    assert refused.error is not None
    assert "sql.query failed: SqlRefused: MA602: a DELETE statement is not allowed" in refused.error
    broken = anyio.run(call_tool, query_tool, {"sql": "SELECT nope FROM orders"})
    assert broken.error is not None
    assert "MA613: SQLite: no such column: nope" in broken.error
    rows = anyio.run(call_tool, query_tool, {"sql": "SELECT count(*) AS n FROM orders"})
    assert '"columns": ["n"], "rows": [[1336]]' in rows.content
    summary = anyio.run(call_tool, schema_tool, {})
    assert summary.error is None
    assert "support_tickets(" in summary.content


def test_without_a_database_the_tools_say_how_to_configure_one() -> None:
    project = ma.Project(Path("/nonexistent"))
    outcome = anyio.run(call_tool, project.tools["sql.query"], {"sql": "SELECT 1"})
    assert outcome.error is not None
    assert "MA614: no database is configured for the SQL tools: run with --database URL" in (
        outcome.error
    )


@pytest.mark.parametrize(
    ("given", "code", "message"),
    [
        ("mysql://localhost/shop", "MA610", "cannot tell which database"),
        ("sqlite://examples/shop.db", "MA610", "sqlite:///relative/path"),
        ("sqlite:///no/such.db", "MA611", "no database file at 'no/such.db'"),
        ("nowhere.duckdb", "MA611", "no database file"),
    ],
)
def test_a_bad_url_says_what_to_write(given: str, code: str, message: str) -> None:
    with pytest.raises(ma.errors.SqlDatabaseError, match=message) as bad:
        ma.sql.SqlDatabase(given).connection()
    assert bad.value.code == code


def test_a_file_that_is_not_a_database_is_refused_when_opened(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("not a database")
    with pytest.raises(ma.errors.SqlDatabaseError, match="cannot open SQLite database") as bad:
        ma.sql.SqlDatabase(f"sqlite:///{tmp_path / 'notes.db'}").connection()
    assert bad.value.code == "MA611"


def test_postgres_parameters_leave_percent_literals_alone() -> None:
    guarded = ma.sql.guard_sql(
        "SELECT name FROM customers WHERE name LIKE 'A%' AND email LIKE '%@example.com'",
        "postgres",
        columns={"customers": ["name", "email", "tenant_id"]},
        scope={"tenant_id": 7},
    )
    assert pyformat(guarded.sql) == (
        "SELECT name FROM (SELECT * FROM customers WHERE customers.tenant_id = "
        "%(scope_tenant_id)s) AS customers WHERE name LIKE 'A%%' AND email LIKE '%%@example.com'"
    )


def test_postgres_without_its_driver_says_which_extra_to_install() -> None:
    import importlib.util

    if importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg is installed here")
    with pytest.raises(ma.errors.SqlDatabaseError, match=r"pip install 'microagents\[postgres\]'"):
        ma.sql.SqlDatabase("postgresql://reader@localhost/shop").connection()


def test_values_become_json_friendly() -> None:
    import datetime
    import decimal

    assert plain(decimal.Decimal("1.50")) == 1.5
    assert plain(datetime.date(2025, 3, 1)) == "2025-03-01"
    assert plain(b"\x01\xff") == "01ff"


def test_a_project_loads_no_sql_dependency_until_a_query_runs() -> None:
    import subprocess
    import sys

    code = (
        "import sys, microagents as ma; p = ma.Project('.', database='sqlite:///x.db'); "
        "print(sorted(m for m in ('sqlglot', 'duckdb', 'psycopg') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


def test_an_agent_calling_sql_query_repairs_its_query_from_the_refusal(shop_sqlite: Path) -> None:
    from microagents.models._protocol import (
        ModelRequest,
        ModelResponse,
        ToolResultBlock,
        ToolUseBlock,
        Usage,
    )
    from microagents.testing import FakeModel

    analyst = ma.AgentSpec(
        name="analyst",
        version="1.0.0",
        description="Answer a question from the database.",
        prompt="{{ question }}",
        input={"type": "object", "properties": {"question": {"type": "string"}}},
        output={"type": "object", "properties": {"answer": {"type": "integer"}}},
        tools=["sql.query"],
    )
    queries = iter(["DELETE FROM orders WHERE status = 'cancelled'", "SELECT count(*) FROM orders"])

    def script(request: ModelRequest) -> ModelResponse:
        last = request.messages[-1].content[-1]
        if isinstance(last, ToolResultBlock) and not last.is_error:
            call = ToolUseBlock("t-answer", "final_answer", {"answer": 1336})
        else:
            call = ToolUseBlock(f"t{len(request.messages)}", "sql.query", {"sql": next(queries)})
        return ModelResponse((call,), "tool_use", Usage(10, 5), request.model)

    model = FakeModel(script)
    project = ma.Project(Path("/nonexistent"), database=f"sqlite:///{shop_sqlite}")
    workflow = (
        ma.Workflow("ask", input={"type": "object", "properties": {"question": {"type": "string"}}})
        .node("ask", agent=analyst, input={"question": "{{ input.question }}"})
        .compile(project)
    )

    async def main() -> ma.RunResult:
        async with ma.Engine(model) as engine:
            return await engine.run(workflow, {"question": "How many orders are left?"})

    result = anyio.run(main)
    assert result.ok, result.error
    refusal = model.requests[1].messages[-1].content[0]
    assert isinstance(refusal, ToolResultBlock)
    assert refusal.is_error
    assert "MA602: a DELETE statement is not allowed" in refusal.content
    rows = model.requests[2].messages[-1].content[0]
    assert isinstance(rows, ToolResultBlock)
    assert '"rows": [[1336]]' in rows.content
