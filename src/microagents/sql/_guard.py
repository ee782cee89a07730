"""The SQL guard: a statement must be exactly one read-only query before it reaches a database.

`guard_sql` parses the statement with sqlglot in the connection's dialect and walks every node
of it against allow-lists — of node types and their clauses (`_sql_nodes`), of functions per
dialect (`_sql_functions`) — refusing, with a reason an agent can act on (`SqlRefused`, codes
``MA601``–``MA608``):

- anything that does not parse, and more than one statement;
- anything but a query (SELECT, WITH ... SELECT, UNION/INTERSECT/EXCEPT of those): DDL, DML,
  PRAGMA, ATTACH, COPY, INSTALL/LOAD, SET, ... — also hidden inside a CTE or a subquery — and
  ``SELECT ... INTO``, locking clauses, bind parameters;
- a function outside the dialect's allow-list;
- a source that is not a table of this database (a file path, another catalog, a table
  function), and a table outside the allow-list when one is given;
- any other syntax the allow-lists do not name (SQLite's ``x IN tablename``, lambdas, ...);
- with row scoping, a table that cannot be scoped.

Every table reference is resolved where it stands: a name is a CTE only where that CTE is
visible, so a CTE cannot make a table elsewhere in the statement pass unchecked. What runs is
the SQL sqlglot regenerates from the checked tree, comments dropped, never the text as written;
with row scoping, each table reference becomes a subquery keeping only the scope's rows
(`_sql_scope`), and the SQL is parsed back and compared with the checked tree before it may run.

The guard is defence in depth: the engines are read-only and bounded as well (`_sql_engines`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import SqlRefused
from ._functions import FUNCTION_CLASSES, FUNCTION_NAMES, Dialect
from ._nodes import allowed_nodes, clause_args, is_json_path
from ._scope import ScopeValue, scope_parameters, scope_tables, unscoped, verify

if TYPE_CHECKING:
    from sqlglot import exp

__all__ = ["MAX_SQL_CHARS", "GuardedQuery", "ScopeValue", "guard_sql"]

MAX_SQL_CHARS = 20_000
"""Longer text is not a question's query; refusing it early bounds the parser's work."""

_HOW_TO_FIX = "write one SELECT (or WITH ... SELECT) query that only reads"
_PLAIN_SQL = (
    "write the query with plain SELECT clauses: joins, subqueries, CTEs, UNION/INTERSECT/"
    "EXCEPT, CASE, aggregates and window functions"
)
_DEFAULT_SCHEMAS: dict[Dialect, str] = {"sqlite": "main", "duckdb": "main", "postgres": "public"}
"""The one schema a query may name: the tables the connection describes live there."""


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
    known = {name.lower(): cols for name, cols in (columns or {}).items()}
    allowed = {name.lower() for name in allowed_tables} if allowed_tables is not None else None
    walker = _Walker(dialect, known, allowed)
    root = _parse(sql, dialect)
    scoped = tuple(scope) if scope else None
    try:
        tables = walker.walk(root)
        if scope is not None or allowed is not None:
            _refuse_ctes_named_like_tables(root, set(known) | (allowed or set()))
        params = scope_parameters(scope) if scope else {}
        expected = None
        if scoped is not None:
            expected = _generate(_as_compared(root, walker), dialect)
            scope_tables(tables, scoped, known)
        text = _generate(root, dialect)
        verify(text, expected or text, dialect, scoped, walker.walk)
    except RecursionError:
        raise _too_deep() from None
    # A parameter the SQL does not use is an error to DuckDB: bind only when a table is scoped.
    return GuardedQuery(
        text, params if tables else {}, tuple(dict.fromkeys(t.name.lower() for t in tables))
    )


def _as_compared(root: exp.Query, walker: _Walker) -> exp.Query:
    """A copy of the checked tree as the SQL that runs must parse back to, once its scoping
    subqueries are turned back into table references (`_sql_scope.verify`)."""
    copy = root.copy()
    for table in walker.walk(copy):
        table.replace(unscoped(table))
    return copy


def _parse(sql: str, dialect: Dialect) -> exp.Query:
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
        raise _too_deep() from None
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
    return root


def _generate(tree: exp.Expr, dialect: Dialect) -> str:
    from sqlglot.errors import ErrorLevel, UnsupportedError

    try:
        return tree.sql(dialect=dialect, comments=False, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise SqlRefused(
            "MA608",
            f"part of the query cannot be written in {dialect} SQL ({str(exc)[:120]}); "
            f"{_PLAIN_SQL}",
        ) from None


@functools.cache
def _quiet_sqlglot() -> None:
    # sqlglot logs a warning for each statement it can only parse as a raw command; the guard
    # refuses those with its own message, and Python's last-resort handler would print the
    # warning on the user's terminal. A NullHandler hides it only where logging is not set up.
    logging.getLogger("sqlglot").addHandler(logging.NullHandler())


def _too_deep() -> SqlRefused:
    return SqlRefused(
        "MA605", "the statement is nested too deeply to check; write it with fewer levels"
    )


def _statement_kind(node: exp.Expr) -> str:
    from sqlglot import exp

    kind = str(node.this).upper() if isinstance(node, exp.Command) else node.key.upper()
    return f"{'an' if kind[:1] in 'AEIOU' else 'a'} {kind} statement"


class _Walker:
    """Checks every node of a statement; returns the references to the database's tables."""

    def __init__(
        self, dialect: Dialect, known: Mapping[str, Collection[str]], allowed: set[str] | None
    ) -> None:
        self.dialect = dialect
        self.known = known
        self.allowed = allowed

    def walk(self, root: exp.Expr) -> list[exp.Table]:
        """Check `root` and its descendants, in order; the table references that are not CTEs.

        An explicit stack rather than recursion: a statement may nest deeper than Python's
        recursion limit allows.
        """
        from sqlglot import exp

        tables: list[exp.Table] = []
        stack: list[tuple[exp.Expr, frozenset[str], bool]] = [(root, frozenset(), True)]
        while stack:
            node, ctes, expand = stack.pop()
            self._check(node)
            if isinstance(node, exp.Table) and not _is_cte(node, ctes):
                self._check_table(node)
                tables.append(node)
            if expand:
                stack.extend(reversed(_children(node, ctes, self.dialect)))
        return tables

    def _check(self, node: exp.Expr) -> None:
        from sqlglot import exp

        if isinstance(node, exp.DML | exp.DDL | exp.Command):
            raise SqlRefused(
                "MA602",
                f"{_statement_kind(node)} inside the query is not allowed (a write hidden in a "
                f"CTE or a subquery); {_HOW_TO_FIX}",
            )
        if isinstance(node, exp.Placeholder | exp.Parameter):
            raise SqlRefused(
                "MA607", "bind parameters are not allowed; write the values into the query"
            )
        if isinstance(node, _statement_types()):
            raise SqlRefused("MA602", f"{_statement_kind(node)} is not allowed; {_HOW_TO_FIX}")
        if isinstance(node, exp.Lateral) and not isinstance(node.this, exp.Subquery):
            raise SqlRefused(
                "MA607",
                f"'{node.sql(dialect=self.dialect)[:80]}' is not a table of this database (a "
                "table function); write LATERAL (SELECT ...) over the database's tables",
            )
        # AND/OR are functions to sqlglot; every other function, operators included, is checked.
        if isinstance(node, exp.Func) and not isinstance(node, exp.Connector):
            self._check_function(node)
        elif type(node) not in allowed_nodes() and not is_json_path(node):
            raise SqlRefused(
                "MA608",
                f"'{node.sql(dialect=self.dialect)[:80]}' ({node.key}) is not something the "
                f"guard can check; {_PLAIN_SQL}",
            )
        self._check_clauses(node)

    def _check_function(self, node: exp.Func) -> None:
        from sqlglot import exp

        if isinstance(node, exp.Anonymous):
            if node.name.lower() not in FUNCTION_NAMES[self.dialect]:
                raise SqlRefused(
                    "MA603",
                    f"function {node.name}() is not allowed in {self.dialect} queries (only "
                    "functions of their arguments are: arithmetic, text, dates, aggregates, "
                    "windows); compute it another way",
                )
        elif node.key not in FUNCTION_CLASSES:
            shown = node.sql_name() if hasattr(node, "sql_name") else node.key
            raise SqlRefused(
                "MA603",
                f"function {shown}() is not allowed in {self.dialect} queries (it may read "
                "files, reach the network or have side effects); compute it another way",
            )

    def _check_clauses(self, node: exp.Expr) -> None:
        from sqlglot import exp

        allowed = clause_args().get(type(node))
        if allowed is None:
            return
        for name, value in node.args.items():
            # False is a value: sqlglot writes NOT INDEXED as indexed=False.
            if name in allowed or value is None or value == []:
                continue
            if name == "into":
                raise SqlRefused(
                    "MA602", "SELECT ... INTO creates a table; remove INTO: a query only reads"
                )
            if name == "locks":
                raise SqlRefused(
                    "MA602", "locking clauses (FOR UPDATE/SHARE) are not allowed; remove it"
                )
            if isinstance(node, exp.In) and name == "field":
                raise SqlRefused(
                    "MA608",
                    f"'x IN {value.sql(dialect=self.dialect)}' (IN a table or function without "
                    "parentheses) is not allowed; write x IN (SELECT column FROM table)",
                )
            raise SqlRefused(
                "MA608",
                f"the {name.rstrip('_').upper()} part of '{node.sql(dialect=self.dialect)[:80]}'"
                f" is not something the guard can check; {_PLAIN_SQL}",
            )

    def _check_table(self, table: exp.Table) -> None:
        from sqlglot import exp

        # DuckDB reads a file named like a table ('data.csv', "s3://..."): such names never pass.
        if not isinstance(table.this, exp.Identifier) or any(c in table.name for c in "./\\:"):
            raise SqlRefused(
                "MA607",
                f"'{table.sql()}' is not a table of this database (a file, a URL or a table "
                "function); read only from the database's tables",
            )
        schema = table.args.get("db")
        if table.args.get("catalog") or (
            schema and schema.name.lower() != _DEFAULT_SCHEMAS[self.dialect]
        ):
            raise SqlRefused(
                "MA607",
                f"'{table.sql()}' names another database or schema; read only from this "
                "database's tables (their names need no prefix)",
            )
        name = table.name.lower()
        if self.known and name not in self.known:
            raise SqlRefused(
                "MA604",
                f"there is no table '{table.name}' in this database; tables: "
                + ", ".join(sorted(self.known)),
            )
        if self.allowed is not None and name not in self.allowed:
            raise SqlRefused(
                "MA604",
                f"table '{table.name}' is not one this query may read; allowed: "
                + ", ".join(sorted(self.allowed)),
            )


