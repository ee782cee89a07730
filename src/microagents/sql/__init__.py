"""SQL for agents: the guard every agent-written statement passes, and the read-only
`sql.schema` and `sql.query` tools over SQLite, DuckDB and PostgreSQL.

Imports: `graph` (the tools plug into its tool registry) and below."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._guard import GuardedQuery as GuardedQuery
    from ._guard import guard_sql as guard_sql
    from ._limits import SqlLimits as SqlLimits
    from ._tools import SqlDatabase as SqlDatabase
    from ._tools import sql_tools as sql_tools

_EXPORTS = {
    # databases and their tools
    "sql_tools": "._tools",
    "SqlDatabase": "._tools",
    "SqlLimits": "._limits",
    # the guard
    "guard_sql": "._guard",
    "GuardedQuery": "._guard",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
