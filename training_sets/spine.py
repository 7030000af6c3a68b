"""The spine: load it from what the caller has, check it, and shape the table the query reads.

The query never sees the caller's columns: it reads a narrow table of a row id, the event time in
UTC and the join keys, and the caller's spine is re-attached to the result unchanged. Labels of
any Arrow type thus pass through untouched, on any engine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hindsight.training_sets.errors import TrainingSetError, near_names
from hindsight.training_sets.sql_parts import EVENT_TIME, INTERNAL_PREFIX, ROW_ID

UTC_MICROS = pa.timestamp("us", tz="UTC")


def load_spine(spine: Any, *, duckdb_connection: Any = None) -> pa.Table:
    """Read a spine into Arrow.

    Args:
        spine: a pyarrow Table, a pandas DataFrame, a DuckDB relation, a Parquet file or folder
            path, or (with `duckdb_connection`) a SQL query string.
        duckdb_connection: runs a SQL spine; None when the engine is not DuckDB.

    Returns:
        The spine as an Arrow table, rows in the caller's order.

    Raises:
        TrainingSetError: for an unreadable or unsupported spine.
    """
    if isinstance(spine, pa.Table):
        return spine
    if type(spine).__name__ == "DataFrame" and hasattr(spine, "iloc"):
        return pa.Table.from_pandas(spine, preserve_index=False)
    if hasattr(spine, "to_arrow_table"):  # a DuckDB relation
        return spine.to_arrow_table()
    if isinstance(spine, Path) or (isinstance(spine, str) and _looks_like_path(spine)):
        return _read_parquet(Path(spine))
    if isinstance(spine, str):
        if duckdb_connection is None:
            raise TrainingSetError(
                "a SQL spine runs on DuckDB only; with engine='spark' pass a table, a DataFrame or a Parquet path"
            )
        try:
            return duckdb_connection.sql(spine).to_arrow_table()
        except Exception as error:  # DuckDB raises one class per phase; all are the caller's SQL
            raise TrainingSetError(f"the spine query failed: {error}") from error
    raise TrainingSetError(
        f"cannot use a {type(spine).__name__} as a spine; pass a pyarrow Table, a pandas DataFrame, "
        "a Parquet path or a DuckDB SQL query"
    )


def prepare_spine(
    spine: pa.Table,
    *,
    event_timestamp: str,
    key_types: Mapping[str, Mapping[str, pa.DataType]],
    request_fields: Mapping[str, str] | None = None,
) -> pa.Table:
    """Check the spine and build the table the query reads: row id, UTC event time, join keys.

    Args:
        spine: the caller's spine.
        event_timestamp: its event-time column (timestamp of any unit and zone, or date; naive
            values are UTC; values are floored to microseconds, the offline store's precision).
        key_types: join key -> {view name: the Arrow type that view stores the key as}.
        request_fields: column -> on-demand view needing it.

    Raises:
        TrainingSetError: a missing column, an event time that is not a timestamp or date, a join
            key of a type incompatible with a view's, or a column using the internal prefix.
    """
    names = spine.column_names
    internal = [n for n in names if n.startswith(INTERNAL_PREFIX)]
    if internal:
        raise TrainingSetError(f"spine column(s) {internal} use the prefix {INTERNAL_PREFIX!r} reserved for Hindsight")
    if event_timestamp not in names:
        raise TrainingSetError(
            f"the spine has no event-time column {event_timestamp!r}{near_names(event_timestamp, names)}; "
            "name yours with event_timestamp="
        )
    missing_keys = {k: sorted(v) for k, v in key_types.items() if k not in names}
    if missing_keys:
        needs = "; ".join(f"{k} (for {', '.join(views)})" for k, views in missing_keys.items())
        raise TrainingSetError(f"the spine lacks join key column(s): {needs}; spine columns: {names}")
    missing_fields = {f: view for f, view in (request_fields or {}).items() if f not in names}
    if missing_fields:
        needs = "; ".join(f"{f} (request field of {view})" for f, view in missing_fields.items())
        raise TrainingSetError(f"the spine lacks column(s): {needs}")
    columns = {ROW_ID: row_ids(spine.num_rows)}
    columns[EVENT_TIME] = event_time_utc(spine.column(event_timestamp), event_timestamp)
    for key, views in key_types.items():
        columns[key] = _checked_key(spine.column(key), key, views)
    return pa.table(columns)


def row_ids(count: int) -> pa.Array:
    """0..count-1 as int64.

    Built from the numpy buffer directly: `pa.array(numpy_array)` first imports pandas (0.2 s of a
    1M-row training set in a fresh process) to check for pandas objects.

    >>> row_ids(3).to_pylist()
    [0, 1, 2]
    """
    return pa.Array.from_buffers(pa.int64(), count, [None, pa.py_buffer(np.arange(count, dtype=np.int64))])


def event_time_utc(values: pa.ChunkedArray, name: str = "event time") -> pa.ChunkedArray:
    """Event times as UTC microsecond timestamps: naive means UTC, zoned is converted, dates are midnight.

    >>> event_time_utc(pa.chunked_array([pa.array([0], pa.timestamp("ns"))])).type
    TimestampType(timestamp[us, tz=UTC])
    """
    kind = values.type
    if pa.types.is_date(kind):
        return values.cast(UTC_MICROS)
    if not pa.types.is_timestamp(kind):
        raise TrainingSetError(
            f"event-time column {name!r} is {kind}, not a timestamp or a date; convert it first "
            "(pandas.to_datetime, or a CAST in the spine query)"
        )
    if kind.unit == "ns":
        # Floor, not truncate: a time before 1970 must not move later than it was.
        values = pc.floor_temporal(values, unit="microsecond")
    # A naive timestamp cast to a zoned one keeps its value, i.e. is read as UTC.
    return values.cast(UTC_MICROS)


def _checked_key(values: pa.ChunkedArray, key: str, views: Mapping[str, pa.DataType]) -> pa.ChunkedArray:
    if pa.types.is_dictionary(values.type):  # pandas categoricals: compare by value
        values = values.cast(values.type.value_type)
    for view, stored in views.items():
        if _key_family(values.type) != _key_family(stored):
            raise TrainingSetError(
                f"join key {key!r}: the spine's column is {values.type} but view {view!r} stores it as "
                f"{stored}; cast the spine column to match"
            )
    return values


def _key_family(kind: pa.DataType) -> str:
    checks = [
        ("integer", pa.types.is_integer),
        ("float", pa.types.is_floating),
        ("decimal", pa.types.is_decimal),
        ("string", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)),
        ("binary", lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)),
        ("boolean", pa.types.is_boolean),
        ("date", pa.types.is_date),
        ("timestamp", pa.types.is_timestamp),
    ]
    for family, check in checks:
        if check(kind):
            return family
    return str(kind)


def _looks_like_path(text: str) -> bool:
    return text.lower().endswith(".parquet") or (len(text) < 4096 and "\n" not in text and os.path.exists(text))


def _read_parquet(path: Path) -> pa.Table:
    if not path.exists():
        raise TrainingSetError(f"spine file {str(path)!r} does not exist")
    try:
        # One file: ParquetFile, which reads it as read_table does (0.04 s for 1M rows) without
        # importing pandas for the pandas metadata check (0.25 s in a fresh process).
        return pq.ParquetFile(path).read() if path.is_file() else pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise TrainingSetError(f"cannot read spine file {str(path)!r} as Parquet: {error}") from error
