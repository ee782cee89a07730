"""The SQL guard: hostile statements refused with a reason, analytical queries allowed intact."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlglot import exp

import microagents as ma
from microagents.sql import _scope as _sql_scope
from microagents.sql._connect import plain
from microagents.sql._functions import FUNCTION_CLASSES
from microagents.sql._nodes import clause_args
from sql_corpus.analytical import ANALYTICAL
from sql_corpus.hostile import HOSTILE

SHOP_COLUMNS = {
    "customers": ["id", "tenant_id", "name", "email", "country", "segment", "created_at"],
    "orders": ["id", "tenant_id", "customer_id", "order_date", "status", "total"],
    "order_items": ["id", "tenant_id", "order_id", "product_id", "quantity", "unit_price"],
    "products": ["id", "tenant_id", "sku", "name", "category", "unit_price"],
    "support_tickets": ["id", "tenant_id", "customer_id", "order_id", "opened_at", "closed_at",
                        "priority", "status", "subject"],
}  # fmt: skip

CASES = [(d, sql, code) for dialects, sql, code in HOSTILE for d in dialects]


def test_the_corpora_are_as_large_as_promised() -> None:
    assert len(HOSTILE) >= 60
    assert len(CASES) >= 100
    assert len(ANALYTICAL) == 40
    # Every refusal class is exercised.
    assert {code for _, _, code in CASES} == {
        "MA601", "MA602", "MA603", "MA605", "MA607", "MA608"
    }  # fmt: skip


@pytest.mark.parametrize(("dialect", "sql", "code"), CASES, ids=lambda v: str(v)[:50])
def test_hostile_statements_are_refused_with_a_reason(dialect: Any, sql: str, code: str) -> None:
    with pytest.raises(ma.errors.SqlRefused) as refused:
        ma.sql.guard_sql(sql, dialect, columns=SHOP_COLUMNS)
    assert refused.value.code == code, str(refused.value)
    # The reason says what to do, for the agent that has to repair its query.
    assert str(refused.value).startswith(f"{code}: ")
    verbs = ("write", "remove", "send", "fix", "read", "compute", "rename", "at most")
    assert any(verb in refused.value.reason for verb in verbs), refused.value


@pytest.fixture(scope="module")
def direct(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(SqlDatabase, a raw connection) per dialect, shared by the 40 queries."""
    if request.param == "sqlite":
        from conftest import SHOP_DB

        return ma.sql.SqlDatabase(f"sqlite:///{SHOP_DB}", row_limit=10_000), sqlite3.connect(
            SHOP_DB
        )
    from conftest import _shop_script

    path = tmp_path_factory.mktemp("analytical") / "shop.duckdb"
    _shop_script().write_duckdb(path)
    import duckdb

    # Queries run in the database's worker processes; this process reads it read-only too.
    return ma.sql.SqlDatabase(f"duckdb:///{path}", row_limit=10_000), duckdb.connect(
        str(path), read_only=True
    )


@pytest.mark.parametrize("direct", ["sqlite", "duckdb"], indirect=True)
@pytest.mark.parametrize("sql", ANALYTICAL, ids=lambda s: s[:50])
def test_analytical_queries_are_allowed_and_give_the_rows_they_give_directly(
    direct: Any, sql: str
) -> None:
    database, raw = direct
    guarded = database.query(sql)
    expected = [[plain(v) for v in row] for row in raw.execute(sql).fetchall()]
    assert guarded.rows == expected
    assert not guarded.truncated


def test_what_runs_is_the_checked_tree_regenerated_without_comments() -> None:
    guarded = ma.sql.guard_sql(
        "SELECT id -- the id\nFROM orders /* ; DROP TABLE orders */ WHERE total > 10", "sqlite"
    )
    assert guarded.sql == "SELECT id FROM orders WHERE total > 10"
    assert guarded.params == {}
    assert guarded.tables == ("orders",)


