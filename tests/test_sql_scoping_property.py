"""Row scoping, tested on generated queries: a query scoped to tenant 1 sees tenant 1's rows only.

Hypothesis writes queries over the sample shop — joins (inner, left, comma, parenthesised),
subqueries, CTEs, ``IN`` and ``NOT IN`` and ``EXISTS``, SQLite's ``IN tablename``, set
operations, window functions, aggregates, scalar subqueries; tables written plain, quoted,
upper-case or with their schema, aliased or aliased as another table; predicates that ask for
other tenants' rows. Tenant-2 rows are planted first, with values that appear nowhere in tenant
1's data, some pointing at tenant 1's rows. Each query runs scoped to tenant 1 on SQLite and on
DuckDB, and must return exactly what it returns, unscoped, on a copy of the database holding
tenant 1's rows only — and no planted value.

The default profile, ``ci``, is derandomized (the same examples every run) and small enough
for the suite. Locally, search harder with

    HYPOTHESIS_PROFILE=thorough .venv/bin/pytest tests/test_sql_scoping_property.py

(5,000 examples, random each run, no per-test timeout; a few minutes).
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import microagents as ma

settings.register_profile(
    "ci",
    max_examples=120,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=5_000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

COLUMNS: dict[str, dict[str, str]] = {
    "customers": {"id": "int", "tenant_id": "int", "name": "text", "email": "text",
                  "country": "text", "segment": "text", "created_at": "text"},
    "orders": {"id": "int", "tenant_id": "int", "customer_id": "int", "order_date": "text",
               "status": "text", "total": "real"},
    "order_items": {"id": "int", "tenant_id": "int", "order_id": "int", "product_id": "int",
                    "quantity": "int", "unit_price": "real"},
    "products": {"id": "int", "tenant_id": "int", "sku": "text", "name": "text",
                 "category": "text", "unit_price": "real"},
    "support_tickets": {"id": "int", "tenant_id": "int", "customer_id": "int", "order_id": "int",
                        "opened_at": "text", "closed_at": "text", "priority": "text",
                        "status": "text", "subject": "text"},
}  # fmt: skip
FOREIGN_KEYS = [
    ("orders", "customer_id", "customers"),
    ("order_items", "order_id", "orders"),
    ("order_items", "product_id", "products"),
    ("support_tickets", "customer_id", "customers"),
    ("support_tickets", "order_id", "orders"),
]
TABLES = sorted(COLUMNS)

# -- the planted rows: tenant 2's, with values found nowhere in tenant 1's data -------------

PLANTED_TEXT = "PLANTED"
PLANTED_IDS = range(900_001, 900_004)
PLANTED_NUMBERS = (987_654.25, 876_543.75, 765_432.5)
PLANTED_QUANTITY = 424_242
PLANTED_DATE = "1901-02-03"


def planted_rows() -> dict[str, list[tuple[Any, ...]]]:
    """Three rows a table, parents first; some point at tenant 1's rows (customer 1...)."""
    order = ("customers", "products", "orders", "order_items", "support_tickets")
    rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in order}
    for n, (key, number) in enumerate(zip(PLANTED_IDS, PLANTED_NUMBERS, strict=True)):
        other = 1 if n % 2 else key  # tenant 1's row, or a planted one
        text = f"{PLANTED_TEXT}-{n}"
        rows["customers"].append(
            (key, 2, text, f"{text}@planted.example", "ZZ", text, PLANTED_DATE)
        )
        rows["products"].append((key, 2, text, text, text, number))
        rows["orders"].append((key, 2, other, PLANTED_DATE, text, number))
        rows["order_items"].append((key, 2, other, other, PLANTED_QUANTITY, number))
        rows["support_tickets"].append(
            (key, 2, other, other, PLANTED_DATE, PLANTED_DATE, text, text, text)
        )
    return rows


def is_planted(value: Any) -> bool:
    if isinstance(value, str):
        return PLANTED_TEXT in value or PLANTED_DATE in value
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value in PLANTED_IDS or value == PLANTED_QUANTITY
    return isinstance(value, float) and value in PLANTED_NUMBERS


