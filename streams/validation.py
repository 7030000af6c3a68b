"""Checking ingested events against their stream source's declared schema.

`validate_rows(stream, rows)` takes a list of dicts (JSON events), a pandas DataFrame or an Arrow
table and returns an Arrow table with exactly the declared columns, in order, typed as the event
log stores them (offline_store.event_log). Anything else is refused with an
`IngestValidationError` naming the field, the row, the rule broken and the nearest valid value:

    unknown_field   a field the source does not declare (with the declared name it most resembles)
    missing_field   a declared field the row lacks (every declared field must be given; null is
                    allowed except for the event id, the event time and the join keys)
    type            a value of another type: numbers in text, a number as a timestamp, ...
    not_null        a null event id, event time or join key
    future_event    an event time further ahead of this machine's clock than the push skew bound
                    (HINDSIGHT_PUSH_MAX_FUTURE_SKEW, default 5m): online_sync.push.FutureBound
    not_an_object   a row that is not a JSON object / dict

Values are not coerced across types ("12" is not 12): a producer that sends the wrong type is told
so on its first event, not when a training set comes out wrong. Timestamps are datetimes or
ISO-8601 text (without an offset: UTC); dates are dates or ISO text; decimals may also be text.
Repeated event ids inside one call keep their first row (`ValidatedRows.duplicates` counts the rest).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hindsight.core.arrow_types import ARROW_TYPES
from hindsight.core.values import ValueProblem, converter, describe, nearest_valid  # noqa: F401 (nearest_valid: re-exported)
from hindsight.core.suggest import closest, did_you_mean
from hindsight.online_sync.push import MAX_FUTURE_SKEW_ENV, FutureBound
from hindsight.registry_sync.model import StreamSource

#: Marks "use the environment's bound" (None means no bound).
_FROM_ENV: Any = object()


#: Why an event's infinite or NaN number is refused (JSON's 1e999 parses as infinity).
NOT_FINITE = "sums, means and maxima over it could not be read back (send null for a missing value)"


def _event_converter(dtype: str, arrow_type: pa.DataType) -> Any:
    """`converter` with one rule more for events: a float must be finite, since events are aggregated."""
    convert = converter(dtype, arrow_type)
    if dtype not in ("float32", "float64"):
        return convert

    def finite(value: Any) -> float:
        number = convert(value)
        if not math.isfinite(number):
            raise ValueProblem(f"expected a finite number ({dtype}), got {value!r}: {NOT_FINITE}")
        return number

    return finite


class IngestValidationError(ValueError):
    """An event that does not match its stream source's schema (a client's mistake: 4xx)."""

    def __init__(self, source: str, field: str | None, index: int | None, rule: str, problem: str,
                 nearest: str | None = None) -> None:
        self.source, self.field, self.index, self.rule, self.nearest = source, field, index, rule, nearest
        where = "every row" if index is None else f"row {index}"
        text = f"ingest into {source!r}: {where}: field {field!r}: {problem}" if field else \
            f"ingest into {source!r}: {where}: {problem}"
        if nearest:
            text += f"; nearest valid value: {nearest}"
        super().__init__(text)

    def to_dict(self) -> dict[str, Any]:
        """The error's parts, for an API response."""
        return {"source": self.source, "field": self.field, "row": self.index, "rule": self.rule,
                "nearest": self.nearest, "message": str(self)}


@dataclass(frozen=True)
class ValidatedRows:
    """validate_rows' result with the bookkeeping an ingest reports."""

    table: pa.Table
    #: Rows given.
    received: int
    #: Rows dropped because an earlier row of the call had the same event id.
    duplicates: int


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return False  # NaN is a float value, not a null
    try:
        import pandas as pd

        return value is pd.NaT or value is pd.NA
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------


def _schema(stream: StreamSource) -> pa.Schema:
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.dtype]) for c in stream.columns])