def test_tables_outside_the_allow_list_or_the_database_are_refused() -> None:
    allowed = ["orders", "order_items"]
    ma.sql.guard_sql(
        "SELECT count(*) FROM orders JOIN order_items ON order_id = orders.id",
        "sqlite",
        columns=SHOP_COLUMNS,
        allowed_tables=allowed,
    )
    for sql in (
        "SELECT * FROM customers",
        "SELECT * FROM orders WHERE customer_id IN (SELECT id FROM Customers)",
        "WITH c AS (SELECT * FROM customers) SELECT * FROM c",
    ):
        with pytest.raises(ma.errors.SqlRefused, match=r"table '[cC]ustomers'") as refused:
            ma.sql.guard_sql(sql, "sqlite", columns=SHOP_COLUMNS, allowed_tables=allowed)
        assert refused.value.code == "MA604"
        assert "allowed: order_items, orders" in str(refused.value)
    with pytest.raises(ma.errors.SqlRefused, match="no table 'sqlite_master'") as unknown:
        ma.sql.guard_sql("SELECT * FROM sqlite_master", "sqlite", columns=SHOP_COLUMNS)
    assert unknown.value.code == "MA604"


def test_scoping_filters_every_table_reference_with_a_bound_parameter() -> None:
    guarded = ma.sql.guard_sql(
        "WITH big AS (SELECT * FROM orders o WHERE total > 100) "
        "SELECT c.name FROM customers c JOIN big ON big.customer_id = c.id "
        "WHERE c.id IN (SELECT customer_id FROM support_tickets) "
        "UNION SELECT name FROM products",
        "sqlite",
        columns=SHOP_COLUMNS,
        scope={"tenant_id": 7},
    )
    assert guarded.params == {"scope_tenant_id": 7}
    assert guarded.sql.count("tenant_id = :scope_tenant_id") == 4
    for table, alias in (
        ("orders", "o"),
        ("customers", "c"),
        ("support_tickets", "support_tickets"),
        ("products", "products"),
    ):
        assert (f"(SELECT * FROM {table} WHERE {table}.tenant_id = :scope_tenant_id) AS {alias}"
                in guarded.sql)  # fmt: skip
    duck = ma.sql.guard_sql(
        "SELECT * FROM orders", "duckdb", columns=SHOP_COLUMNS, scope={"tenant_id": 1}
    )
    assert "$scope_tenant_id" in duck.sql


@pytest.mark.parametrize(
    ("sql", "columns", "scope", "message"),
    [
        ("SELECT * FROM audit", {"audit": ["id"]}, {"tenant_id": 1}, "has no column tenant_id"),
        ("SELECT * FROM orders", SHOP_COLUMNS, {"tenant_id": None}, "no value for the scope"),
        ("SELECT * FROM orders", SHOP_COLUMNS, {"tenant_id OR 1=1": 1}, "not a plain column"),
        ("WITH orders AS (SELECT 1 AS x) SELECT * FROM orders", SHOP_COLUMNS, {"tenant_id": 1},
         "the CTE 'orders' has the name of a table"),
    ],
)  # fmt: skip
def test_a_query_that_cannot_be_scoped_is_refused(
    sql: str, columns: dict[str, list[str]], scope: dict[str, Any], message: str
) -> None:
    with pytest.raises(ma.errors.SqlRefused, match=message) as refused:
        ma.sql.guard_sql(sql, "sqlite", columns=columns, scope=scope)
    assert refused.value.code == "MA606"


def test_a_cte_makes_a_name_a_cte_only_where_it_is_visible() -> None:
    # The CTE is defined inside EXISTS; the outer `customers` is the table, and must be checked
    # against the allow-list as one (the connection only describes the allowed tables).
    only_orders = {"orders": SHOP_COLUMNS["orders"]}
    hidden = "SELECT * FROM customers WHERE EXISTS (WITH customers AS (SELECT 1) SELECT 1)"
    for scope in (None, {"tenant_id": 1}):
        with pytest.raises(ma.errors.SqlRefused, match="table 'customers'") as hidden_table:
            ma.sql.guard_sql(hidden, "sqlite", columns=only_orders, allowed_tables=["orders"],
                         scope=scope)  # fmt: skip
        assert hidden_table.value.code == "MA604"
    # A later CTE is not visible in an earlier one: there the name is a table's, checked as one.
    forward = "WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a"
    with pytest.raises(ma.errors.SqlRefused, match="no table 'b'"):
        ma.sql.guard_sql(forward, "duckdb", columns=SHOP_COLUMNS)
    # In its own body, a CTE is visible only when it can recurse (in SQLite, always).
    itself = "WITH n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT * FROM n"
    with pytest.raises(ma.errors.SqlRefused, match="no table 'n'"):
        ma.sql.guard_sql(itself, "duckdb", columns=SHOP_COLUMNS)
    assert ma.sql.guard_sql(itself, "sqlite", columns=SHOP_COLUMNS).tables == ()
    recursive = itself.replace("WITH", "WITH RECURSIVE")
    assert ma.sql.guard_sql(recursive, "duckdb", columns=SHOP_COLUMNS).tables == ()
    guarded = ma.sql.guard_sql(recursive + ", orders", "duckdb", columns=SHOP_COLUMNS,
                           scope={"tenant_id": 1})  # fmt: skip
    assert guarded.tables == ("orders",)


