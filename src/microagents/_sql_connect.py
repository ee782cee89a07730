"""Read-only connections by URL, each query under a timeout and a row limit.

    sqlite:///relative/path.db   sqlite:////absolute/path.db   (or a path ending .db/.sqlite)
    duckdb:///relative/path.duckdb                             (or a path ending .duckdb)
    postgresql://user:password@host:5432/dbname                (extra: microagents[postgres])

Every engine is made read-only by its own means, beneath the guard, so that a statement the
guard let through by mistake still cannot write:

- SQLite: opened with ``mode=ro``, ``PRAGMA query_only``, and an authorizer that allows only
  reading (no ATTACH, no PRAGMA, no writes); a progress handler ends a query at its deadline.
- DuckDB: ``read_only=True`` with external access (files, network, extensions) and Python
  replacement scans off, and the configuration locked; a timer interrupts a query at its
  deadline.
- PostgreSQL: each query in its own ``READ ONLY`` transaction with a ``statement_timeout``.
"""

from __future__ import annotations

import datetime
import decimal
import importlib
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from ._errors import SqlDatabaseError
from ._sql_functions import Dialect

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
DUCKDB_SUFFIXES = (".duckdb", ".ddb")
PROGRESS_STEPS = 1_000
"""SQLite virtual-machine steps between deadline checks (a few microseconds of work)."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    primary_key: bool = False
    references: str | None = None
    """``table.column`` this column is a foreign key to."""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class Rows:
    """What a query returned: column names, at most `row_limit` rows, and whether more were."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool


class Connection(Protocol):
    """A read-only database: its dialect, its tables, and running one query."""

    dialect: Dialect

    def tables(self) -> tuple[Table, ...]: ...

    def query(
        self, sql: str, params: Mapping[str, Any], *, row_limit: int, timeout: float
    ) -> Rows: ...

    def close(self) -> None: ...


def connect(url: str) -> Connection:
    """Open the database at `url` read-only; raise `SqlDatabaseError` (MA610/MA611) if not."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("postgres", "postgresql"):
        return _Postgres(url)
    if scheme == "sqlite" or (not scheme and url.lower().endswith(SQLITE_SUFFIXES)):
        return _Sqlite(_file_path(url, "sqlite"))
    if scheme == "duckdb" or (not scheme and url.lower().endswith(DUCKDB_SUFFIXES)):
        return _DuckDB(_file_path(url, "duckdb"))
    raise SqlDatabaseError(
        "MA610",
        f"cannot tell which database '{url}' is; use sqlite:///path.db, duckdb:///path.duckdb "
        "or postgresql://user@host/dbname",
    )


def _file_path(url: str, scheme: str) -> Path:
    if "://" in url:
        # SQLAlchemy's convention: three slashes for a relative path, four for an absolute one.
        rest = url.split("://", 1)[1]
        if not rest.startswith("/") or "?" in rest:
            raise SqlDatabaseError(
                "MA610",
                f"'{url}': write {scheme}:///relative/path or {scheme}:////absolute/path, "
                "without options",
            )
        path = Path(unquote(rest[1:]))
    else:
        path = Path(url)
    if not path.is_file():
        raise SqlDatabaseError(
            "MA611", f"no database file at '{path}' (from '{url}'); check the path"
        )
    return path


def plain(value: Any) -> Any:
    """A database value as JSON can carry it (dates as ISO text, decimals as numbers)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def _rows(cursor: Any, row_limit: int) -> Rows:
    columns = tuple(str(d[0]) for d in cursor.description or ())
    fetched = cursor.fetchmany(row_limit + 1)
    rows = tuple(tuple(plain(v) for v in row) for row in fetched[:row_limit])
    return Rows(columns, rows, len(fetched) > row_limit)


# -- SQLite ------------------------------------------------------------------------------


# Reading is all a guarded query needs; everything else (ATTACH, PRAGMA, any write, creating
# a temp table) is denied at prepare time.
_SQLITE_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, 33}  # 33: RECURSIVE
)


