"""The SQL tools, `sql.schema` and `sql.query`, bound to one database chosen by the user.

A `SqlDatabase` is the database (a URL) with the limits every query runs under: the tables a
query may read, a row limit, a timeout, and the engine's bounds (`SqlLimits`: memory, value and
result sizes). `sql_tools(database)` makes the two tools for it;
a `Project(database=...)` (or ``microagents run --database URL``) adds them to the project's
tools. Without a database the tools still exist — so that workflows using them validate — and
each call says how to configure one.

Row scoping is an argument of the tools, ``scope={"tenant_id": 7}``. Bind it on a *tool node*
from the run's input (``scope: {tenant_id: "{{ input.tenant_id }}"}``): there the value comes
from the caller, never from a model. (An agent given these tools chooses its own arguments.)
"""

# Not `from __future__ import annotations`: `@tool` reads these signatures at runtime, and the
# tool functions are closures whose string annotations could not be resolved.
import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from ..errors import SqlError
from ..graph._tools import Tool, tool
from ._connect import Connection, Table, table_columns
from ._guard import GuardedQuery, ScopeValue, guard_sql
from ._limits import SqlLimits

DEFAULT_ROW_LIMIT = 200
DEFAULT_TIMEOUT = 5.0
SAMPLE_VALUES = 3
ALL_VALUES = 6
"""A text column with at most this many distinct values is listed in full (an enum, in effect)."""
SAMPLE_CHARS = 40
TEXT_TYPES = ("CHAR", "TEXT", "STRING", "VARCHAR", "ENUM")

Scope = dict[str, ScopeValue] | None


class SchemaSummary(BaseModel):
    """What `sql.schema` returns: the dialect and a compact description of the tables."""

    dialect: str = Field(description="The SQL dialect to write: sqlite, duckdb or postgres.")
    text: str = Field(description="Tables, columns, types, keys and sample values, one a line.")
    tables: list[str] = Field(description="The tables a query may read.")


class QueryRows(BaseModel):
    """What `sql.query` returns: the rows, with their column names."""

    sql: str = Field(description="The statement as it ran (rewritten by the guard).")
    columns: list[str]
    rows: list[list[Any]]
    row_count: int = Field(description="Rows returned (at most the row limit).")
    truncated: bool = Field(
        description="True when the query had more rows than the row or size limit let through."
    )
    note: str = Field(default="", description="Says when and how the rows were truncated.")


