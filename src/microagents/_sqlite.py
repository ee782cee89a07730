"""Opening the embedded SQLite stores (response cache, checkpoints) one way."""

from __future__ import annotations

import sqlite3
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
