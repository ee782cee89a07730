"""The syntax a guarded query may use: an allow-list of sqlglot node types and their clauses.

The guard walks every node of the parsed statement. A node passes only if its type is listed
here (functions are listed separately, per dialect, in `_sql_functions`), and, for the nodes
that carry clauses — a SELECT, a table reference, a join, a CTE — only if every clause it has is
one the guard understands. Whatever sqlglot adds in a later release, and every dialect's exotic
syntax (``MATCH_RECOGNIZE``, ``CONNECT BY``, lambdas, ``LATERAL VIEW``, ``x IN tablename``...),
is refused until it is listed: refusing a rare valid query is acceptable, letting an unchecked
form through is not.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlglot import exp

NodeType = type["exp.Expr"]


@functools.cache
def allowed_nodes() -> frozenset[NodeType]:
    """Node types (other than functions) a query may contain, whatever their arguments."""
    from sqlglot import exp

    return frozenset(
        {
            # queries and their clauses
            exp.Select, exp.Subquery, exp.Union, exp.Intersect, exp.Except, exp.With, exp.CTE,
            exp.From, exp.Join, exp.Lateral, exp.Table, exp.TableAlias, exp.Values,
            exp.Where, exp.Group, exp.Rollup, exp.Cube, exp.GroupingSets, exp.Having,
            exp.Qualify, exp.Order, exp.Ordered, exp.Limit, exp.Offset, exp.Fetch,
            exp.LimitOptions, exp.Distinct, exp.Window, exp.WindowSpec, exp.Filter,
            exp.WithinGroup, exp.IgnoreNulls, exp.RespectNulls, exp.Pivot, exp.TableSample,
            # names and values
            exp.Alias, exp.Column, exp.Identifier, exp.Star, exp.Var, exp.Literal, exp.Null,
            exp.Boolean, exp.HexString, exp.Tuple, exp.Paren, exp.DataType, exp.DataTypeParam,
            exp.Interval, exp.JSONPath,
            # operators and predicates
            exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ,
            exp.Is, exp.Like, exp.ILike, exp.Glob, exp.Escape, exp.Between, exp.In, exp.Any,
            exp.All, exp.Not, exp.Neg, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod,
            exp.DPipe, exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor, exp.BitwiseNot,
            exp.BitwiseLeftShift, exp.BitwiseRightShift, exp.And, exp.Or, exp.Xor,
        }
    )  # fmt: skip


@functools.cache
def clause_args() -> dict[NodeType, frozenset[str]]:
    """For nodes that carry clauses, the clauses (sqlglot argument names) a query may use.

    A node type missing here takes any argument: its arguments are operands or flags. A clause
    missing for a listed type is refused, so that nothing the guard does not understand — a
    table's time travel, ``ONLY``, ``INDEXED BY``, a select's ``CONNECT BY``, a hint — passes.
    """
    from sqlglot import exp

    def clauses(names: str) -> frozenset[str]:
        return frozenset(names.split())

    query = "with_ order limit offset "
    set_operation = clauses("this expression distinct by_name " + query)
    return {
        exp.Select: clauses(
            "expressions from_ joins where group having qualify windows distinct sample " + query
        ),
        exp.Subquery: clauses("this alias joins pivots sample " + query),
        exp.Union: set_operation,
        exp.Intersect: set_operation,
        exp.Except: set_operation,
        exp.With: clauses("expressions recursive"),
        exp.CTE: clauses("this alias materialized"),
        # `joins` here is a parenthesised join, ``(a JOIN b ON ...)``; a `catalog` is refused
        # by the table check, as another database.
        exp.Table: clauses("this db catalog alias joins pivots sample"),
        exp.Join: clauses("this on using kind side method"),
        exp.Lateral: clauses("this alias"),
        exp.Column: clauses("this table"),
        exp.Star: clauses("except_ replace rename"),
        exp.In: clauses("this expressions query"),
        exp.Pivot: clauses(
            "expressions fields group unpivot alias columns include_nulls default_on_null "
            "identify_pivot_strings prefixed_pivot_columns pivot_column_naming "
            "value_columns_first"
        ),
    }


def is_json_path(node: exp.Expr) -> bool:
    """JSON paths (``'$.a[0]'`` parsed into parts) are data, whatever their part types."""
    from sqlglot import exp

    return isinstance(node, exp.JSONPathPart)
