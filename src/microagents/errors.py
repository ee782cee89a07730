"""The one exception hierarchy of microagents.

Every error the library raises on purpose subclasses `MicroagentsError`::

    MicroagentsError
    ├── SpecError              a spec (agent, workflow, tool) is malformed or inconsistent;
    │                          carries every `Problem` found, each with file:line:col and field
    ├── SpecPartError          one part of a spec cannot be read; the loaders turn it into a
    │   │                      `Problem` of the spec (also a ValueError)
    │   ├── ExpressionError          an expression or template does not parse, or the sandbox
    │   │                            refuses it
    │   ├── SchemaError              a JSON Schema outside the supported subset
    │   └── VersionError             a malformed version or range
    ├── ToolDefinitionError    a function cannot be made into a tool (name or signature)
    ├── RegistryError          a registry source, the lock file or a reference cannot be used;
    │   │                      carries a stable `code` (MA301 or MA8xx)
    │   ├── ResolutionError          a reference names nothing, or not what the lock pins
    │   └── GitError                 a git source cannot be fetched
    ├── RunError               a run could not go on; carries what its attempts cost
    │   ├── NodeError                a node failed (after its retries)
    │   └── AgentFailed              an agent gave no valid answer on any rung it could try
    ├── TraceNotFoundError     no run or trace in the store matches an id (also a LookupError)
    ├── EvalError              an evaluation cannot run: a variant or a stored eval is unusable
    │   └── DatasetError             a dataset line is malformed; names file, line and field
    ├── McpServerError         an MCP server cannot be started or reached, or a call to it
    │                          failed or timed out; names the server (an agent sees it as a
    │                          tool error)
    ├── RunSuspended           not a failure: a run stops where it stands to wait (for a
    │                          person's answer); the engine makes it a `waiting` result
    ├── JournalError           a durable run cannot be resumed as asked; carries a stable
    │   │                      ``MA9xx`` code
    │   ├── RunNotFound              no run in the journal has the id (also a LookupError)
    │   ├── ReplayMismatch           a recorded step's request differs from the one the run
    │   │                            makes now (the workflow, an agent or a prompt changed)
    │   ├── ToolDecisionNeeded       a tool that is not idempotent started before a crash and
    │   │                            has no recorded result
    │   └── AnswerRefused            an answer to a waiting run fails its schema, or the run
    │                                is not waiting
    ├── ModelError             a model call failed; keeps the request id and HTTP status
    │   ├── AuthenticationError      401: no key, or a key the API refused
    │   ├── PermissionDeniedError    403: the key may not use this model or feature
    │   ├── ModelNotFoundError       404: the model id does not exist (check the tier table)
    │   ├── InvalidRequestError      any other 4xx: the request itself is wrong; not retried
    │   ├── RateLimitedError         429: retried after `retry_after` seconds
    │   ├── OverloadedError          529: the API is overloaded; retried
    │   ├── ServerError              5xx, 408, 409: retried
    │   ├── ModelTimeoutError        the call took longer than its timeout; retried
    │   └── ModelConnectionError     the connection failed or dropped; retried
    └── SqlError               a SQL tool could not answer; carries a stable ``MA6xx`` code
        ├── SqlRefused               the guard refused the statement before it reached the
        │                            database (an agent gets the reason and can repair)
        └── SqlDatabaseError         the database could not be opened, failed the query, or
                                     the query ran out of time

A message always says what is wrong and what to do about it; a `Problem` (and a `SqlError`)
also carries a stable code (``MA1xx`` loading, ``MA2xx`` spec fields, ``MA3xx`` graph checks,
``MA6xx`` SQL, ``MA7xx`` MCP servers, ``MA8xx`` registry sources and the lock file, ``MA9xx``
durable runs) that a
user can search for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the hierarchy imports nothing of the layers above it
    from .results._results import Attempt, WaitingFor

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]


class MicroagentsError(Exception):
    """Base class of every error microagents raises on purpose."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where in a source file something stands (1-based line and column)."""

    file: Path | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [str(self.file) if self.file is not None else "<python>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a spec: where, which field, what, and what to do."""

    code: str
    message: str
    location: Location = field(default_factory=Location)
    field_path: str = ""
    severity: Severity = "error"

    def __str__(self) -> str:
        known = self.location.file is not None or self.location.line is not None
        where = f"{self.location}: " if known else ""
        field_part = f"{self.field_path}: " if self.field_path else ""
        return f"{where}{self.severity} {self.code}: {field_part}{self.message}"


class SpecError(MicroagentsError):
    """A spec could not be loaded or failed its static checks.

    `problems` lists every problem found (not only the first), errors before warnings.
    """

    def __init__(self, problems: list[Problem]) -> None:
        # In file order, so that a reader can walk down the file fixing them.
        self.problems = sorted(problems, key=_reading_order)
        super().__init__("\n".join(str(p) for p in problems))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


class RegistryError(MicroagentsError):
    """A registry source cannot be read, the lock file cannot be used, or a reference does not
    resolve. `code` is the stable code that docs/errors.md explains."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ResolutionError(RegistryError):
    """A reference names nothing, no version in its range, or not what the lock pins."""

    def __init__(self, message: str, code: str = "MA301") -> None:
        super().__init__(code, message)


class GitError(RegistryError):
    """A git command failed: the repository or the ref cannot be reached."""

    def __init__(self, message: str) -> None:
        super().__init__("MA802", message)


class SpecPartError(MicroagentsError, ValueError):
    """One part of a spec cannot be read; the loaders turn it into a `Problem`."""


class ExpressionError(SpecPartError):
    """An expression does not parse, or reaches for something the sandbox refuses."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class SchemaError(SpecPartError):
    """A schema uses something outside the supported subset; `path` says where in it."""

    def __init__(self, message: str, path: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.path = path


class VersionError(SpecPartError):
    """A version or range is malformed (the spec loader turns this into a `Problem`)."""


class ToolDefinitionError(MicroagentsError):
    """A function cannot be made into a tool (its name or signature)."""


class McpServerError(MicroagentsError):
    """An MCP server cannot be started or reached, or a call to it failed or timed out."""


class RunError(MicroagentsError):
    """A run could not go on. `attempts` says what the model calls it made cost."""

    def __init__(self, message: str, attempts: tuple[Attempt, ...] = ()) -> None:
        super().__init__(message)
        self.attempts = attempts


class NodeError(RunError):
    """A node failed (after its retries); carries what its attempts cost."""


class AgentFailed(RunError):
    """An agent could not produce a valid answer on any rung it was allowed to try."""


class TraceNotFoundError(MicroagentsError, LookupError):
    """No run or trace in the store matches the id given (or a prefix matches several)."""


class EvalError(MicroagentsError):
    """An evaluation cannot run: a variant, a stored eval or a report option is unusable."""


class DatasetError(EvalError):
    """A dataset line is malformed: the message names the file, the line and the field."""

    def __init__(self, file: Path, line: int, field: str, message: str) -> None:
        where = f"{file}:{line}" + (f": {field}" if field else "")
        super().__init__(f"{where}: {message}")
        self.file, self.line, self.field = file, line, field


class RunSuspended(MicroagentsError):
    """Stops a run where it stands, to wait: a human node raises it for its question; a model
    layer may raise it for a call it defers (a Message Batches back-end). The engine turns it
    into a `waiting` result whose `waiting_for` is this exception's; resuming the run replays
    its journal up to here and goes on. Raise it only from inside a journaled run."""

    def __init__(self, waiting_for: WaitingFor) -> None:
        super().__init__(f"waiting at node '{waiting_for.node}': {waiting_for.question}")
        self.waiting_for = waiting_for


class JournalError(MicroagentsError):
    """A durable run cannot be resumed (or answered) as asked. `code` is stable (``MA9xx``,
    see docs/errors.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class RunNotFound(JournalError, LookupError):
    """No run in the journal has this id."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            "MA901",
            f"no run '{run_id}' in the journal; `microagents runs list` shows the runs there",
        )


class ReplayMismatch(JournalError):
    """A recorded step's request differs from the one the resumed run makes now."""

    def __init__(self, node: str, step: str, changed: str) -> None:
        super().__init__(
            "MA902",
            f"cannot resume: node '{node}' now makes a different request than the one recorded "
            f"(step {step}: {changed} changed since the run started). Undo the change, or "
            "resume with --rerun-changed (`rerun_changed=True`) to run that step and every "
            "later one again",
        )
        self.node = node
        self.step = step


class ToolDecisionNeeded(JournalError):
    """A tool that is not idempotent started before the run stopped, with no recorded result."""

    def __init__(self, node: str, tool: str, step: str) -> None:
        super().__init__(
            "MA903",
            f"cannot resume: tool '{tool}' (node '{node}', step {step}) had started when the run "
            "stopped and its result was not recorded, so it may or may not have taken effect. "
            "Check its effect, then resume with --rerun-tools to call it again, or declare the "
            "tool idempotent (@tool(idempotent=True)) if calling it twice is harmless",
        )
        self.node = node
        self.tool = tool


class AnswerRefused(JournalError):
    """An answer does not match the waiting node's schema, or the run is not waiting."""

    def __init__(self, message: str) -> None:
        super().__init__("MA904", message)


def _reading_order(problem: Problem) -> tuple[str, int, int]:
    location = problem.location
    return (str(location.file or ""), location.line or 0, location.column or 0)


def suggest(name: str, known: list[str], what: str) -> str:
    """'did you mean X?' when something is close, else the list of what exists."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if not known:
        return f"there are no {what}"
    shown = ", ".join(sorted(known)[:12])
    more = f" (and {len(known) - 12} more)" if len(known) > 12 else ""
    return f"known {what}: {shown}{more}"


class ModelError(MicroagentsError):
    """A model call failed. `retryable` says whether trying again can help."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
    ) -> None:
        suffix = f" (request id {request_id})" if request_id else ""
        super().__init__(message + suffix)
        self.request_id = request_id
        self.status = status
        self.retry_after = retry_after
        # The API's own `x-should-retry` verdict, when it gave one, overrides the class default.
        if should_retry is not None:
            self.retryable = should_retry


class AuthenticationError(ModelError):
    """The API key is missing or was refused."""


class PermissionDeniedError(ModelError):
    """The key may not use this model or feature."""


class ModelNotFoundError(ModelError):
    """The model id does not exist."""


class InvalidRequestError(ModelError):
    """The request is malformed or too large; sending it again will not help."""


class RateLimitedError(ModelError):
    """Too many requests or tokens per minute."""

    retryable = True


class OverloadedError(ModelError):
    """The API is temporarily overloaded."""

    retryable = True


class ServerError(ModelError):
    """The API failed on its side."""

    retryable = True


class ModelTimeoutError(ModelError):
    """The call did not finish within its timeout."""

    retryable = True


class ModelConnectionError(ModelError):
    """The connection could not be made or was dropped."""

    retryable = True


class SqlError(MicroagentsError):
    """A SQL tool could not answer. `code` is stable (``MA6xx``, see docs/errors.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reason = message


class SqlRefused(SqlError):
    """The SQL guard refused a statement; nothing reached the database."""


class SqlDatabaseError(SqlError):
    """The database could not be opened, failed the query, or the query timed out."""