def fill(execute: Any, tenant_only: int | None) -> None:
    """Plant the rows, or (with `tenant_only`) delete every other tenant's."""
    if tenant_only is not None:
        for table in ("order_items", "support_tickets", "orders", "customers", "products"):
            execute(f"DELETE FROM {table} WHERE tenant_id <> {tenant_only}")
        return
    for table, rows in planted_rows().items():
        marks = ", ".join("?" * len(rows[0]))
        for row in rows:
            execute(f"INSERT INTO {table} VALUES ({marks})", row)


def build(path: Path, tenant_only: int | None) -> None:
    if path.suffix == ".db":
        with sqlite3.connect(path) as connection:
            fill(connection.execute, tenant_only)
        connection.close()
    else:
        import duckdb

        duck = duckdb.connect(str(path))
        fill(duck.execute, tenant_only)
        duck.close()


@pytest.fixture(scope="module")
def shops(
    tmp_path_factory: pytest.TempPathFactory, shop_script: Any
) -> Iterator[dict[str, tuple[ma.sql.SqlDatabase, ma.sql.SqlDatabase]]]:
    """Per dialect: the planted shop (queried scoped) and tenant 1's rows alone (unscoped)."""
    from conftest import SHOP_DB

    folder = tmp_path_factory.mktemp("planted")
    shutil.copy(SHOP_DB, folder / "shop.db")
    shop_script.write_duckdb(folder / "shop.duckdb")
    limits = ma.sql.SqlLimits(result_bytes=100_000_000)
    found = {}
    for dialect, suffix in (("sqlite", ".db"), ("duckdb", ".duckdb")):
        full, own = folder / f"shop{suffix}", folder / f"own{suffix}"
        build(full, None)
        shutil.copy(full, own)
        build(own, 1)
        found[dialect] = (
            ma.sql.SqlDatabase(f"{dialect}:///{full}", row_limit=100_000, limits=limits),
            ma.sql.SqlDatabase(
                f"{dialect}:///{own}", row_limit=100_000, limits=limits, guard=False
            ),
        )
    yield found
    for scoped, own in found.values():
        scoped.close()
        own.close()


# -- the queries ---------------------------------------------------------------------------


class Names:
    """Aliases for one query: fresh ones, sometimes another table's name."""

    def __init__(self, draw: Any) -> None:
        self.draw = draw
        self.used: set[str] = set()

    def alias(self, table: str) -> str:
        pool = [f"a{len(self.used)}", *(t for t in TABLES if t != table)]
        name = self.draw(st.sampled_from([n for n in pool if n not in self.used]))
        self.used.add(name)
        return name


def reference(draw: Any, table: str) -> str:
    """A table, written one of the ways a query may name it."""
    ways = [table, table.upper(), f'"{table}"', f"main.{table}", f"Main.{table}"]
    return str(draw(st.sampled_from(ways)))


def literal(draw: Any, kind: str) -> str:
    if kind == "text":
        word = draw(st.sampled_from(["delivered", "DE", "business", "urgent", "books",
                                     "2025-01-01", PLANTED_TEXT + "-1", PLANTED_DATE]))  # fmt: skip
        return f"'{word}'"
    number = draw(st.sampled_from([0, 1, 2, 3, 50, 683, 684, 900_001, 987_654.25]))
    return str(number)


def predicate(draw: Any, alias: str, table: str) -> str:
    column = draw(st.sampled_from(sorted(COLUMNS[table])))
    kind = COLUMNS[table][column]
    left = f"{alias}.{column}"
    form = draw(st.integers(0, 6))
    if form == 0:
        return f"{left} = {literal(draw, kind)}"
    if form == 1:
        return f"{left} <> {literal(draw, kind)}"
    if form == 2:
        return f"{left} IN ({literal(draw, kind)}, {literal(draw, kind)})"
    if form == 3:
        return f"{left} IS {draw(st.sampled_from(['NULL', 'NOT NULL']))}"
    if form == 4:
        # Asking for another tenant's rows outright.
        return f"({alias}.tenant_id = 2 OR 1 = 1)"
    if form == 5:
        return f"{alias}.tenant_id {draw(st.sampled_from(['<> 1', 'IN (1, 2, 3)', '>= 2']))}"
    bound = "'A'" if kind == "text" else "10"
    return f"{left} > {bound}"


