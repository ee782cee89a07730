"""The bounds every query runs under: time, memory, value and result sizes, functions, and the
worker processes that hold them."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import microagents as ma
from microagents.sql._worker import KILL_GRACE
from sql_corpus.runaway import RUNAWAY

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 0.5
MEMORY_MIB = 256
WORKER_IDLE_MIB = 120
"""A worker's resident size with its database open, above which `memory_bytes` is counted:
about 30 MiB for SQLite and 70 MiB for DuckDB, measured."""


def url(path: Path) -> str:
    return f"{'duckdb' if path.suffix == '.duckdb' else 'sqlite'}:///{path}"


def test_runaway_queries_stop_at_their_deadline_with_bounded_memory(
    shop_sqlite: Path, shop_duckdb: Path
) -> None:
    """Each statement of the runaway corpus builds a gigabyte or never ends. The engines'
    limits stop most; the worker's address-space bound or its kill at the deadline the rest.
    Measured in fresh processes, so that the peaks are theirs alone."""
    script = ROOT / "tests" / "sql_corpus" / "runaway.py"
    runs = {
        dialect: subprocess.Popen(
            [sys.executable, str(script), url(path), "--timeout", str(TIMEOUT),
             "--memory-mib", str(MEMORY_MIB)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for dialect, path in (("sqlite", shop_sqlite), ("duckdb", shop_duckdb))
    }  # fmt: skip
    for dialect, run in runs.items():
        output, _ = run.communicate(timeout=50)
        assert run.returncode == 0, output
        *records, peaks = [json.loads(line) for line in output.splitlines()]
        assert len(records) == sum(1 for d, _ in RUNAWAY if d == dialect)
        for record in records:
            # MA612: stopped at the deadline; MA615: over a memory or size limit; MA613: a
            # function the SQLite authorizer denies (randomblob, zeroblob).
            assert record["code"] in ("MA612", "MA613", "MA615"), record
            # The deadline, the kill's grace, and the start of a fresh worker after a kill.
            assert record["seconds"] < TIMEOUT + KILL_GRACE + 1.0, record
        assert peaks["this_process_peak_mib"] < 100, peaks
        assert peaks["workers_peak_mib"] < MEMORY_MIB + WORKER_IDLE_MIB, peaks


@pytest.mark.parametrize(
    "call",
    [
        "fts3_tokenizer('simple')",
        "fts3_tokenizer('simple', x'00')",
        "load_extension('/tmp/evil.so')",
        "randomblob(16)",
        "zeroblob(16)",
        "random()",
        "sqlite_version()",
        "sqlite_compileoption_get(0)",
        "changes()",
    ],
)
def test_the_sqlite_authorizer_denies_functions_outside_the_allow_list(
    shop_sqlite: Path, call: str
) -> None:
    # The guard is off: the authorizer alone stands between the statement and the function.
    database = ma.sql.SqlDatabase(url(shop_sqlite), guard=False)
    with pytest.raises(ma.errors.SqlDatabaseError, match="not authorized") as denied:
        database.query(f"SELECT {call}")
    assert denied.value.code == "MA613"
    database.close()


SQLITE_CALLS = [
    "SELECT abs(-1), round(1.55, 1), coalesce(NULL, 1), ifnull(NULL, 2), iif(1, 2, 3), "
    "nullif(1, 1), instr('ab', 'b'), length('x'), lower('A'), upper('a'), ltrim(' a'), "
    "rtrim('a '), trim(' a '), replace('a', 'a', 'b'), substr('abc', 2), hex('a'), quote('a'), "
    "char(65), unicode('A'), typeof(1), likely(1), unlikely(1), printf('%05.1f', 2.5), "
    "format('%d', 1), min(1, 2), max(1, 2), 'a' LIKE 'a', 'a' GLOB 'a*'",
    "SELECT date('now', '-1 day') IS NOT NULL, strftime('%Y', '2024-05-01'), time('12:00'), "
    "datetime('2024-01-01'), julianday('2024-01-01'), unixepoch('2024-01-01')",
    "SELECT count(*), sum(total), avg(total), total(total), group_concat(status), min(id) "
    "FROM orders",
    "SELECT row_number() OVER w, rank() OVER w, dense_rank() OVER w, percent_rank() OVER w, "
    "cume_dist() OVER w, ntile(2) OVER w, lag(id) OVER w, lead(id) OVER w, first_value(id) "
    "OVER w, last_value(id) OVER w, nth_value(id, 1) OVER w FROM orders "
    "WINDOW w AS (ORDER BY id) LIMIT 1",
    "SELECT ceil(1.2), floor(1.2), ln(2), log(2), exp(1), pow(2, 2), sqrt(4), sign(-1), "
    "trunc(1.5), pi()",
    """SELECT json_extract('{"a": 1}', '$.a'), '{"a": 1}' -> '$.a', '{"a": 1}' ->> 'a'""",
]


def test_every_function_the_guard_allows_in_sqlite_passes_the_authorizer(
    shop_sqlite: Path,
) -> None:
    database = ma.sql.SqlDatabase(url(shop_sqlite))
    for sql in SQLITE_CALLS:
        assert database.query(sql).row_count == 1, sql
    database.close()


def test_results_are_bounded_in_bytes_before_they_reach_a_prompt(shop_sqlite: Path) -> None:
    database = ma.sql.SqlDatabase(url(shop_sqlite), limits=ma.sql.SqlLimits(result_bytes=2_000))
    found = database.query("SELECT * FROM customers ORDER BY id")
    assert found.truncated
    assert 0 < found.row_count < 50
    assert len(json.dumps(found.rows, ensure_ascii=False)) <= 2_000
    assert f"only the first {found.row_count} rows are shown" in found.note
    assert "limited to 2,000 bytes" in found.note
    # A row too large on its own is not shown at all: never a part of a value.
    huge = database.query("SELECT printf('%.*c', 5000, 'x') AS padding")
    assert (huge.rows, huge.truncated) == ([], True)
    # Under both limits, nothing is cut.
    whole = database.query("SELECT count(*) AS n FROM customers")
    assert (whole.rows, whole.truncated, whole.note) == ([[300]], False, "")
    database.close()


def test_a_scoped_duckdb_query_that_reads_no_table_runs(shop_duckdb: Path) -> None:
    database = ma.sql.SqlDatabase(url(shop_duckdb))
    found = database.query("SELECT 1 AS one, upper('a') AS a", {"tenant_id": 1})
    assert found.rows == [[1, "A"]]
    assert database.query("SELECT count(*) FROM orders", {"tenant_id": 1}).rows[0][0] > 0
    database.close()


def test_the_limits_reach_the_engines(shop_sqlite: Path, shop_duckdb: Path) -> None:
    sqlite = ma.sql.SqlDatabase(
        url(shop_sqlite),
        limits=ma.sql.SqlLimits(value_bytes=100, sqlite={"compound_select": 2}),
    )
    with pytest.raises(ma.errors.SqlDatabaseError, match="string or blob too big") as too_big:
        sqlite.query("SELECT replace(printf('%.*c', 90, 'x'), 'x', 'xx')")
    assert too_big.value.code == "MA615"
    assert "values up to 100 bytes" in too_big.value.reason
    with pytest.raises(ma.errors.SqlDatabaseError, match="too many terms in compound SELECT"):
        sqlite.query("SELECT 1 UNION SELECT 2 UNION SELECT 3")
    assert sqlite.query("SELECT 1 UNION SELECT 2").row_count == 2
    sqlite.close()
    # current_setting is not on the guard's allow-list: asked with the guard off.
    duckdb = ma.sql.SqlDatabase(
        url(shop_duckdb), guard=False, limits=ma.sql.SqlLimits(memory_bytes=200 << 20, threads=1)
    )
    settings = duckdb.query(
        "SELECT current_setting('threads'), current_setting('memory_limit'), "
        "current_setting('max_temp_directory_size'), current_setting('enable_external_access')"
    )
    assert settings.rows == [[1, "100.0 MiB", "0 bytes", False]]
    duckdb.close()


def test_postgres_and_duckdb_are_given_the_limits_as_their_own_settings() -> None:
    limits = ma.sql.SqlLimits(memory_bytes=1 << 30, threads=3, temp_bytes=10 << 20)
    # SET LOCAL values, in the query's read-only transaction (no server in these tests).
    assert limits.postgres_settings(2.5) == {
        "statement_timeout": "2500ms",
        "work_mem": "131072kB",
        "temp_file_limit": "10240kB",
    }
    assert limits.duckdb_config() == {
        "memory_limit": f"{1 << 29}B",
        "threads": "3",
        "max_temp_directory_size": f"{10 << 20}B",
    }


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"memory_bytes": 0}, "memory_bytes must be at least 1"),
        ({"temp_bytes": -1}, "temp_bytes must be 0 or more"),
        ({"sqlite": {"compound": 3}}, "unknown SQLite limit compound; known: attached, column"),
    ],
)
def test_limits_out_of_range_say_what_is_allowed(limits: dict[str, Any], message: str) -> None:
    with pytest.raises(ma.errors.SqlError, match=message) as bad:
        ma.sql.SqlLimits(**limits)
    assert bad.value.code == "MA610"


def test_a_worker_that_died_is_replaced_and_closing_stops_them(shop_sqlite: Path) -> None:
    database = ma.sql.SqlDatabase(url(shop_sqlite), limits=ma.sql.SqlLimits(workers=1))
    workers: Any = database.connection()
    first = workers._idle[0]._process
    first.kill()  # from outside, while idle
    first.wait()
    assert database.query("SELECT count(*) FROM orders").rows == [[1336]]
    (second,) = (w._process for w in workers._running)
    assert second.pid != first.pid
    database.close()
    assert second.poll() is not None


def test_a_database_nobody_closed_stops_its_workers_when_it_goes(shop_sqlite: Path) -> None:
    database = ma.sql.SqlDatabase(url(shop_sqlite))
    database.query("SELECT 1")
    (process,) = (w._process for w in database.connection()._running)  # type: ignore[attr-defined]
    del database
    gc.collect()
    assert process.poll() is not None


def test_at_most_workers_queries_run_at_once(shop_sqlite: Path) -> None:
    database = ma.sql.SqlDatabase(url(shop_sqlite), limits=ma.sql.SqlLimits(workers=2))
    slow = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) "
        "SELECT count(*) FROM n"
    )
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(database.query(slow).rows)) for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [[[300000]]] * 5
    assert len(database.connection()._running) == 2  # type: ignore[attr-defined]
    database.close()
