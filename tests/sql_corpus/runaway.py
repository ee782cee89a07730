"""Queries that build huge values or never end: (dialect, statement).

Each must be stopped within the query's deadline with the memory of the processes involved
below a bound. They run with the guard off, so that the engines' bounds alone stop them (the
guard refuses some first: ``zeroblob`` and ``randomblob`` are not on its allow-list).

Run as a script to measure them — the time each takes to fail, and the peak resident memory
of this process and of the database's worker processes:

    .venv/bin/python tests/sql_corpus/runaway.py sqlite:///examples/shop.db
    .venv/bin/python tests/sql_corpus/runaway.py duckdb:///shop.duckdb --timeout 2 --memory-mib 512
    .venv/bin/python tests/sql_corpus/runaway.py sqlite:///examples/shop.db --only 3  # one query

It prints one JSON object a line: one per query (``code``, ``seconds``), then the peaks in MiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

_REPLACE = "'x'"
for _ in range(30):
    _REPLACE = f"replace({_REPLACE}, 'x', 'xx')"

RUNAWAY: list[tuple[str, str]] = [
    ("sqlite", "SELECT zeroblob(1000000000)"),
    ("sqlite", "SELECT length(randomblob(1000000000))"),
    # SQLite checks the length only after its printf has spun through the width: seconds of
    # CPU inside one call, where no progress handler runs.
    ("sqlite", "SELECT length(printf('%.*c', 2147483647, 'x'))"),
    (
        "sqlite",
        "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r) "
        "SELECT max(length(s)) FROM r",
    ),
    (
        "sqlite",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n",
    ),
    # 1,336 values of 900 kB each, sorted in memory.
    (
        "sqlite",
        "SELECT max(v) FROM (SELECT printf('%.*c', 900000, 'x') || o.id AS v FROM orders o "
        "ORDER BY v)",
    ),
    ("duckdb", "SELECT length(repeat('x', 1000000000))"),
    ("duckdb", "SELECT length(lpad('x', 1000000000, 'y'))"),
    ("duckdb", f"SELECT length({_REPLACE})"),
    ("duckdb", "SELECT max(length(repeat(email, 100000))) FROM customers"),
    (
        "duckdb",
        "WITH RECURSIVE r(s, n) AS (SELECT 'x', 0 UNION ALL SELECT s || s, n + 1 FROM r "
        "WHERE n < 40) SELECT max(length(s)) FROM r",
    ),
    (
        "duckdb",
        "SELECT a.id, b.id, c.id FROM orders a, orders b, orders c "
        "ORDER BY a.total * b.total * c.total LIMIT 5",
    ),
]
"""(dialect, statement): each builds a value of a gigabyte or more, or never ends."""


def measure(
    url: str, queries: list[str], timeout: float, memory_mib: int
) -> list[dict[str, object]]:
    """Run `queries` on `url` with the guard off; one record per query, then the peaks."""
    import microagents as ma

    database = ma.sql.SqlDatabase(
        url, timeout=timeout, guard=False, limits=ma.sql.SqlLimits(memory_bytes=memory_mib << 20)
    )
    database.connection()  # the first worker starts before the clock does
    records: list[dict[str, object]] = []
    for sql in queries:
        started = time.monotonic()
        try:
            database.query(sql)
            code = "ran"
        except ma.errors.SqlError as exc:
            code = exc.code
        records.append({"sql": sql[:70], "code": code, "seconds": time.monotonic() - started})
    database.close()  # reaps the workers, so that their peak counts below
    records.append(
        {
            "this_process_peak_mib": _own_peak_kib() / 1024,
            "workers_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        }
    )
    return records


def _own_peak_kib() -> int:
    # Linux carries ru_maxrss over from the process that forked this one (a test runner of
    # 130 MB, say); the high-water mark of this process's own memory is VmHWM.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--memory-mib", type=int, default=256)
    parser.add_argument("--only", type=int, help="the index of one query of the dialect")
    args = parser.parse_args()
    dialect = "duckdb" if args.url.startswith("duckdb") else "sqlite"
    queries = [sql for d, sql in RUNAWAY if d == dialect]
    if args.only is not None:
        queries = [queries[args.only]]
    for record in measure(args.url, queries, args.timeout, args.memory_mib):
        print(json.dumps(record))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