@pytest.mark.parametrize(
    ("dialect", "sql", "clause"),
    [
        ("sqlite", "SELECT o.id, c.name FROM (orders o JOIN customers c ON c.id = o.customer_id)",
         " JOIN "),
        ("duckdb", "SELECT * FROM orders PIVOT (count(*) FOR status IN ('delivered', 'shipped'))",
         "PIVOT("),
        ("duckdb", "SELECT count(*) FROM orders o TABLESAMPLE (50 PERCENT)", "TABLESAMPLE"),
    ],
)  # fmt: skip
def test_a_rewrite_that_loses_a_clause_is_refused(
    dialect: Any, sql: str, clause: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scoped = ma.sql.guard_sql(sql, dialect, columns=SHOP_COLUMNS, scope={"tenant_id": 1})
    # The scoping subquery takes over the table's clause: it still runs, scoped.
    assert clause in scoped.sql
    assert scoped.sql.count("tenant_id = ") == len(scoped.tables)
    # The rewrite as it was before: the subquery replaced the table and dropped its clauses.
    monkeypatch.setattr(_sql_scope, "CARRIED", ())
    with pytest.raises(ma.errors.SqlRefused, match="could not run this query exactly") as refused:
        ma.sql.guard_sql(sql, dialect, columns=SHOP_COLUMNS, scope={"tenant_id": 1})
    assert refused.value.code == "MA608"


def test_what_runs_is_parsed_back_and_must_be_what_was_checked() -> None:
    # sqlglot cannot write a TABLESAMPLE in SQLite: refused rather than run without it.
    with pytest.raises(ma.errors.SqlRefused, match="cannot be written in sqlite") as lost:
        ma.sql.guard_sql("SELECT * FROM orders TABLESAMPLE (10 PERCENT)", "sqlite")
    assert lost.value.code == "MA608"
    # A scoped query that reads no table binds no parameter (DuckDB refuses unused ones).
    assert ma.sql.guard_sql("SELECT 1 AS one", "duckdb", scope={"tenant_id": 1}).params == {}
    guarded = ma.sql.guard_sql(
        "SELECT 1 AS one FROM orders", "duckdb", columns=SHOP_COLUMNS, scope={"tenant_id": 1}
    )
    assert guarded.params == {"scope_tenant_id": 1}


def test_the_clause_allow_list_names_only_clauses_sqlglot_has() -> None:
    for node_type, clauses in clause_args().items():
        assert clauses <= set(node_type.arg_types), (node_type, clauses - set(node_type.arg_types))


def test_every_allow_listed_function_class_is_one_sqlglot_has() -> None:
    def subclasses(cls: type) -> set[type]:
        found = set(cls.__subclasses__())
        for sub in list(found):
            found |= subclasses(sub)
        return found

    keys = {c.key for c in subclasses(exp.Func)}
    assert keys >= FUNCTION_CLASSES, sorted(FUNCTION_CLASSES - keys)


def test_the_shop_database_matches_its_script(shop_script: Any, tmp_path: Path) -> None:
    from conftest import SHOP_DB

    fresh = tmp_path / "fresh.db"
    shop_script.write_sqlite(fresh)
    committed, rebuilt = sqlite3.connect(SHOP_DB), sqlite3.connect(fresh)
    assert list(committed.iterdump()) == list(rebuilt.iterdump())


def test_the_docs_list_every_allowed_function_name_and_every_code() -> None:
    import re

    from conftest import ROOT
    from microagents.sql._functions import FUNCTION_NAMES

    sql_doc = (ROOT / "docs" / "sql.md").read_text("utf-8")
    for dialect, names in FUNCTION_NAMES.items():
        missing = sorted(n for n in names if f"`{n}`" not in sql_doc)
        assert not missing, (dialect, missing)
    errors_doc = (ROOT / "docs" / "errors.md").read_text("utf-8")
    source = "".join(p.read_text("utf-8") for p in (ROOT / "src" / "microagents").glob("_sql*.py"))
    for code in sorted(set(re.findall(r'"(MA6\d\d)"', source))):
        assert f"### {code}" in errors_doc, code