def source(draw: Any, names: Names, table: str) -> tuple[str, str]:
    """A FROM item reading `table`: (SQL, alias)."""
    alias = names.alias(table)
    if draw(st.booleans()):
        return f"{reference(draw, table)} {draw(st.sampled_from(['AS ', '']))}{alias}", alias
    inner = names.alias(table)
    where = f" WHERE {predicate(draw, inner, table)}" if draw(st.booleans()) else ""
    return f"(SELECT * FROM {reference(draw, table)} AS {inner}{where}) AS {alias}", alias


def joined(draw: Any, names: Names) -> tuple[str, list[tuple[str, str]], list[str]]:
    """FROM ... with zero or one join along a foreign key: (SQL, [(alias, table)], where)."""
    child, key, parent = draw(st.sampled_from(FOREIGN_KEYS))
    first, second = draw(st.sampled_from([(child, parent), (parent, child)]))
    left, left_alias = source(draw, names, first)
    if draw(st.booleans()):
        return left, [(left_alias, first)], []
    right, right_alias = source(draw, names, second)
    child_alias = left_alias if first == child else right_alias
    parent_alias = right_alias if first == child else left_alias
    on = f"{child_alias}.{key} = {parent_alias}.id"
    tables = [(left_alias, first), (right_alias, second)]
    form = draw(st.integers(0, 3))
    if form == 0:
        return f"{left} JOIN {right} ON {on}", tables, []
    if form == 1:
        return f"{left} LEFT JOIN {right} ON {on}", tables, []
    if form == 2:
        return f"{left}, {right}", tables, [on]
    return f"({left} JOIN {right} ON {on})", tables, []


def where_clause(draw: Any, tables: list[tuple[str, str]], required: list[str]) -> str:
    terms = list(required)
    for _ in range(draw(st.integers(0, 2))):
        alias, table = draw(st.sampled_from(tables))
        terms.append(predicate(draw, alias, table))
    return f" WHERE {' AND '.join(terms)}" if terms else ""


def numeric(table: str) -> str:
    return next(c for c in ("total", "unit_price", "quantity", "id") if c in COLUMNS[table])


def texty(table: str) -> str:
    """A column to group by: a text column, or order_items' quantity."""
    return next((c for c, kind in COLUMNS[table].items() if kind == "text"), "quantity")


