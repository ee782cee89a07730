"""Databases by URL, and what a query gives back: the types both sides of a worker share.

    sqlite:///relative/path.db   sqlite:////absolute/path.db   (or a path ending .db/.sqlite)
    duckdb:///relative/path.duckdb                             (or a path ending .duckdb)
    postgresql://user:password@host:5432/dbname                (extra: microagents[postgres])

`locate` reads a URL, in the caller's process; the engines that open it, read-only and bounded,
run in worker processes (`_sql_engines`, `_sql_worker`). `collect` keeps the rows of a result
that fit the row and byte limits, reading them one at a time.
"""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

from ..errors import SqlDatabaseError
from ._functions import Dialect
from ._limits import SqlLimits

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
DUCKDB_SUFFIXES = (".duckdb", ".ddb")

Cut = Literal["rows", "bytes"] | None
"""Why a result has fewer rows than the query gave: the row limit, the byte limit, or not."""


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
    """What a query returned: column names, the rows that fit, and why the others were cut."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    cut: Cut = None


class Connection(Protocol):
    """A read-only database: its dialect, its tables, and running one query."""

    dialect: Dialect

    def tables(self) -> tuple[Table, ...]: ...

    def query(
        self, sql: str, params: Mapping[str, Any], *, row_limit: int, timeout: float
    ) -> Rows: ...

    def close(self) -> None: ...


def locate(url: str) -> tuple[Dialect, str]:
    """The dialect of `url` and what opens it (a file's absolute path, or the URL); raise
    `SqlDatabaseError` (MA610/MA611) if the URL is not understood or the file is missing."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("postgres", "postgresql"):
        return "postgres", url
    if scheme == "sqlite" or (not scheme and url.lower().endswith(SQLITE_SUFFIXES)):
        return "sqlite", str(_file_path(url, "sqlite").resolve())
    if scheme == "duckdb" or (not scheme and url.lower().endswith(DUCKDB_SUFFIXES)):
        return "duckdb", str(_file_path(url, "duckdb").resolve())
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


def collect(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], row_limit: int, result_bytes: int
) -> Rows:
    """The first rows of `rows` that fit in `row_limit` rows and `result_bytes` bytes of JSON;
    rows are read one at a time, so that what is not returned is never held."""
    kept: list[tuple[Any, ...]] = []
    size = 2  # the brackets of the list; each row adds itself and a separator, ", "
    cut: Cut = None
    for row in rows:
        if len(kept) == row_limit:
            cut = "rows"
            break
        values = tuple(plain(v) for v in row)
        size += len(json.dumps(values, ensure_ascii=False)) + 2
        if size > result_bytes:
            cut = "bytes"
            break
        kept.append(values)
    return Rows(tuple(columns), tuple(kept), cut)


def pyformat(sql: str) -> str:
    """`sql` for psycopg with parameters: every '%' doubled except in the guard's own
    ``%(scope_...)s`` placeholders (the guard refuses any other parameter), so that a literal
    such as ``LIKE 'A%'`` is not read as a placeholder."""
    return sql.replace("%", "%%").replace("%%(scope_", "%(scope_")


def timed_out(timeout: float) -> SqlDatabaseError:
    """MA612: the query ran past its deadline."""
    return SqlDatabaseError(
        "MA612",
        f"the query ran longer than {timeout:g} s and was stopped; simplify it (fewer joins, "
        "filter earlier, aggregate instead of listing)",
    )


def over_limit(detail: str, limits: SqlLimits) -> SqlDatabaseError:
    """MA615: the query needed more memory, or a longer value, than the limits allow."""
    return SqlDatabaseError(
        "MA615",
        f"{detail}: the query went over this database's limits (values up to "
        f"{limits.value_bytes:,} bytes, {limits.memory_bytes // (1 << 20):,} MiB of memory); "
        "aggregate or filter instead of building large values or intermediate results",
    )


def table_columns(tables: Sequence[Table]) -> dict[str, tuple[str, ...]]:
    """Table name (lower-case) → its column names: what the guard checks against."""
    return {t.name.lower(): tuple(c.name for c in t.columns) for t in tables}