def _children(
    node: exp.Expr, ctes: frozenset[str], dialect: Dialect
) -> list[tuple[exp.Expr, frozenset[str], bool]]:
    """`node`'s children, each with the CTE names visible inside it and whether to walk into
    it (a WITH and its CTEs are checked here, their parts each with its own visible names).

    A query's CTEs are visible in its body and in the CTEs after them; a CTE sees its own name
    only when it can recurse (``WITH RECURSIVE``; in SQLite, always). Where a name is not
    surely a CTE, it is taken for a table and checked as one: at worst a rare valid query is
    refused.
    """
    from sqlglot import exp

    with_ = node.args.get("with_")
    if not isinstance(with_, exp.With):
        return [(child, ctes, True) for child in node.iter_expressions()]
    names = [cte.alias_or_name.lower() for cte in with_.expressions]
    recursive = bool(with_.args.get("recursive")) or dialect == "sqlite"
    found: list[tuple[exp.Expr, frozenset[str], bool]] = []
    for child in node.iter_expressions():
        if child is not with_:
            found.append((child, ctes | frozenset(names), True))
            continue
        found.append((with_, ctes, False))
        for index, cte in enumerate(with_.expressions):
            visible = ctes | frozenset(names[: index + 1 if recursive else index])
            found.append((cte, ctes, False))
            found.extend((part, visible, True) for part in cte.iter_expressions())
    return found


def _is_cte(table: exp.Table, ctes: frozenset[str]) -> bool:
    return not table.args.get("db") and not table.args.get("catalog") and table.name.lower() in ctes


def _refuse_ctes_named_like_tables(root: exp.Expr, tables: set[str]) -> None:
    from sqlglot import exp

    for name in sorted({cte.alias_or_name.lower() for cte in root.find_all(exp.CTE)} & tables):
        raise SqlRefused(
            "MA606",
            f"the CTE '{name}' has the name of a table; rename the CTE so that every "
            "reference to the table is checked",
        )


@functools.cache
def _statement_types() -> tuple[type[exp.Expr], ...]:
    """Statements that are neither DDL nor DML in sqlglot's classes: refused anywhere."""
    from sqlglot import exp

    return (
        exp.Pragma, exp.Attach, exp.Detach, exp.Copy, exp.Install, exp.Set, exp.Grant,
        exp.Transaction, exp.Commit, exp.Rollback, exp.Use, exp.Describe, exp.Show,
        exp.LoadData, exp.Kill, exp.Export, exp.Analyze, exp.Cache, exp.Uncache, exp.Refresh,
    )  # fmt: skip
