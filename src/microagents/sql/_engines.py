"""The database engines, as a worker process (`_sql_worker`) opens them: read-only, bounded.

Each engine is made read-only by its own means, beneath the guard, so that a statement the
guard let through by mistake still cannot write, and bounded by its own settings (`SqlLimits`):

- SQLite: opened with ``mode=ro``, ``PRAGMA query_only``, an authorizer that allows only
  reading and the allow-listed functions (no ATTACH, no PRAGMA, no writes, no
  ``fts3_tokenizer``), connection limits (the longest value, SQL length, compound terms...),
  a heap limit, temporary tables in memory, and a progress handler that ends a query at its
  deadline.
- DuckDB: ``read_only=True`` with external access (files, network, extensions) and Python
  replacement scans off, ``memory_limit``, ``threads`` and ``max_temp_directory_size`` set
  and the configuration locked; a timer interrupts a query at its deadline.
- PostgreSQL: each query in its own ``READ ONLY`` transaction with ``statement_timeout``,
  ``work_mem`` and ``temp_file_limit``, its rows read through a server-side cursor.
"""

from __future__ import annotations

import importlib
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import SqlDatabaseError
from ._connect import (
    Column,
    Connection,
    Rows,
    Table,
    collect,
    over_limit,
    pyformat,
    timed_out,
)
from ._functions import SQLITE_ENGINE_FUNCTIONS, Dialect
from ._limits import SqlLimits

PROGRESS_STEPS = 1_000
"""SQLite virtual-machine steps between deadline checks (a few microseconds of work)."""
SCHEMA_TIMEOUT = 30.0
"""Seconds reading the schema may take."""


def open_engine(dialect: Dialect, target: str, limits: SqlLimits) -> Connection:
    """Open the database `locate` found, read-only and bounded by `limits`."""
    if dialect == "sqlite":
        return _Sqlite(Path(target), limits)
    if dialect == "duckdb":
        return _DuckDB(Path(target), limits)
    return _Postgres(target, limits)


def _names(description: Sequence[Sequence[Any]] | None) -> tuple[str, ...]:
    return tuple(str(d[0]) for d in description or ())


def _import(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SqlDatabaseError(
            "MA611",
            f"this database needs the '{module}' package: pip install 'microagents[{extra}]'",
        ) from None


# -- SQLite ------------------------------------------------------------------------------


# Reading is all a guarded query needs; everything else (ATTACH, PRAGMA, any write, creating
# a temp table) is denied at prepare time, and so is every function SQLite would resolve
# outside the allow-list, whether or not the statement passed the guard.
_SQLITE_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, 33})  # RECURSIVE


def _sqlite_authorizer(action: int, _: str | None, name: str | None, *__: Any) -> int:
    if action == sqlite3.SQLITE_FUNCTION:
        allowed = (name or "").lower() in SQLITE_ENGINE_FUNCTIONS
        return sqlite3.SQLITE_OK if allowed else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK if action in _SQLITE_READ_ACTIONS else sqlite3.SQLITE_DENY


