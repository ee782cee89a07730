"""Row scoping, and the proof that what runs is what the guard checked.

With ``scope={"tenant_id": 7}``, every reference to a table becomes a subquery that keeps only
the scope's rows, the value a bound parameter::

    orders AS o   →   (SELECT * FROM orders WHERE orders.tenant_id = :scope_tenant_id) AS o

A table reference can carry clauses of its own — a parenthesised join ``(a JOIN b ON ...)``,
``PIVOT``, ``TABLESAMPLE`` — and the subquery takes them over. An earlier rewrite replaced the
reference and silently lost them; so the rewrite is not trusted: `verify` parses the SQL that
will run, turns each scoping subquery back into the table reference it came from, runs every
check of the guard on the result, and compares it with the tree that was checked. A query that
lost or gained anything on the way, or that would read a table outside a scoping subquery, is
refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import SqlRefused
from ._functions import Dialect

if TYPE_CHECKING:
    from sqlglot import exp

ScopeValue = str | int | float | bool
"""The type of a scope value: one column value, bound as a parameter."""

CARRIED = ("joins", "pivots", "sample")
"""A table reference's own clauses, which its scoping subquery takes over."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REWRITE_FAILED = (
    "the guard could not run this query exactly as it was checked ({detail}); write it more "
    "plainly (name each table in FROM or JOIN, without PIVOT or TABLESAMPLE on a table)"
)


def scope_parameters(scope: Mapping[str, ScopeValue | None]) -> dict[str, ScopeValue]:
    """The bound parameters for `scope`, or `SqlRefused` (MA606) if a column or value is bad."""
    params: dict[str, ScopeValue] = {}
    for column, value in scope.items():
        if not _IDENTIFIER.fullmatch(column):
            raise SqlRefused("MA606", f"the scope column {column!r} is not a plain column name")
        if value is None:
            raise SqlRefused(
                "MA606", f"no value for the scope column '{column}'; the caller must give one"
            )
        params[f"scope_{column}"] = value
    return params


def scope_tables(
    tables: Sequence[exp.Table], columns: Sequence[str], known: Mapping[str, Collection[str]]
) -> None:
    """Replace each table reference, in place, by its scoping subquery."""
    for table in tables:
        have = {c.lower() for c in known.get(table.name.lower(), ())}
        missing = [c for c in columns if c.lower() not in have]
        if missing:
            raise SqlRefused(
                "MA606",
                f"table '{table.name}' has no column {', '.join(missing)}, so its rows cannot be "
                "limited to the caller's; this table cannot be read in a scoped query",
            )
        table.replace(_scoped(table, columns))


def unscoped(table: exp.Table) -> exp.Table:
    """The form a table reference is compared in: as written, with an alias if it had none."""
    from sqlglot import exp

    normal = table.copy()
    if not normal.args.get("alias"):
        normal.set("alias", exp.TableAlias(this=table.this.copy()))
    return normal


def verify(
    sql: str,
    expected: str,
    dialect: Dialect,
    columns: Sequence[str] | None,
    walk: Callable[[exp.Expr], list[exp.Table]],
) -> None:
    """Refuse (MA608) unless `sql`, parsed back, is the checked query `expected` (as
    generated, with its table references in `unscoped` form) with every table scoped to
    `columns` (None: unscoped), and passes every check `walk` makes."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        ran = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError as exc:
        raise _failed(f"its SQL does not parse back: {str(exc)[:120]}") from None
    restored: set[int] = set()
    if columns is not None:
        restored = _restore_tables(ran, columns, dialect)
    try:
        read = walk(ran)
    except SqlRefused as refused:
        raise _failed(refused.reason) from None
    if columns is not None and any(id(table) not in restored for table in read):
        raise _failed("a table would be read outside its scoping subquery")
    if ran.sql(dialect=dialect) != expected:
        raise _failed("the rewritten SQL differs from the query that was checked")


def _scoped(table: exp.Table, columns: Sequence[str]) -> exp.Subquery:
    from sqlglot import exp

    source = exp.Table(this=table.this.copy(), db=_copied(table.args.get("db")))
    alias = _copied(table.args.get("alias")) or exp.TableAlias(this=table.this.copy())
    scoped = exp.Subquery(this=_filtered(source, columns), alias=alias)
    for clause in CARRIED:
        scoped.set(clause, table.args.get(clause))
    return scoped


def _filtered(source: exp.Table, columns: Sequence[str]) -> exp.Select:
    from sqlglot import exp

    condition = exp.and_(
        *(
            exp.column(column, table=source.this.copy()).eq(exp.Placeholder(this=f"scope_{column}"))
            for column in columns
        )
    )
    # Built, not parsed: exp.select("*") would parse "*" once per table reference.
    return exp.Select(
        expressions=[exp.Star()], from_=exp.From(this=source), where=exp.Where(this=condition)
    )


def _restore_tables(ran: exp.Expr, columns: Sequence[str], dialect: Dialect) -> set[int]:
    """Turn each scoping subquery in `ran` back into its table reference; their ids."""
    from sqlglot import exp

    restored: set[int] = set()
    for subquery in list(ran.find_all(exp.Subquery)):
        source = _scoping_source(subquery, columns, dialect)
        if source is None:
            continue
        table = exp.Table(this=source.this, db=source.args.get("db"))
        table.set("alias", subquery.args.get("alias"))
        for clause in CARRIED:
            table.set(clause, subquery.args.get(clause))
        subquery.replace(table)
        restored.add(id(table))
    return restored


def _scoping_source(
    subquery: exp.Subquery, columns: Sequence[str], dialect: Dialect
) -> exp.Table | None:
    """The table `subquery` scopes, if it is exactly a scoping subquery, else None."""
    from sqlglot import exp

    select = subquery.this
    # The shape first, cheaply; the generated SQL settles it.
    if not isinstance(select, exp.Select) or {
        name for name, value in select.args.items() if value is not None and value != []
    } != {"expressions", "from_", "where"}:
        return None
    source = select.args.get("from_")
    table = source.this if source is not None else None
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
        return None
    plain = exp.Table(this=table.this.copy(), db=_copied(table.args.get("db")))
    if select.sql(dialect=dialect) != _filtered(plain, columns).sql(dialect=dialect):
        return None
    return table


def _copied(node: exp.Expr | None) -> exp.Expr | None:
    return node.copy() if node is not None else None


def _failed(detail: str) -> SqlRefused:
    return SqlRefused("MA608", _REWRITE_FAILED.format(detail=detail))
