"""Errors out of task groups whose other tasks only watch (a progress reporter, a signal
handler): the one error that happened, raised bare.

anyio wraps whatever a task group's body raises in an exception group, even alone; a
`MicroagentsError` that says what to do would then reach the command line as an internal
error, and a caller's ``except MicroagentsError`` would miss it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def single_errors() -> Iterator[None]:
    """Around ``async with anyio.create_task_group()``: a group of one error raises that
    error; a group of several stays a group."""
    try:
        yield
    except BaseExceptionGroup as wrapped:
        if len(wrapped.exceptions) == 1:
            raise wrapped.exceptions[0] from None
        raise