class _Sqlite:
    dialect: Dialect = "sqlite"

    def __init__(self, path: Path, limits: SqlLimits) -> None:
        self.uri = path.as_uri() + "?mode=ro"
        self.limits = limits
        try:
            connection = sqlite3.connect(self.uri, uri=True)
            # The heap limit is the process's (the worker's own); temporary tables and sorts
            # stay in memory under it rather than in files.
            connection.execute(f"PRAGMA hard_heap_limit = {limits.memory_bytes // 2}")
            connection.execute("PRAGMA temp_store = MEMORY")
            connection.execute("PRAGMA query_only = 1")
            self._tables = self._read_tables(connection)
        except sqlite3.Error as exc:
            raise SqlDatabaseError(
                "MA611", f"cannot open SQLite database {self.uri}: {exc}"
            ) from None
        for limit, value in limits.sqlite_limits().items():
            connection.setlimit(limit, value)
        connection.set_authorizer(_sqlite_authorizer)
        self._connection = connection

    @staticmethod
    def _read_tables(connection: sqlite3.Connection) -> tuple[Table, ...]:
        # Before the authorizer, which denies the pragma functions read here.
        names = [
            r[0]
            for r in connection.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        found = []
        for name in names:
            foreign = connection.execute("SELECT * FROM pragma_foreign_key_list(?)", (name,))
            keys = {row[3]: f"{row[2]}.{row[4]}" for row in foreign}
            columns = tuple(
                Column(row[1], row[2] or "ANY", bool(row[5]), keys.get(row[1]))
                for row in connection.execute("SELECT * FROM pragma_table_info(?)", (name,))
            )
            found.append(Table(name, columns))
        return tuple(found)

    def tables(self) -> tuple[Table, ...]:
        return self._tables

    def query(self, sql: str, params: Mapping[str, Any], *, row_limit: int, timeout: float) -> Rows:
        deadline = time.monotonic() + timeout
        self._connection.set_progress_handler(
            lambda: int(time.monotonic() > deadline), PROGRESS_STEPS
        )
        try:
            cursor = self._connection.execute(sql, dict(params))
            return collect(_names(cursor.description), cursor, row_limit, self.limits.result_bytes)
        except MemoryError:
            raise over_limit("SQLite: out of memory", self.limits) from None
        except sqlite3.Error as exc:
            if time.monotonic() > deadline and "interrupted" in str(exc):
                raise timed_out(timeout) from None
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_TOOBIG":
                raise over_limit(f"SQLite: {exc}", self.limits) from None
            raise SqlDatabaseError("MA613", f"SQLite: {exc}") from None
        finally:
            self._connection.set_progress_handler(None, 0)

    def close(self) -> None:
        self._connection.close()


# -- DuckDB ------------------------------------------------------------------------------

_DUCKDB_CONFIG = {
    "enable_external_access": "false",
    # A table name that is not in the database must not resolve to a Python variable.
    "python_enable_replacements": "false",
    "autoinstall_known_extensions": "false",
    "autoload_known_extensions": "false",
    "lock_configuration": "true",
}


class _DuckDB:
    dialect: Dialect = "duckdb"

    def __init__(self, path: Path, limits: SqlLimits) -> None:
        duckdb = _import("duckdb", "duckdb")
        self.limits = limits
        config = {**limits.duckdb_config(), **_DUCKDB_CONFIG}
        try:
            self._connection = duckdb.connect(str(path), read_only=True, config=config)
        except duckdb.Error as exc:
            raise SqlDatabaseError("MA611", f"cannot open DuckDB database {path}: {exc}") from None
        self._error: type[Exception] = duckdb.Error
        self._out_of_memory: type[Exception] = duckdb.OutOfMemoryException

    def tables(self) -> tuple[Table, ...]:
        cursor = self._connection.cursor()
        try:
            listed = cursor.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
            ).fetchall()
            constraints = cursor.execute(
                "SELECT table_name, constraint_type, constraint_column_names, "
                "referenced_table, referenced_column_names FROM duckdb_constraints() "
                "WHERE constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY')"
            ).fetchall()
        finally:
            cursor.close()
        keys: set[tuple[str, str]] = set()
        references: dict[tuple[str, str], str] = {}
        for table, kind, names, target, target_names in constraints:
            for index, name in enumerate(names):
                if kind == "PRIMARY KEY":
                    keys.add((table, name))
                else:
                    references[(table, name)] = f"{target}.{target_names[index]}"
        grouped: dict[str, list[Column]] = {}
        for table, column, data_type in listed:
            grouped.setdefault(table, []).append(
                Column(column, data_type, (table, column) in keys, references.get((table, column)))
            )
        return tuple(Table(name, tuple(columns)) for name, columns in grouped.items())

    def query(self, sql: str, params: Mapping[str, Any], *, row_limit: int, timeout: float) -> Rows:
        cursor = self._connection.cursor()
        timer = threading.Timer(timeout, cursor.interrupt)
        timer.start()
        started = time.monotonic()
        try:
            cursor.execute(sql, dict(params) if params else None)
            rows = iter(cursor.fetchone, None)
            return collect(_names(cursor.description), rows, row_limit, self.limits.result_bytes)
        except (MemoryError, self._out_of_memory) as exc:
            raise over_limit(f"DuckDB: {str(exc).splitlines()[0]}", self.limits) from None
        except self._error as exc:
            if time.monotonic() - started >= timeout and "nterrupt" in str(exc):
                raise timed_out(timeout) from None
            raise SqlDatabaseError("MA613", f"DuckDB: {exc}") from None
        finally:
            timer.cancel()
            cursor.close()

    def close(self) -> None:
        self._connection.close()