def _sqlite_authorizer(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _SQLITE_READ_ACTIONS else sqlite3.SQLITE_DENY


class _Sqlite:
    dialect: Dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.uri = path.resolve().as_uri() + "?mode=ro"
        self._open().close()  # fail now, at configuration time, if the file is not a database

    def _open(self) -> sqlite3.Connection:
        # One connection per query: a sqlite3 connection must not be shared across threads
        # while it runs, and opening one costs far less than a model call.
        try:
            connection = sqlite3.connect(self.uri, uri=True, check_same_thread=False)
            connection.execute("PRAGMA query_only = 1")
            connection.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        except sqlite3.Error as exc:
            raise SqlDatabaseError(
                "MA611", f"cannot open SQLite database {self.uri}: {exc}"
            ) from None
        return connection

    def tables(self) -> tuple[Table, ...]:
        connection = self._open()
        try:
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
        finally:
            connection.close()

    def query(self, sql: str, params: Mapping[str, Any], *, row_limit: int, timeout: float) -> Rows:
        connection = self._open()
        deadline = time.monotonic() + timeout
        connection.set_progress_handler(lambda: int(time.monotonic() > deadline), PROGRESS_STEPS)
        connection.set_authorizer(_sqlite_authorizer)
        try:
            return _rows(connection.execute(sql, dict(params)), row_limit)
        except sqlite3.Error as exc:
            if time.monotonic() > deadline and "interrupted" in str(exc):
                raise _timed_out(timeout) from None
            raise SqlDatabaseError("MA613", f"SQLite: {exc}") from None
        finally:
            connection.close()

    def close(self) -> None:
        """Nothing stays open between queries."""


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

    def __init__(self, path: Path) -> None:
        duckdb = _import("duckdb", "duckdb")
        try:
            self._connection = duckdb.connect(str(path), read_only=True, config=_DUCKDB_CONFIG)
        except duckdb.Error as exc:
            raise SqlDatabaseError("MA611", f"cannot open DuckDB database {path}: {exc}") from None
        self._error: type[Exception] = duckdb.Error
        self._lock = threading.Lock()

    def _cursor(self) -> Any:
        # A cursor per query: DuckDB connections are not safe to share between threads, and
        # making a cursor is (so it is done under a lock).
        with self._lock:
            return self._connection.cursor()

    def tables(self) -> tuple[Table, ...]:
        cursor = self._cursor()
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
        cursor = self._cursor()
        timer = threading.Timer(timeout, cursor.interrupt)
        timer.start()
        started = time.monotonic()
        try:
            cursor.execute(sql, dict(params) if params else None)
            return _rows(cursor, row_limit)
        except self._error as exc:
            if time.monotonic() - started >= timeout and "nterrupt" in str(exc):
                raise _timed_out(timeout) from None
            raise SqlDatabaseError("MA613", f"DuckDB: {exc}") from None
        finally:
            timer.cancel()
            cursor.close()

    def close(self) -> None:
        self._connection.close()


# -- PostgreSQL (the `postgres` extra; no server in our tests) ----------------------------


class _Postgres:
    dialect: Dialect = "postgres"

    def __init__(self, url: str) -> None:
        self._psycopg = _import("psycopg", "postgres")
        self.url = url

    def _run(self, work: Callable[[Any], Any], timeout: float) -> Any:
        psycopg = self._psycopg
        try:
            with psycopg.connect(self.url, autocommit=False) as connection:
                connection.read_only = True
                with connection.transaction(), connection.cursor() as cursor:
                    # Both SETs apply to this transaction only, and it ends with the query.
                    cursor.execute("SET TRANSACTION READ ONLY")
                    cursor.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
                    return work(cursor)
        except psycopg.errors.QueryCanceled:
            raise _timed_out(timeout) from None
        except psycopg.OperationalError as exc:
            raise SqlDatabaseError("MA611", f"PostgreSQL: cannot connect: {exc}") from None
        except psycopg.Error as exc:
            raise SqlDatabaseError("MA613", f"PostgreSQL: {exc}") from None

    def tables(self) -> tuple[Table, ...]:
        def read(cursor: Any) -> tuple[Table, ...]:
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

        found: tuple[Table, ...] = self._run(read, 30.0)
        return found

    def query(self, sql: str, params: Mapping[str, Any], *, row_limit: int, timeout: float) -> Rows:
        def read(cursor: Any) -> Rows:
            if params:
                cursor.execute(pyformat(sql), dict(params))
            else:
                cursor.execute(sql)
            return _rows(cursor, row_limit)

        rows: Rows = self._run(read, timeout)
        return rows

    def close(self) -> None:
        """Nothing stays open between queries."""


def pyformat(sql: str) -> str:
    """`sql` for psycopg with parameters: every '%' doubled except in the guard's own
    ``%(scope_...)s`` placeholders (the guard refuses any other parameter), so that a literal
    such as ``LIKE 'A%'`` is not read as a placeholder."""
    return sql.replace("%", "%%").replace("%%(scope_", "%(scope_")


def _import(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SqlDatabaseError(
            "MA611",
            f"this database needs the '{module}' package: pip install 'microagents[{extra}]'",
        ) from None


def _timed_out(timeout: float) -> SqlDatabaseError:
    return SqlDatabaseError(
        "MA612",
        f"the query ran longer than {timeout:g} s and was stopped; simplify it (fewer joins, "
        "filter earlier, aggregate instead of listing)",
    )


def table_columns(tables: Sequence[Table]) -> dict[str, tuple[str, ...]]:
    """Table name (lower-case) → its column names: what the guard checks against."""
    return {t.name.lower(): tuple(c.name for c in t.columns) for t in tables}
