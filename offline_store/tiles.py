"""The layout of an aggregation feature view's Delta table: its tiles.

An aggregation feature view declares aggregations (a function over an input column, per window)
and one `aggregation_interval` i. Its value at time t aggregates exactly the entity's events whose
event time lies in [floor(t, i) + i - w, t]: the current interval up to t plus the w/i - 1 whole
intervals before it, intervals aligned to the Unix epoch in UTC (docs/aggregation-views.md).

Its Delta table holds **tiles**: one row per entity and distinct event time e, with the partial
aggregates of the entity's events in [floor(e, i), e], the interval of e up to and including e.
So the row with the greatest event time of an interval is that interval's whole tile, and the row
at or before t in t's own interval is the exact partial tile a value at t needs. Columns:

    <join keys>         the entity
    <timestamp_field>   e, the newest event time the row includes (the row's as-of time)
    _tile_start         floor(e, i), the interval's start
    _events             events in the tile (the `*` column of count)
    <column>__n         non-null values of <column>
    <column>__sum       their sum                       (int64 for integer columns, else float64)
    <column>__m2        sum of squared deviations from the tile's mean (float64)
    <column>__min       smallest value                  (the column's type)
    <column>__max       largest value                   (the column's type)
    <column>__last      the newest non-null value       (the column's type)
    <column>__last_at   its event time                  (timestamp)

Only the parts the declared functions need are written (PARTS). This module is the Python home of
these names and of the functions' dtypes; macros/aggregations/tile_columns.sql is the Jinja home,
and tests/cases/tile_columns.yml holds the cases both must agree on.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The interval start of each tile row.
TILE_START = "_tile_start"
#: Events in the tile: count over the column `*`.
EVENT_COUNT = "_events"
#: The input column that stands for "every event" (count only).
STAR = "*"

#: Functions an aggregation feature view accepts, in documentation order.
FUNCTIONS = ("count", "sum", "mean", "min", "max", "stddev", "last")

#: The tile parts each function is computed from.
PARTS: dict[str, tuple[str, ...]] = {
    "count": ("n",),
    "sum": ("n", "sum"),
    "mean": ("n", "sum"),
    "min": ("min",),
    "max": ("max",),
    "stddev": ("n", "sum", "m2"),
    "last": ("last", "last_at"),
}

#: Every part, in the order tile columns are written.
PART_ORDER = ("n", "sum", "m2", "min", "max", "last", "last_at")

_INTEGER_TYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def part_column(column: str, part: str) -> str:
    """The tile column holding one part of one input column.

    >>> part_column("amount", "sum")
    'amount__sum'
    >>> part_column("*", "n")
    '_events'
    """
    if part not in PART_ORDER:
        raise ValueError(f"unknown tile part {part!r}; expected one of {', '.join(PART_ORDER)}")
    if column == STAR:
        if part != "n":
            raise ValueError("column '*' only has an event count (function count)")
        return EVENT_COUNT
    return f"{column}__{part}"


def feature_name(name: str, function: str, window_label: str) -> str:
    """The feature an aggregation produces: <name>_<function>_<window>, the window as written, lower case.

    `name` defaults to the input column (`event` for `*`): see `default_name`.

    >>> feature_name("amount", "sum", "7D")
    'amount_sum_7d'
    """
    return f"{name}_{function}_{window_label.strip().lower()}"


def default_name(column: str) -> str:
    """The name an aggregation's features start with when the spec gives none.

    >>> default_name("*"), default_name("amount")
    ('event', 'amount')
    """
    return "event" if column == STAR else column


def parts_needed(column: str, functions: Iterable[str]) -> list[str]:
    """The tile columns an input column needs for `functions`, in PART_ORDER.

    >>> parts_needed("amount", ["mean", "max"])
    ['amount__n', 'amount__sum', 'amount__max']
    """
    wanted = {part for function in functions for part in PARTS[function]}
    return [part_column(column, part) for part in PART_ORDER if part in wanted]


def sum_dtype(input_dtype: str) -> str:
    """The registry dtype of a sum (and of its tile part) over a column of `input_dtype`.

    >>> sum_dtype("int32"), sum_dtype("float32"), sum_dtype("decimal")
    ('int64', 'float64', 'float64')
    """
    return "int64" if input_dtype in _INTEGER_TYPES else "float64"


def feature_dtype(function: str, input_dtype: str | None) -> str:
    """The registry dtype of an aggregation feature, from its function and its input column's dtype.

    `input_dtype` is None for the column `*`.

    >>> feature_dtype("count", None), feature_dtype("mean", "int64"), feature_dtype("max", "timestamp")
    ('int64', 'float64', 'timestamp')
    """
    if function == "count":
        return "int64"
    if function in ("mean", "stddev"):
        return "float64"
    if input_dtype is None:
        raise ValueError(f"function {function!r} needs an input column, not '*'")
    if function == "sum":
        return sum_dtype(input_dtype)
    return input_dtype