# -- PostgreSQL (the `postgres` extra; no server in our tests) ----------------------------


class _Postgres:
    dialect: Dialect = "postgres"

    def __init__(self, url: str, limits: SqlLimits) -> None:
        self._psycopg = _import("psycopg", "postgres")
        self.url = url
        self.limits = limits

    def _run(self, work: Callable[[Any], Any], timeout: float) -> Any:
        psycopg = self._psycopg
        try:
            with psycopg.connect(self.url, autocommit=False) as connection:
                connection.read_only = True
                with connection.transaction():
                    # Each SET LOCAL applies to this transaction only, and it ends with the query.
                    settings = self.limits.postgres_settings(timeout)
                    temp_file_limit = settings.pop("temp_file_limit")
                    with connection.cursor() as cursor:
                        cursor.execute("SET TRANSACTION READ ONLY")
                        for name, value in settings.items():
                            cursor.execute(f"SET LOCAL {name} = '{value}'")
                    try:
                        # Only a superuser, or a role granted SET on it, may lower it here;
                        # otherwise set it on the role (see docs/sql.md). In a savepoint, so
                        # that the refusal does not end the transaction.
                        with connection.transaction(), connection.cursor() as cursor:
                            cursor.execute(f"SET LOCAL temp_file_limit = '{temp_file_limit}'")
                    except psycopg.errors.InsufficientPrivilege:
                        pass
                    return work(connection)
        except psycopg.errors.QueryCanceled:
            raise timed_out(timeout) from None
        except (
            MemoryError,
            psycopg.errors.OutOfMemory,
            psycopg.errors.DiskFull,
            psycopg.errors.ConfigurationLimitExceeded,  # temp_file_limit, among others
            psycopg.errors.ProgramLimitExceeded,
        ) as exc:
            raise over_limit(f"PostgreSQL: {exc}", self.limits) from None
        except psycopg.OperationalError as exc:
            raise SqlDatabaseError("MA611", f"PostgreSQL: cannot connect: {exc}") from None
        except psycopg.Error as exc:
            raise SqlDatabaseError("MA613", f"PostgreSQL: {exc}") from None

    def tables(self) -> tuple[Table, ...]:
        def read(connection: Any) -> tuple[Table, ...]:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT c.table_name, c.column_name, c.data_type, "
                    "  EXISTS (SELECT 1 FROM information_schema.key_column_usage k "
                    "    JOIN information_schema.table_constraints t "
                    "      ON t.constraint_name = k.constraint_name "
                    "    WHERE t.constraint_type = 'PRIMARY KEY' AND k.table_name = c.table_name "
                    "      AND k.column_name = c.column_name) "
                    "FROM information_schema.columns c WHERE c.table_schema = 'public' "
                    "ORDER BY c.table_name, c.ordinal_position"
                )
                grouped: dict[str, list[Column]] = {}
                for table, column, data_type, key in cursor.fetchall():
                    grouped.setdefault(table, []).append(Column(column, data_type, bool(key)))
            return tuple(Table(name, tuple(columns)) for name, columns in grouped.items())

        found: tuple[Table, ...] = self._run(read, SCHEMA_TIMEOUT)
        return found

    def query(self, sql: str, params: Mapping[str, Any], *, row_limit: int, timeout: float) -> Rows:
        def read(connection: Any) -> Rows:
            # A server-side cursor: rows arrive as they are read, not the whole result at once.
            with connection.cursor(name="microagents_query") as cursor:
                if params:
                    cursor.execute(pyformat(sql), dict(params))
                else:
                    cursor.execute(sql)
                return collect(
                    _names(cursor.description), cursor, row_limit, self.limits.result_bytes
                )

        rows: Rows = self._run(read, timeout)
        return rows

    def close(self) -> None:
        """Nothing stays open between queries."""
