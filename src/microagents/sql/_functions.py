"""The functions a guarded query may call, per dialect: an allow-list, never a deny-list.

A deny-list misses what it does not know: every engine release adds table functions that read
files or URLs. So only pure functions of their arguments are listed — arithmetic, text, dates,
conditionals, aggregates, windows. Anything else (``load_extension``, ``readfile``,
``read_csv``, ``pg_sleep``, ``dblink``, ``getenv``, ``glob``, the engines' own catalog
functions...) is refused, including functions that sqlglot does not know.

sqlglot parses the functions it knows into classes (``COUNT`` → ``Count``) and the others into
``Anonymous`` nodes that keep their name. The first set lists class keys, which mean the same
function in every dialect; the per-dialect sets list the names of anonymous functions.
"""

from __future__ import annotations

from typing import Literal

Dialect = Literal["sqlite", "duckdb", "postgres"]


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTION_CLASSES: frozenset[str] = _names(
    # aggregates
    "anyvalue approxdistinct arrayagg avg corr count countif covarpop covarsamp groupconcat "
    "logicaland logicalor max median min mode percentilecont percentiledisc quantile "
    "stddev stddevpop stddevsamp sum variance variancepop booland boolor "
    # window functions
    "cumedist denserank firstvalue lag lastvalue lead nthvalue ntile percentrank rank rownumber "
    # conditionals and casts
    "case cast coalesce exists greatest if least nullif nvl2 trycast "
    # arithmetic
    "abs cbrt ceil exp floor ln log pow round sign sqrt trunc pi "
    # text
    "chr concat concatws hex initcap left length lower pad repeat replace reverse right split "
    "splitpart startswith endswith strposition substring translate trim upper "
    "regexpextract regexplike regexpreplace regexpilike regexpfullmatch collate "
    "format typeof unicode "
    # JSON and arrays (also the operators ->, ->>, @>, &&)
    "jsonextract jsonextractscalar jsonbextract jsonbextractscalar jsonarraycontains "
    "jsonbcontains arraycontains arraycontainsall arraycontainedby arrayoverlaps arrayposition "
    # dates and times
    "currentdate currenttimestamp date dateadd datediff datestrtodate datesub datetrunc "
    "datetime day dayofmonth dayofweek dayofyear extract hour lastday minute month "
    "monthname dayname quarter second strtodate strtotime timestamptrunc timestrtotime "
    "timetostr tsordstodate tsordstotimestamp tsordstodatestr unixtotime week weekofyear "
    "year timestamp"
)
"""sqlglot function classes (their lower-case keys) that are pure in every dialect."""

FUNCTION_NAMES: dict[Dialect, frozenset[str]] = {
    "sqlite": _names(
        "date julianday datetime time unixepoch total printf format ifnull iif instr ltrim "
        "rtrim substr hex quote char unicode likely unlikely nullif typeof"
    ),
    "duckdb": _names(
        "list_aggregate string_agg strftime strptime date_part datepart date_diff epoch "
        "make_date make_timestamp age ifnull ltrim rtrim lpad rpad contains prefix suffix "
        "list_value list_sum arg_max arg_min first last bool_and bool_or "
        "isodow isoyear yearweek epoch_ms to_timestamp"
    ),
    "postgres": _names(
        "date_part to_char to_date to_timestamp age string_agg bool_and bool_or "
        "ltrim rtrim lpad rpad btrim position char_length octet_length "
        "justify_days justify_hours make_date"
    ),
}
"""Functions sqlglot keeps as ``Anonymous`` (lower-case names), allowed per dialect."""

SQLITE_ENGINE_FUNCTIONS: frozenset[str] = _names(
    # scalar
    "abs char coalesce concat concat_ws format glob hex ifnull iif instr length like likely "
    "lower ltrim max min nullif printf quote replace round rtrim substr substring trim typeof "
    "unicode unlikely upper "
    # aggregate
    "avg count group_concat string_agg sum total "
    # window
    "row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value "
    "nth_value "
    # dates
    "date time datetime julianday unixepoch strftime "
    # arithmetic (SQLite's math functions, where it is built with them)
    "ceil ceiling floor ln log log10 log2 exp pow power sqrt sign trunc pi mod "
    # JSON
    "json_extract -> ->>"
)
"""The lower-case names SQLite's authorizer lets a statement call: those the SQL the guard
lets through resolves to, in SQLite's own names. Everything else is denied at prepare time."""
