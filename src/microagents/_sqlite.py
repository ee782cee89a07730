"""Opening the embedded SQLite stores (response cache, checkpoints) one way."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal


def open_store(
    path: Path,
    schema: str,
    *,
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    timeout: float = 30.0,
) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) and WAL, usable from the
    worker threads the stores run their queries in, with `schema` applied.

    `synchronous=FULL` syncs the log at every commit: for stores where a power cut must not
    forget what was paid for (checkpoints); NORMAL is durable across process crashes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        path, check_same_thread=False, isolation_level=None, timeout=timeout
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.executescript(schema)
    return connection


class StoreConnection:
    """One lazily opened connection to a store, used by one worker thread at a time.

    ```python
    with self.store as db:   # takes the lock, opens the database on first use
        db.execute(...)
    ```
    """

    def __init__(
        self,
        path: Path,
        schema: str,
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        migrate: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self.path = path
        self._schema = schema
        self._migrate = migrate
        """Brings a file made by an older version up to `schema`, once per connection."""
        self._synchronous: Literal["NORMAL", "FULL"] = synchronous
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            if self._connection is None:
                connection = open_store(self.path, self._schema, synchronous=self._synchronous)
                if self._migrate is not None:
                    self._migrate(connection)
                self._connection = connection
        except BaseException:
            self._lock.release()
            raise
        return self._connection

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
