"""The SQL guard: a statement must be exactly one read-only query before it reaches a database.

`guard_sql` parses the statement with sqlglot in the connection's dialect and refuses, with a
reason an agent can act on (`SqlRefused`, codes ``MA601``–``MA607``):

- anything that does not parse, and more than one statement;
- anything but a query (SELECT, WITH ... SELECT, UNION/INTERSECT/EXCEPT of those): DDL, DML,
  PRAGMA, ATTACH, COPY, INSTALL/LOAD, SET, ... — also hidden inside a CTE or a subquery — and
  ``SELECT ... INTO``, locking clauses, bind parameters;
- a function outside the dialect's allow-list (`_sql_functions`);
- a source that is not a table of this database (a file path, another catalog, a table
  function), and a table outside the allow-list when one is given;
- with row scoping, a table that cannot be scoped.

What runs is the SQL sqlglot regenerates from the checked tree, comments dropped — never the
text as written — so that the database executes exactly what was checked. With row scoping,
every table reference (in joins, subqueries, CTEs, set operations alike) becomes a subquery
that keeps only the rows matching the scope, with the values as bound parameters: a question
cannot widen it, whatever it writes in its WHERE clause.

The guard is defence in depth: the connection is read-only as well (`_sql_connect`).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._errors import SqlRefused
from ._sql_functions import FUNCTION_CLASSES, FUNCTION_NAMES, Dialect

if TYPE_CHECKING:
    from sqlglot import exp

MAX_SQL_CHARS = 20_000
"""Longer text is not a question's query; refusing it early bounds the parser's work."""

ScopeValue = str | int | float | bool
"""The type of a scope value: one column value, bound as a parameter."""

_HOW_TO_FIX = "write one SELECT (or WITH ... SELECT) query that only reads"
_DEFAULT_SCHEMAS: dict[Dialect, str] = {"sqlite": "main", "duckdb": "main", "postgres": "public"}
"""The one schema a query may name: the tables the connection describes live there."""
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class GuardedQuery:
    """A statement the guard accepted: the SQL to run, its bound parameters, the tables read."""

    sql: str
    params: Mapping[str, ScopeValue] = field(default_factory=dict)
    tables: tuple[str, ...] = ()


def guard_sql(
    sql: str,
    dialect: Dialect,
    *,
    columns: Mapping[str, Collection[str]] | None = None,
    allowed_tables: Collection[str] | None = None,
    scope: Mapping[str, ScopeValue | None] | None = None,
) -> GuardedQuery:
    """Check `sql` and return what may run, or raise `SqlRefused` saying why and what to do.

    `columns` maps the database's tables (lower-case) to their columns, for scoping;
    `allowed_tables` limits the tables a query may read; `scope` maps a column to the value
    every row read must have (e.g. ``{"tenant_id": 7}``).
    """
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    _quiet_sqlglot()
    text = sql.strip()
    if not text:
        raise SqlRefused("MA605", f"the statement is empty; {_HOW_TO_FIX}")
    if len(text) > MAX_SQL_CHARS:
        raise SqlRefused(
            "MA605", f"the statement is {len(text):,} characters long (at most {MAX_SQL_CHARS:,})"
        )
    try:
        parsed = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except RecursionError:
        raise SqlRefused(
            "MA605", "the statement is nested too deeply to check; write it with fewer levels"
        ) from None
    except SqlglotError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SqlRefused(
            "MA605", f"the statement does not parse as {dialect} SQL: {first}; fix the syntax"
        ) from None
    if len(parsed) != 1:
        raise SqlRefused(
            "MA601",
            f"found {len(parsed)} statements; send exactly one query, without ';' between "
            "statements",
        )
    root = parsed[0]
    if not isinstance(root, exp.Query):
        raise SqlRefused("MA602", f"{_statement_kind(root)} is not allowed; {_HOW_TO_FIX}")
    cte_names = {cte.alias_or_name.lower() for cte in root.find_all(exp.CTE)}
    known = {name.lower(): cols for name, cols in (columns or {}).items()}
    allowed = {name.lower() for name in allowed_tables} if allowed_tables is not None else None
    functions = FUNCTION_NAMES[dialect]
    tables: list[exp.Table] = []
    for node in root.walk():
        _check_node(node, functions, dialect)
        if isinstance(node, exp.Table):
            if _is_cte_reference(node, cte_names):
                continue
            _check_table(node, allowed, known, dialect)
            tables.append(node)
    if scope is not None or allowed is not None:
        for name in sorted(cte_names & (set(known) | (allowed or set()))):
            raise SqlRefused(
                "MA606",
                f"the CTE '{name}' has the name of a table; rename the CTE so that every "
                "reference to the table is checked",
            )
    params: dict[str, ScopeValue] = {}
    if scope:
        params = _scope(tables, scope, known)
    names = tuple(dict.fromkeys(t.name.lower() for t in tables))
    return GuardedQuery(root.sql(dialect=dialect, comments=False), params, names)


@functools.cache
def _quiet_sqlglot() -> None:
    # sqlglot logs a warning for each statement it can only parse as a raw command; the guard
    # refuses those with its own message, and Python's last-resort handler would print the
    # warning on the user's terminal. A NullHandler hides it only where logging is not set up.
    logging.getLogger("sqlglot").addHandler(logging.NullHandler())


def _statement_kind(node: exp.Expr) -> str:
    from sqlglot import exp

    kind = str(node.this).upper() if isinstance(node, exp.Command) else node.key.upper()
    return f"{'an' if kind[:1] in 'AEIOU' else 'a'} {kind} statement"


def _check_node(node: exp.Expr, functions: frozenset[str], dialect: Dialect) -> None:
    from sqlglot import exp

    if isinstance(node, exp.DML | exp.DDL | exp.Command):
        raise SqlRefused(
            "MA602",
            f"{_statement_kind(node)} inside the query is not allowed (a write hidden in a CTE "
            f"or a subquery); {_HOW_TO_FIX}",
        )
    if isinstance(node, exp.Into):
        raise SqlRefused(
            "MA602", "SELECT ... INTO creates a table; remove INTO: a query only reads"
        )
    if isinstance(node, exp.Lock):
        raise SqlRefused("MA602", "locking clauses (FOR UPDATE/SHARE) are not allowed; remove it")
    if isinstance(node, exp.Placeholder | exp.Parameter):
        raise SqlRefused(
            "MA607", "bind parameters are not allowed; write the values into the query"
        )
    # AND/OR are functions to sqlglot; every other function, operators included, is checked.
    if isinstance(node, exp.Func) and not isinstance(node, exp.Connector):
        name = node.name.lower() if isinstance(node, exp.Anonymous) else node.key
        if isinstance(node, exp.Anonymous) and name not in functions:
            raise SqlRefused(
                "MA603",
                f"function {node.name}() is not allowed in {dialect} queries (only functions "
                "of their arguments are: arithmetic, text, dates, aggregates, windows); "
                "compute it another way",
            )
        if not isinstance(node, exp.Anonymous) and name not in FUNCTION_CLASSES:
            shown = node.sql_name() if hasattr(node, "sql_name") else name
            raise SqlRefused(
                "MA603",
                f"function {shown}() is not allowed in {dialect} queries (it may read files, "
                "reach the network or have side effects); compute it another way",
            )
    elif isinstance(node, _statement_types()):
        raise SqlRefused("MA602", f"{_statement_kind(node)} is not allowed; {_HOW_TO_FIX}")


@functools.cache
def _statement_types() -> tuple[type[exp.Expr], ...]:
    """Statements that are neither DDL nor DML in sqlglot's classes: refused anywhere."""
    from sqlglot import exp

    return (
        exp.Pragma, exp.Attach, exp.Detach, exp.Copy, exp.Install, exp.Set, exp.Grant,
        exp.Transaction, exp.Commit, exp.Rollback, exp.Use, exp.Describe, exp.Show,
        exp.LoadData, exp.Kill, exp.Export, exp.Analyze, exp.Cache, exp.Uncache, exp.Refresh,
    )  # fmt: skip