class SqlDatabase:
    """A database the SQL tools read, by URL, and the limits each query runs under.

    ```python
    shop = SqlDatabase("sqlite:///examples/shop.db", row_limit=100, timeout=3)
    project = Project(database=shop)
    ```

    `limits` bounds what one query may use inside the engine — memory, the longest value, the
    bytes of rows returned (`SqlLimits`; the defaults suit analytical questions). Queries run
    in worker processes, opened on first use, with the schema, read once and cached;
    `close()` stops them. `guard=False` sends statements to the database unchecked: only for
    testing that the connection alone is read-only and bounded; never in production.
    """

    def __init__(
        self,
        url: str,
        *,
        tables: Iterable[str] | None = None,
        row_limit: int = DEFAULT_ROW_LIMIT,
        timeout: float = DEFAULT_TIMEOUT,
        limits: SqlLimits | None = None,
        guard: bool = True,
    ) -> None:
        if row_limit < 1 or timeout <= 0:
            raise SqlError("MA610", "row_limit must be at least 1 and timeout above 0 seconds")
        self.url = url
        self.allowed_tables = frozenset(t.lower() for t in tables) if tables is not None else None
        self.row_limit = row_limit
        self.timeout = timeout
        self.limits = limits or SqlLimits()
        self.guard = guard
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._tables: tuple[Table, ...] = ()
        self._summaries: dict[str, SchemaSummary] = {}
        self._tools: tuple[Tool, Tool] | None = None

    def connection(self) -> Connection:
        """The open connection (opened, and the schema read, on first use)."""
        with self._lock:
            if self._connection is None:
                from ._worker import Workers

                connection = Workers(self.url, self.limits)
                tables = connection.tables()
                if self.allowed_tables is not None:
                    tables = tuple(t for t in tables if t.name.lower() in self.allowed_tables)
                self._connection, self._tables = connection, tables
            return self._connection

    def close(self) -> None:
        """Close the connection (stop its workers); the next use opens it again."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
                self._summaries.clear()

    def check(self, sql: str, scope: Mapping[str, ScopeValue | None] | None = None) -> GuardedQuery:
        """What the guard makes of `sql` for this database; raises `SqlRefused`."""
        connection = self.connection()
        return guard_sql(
            sql,
            connection.dialect,
            columns=table_columns(self._tables),
            allowed_tables=self.allowed_tables,
            scope=scope,
        )

    def query(self, sql: str, scope: Mapping[str, ScopeValue | None] | None = None) -> QueryRows:
        """Guard `sql` (scoped to `scope`), run it, and return the rows that fit in
        `row_limit` rows and `limits.result_bytes` bytes."""
        connection = self.connection()
        if not self.guard and scope:
            # Scoping is the guard's rewrite: unguarded, the scope would be silently ignored.
            raise SqlError("MA606", "row scoping needs the guard; this database has guard=False")
        guarded = self.check(sql, scope) if self.guard else GuardedQuery(sql)
        found = connection.query(
            guarded.sql, guarded.params, row_limit=self.row_limit, timeout=self.timeout
        )
        note = ""
        if found.cut == "rows":
            note = (
                f"only the first {self.row_limit} rows are shown; aggregate, filter or add "
                "ORDER BY ... LIMIT to see what matters"
            )
        elif found.cut == "bytes":
            note = (
                f"only the first {len(found.rows)} rows are shown: the rows are limited to "
                f"{self.limits.result_bytes:,} bytes; select fewer or shorter columns, "
                "aggregate, or add ORDER BY ... LIMIT"
            )
        return QueryRows(
            sql=guarded.sql,
            columns=list(found.columns),
            rows=[list(row) for row in found.rows],
            row_count=len(found.rows),
            truncated=found.cut is not None,
            note=note,
        )

    def schema(self, scope: Mapping[str, ScopeValue | None] | None = None) -> SchemaSummary:
        """The tables in a few lines for a prompt, with sample values read within `scope`."""
        connection = self.connection()
        key = json.dumps(dict(scope or {}), sort_keys=True, default=str)
        with self._lock:
            cached = self._summaries.get(key)
        if cached is not None:
            return cached
        lines = []
        for table in self._tables:
            parts = []
            for column in table.columns:
                part = f"{column.name} {column.type}"
                if column.primary_key:
                    part += " PK"
                if column.references:
                    part += f" -> {column.references}"
                if scope and column.name in scope:
                    part += " (scoped)"
                elif column.type.upper().startswith(TEXT_TYPES):
                    part += self._samples(connection, table.name, column.name, scope)
                parts.append(part)
            lines.append(f"{table.name}({'; '.join(parts)})")
        if scope:
            lines.append(
                f"Every table holds only the caller's rows ({', '.join(scope)} is fixed); "
                "never filter on the scoped columns."
            )
        summary = SchemaSummary(
            dialect=connection.dialect, text="\n".join(lines), tables=[t.name for t in self._tables]
        )
        with self._lock:
            self._summaries[key] = summary
        return summary

    def _samples(
        self,
        connection: Connection,
        table: str,
        column: str,
        scope: Mapping[str, ScopeValue | None] | None,
    ) -> str:
        """' one of ...' for a column with few values, ' e.g. ...' for others, or ''."""
        # Through the guard, so that with a scope the samples are the caller's rows only.
        sql = (
            f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL '
            f'ORDER BY "{column}" LIMIT {ALL_VALUES + 1}'
        )
        guarded = self.check(sql, scope)
        found = connection.query(
            guarded.sql, guarded.params, row_limit=ALL_VALUES + 1, timeout=self.timeout
        )
        values = [repr(str(row[0])[:SAMPLE_CHARS]) for row in found.rows]
        if not values:
            return ""
        if len(values) <= ALL_VALUES:
            return " one of " + ", ".join(values)
        return " e.g. " + ", ".join(values[:SAMPLE_VALUES])


_NOT_CONFIGURED = (
    "no database is configured for the SQL tools: run with --database URL "
    "(e.g. --database sqlite:///examples/shop.db) or pass Project(database=...)"
)


def sql_tools(database: SqlDatabase | str | None) -> tuple[Tool, Tool]:
    """The tools `sql.schema` and `sql.query`, bound to `database` (a URL is opened with the
    default limits). With None, both exist but each call says how to configure a database.

    The same database always gives the same two tools, so that projects derived from one
    another share them.
    """
    if database is None:
        return _UNCONFIGURED
    bound = SqlDatabase(database) if isinstance(database, str) else database
    if bound._tools is None:
        bound._tools = _make_tools(bound)
    return bound._tools


def _make_tools(database: SqlDatabase | None) -> tuple[Tool, Tool]:
    def chosen() -> SqlDatabase:
        if database is None:
            raise SqlError("MA614", _NOT_CONFIGURED)
        return database

    # Read-only (the guard sees to it): a resumed run may call them again.
    @tool(name="sql.schema", idempotent=True)
    def schema(scope: Scope = None) -> SchemaSummary:
        """The database's tables: columns, types, keys and a few sample values, and its dialect.

        Call it before writing SQL. `scope` limits the sample values to one tenant's rows.
        """
        return chosen().schema(scope)

    @tool(name="sql.query", idempotent=True)
    def query(sql: str, scope: Scope = None) -> QueryRows:
        """Run one read-only SQL query (SELECT, or WITH ... SELECT) and get its rows as JSON.

        Refused before it runs: more than one statement, anything that writes or changes
        settings, functions that reach outside the database. Rows past the row or size limit are
        cut, with a note. `scope` (e.g. {"tenant_id": 7}) limits every table to those rows.
        """
        return chosen().query(sql, scope)

    return schema, query


_UNCONFIGURED = _make_tools(None)
