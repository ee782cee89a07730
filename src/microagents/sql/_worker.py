"""Queries run in worker processes, so that no query can take the caller's process down.

An engine's own limits stop most runaway queries with a clear message, but not all: DuckDB's
``memory_limit`` does not count the value a scalar function builds (``repeat('x', 1e9)`` took
2 GB under a 256 MB limit), and neither engine looks at its deadline inside one function call
(SQLite's ``printf('%.*c', 2147483647, 'x')`` spins for seconds). So each database is opened
in worker processes (``python -m microagents.sql._worker``), and each query runs in one:

- the worker's address space may grow by at most `SqlLimits.memory_bytes` once the database
  is open (``RLIMIT_AS``, on Linux): past it an allocation fails, and the engine reports it;
- a worker that has not answered `KILL_GRACE` seconds after the query's deadline is killed,
  and the next query starts a fresh one;
- what comes back is at most the rows that fit the row and byte limits, as JSON lines.

`Workers` is the caller's side, a `Connection`: up to `SqlLimits.workers` processes, started
on demand and reused; `main` is the worker's side.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, cast

from ..errors import SqlDatabaseError, SqlError
from ._connect import Column, Connection, Rows, Table, locate, over_limit, timed_out
from ._engines import SCHEMA_TIMEOUT, open_engine
from ._functions import Dialect
from ._limits import SqlLimits

KILL_GRACE = 0.25
"""Seconds past a query's deadline before its worker is killed: time for the engine's own
deadline to stop it and answer."""
START_TIMEOUT = 60.0
"""Seconds a worker may take to start and open its database."""

_ERRORS: dict[str, type[SqlError]] = {"SqlDatabaseError": SqlDatabaseError, "SqlError": SqlError}


class Workers:
    """A database opened in worker processes: each query runs in one of them."""

    def __init__(self, url: str, limits: SqlLimits) -> None:
        self.dialect: Dialect
        self.dialect, target = locate(url)
        self.limits = limits
        self._opening = {"dialect": self.dialect, "target": target, "limits": limits.as_json()}
        self._changed = threading.Condition()
        self._idle: list[_Worker] = []
        self._running: list[_Worker] = []
        self._starting = 0
        self._closed = False
        # Workers are processes: stop them when this object goes, even if nobody closed it.
        self._stop_all = weakref.finalize(self, _stop, self._running)
        self._idle.append(self._start())  # fail now, at configuration time, if it cannot open

    def tables(self) -> tuple[Table, ...]:
        found = self._call({"op": "tables"}, SCHEMA_TIMEOUT)
        return tuple(
            Table(name, tuple(Column(*column) for column in columns)) for name, columns in found
        )

    def query(self, sql: str, params: Mapping[str, Any], *, row_limit: int, timeout: float) -> Rows:
        request = {
            "op": "query",
            "sql": sql,
            "params": dict(params),
            "row_limit": row_limit,
            "timeout": timeout,
        }
        found = self._call(request, timeout)
        return Rows(tuple(found["columns"]), tuple(map(tuple, found["rows"])), found["cut"])

    def close(self) -> None:
        """Stop the idle workers now, and each busy one when its query ends."""
        with self._changed:
            self._closed = True
            for worker in self._idle:
                self._running.remove(worker)
                worker.stop()
            self._idle.clear()
            self._changed.notify_all()

    def _call(self, request: Mapping[str, Any], timeout: float) -> Any:
        try:
            return self._call_once(request, timeout)
        except _Unreachable:
            pass
        # The worker was gone before it read the request (killed from outside, say): once, a
        # fresh one. A worker that stops while answering is the query's doing (`_call_once`).
        try:
            return self._call_once(request, timeout)
        except _Unreachable:
            raise SqlDatabaseError(
                "MA611", "the database's worker process cannot be reached"
            ) from None

    def _call_once(self, request: Mapping[str, Any], timeout: float) -> Any:
        with self._worker() as worker:
            try:
                return worker.call(request, timeout + KILL_GRACE)
            except _Stopped as stopped:
                if stopped.killed:
                    raise timed_out(timeout) from None
                raise over_limit(
                    f"the database worker stopped (exit status {stopped.status})", self.limits
                ) from None

    @contextlib.contextmanager
    def _worker(self) -> Iterator[_Worker]:
        worker = self._take()
        try:
            yield worker
        finally:
            with self._changed:
                if worker.alive and not self._closed:
                    self._idle.append(worker)
                else:
                    self._running.remove(worker)
                    worker.stop()
                self._changed.notify()

    def _take(self) -> _Worker:
        with self._changed:
            while True:
                if self._closed:
                    raise SqlDatabaseError("MA611", "the database was closed while in use")
                if self._idle:
                    return self._idle.pop()
                if len(self._running) + self._starting < self.limits.workers:
                    self._starting += 1
                    break
                self._changed.wait()
        try:
            return self._start()
        finally:
            with self._changed:
                self._starting -= 1
                self._changed.notify()

    def _start(self) -> _Worker:
        worker = _Worker.start(self._opening)
        with self._changed:
            self._running.append(worker)
        return worker


class _Unreachable(Exception):
    """The request could not be sent: the worker was gone before it."""


class _Stopped(Exception):
    """The worker ended without answering."""

    def __init__(self, killed: bool, status: int) -> None:
        super().__init__(killed, status)
        self.killed = killed
        self.status = status


class _Worker:
    """One worker process, used by one thread at a time."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self._stdin = cast(IO[bytes], process.stdin)
        self._stdout = cast(IO[bytes], process.stdout)
        self._killed = False
        self.alive = True

    @classmethod
    def start(cls, opening: Mapping[str, Any]) -> _Worker:
        # The worker imports this very package, wherever it was imported from.
        root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        # Few malloc arenas: each reserves address space that the memory bound counts.
        env = {**os.environ, "PYTHONPATH": path, "MALLOC_ARENA_MAX": "2"}
        process = subprocess.Popen(
            [sys.executable, "-m", "microagents.sql._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        worker = cls(process)
        try:
            worker.call(opening, START_TIMEOUT)
        except (_Stopped, _Unreachable) as failed:
            worker.stop()
            raise SqlDatabaseError(
                "MA611",
                f"the worker process for {opening['target']} did not start ({failed!r}); "
                f"check that {sys.executable} can import microagents",
            ) from None
        except BaseException:
            worker.stop()
            raise
        return worker

    def call(self, request: Mapping[str, Any], kill_after: float) -> Any:
        """Send `request`, and return the answer or raise the error it carries; kill the
        worker if it has not answered within `kill_after` seconds."""
        try:
            self._stdin.write(json.dumps(request).encode() + b"\n")
            self._stdin.flush()
        except OSError:
            self.alive = False
            raise _Unreachable() from None
        timer = threading.Timer(kill_after, self._kill)
        timer.start()
        try:
            line = self._stdout.readline()
        finally:
            timer.cancel()
        if self._killed or not line:
            self.alive = False
        if not line:
            raise _Stopped(self._killed, self._process.wait())
        answer = json.loads(line)
        if "error" in answer:
            error = answer["error"]
            raise _ERRORS[error["kind"]](error["code"], error["reason"])
        return answer["ok"]

    def _kill(self) -> None:
        self._killed = True
        self._process.kill()

    def stop(self) -> None:
        _stop([self])


def _stop(workers: list[_Worker]) -> None:
    for worker in workers:
        process = worker._process
        if process.poll() is None:
            process.kill()
        process.wait()
        # Closing flushes what a dead worker never read: that write fails, and may.
        with contextlib.suppress(OSError):
            worker._stdin.close()
        worker._stdout.close()
        worker.alive = False


# -- the worker's side -------------------------------------------------------------------


def main() -> None:
    """Open the database the first line names; answer one request a line until stdin ends."""
    # Only answers go to the real stdout; anything an engine prints goes to stderr instead.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    requests = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 (stdin, for good)
    opening = json.loads(requests.readline() or "null")
    if opening is None:
        return
    try:
        limits = SqlLimits(**opening["limits"])
        engine = open_engine(opening["dialect"], opening["target"], limits)
        engine.tables()  # warm: the engine's threads and caches exist before the bound
        _bound_address_space(limits.memory_bytes)
    except SqlError as exc:
        _answer(answers, error=exc)
        return
    _answer(answers, ok=None)
    for line in requests:
        request = json.loads(line)
        try:
            found = _serve(engine, request)
        except SqlError as exc:
            _answer(answers, error=exc)
        except MemoryError:
            _answer(answers, error=over_limit("out of memory", limits))
        except Exception as exc:  # a driver's own error class: still this query's answer
            _answer(answers, error=SqlDatabaseError("MA613", f"{type(exc).__name__}: {exc}"))
        else:
            _answer(answers, ok=found)
    engine.close()


def _serve(engine: Connection, request: Mapping[str, Any]) -> Any:
    if request["op"] == "tables":
        return [
            [t.name, [[c.name, c.type, c.primary_key, c.references] for c in t.columns]]
            for t in engine.tables()
        ]
    rows = engine.query(
        request["sql"],
        request["params"],
        row_limit=request["row_limit"],
        timeout=request["timeout"],
    )
    return {"columns": rows.columns, "rows": rows.rows, "cut": rows.cut}


def _answer(answers: IO[str], *, ok: Any = None, error: SqlError | None = None) -> None:
    if error is not None:
        kind = type(error).__name__ if type(error).__name__ in _ERRORS else "SqlError"
        message = {"error": {"kind": kind, "code": error.code, "reason": error.reason}}
        answers.write(json.dumps(message) + "\n")
    else:
        answers.write(json.dumps({"ok": ok}, ensure_ascii=False) + "\n")
    answers.flush()


def _bound_address_space(extra: int) -> None:
    """Let the process's address space grow by `extra` bytes at most (Linux; elsewhere the
    engines' own limits are the bound)."""
    try:
        import resource

        with open("/proc/self/statm", encoding="ascii") as statm:
            size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (ImportError, OSError):
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


if __name__ == "__main__":
    main()