def _is_cte_reference(table: exp.Table, cte_names: set[str]) -> bool:
    return (
        not table.args.get("db")
        and not table.args.get("catalog")
        and (table.name.lower() in cte_names)
    )


def _check_table(
    table: exp.Table,
    allowed: set[str] | None,
    known: Mapping[str, Collection[str]],
    dialect: Dialect,
) -> None:
    from sqlglot import exp

    # DuckDB reads a file named like a table ('data.csv', "s3://..."): such names never pass.
    if not isinstance(table.this, exp.Identifier) or any(c in table.name for c in "./\\:"):
        raise SqlRefused(
            "MA607",
            f"'{table.sql()}' is not a table of this database (a file, a URL or a table "
            "function); read only from the database's tables",
        )
    schema = table.args.get("db")
    if table.args.get("catalog") or (schema and schema.name.lower() != _DEFAULT_SCHEMAS[dialect]):
        raise SqlRefused(
            "MA607",
            f"'{table.sql()}' names another database or schema; read only from this "
            "database's tables (their names need no prefix)",
        )
    if known and table.name.lower() not in known:
        raise SqlRefused(
            "MA604",
            f"there is no table '{table.name}' in this database; tables: "
            + ", ".join(sorted(known)),
        )
    if allowed is not None and table.name.lower() not in allowed:
        raise SqlRefused(
            "MA604",
            f"table '{table.name}' is not one this query may read; allowed: "
            + ", ".join(sorted(allowed)),
        )


def _scope(
    tables: list[exp.Table],
    scope: Mapping[str, ScopeValue | None],
    known: Mapping[str, Collection[str]],
) -> dict[str, ScopeValue]:
    """Replace each table reference by a subquery that keeps only the scope's rows."""
    from sqlglot import exp

    params: dict[str, ScopeValue] = {}
    for column, value in scope.items():
        if not _IDENTIFIER.fullmatch(column):
            raise SqlRefused("MA606", f"the scope column {column!r} is not a plain column name")
        if value is None:
            raise SqlRefused(
                "MA606", f"no value for the scope column '{column}'; the caller must give one"
            )
        params[f"scope_{column}"] = value
    for table in tables:
        name = table.name.lower()
        have = {c.lower() for c in known.get(name, ())}
        missing = [c for c in scope if c.lower() not in have]
        if missing:
            raise SqlRefused(
                "MA606",
                f"table '{table.name}' has no column {', '.join(missing)}, so its rows cannot be "
                "limited to the caller's; this table cannot be read in a scoped query",
            )
        source = exp.Table(this=table.this.copy(), db=table.args.get("db"))
        condition = exp.and_(
            *(
                exp.column(column, table=table.this.copy()).eq(
                    exp.Placeholder(this=f"scope_{column}")
                )
                for column in scope
            )
        )
        alias = table.args.get("alias") or exp.TableAlias(this=table.this.copy())
        filtered = exp.select("*").from_(source).where(condition)
        table.replace(exp.Subquery(this=filtered, alias=alias.copy()))
    return params