@st.composite
def queries(draw: Any) -> tuple[str, bool]:
    """(a query, whether the guard must refuse it)."""
    names = Names(draw)
    kind = draw(st.sampled_from(["select", "aggregate", "in", "exists", "set", "cte",
                                 "window", "scalar", "in_table"]))  # fmt: skip
    if kind == "in_table":
        # SQLite reads the table named after IN without parentheses; the guard refuses it.
        table, other = draw(st.sampled_from(TABLES)), draw(st.sampled_from(TABLES))
        return f"SELECT count(*) FROM {table} WHERE id IN {reference(draw, other)}", True
    if kind == "scalar":
        first, second = draw(st.sampled_from(TABLES)), draw(st.sampled_from(TABLES))
        return (
            f"SELECT (SELECT count(*) FROM {reference(draw, first)}) AS n, "
            f"(SELECT sum(x.{numeric(second)}) FROM {reference(draw, second)} x) AS total"
        ), False
    if kind == "set":
        parts = []
        for _ in range(2):
            table = draw(st.sampled_from(TABLES))
            item, alias = source(draw, names, table)
            where = where_clause(draw, [(alias, table)], [])
            parts.append(f"SELECT {alias}.{draw(st.sampled_from(['id', 'tenant_id']))} "
                         f"FROM {item}{where}")  # fmt: skip
        operator = draw(st.sampled_from(["UNION", "UNION ALL", "INTERSECT", "EXCEPT"]))
        return f" {operator} ".join(parts), False
    from_, tables, required = joined(draw, names)
    where = where_clause(draw, tables, required)
    alias, table = tables[0]
    if kind == "select":
        columns = ", ".join(f"{a}.{draw(st.sampled_from(sorted(COLUMNS[t])))}" for a, t in tables)
        projection = draw(st.sampled_from([columns, f"{alias}.*", "*"]))
        return f"SELECT {projection} FROM {from_}{where}", False
    if kind == "aggregate":
        group = f"{alias}.{texty(table)}"
        return (
            f"SELECT {group}, count(*), sum({alias}.{numeric(table)}), max({alias}.id) "
            f"FROM {from_}{where} GROUP BY {group}"
        ), False
    if kind == "window":
        return (
            f"SELECT {alias}.id, count(*) OVER (PARTITION BY {alias}.{texty(table)}), "
            f"sum({alias}.{numeric(table)}) OVER (PARTITION BY {alias}.tenant_id), "
            f"rank() OVER (ORDER BY {alias}.{texty(table)}) FROM {from_}{where}"
        ), False
    if kind == "cte":
        body = f"SELECT {alias}.id AS id, {alias}.{texty(table)} AS v FROM {from_}{where}"
        children = [(child, key) for child, key, parent in FOREIGN_KEYS if parent == table]
        if children and draw(st.booleans()):
            child, key = draw(st.sampled_from(children))
            # Counted, not listed: a join of a join can give more rows than the row limit.
            return (
                f"WITH c AS ({body}) SELECT c.id, c.v, count(x.id) FROM c "
                f"JOIN {reference(draw, child)} x ON x.{key} = c.id GROUP BY c.id, c.v"
            ), False
        return f"WITH c AS ({body}) SELECT c.id, c.v FROM c", False
    # IN and EXISTS, along a foreign key from the query's first table.
    links = [k for k in FOREIGN_KEYS if table in (k[0], k[2])]
    child, key, parent = draw(st.sampled_from(links))
    if table == child:
        mine, theirs, other = f"{alias}.{key}", "id", parent
    else:
        mine, theirs, other = f"{alias}.id", key, child
    inner = names.alias(other)
    inner_where = f" AND {predicate(draw, inner, other)}" if draw(st.booleans()) else ""
    if kind == "in":
        negation = draw(st.sampled_from(["", "NOT "]))
        condition = (
            f"{mine} {negation}IN (SELECT {inner}.{theirs} FROM {reference(draw, other)} {inner}"
            f" WHERE {inner}.{theirs} IS NOT NULL{inner_where})"
        )
    else:
        condition = (
            f"EXISTS (SELECT 1 FROM {reference(draw, other)} {inner} "
            f"WHERE {inner}.{theirs} = {mine}{inner_where})"
        )
    joiner = " AND " if where else " WHERE "
    return f"SELECT {alias}.id FROM {from_}{where}{joiner}{condition}", False


def normal(rows: list[list[Any]]) -> list[str]:
    """Rows in an order- and rounding-independent form (sums may add in another order)."""

    def value(v: Any) -> Any:
        return round(v, 6) if isinstance(v, float) and math.isfinite(v) else v

    return sorted(repr([value(v) for v in row]) for row in rows)


@pytest.mark.timeout(0 if PROFILE == "thorough" else 60)
@settings(settings.get_profile(PROFILE))
@given(query=queries())
def test_a_scoped_query_never_sees_another_tenants_rows(
    shops: dict[str, tuple[ma.sql.SqlDatabase, ma.sql.SqlDatabase]], query: tuple[str, bool]
) -> None:
    sql, refused = query
    for dialect, (scoped, own) in shops.items():
        if refused:
            with pytest.raises(ma.errors.SqlRefused, match="IN a table") as refusal:
                scoped.query(sql, {"tenant_id": 1})
            assert refusal.value.code == "MA608"
            continue
        seen = scoped.query(sql, {"tenant_id": 1})
        assert not seen.truncated
        assert normal(seen.rows) == normal(own.query(sql).rows), (dialect, seen.sql)
        leaked = [v for row in seen.rows for v in row if is_planted(v)]
        assert not leaked, (dialect, seen.sql, leaked)


def test_the_planted_rows_are_there_to_be_found(
    shops: dict[str, tuple[ma.sql.SqlDatabase, ma.sql.SqlDatabase]],
) -> None:
    """Unscoped, the planted rows are read: the property above is not vacuous."""
    for scoped, _ in shops.values():
        found = scoped.query("SELECT o.status, c.name FROM orders o JOIN customers c "
                             "ON c.id = o.customer_id WHERE o.tenant_id = 2")  # fmt: skip
        assert any(is_planted(v) for row in found.rows for v in row)
        leaked = scoped.query("SELECT o.status FROM orders o WHERE o.tenant_id = 2",
                              {"tenant_id": 1})  # fmt: skip
        assert leaked.rows == []