def _required(stream: StreamSource) -> tuple[str, ...]:
    return tuple(dict.fromkeys((stream.event_id_field, stream.timestamp_field, *stream.join_keys)))


def _from_dicts(stream: StreamSource, rows: list[Any], schema: pa.Schema) -> pa.Table:
    names = schema.names
    declared = set(names)
    converters = [_event_converter(c.dtype, schema.field(c.name).type) for c in stream.columns]
    columns: list[list[Any]] = [[] for _ in names]
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise IngestValidationError(stream.name, None, index, "not_an_object",
                                        f"expected an object of field values, got {describe(row)}")
        if len(row) != len(names) or not declared.issuperset(row):
            _check_fields(stream, list(row), names, index)
        for position, name in enumerate(names):
            value = row[name]
            if _is_null(value):
                columns[position].append(None)
                continue
            try:
                columns[position].append(converters[position](value))
            except ValueProblem as bad:
                raise IngestValidationError(stream.name, name, index, "type", bad.problem, bad.nearest) from None
    return pa.table([pa.array(values, schema.field(i).type) for i, values in enumerate(columns)], schema=schema)


def _check_fields(stream: StreamSource, given: list[str], names: list[str], index: int | None) -> None:
    unknown = [f for f in given if f not in names]
    missing = [n for n in names if n not in given]
    if unknown:
        field = unknown[0]
        hint = closest(field, missing or names, n=1)
        raise IngestValidationError(
            stream.name, field, index, "unknown_field",
            f"stream source {stream.name!r} declares no field {field!r}{did_you_mean(field, missing or names, True)}"
            f" (declared: {', '.join(names)})", repr(hint[0]) if hint else None)
    if missing:
        field = missing[0]
        raise IngestValidationError(
            stream.name, field, index, "missing_field",
            f"missing; every declared field must be given (null is allowed except for "
            f"{', '.join(_required(stream))})", "null" if field not in _required(stream) else None)


def _from_arrow(stream: StreamSource, table: pa.Table, schema: pa.Schema) -> pa.Table:
    if set(table.column_names) != set(schema.names):
        _check_fields(stream, table.column_names, schema.names, None)
    columns = []
    for position, column in enumerate(stream.columns):
        target = schema.field(position).type
        data = table.column(column.name)
        columns.append(_cast(stream, column.name, column.dtype, data, target))
    return pa.table(columns, schema=schema)


def _cast(stream: StreamSource, name: str, dtype: str, data: pa.ChunkedArray, target: pa.DataType) -> pa.Array:
    kind = data.type
    fast = (
        kind.equals(target)
        or (pa.types.is_timestamp(kind) and pa.types.is_timestamp(target))
        or (pa.types.is_integer(kind) and (pa.types.is_integer(target) or pa.types.is_floating(target)))
        or (pa.types.is_floating(kind) and pa.types.is_floating(target))
        or (pa.types.is_date(kind) and pa.types.is_date(target))
        or (pa.types.is_null(kind))
        or (pa.types.is_large_string(kind) and pa.types.is_string(target))
    )
    if fast:
        try:
            if pa.types.is_timestamp(kind) and kind.tz is None:
                data = pc.assume_timezone(data.cast(pa.timestamp("us")), "UTC")
            cast = data.cast(target, safe=True).combine_chunks()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        else:
            if not pa.types.is_floating(target):
                return cast
            finite = pc.is_finite(cast)
            if pc.all(finite).as_py() is not False:
                return cast
            index = pc.index(finite, False).as_py()
            raise IngestValidationError(stream.name, name, index, "type",
                                        f"expected a finite number ({dtype}), got {cast[index].as_py()!r}: {NOT_FINITE}")
    # Slow path: value by value, which names the first bad row and its nearest valid value.
    convert = _event_converter(dtype, target)
    values: list[Any] = []
    for index, value in enumerate(data.to_pylist()):
        if _is_null(value):
            values.append(None)
            continue
        try:
            values.append(convert(value))
        except ValueProblem as bad:
            raise IngestValidationError(stream.name, name, index, "type", bad.problem, bad.nearest) from None
    return pa.array(values, target)


