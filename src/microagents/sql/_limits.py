"""The bounds a query runs under, inside the database engine and around it.

A timer that interrupts a query is not enough: a single function call that builds a huge value
(``zeroblob``, ``printf('%.*c', ...)``, DuckDB's ``repeat``/``lpad``, nested ``replace``) never
looks at it, and a few such calls took 6 GB and 42 s. So every query is bounded three ways:

- **by the engine**, with its own settings — SQLite's connection limits (`SQLITE_LIMITS`, the
  longest value) and heap limit, a progress handler at the deadline; DuckDB's
  ``memory_limit``, ``threads`` and ``max_temp_directory_size`` and an interrupt at the
  deadline; PostgreSQL's ``statement_timeout``, ``work_mem`` and ``temp_file_limit``;
- **by the process**: the query runs in a worker process (`_sql_worker`) whose address space
  may grow by at most `SqlLimits.memory_bytes` (on Linux), and which is killed if it has not
  answered shortly after the deadline;
- **by the result**: at most ``row_limit`` rows and `SqlLimits.result_bytes` bytes of them (as
  JSON) come back, so that a prompt never receives more.

The defaults leave every analytical query on the sample shop far from every bound.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import SqlError

MiB = 1 << 20

SQLITE_LIMITS: Mapping[str, int] = MappingProxyType(
    {
        # The guard's 20,000 characters, with room for the scoping subqueries it adds.
        "sql_length": 100_000,
        "column": 500,
        "expr_depth": 300,
        "compound_select": 50,
        "function_arg": 100,
        "like_pattern_length": 1_000,
        "variable_number": 100,
        "attached": 0,
        "worker_threads": 0,
    }
)
"""SQLite's connection limits (``SQLITE_LIMIT_<NAME>``) besides the value length, which is
`SqlLimits.value_bytes`: far above what a question's query needs, far below SQLite's own."""


@dataclass(frozen=True, slots=True)
class SqlLimits:
    """What one query may use, beyond its time (`SqlDatabase.timeout`) and rows (`row_limit`).

    ```python
    shop = SqlDatabase("duckdb:///shop.duckdb", limits=SqlLimits(memory_bytes=2 << 30, threads=4))
    ```
    """

    memory_bytes: int = 512 * MiB
    """Memory a query may use: its worker process grows by at most this much (Linux), and the
    engine's own accounting (SQLite's heap limit, DuckDB's ``memory_limit``) stops at half of
    it, with the engine's message; PostgreSQL's ``work_mem`` is an eighth of it."""
    value_bytes: int = 1_000_000
    """The longest text or blob a SQLite query may build or read (``SQLITE_LIMIT_LENGTH``)."""
    result_bytes: int = 100_000
    """The most bytes of rows (as JSON) a query returns; rows past it are cut, with a note."""
    threads: int = 2
    """DuckDB's ``threads``: the cores one query may keep busy."""
    temp_bytes: int = 0
    """Disk a query may spill to: DuckDB's ``max_temp_directory_size`` (0: DuckDB writes
    nothing next to the database) and PostgreSQL's ``temp_file_limit``."""
    workers: int = 4
    """Worker processes per database: how many queries run at once."""
    sqlite: Mapping[str, int] = field(default_factory=dict, hash=False)
    """Overrides of `SQLITE_LIMITS` by name, e.g. ``{"compound_select": 100}``."""

    def __post_init__(self) -> None:
        numbers = {
            "memory_bytes": self.memory_bytes,
            "value_bytes": self.value_bytes,
            "result_bytes": self.result_bytes,
            "threads": self.threads,
            "workers": self.workers,
        }
        for name, value in numbers.items():
            if value < 1:
                raise SqlError("MA610", f"SqlLimits.{name} must be at least 1, not {value}")
        if self.temp_bytes < 0:
            raise SqlError(
                "MA610", f"SqlLimits.temp_bytes must be 0 or more, not {self.temp_bytes}"
            )
        # A copy, read-only: the caller's dict must not change a frozen value later.
        object.__setattr__(self, "sqlite", MappingProxyType(dict(self.sqlite)))
        unknown = sorted(set(self.sqlite) - set(SQLITE_LIMITS))
        if unknown:
            raise SqlError(
                "MA610",
                f"unknown SQLite limit {', '.join(unknown)}; known: "
                + ", ".join(sorted(SQLITE_LIMITS)),
            )

    def sqlite_limits(self) -> dict[int, int]:
        """``sqlite3.SQLITE_LIMIT_*`` constant → value, for `sqlite3.Connection.setlimit`."""
        named = {**SQLITE_LIMITS, **self.sqlite, "length": self.value_bytes}
        return {getattr(sqlite3, f"SQLITE_LIMIT_{name.upper()}"): v for name, v in named.items()}

    def duckdb_config(self) -> dict[str, str]:
        """DuckDB settings, given when the database is opened (then locked)."""
        return {
            "memory_limit": f"{self.memory_bytes // 2}B",
            "threads": str(self.threads),
            "max_temp_directory_size": f"{self.temp_bytes}B",
        }

    def postgres_settings(self, timeout: float) -> dict[str, str]:
        """``SET LOCAL`` values for the query's read-only transaction."""
        return {
            "statement_timeout": f"{max(1, int(timeout * 1000))}ms",
            "work_mem": f"{max(64, self.memory_bytes // 8 // 1024)}kB",
            "temp_file_limit": f"{self.temp_bytes // 1024}kB",
        }

    def as_json(self) -> dict[str, Any]:
        """The limits as JSON values, for the worker process."""
        return {
            "memory_bytes": self.memory_bytes,
            "value_bytes": self.value_bytes,
            "result_bytes": self.result_bytes,
            "threads": self.threads,
            "temp_bytes": self.temp_bytes,
            "workers": self.workers,
            "sqlite": dict(self.sqlite),
        }