def _input_table(rows: Any) -> pa.Table | list[Any]:
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, pa.RecordBatch):
        return pa.Table.from_batches([rows])
    try:
        import pandas as pd

        if isinstance(rows, pd.DataFrame):
            try:
                return pa.Table.from_pandas(rows, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # A column of mixed types: check it value by value (names the bad row).
                return [{k: (None if _is_null(v) or (isinstance(v, float) and math.isnan(v)) else v)
                         for k, v in record.items()} for record in rows.to_dict("records")]
    except ImportError:  # pragma: no cover
        pass
    if isinstance(rows, Mapping):
        return [rows]
    if isinstance(rows, (list, tuple)):
        return list(rows)
    raise TypeError(f"rows must be a list of dicts, a pandas DataFrame or an Arrow table, not {type(rows).__name__}")


def validate(stream: StreamSource, rows: Any, *, bound: FutureBound | None = _FROM_ENV) -> ValidatedRows:
    """`validate_rows` with the counts an ingest reports (rows given, repeated event ids)."""
    given = _input_table(rows)
    schema = _schema(stream)
    table = _from_arrow(stream, given, schema) if isinstance(given, pa.Table) else _from_dicts(stream, given, schema)
    for name in _required(stream):
        nulls = table.column(name).is_null()
        if pc.any(nulls).as_py():
            index = pc.index(nulls, True).as_py()
            raise IngestValidationError(stream.name, name, index, "not_null",
                                        _null_problem(stream, name))
    if bound is _FROM_ENV:
        bound = FutureBound.from_env()
    if bound is not None and table.num_rows:
        times = table.column(stream.timestamp_field)
        latest = pa.scalar(bound.latest, times.type)
        late = pc.greater(times, latest)
        if pc.any(late).as_py():
            index = pc.index(late, True).as_py()
            value = times[index].as_py()
            raise IngestValidationError(
                stream.name, stream.timestamp_field, index, "future_event",
                f"{value.isoformat()} is in the future by more than {_format(bound.skew)} (by this machine's "
                f"clock); the online tiles would count it before it happened. Fix the event time, or raise "
                f"{MAX_FUTURE_SKEW_ENV}",
                repr(bound.latest.isoformat(timespec="seconds")))
    ids = table.column(stream.event_id_field).to_pylist()
    first: dict[Any, int] = {}
    for index, value in enumerate(ids):
        first.setdefault(value, index)
    duplicates = len(ids) - len(first)
    if duplicates:
        table = table.take(pa.array(sorted(first.values()), pa.int64()))
    return ValidatedRows(table, len(ids), duplicates)


def validate_rows(stream: StreamSource, rows: Any, *, bound: FutureBound | None = _FROM_ENV) -> pa.Table:
    """The events of `rows`, checked against `stream` and typed as its event log stores them.

    Args:
        stream: the registry's stream source.
        rows: a list of dicts, a pandas DataFrame or an Arrow table (or one dict).
        bound: the newest event time accepted; default now plus HINDSIGHT_PUSH_MAX_FUTURE_SKEW;
            None: no bound (re-reading rows validated before, e.g. from the journal).

    Returns:
        An Arrow table of the declared columns in order, one row per distinct event id (the first).

    Raises:
        IngestValidationError: naming the field, the row, the rule and the nearest valid value.
        TypeError: `rows` is none of the accepted containers.
    """
    return validate(stream, rows, bound=bound).table


def _null_problem(stream: StreamSource, name: str) -> str:
    role = ("the event id" if name == stream.event_id_field
            else "the event time" if name == stream.timestamp_field else "a join key")
    return f"is null, but it is {role} of stream source {stream.name!r}, which every event needs"


def _format(delta: dt.timedelta) -> str:
    from hindsight.core.durations import format_duration

    return format_duration(delta)
