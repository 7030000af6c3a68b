"""Brute-force oracle for aggregation feature views, written straight from the definition.

The value at time t of an aggregation over window w with interval i is the aggregate of the
entity's events whose event time lies in [floor(t, i) + i - w, t], intervals aligned to the Unix
epoch in UTC. With no events (or no non-null values) in range: count 0, every other function None.
Functions: count (non-null values; column `*` counts events), sum, mean, min, max, stddev (sample:
None below two values), last (the newest non-null value by event time).

Everything here loops over plain Python rows: no windowing tricks, no tiles, so it can judge the
tiled implementations (the dbt materialization, training sets, online serving). It also builds the
tile rows offline_store/tiles.py describes (`reference_tiles`), by the same brute force.

`last` with several non-null values at the newest event time may be any one of them: the oracle
returns an `AnyOf`, which compares equal to each candidate (`actual == expected` works), and
`reference_tiles` records the candidates in `table.schema.metadata` for `assert_tiles_match`.
Events with a NULL event time are in no window and in no tile; a NULL join key is refused (the
materialization refuses it too).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from hindsight.core.durations import parse_duration
from hindsight.offline_store import tiles
from hindsight.offline_store.derived_partition import derived_partition_in, partition_values
from hindsight.registry_sync.model import Aggregation

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_US = dt.timedelta(microseconds=1)
#: Tolerances for float parts and values (engines sum in a different order than math.fsum).
REL_TOL = 1e-9
ABS_TOL = 1e-6


@dataclass(frozen=True)
class AnyOf:
    """An expected value that may be any of several (ties of `last` at one event time)."""

    candidates: frozenset

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AnyOf):
            return self.candidates == other.candidates
        return other in self.candidates

    def __hash__(self) -> int:
        return hash(self.candidates)

    def __repr__(self) -> str:
        return f"AnyOf({sorted(self.candidates, key=repr)})"


# -- time helpers -----------------------------------------------------------------------------


def micros(value: Any) -> int:
    """Microseconds since the Unix epoch of a datetime / pandas Timestamp (naive means UTC)."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return (value - EPOCH) // _US
    raise TypeError(f"not a timestamp: {value!r}")


def from_micros(value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=value)


def duration_micros(value: dt.timedelta | int | str) -> int:
    """A window or interval as microseconds: a timedelta, whole seconds, or a duration like '1h'."""
    if isinstance(value, str):
        value = parse_duration(value)
    if isinstance(value, dt.timedelta):
        return value // _US
    return int(value) * 1_000_000


def floor_time(t: Any, interval: dt.timedelta | int | str) -> dt.datetime:
    """floor(t, i): the start of t's interval, intervals aligned to the Unix epoch (UTC)."""
    i = duration_micros(interval)
    return from_micros(micros(t) // i * i)


def window_bounds(t: Any, window: dt.timedelta | int | str, interval: dt.timedelta | int | str) -> tuple[dt.datetime, dt.datetime]:
    """The closed range [floor(t, i) + i - w, t] a value at t aggregates."""
    i, w = duration_micros(interval), duration_micros(window)
    if w <= 0 or i <= 0 or w % i:
        raise ValueError(f"window {w} us must be a positive multiple of the interval {i} us")
    start = micros(t) // i * i + i - w
    return from_micros(start), from_micros(micros(t))


# -- rows -------------------------------------------------------------------------------------


def _table(events: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(events, pa.Table):
        return events
    return pa.Table.from_pandas(events, preserve_index=False)


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _records(events: pd.DataFrame | pa.Table) -> list[dict[str, Any]]:
    """Events as plain Python dicts, NULLs (None, NaN, NaT, pd.NA) as None."""
    return [{k: (None if _is_null(v) else v) for k, v in row.items()} for row in _table(events).to_pylist()]


def _entity_key(entity: Any, join_keys: Sequence[str]) -> tuple:
    if isinstance(entity, Mapping):
        return tuple(entity[k] for k in join_keys)
    if isinstance(entity, tuple):
        return entity
    return (entity,)


# -- aggregate functions ----------------------------------------------------------------------


def aggregate(rows: Sequence[Mapping[str, Any]], function: str, column: str, timestamp: str) -> Any:
    """One function over `rows` (the events in range), from the definition.

    >>> rows = [{"t": 1, "x": 2}, {"t": 2, "x": None}, {"t": 3, "x": 4}]
    >>> [aggregate(rows, f, "x", "t") for f in ("count", "sum", "mean", "min", "max", "last")]
    [2, 6, 3.0, 2, 4, 4]
    >>> aggregate(rows, "count", "*", "t"), aggregate([], "sum", "x", "t")
    (3, None)
    """
    if function not in tiles.FUNCTIONS:
        raise ValueError(f"unknown function {function!r}; expected one of {', '.join(tiles.FUNCTIONS)}")
    if column == tiles.STAR:
        if function != "count":
            raise ValueError("column '*' only supports count")
        return len(rows)
    values = [r[column] for r in rows if r[column] is not None]
    if function == "count":
        return len(values)
    if not values:
        return None
    if function == "sum":
        return _sum(values)
    if function == "mean":
        return float(_sum(values)) / len(values) if isinstance(values[0], int) else math.fsum(values) / len(values)
    if function == "min":
        return min(values)
    if function == "max":
        return max(values)
    if function == "stddev":
        return statistics.stdev([float(v) for v in values]) if len(values) >= 2 else None
    newest = max(r[timestamp] for r in rows if r[column] is not None)
    tied = {r[column] for r in rows if r[column] is not None and r[timestamp] == newest}
    return next(iter(tied)) if len(tied) == 1 else AnyOf(frozenset(tied))


def _sum(values: Sequence[Any]) -> Any:
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return sum(values)
    return math.fsum(float(v) for v in values)


# -- values at a time -------------------------------------------------------------------------


def window_events(
    events: pd.DataFrame | pa.Table | list[dict[str, Any]],
    entity: Any,
    t: Any,
    *,
    join_keys: Sequence[str],
    timestamp: str,
    window: dt.timedelta | int | str,
    interval: dt.timedelta | int | str,
) -> list[dict[str, Any]]:
    """The entity's events with event time in [floor(t, i) + i - w, t], as dicts."""
    rows = events if isinstance(events, list) else _records(events)
    key = _entity_key(entity, join_keys)
    start, end = (micros(x) for x in window_bounds(t, window, interval))
    return [
        r for r in rows
        if tuple(r[k] for k in join_keys) == key and r[timestamp] is not None and start <= micros(r[timestamp]) <= end
    ]


def expected_value(
    events: pd.DataFrame | pa.Table | list[dict[str, Any]],
    entity: Any,
    t: Any,
    *,
    join_keys: Sequence[str],
    timestamp: str,
    window: dt.timedelta | int | str,
    interval: dt.timedelta | int | str,
    function: str,
    column: str,
) -> Any:
    """The value at t of `function` over `column` in `window` for `entity` (a key value, tuple or dict)."""
    rows = window_events(events, entity, t, join_keys=join_keys, timestamp=timestamp, window=window, interval=interval)
    return aggregate(rows, function, column, timestamp)


def expand(aggregations: Iterable[Any], windows: Sequence[str] = ()) -> list[Aggregation]:
    """Registry `Aggregation`s from the config form ({'column', 'functions', 'name'?, 'windows'?}).

    `Aggregation` objects pass through. Order: aggregation, function, window (the registry's order).

    >>> [a.name for a in expand([{"column": "*", "name": "txn", "functions": ["count"]}], ["1h", "1d"])]
    ['txn_count_1h', 'txn_count_1d']
    """
    out: list[Aggregation] = []
    for spec in aggregations:
        if isinstance(spec, Aggregation):
            out.append(spec)
            continue
        name = spec.get("name") or tiles.default_name(spec["column"])
        for function in spec["functions"]:
            for label in spec.get("windows") or windows:
                seconds = int(parse_duration(label).total_seconds())
                out.append(Aggregation(tiles.feature_name(name, function, label), function, spec["column"], seconds))
    return out


def expected_features(
    events: pd.DataFrame | pa.Table | list[dict[str, Any]],
    entity: Any,
    t: Any,
    *,
    join_keys: Sequence[str],
    timestamp: str,
    aggregations: Iterable[Any],
    interval: dt.timedelta | int | str,
    windows: Sequence[str] = (),
) -> dict[str, Any]:
    """Every feature's value at t for one entity: {feature name: value}."""
    rows = events if isinstance(events, list) else _records(events)
    return {
        a.name: expected_value(
            rows, entity, t, join_keys=join_keys, timestamp=timestamp, window=a.window_seconds,
            interval=interval, function=a.function, column=a.column,
        )
        for a in expand(aggregations, windows)
    }


# -- tiles ------------------------------------------------------------------------------------


def _columns_functions(aggregations: Iterable[Any]) -> dict[str, list[str]]:
    """Input column -> the functions applied to it: `*` (the event count) first, then columns in first-use order."""
    out: dict[str, list[str]] = {}
    for spec in aggregations:
        if isinstance(spec, Aggregation):
            out.setdefault(spec.column, []).append(spec.function)
        else:
            out.setdefault(spec["column"], []).extend(spec["functions"])
    return dict(sorted(out.items(), key=lambda item: item[0] != tiles.STAR))


def _m2(values: Sequence[Any]) -> float:
    """Sum of squared deviations from the mean, by its definition."""
    floats = [float(v) for v in values]
    mean = math.fsum(floats) / len(floats)
    return math.fsum((v - mean) ** 2 for v in floats)


def tile_schema(events_schema: pa.Schema, join_keys: Sequence[str], timestamp: str, aggregations: Iterable[Any]) -> pa.Schema:
    """The Arrow schema of the tile table: join keys, timestamp, _tile_start, the parts needed, _partition_date.

    Parts: `_events` first (if counted), then each input column's parts (PART_ORDER) in order of first use,
    as macros/aggregations/aggregation_view_config.sql writes them.
    """
    ts_type = events_schema.field(timestamp).type
    fields = [events_schema.field(k) for k in join_keys]
    fields += [pa.field(timestamp, ts_type), pa.field(tiles.TILE_START, ts_type)]
    for column, functions in _columns_functions(aggregations).items():
        for name in tiles.parts_needed(column, functions):
            part = "n" if column == tiles.STAR else name.rsplit("__", 1)[1]
            fields.append(pa.field(name, _part_type(part, events_schema.field(column).type if column != tiles.STAR else None, ts_type)))
    fields.append(pa.field("_partition_date", pa.date32()))
    return pa.schema(fields)


def _part_type(part: str, input_type: pa.DataType | None, ts_type: pa.DataType) -> pa.DataType:
    if part == "n":
        return pa.int64()
    if part == "sum":
        return pa.int64() if pa.types.is_integer(input_type) else pa.float64()
    if part == "m2":
        return pa.float64()
    if part == "last_at":
        return ts_type
    return input_type  # min, max, last


def reference_tiles(
    events: pd.DataFrame | pa.Table,
    entities: Sequence[str],
    timestamp: str,
    aggregations: Iterable[Any],
    interval: dt.timedelta | int | str,
) -> pa.Table:
    """The tile rows of offline_store/tiles.py, by brute force.

    One row per entity and distinct event time e, aggregating the entity's events in
    [floor(e, i), e]; columns and Arrow types as `tile_schema`; rows sorted by entity, then e.
    Parts over no non-null value are NULL (n is 0); m2 is 0.0 for one value. For `last` ties, the
    row holds the greatest candidate and the schema metadata b"last_candidates" all of them.

    Args:
        events: the model's output rows (pandas or Arrow); Arrow types decide the tile types.
        entities: the join-key columns.
        timestamp: the event time column (the tile rows' as-of time).
        aggregations: the config form ({'column', 'functions'}) or registry Aggregations.
        interval: the aggregation interval (timedelta, seconds, or '1h').

    Raises:
        ValueError: a NULL join key (the materialization refuses those rows).
    """
    aggregations = list(aggregations)
    table = _table(events)
    schema = tile_schema(table.schema, entities, timestamp, aggregations)
    wanted = _columns_functions(aggregations)
    i = duration_micros(interval)
    rows = [r for r in _records(table) if r[timestamp] is not None]
    for r in rows:
        if any(r[k] is None for k in entities):
            raise ValueError(f"event with a NULL join key: {r}")
    by_entity: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        by_entity.setdefault(tuple(r[k] for k in entities), []).append(r)

    out: list[dict[str, Any]] = []
    ties: list[list[Any]] = []
    for key in sorted(by_entity, key=lambda k: tuple((v is None, v) for v in k)):
        events_of = by_entity[key]
        for e in sorted({micros(r[timestamp]) for r in events_of}):
            start = e // i * i
            tile = [r for r in events_of if start <= micros(r[timestamp]) <= e]
            row: dict[str, Any] = dict(zip(entities, key))
            row[timestamp] = from_micros(e)
            row[tiles.TILE_START] = from_micros(start)
            for column, functions in wanted.items():
                parts = {name: _part(tile, column, name, timestamp) for name in tiles.parts_needed(column, functions)}
                for name, value in parts.items():
                    if isinstance(value, AnyOf):
                        ties.append([list(key), e, name, sorted(value.candidates)])
                        value = max(value.candidates)
                    row[name] = value
            row["_partition_date"] = from_micros(e).date()
            out.append(row)
    result = pa.Table.from_pylist(out, schema=schema)
    return result.replace_schema_metadata({b"last_candidates": json.dumps(ties, default=str).encode()})


def _part(tile: list[dict[str, Any]], column: str, name: str, timestamp: str) -> Any:
    if column == tiles.STAR:
        return len(tile)
    part = name.rsplit("__", 1)[1]
    values = [r[column] for r in tile if r[column] is not None]
    if part == "n":
        return len(values)
    if not values:
        return None
    if part == "sum":
        return _sum(values)
    if part == "m2":
        return _m2(values)
    if part == "min":
        return min(values)
    if part == "max":
        return max(values)
    newest = max(r[timestamp] for r in tile if r[column] is not None)
    if part == "last_at":
        return newest
    return aggregate(tile, "last", column, timestamp)


def _at_grain_of(actual: pa.Table, expected: pa.Table) -> pa.Table:
    """`expected` with its derived partition column at the grain `actual` has."""
    have, want = derived_partition_in(expected.column_names), derived_partition_in(actual.column_names)
    if have is None or want is None or have == want:
        return expected
    index = expected.column_names.index(have)
    return expected.set_column(index, pa.field(want, pa.date32()), partition_values(want, expected.column(have)))


def assert_tiles_match(actual: pa.Table | pd.DataFrame, expected: pa.Table, *, check_types: bool = True) -> None:
    """Assert a tile table (read from Delta) equals `reference_tiles`' output.

    Same columns in the same order (and Arrow types, unless check_types is False), the same rows
    after sorting by entity and as-of time; floats within REL_TOL/ABS_TOL; `last` ties accept any
    candidate. The oracle derives `_partition_date`; a table whose full build chose monthly
    partitions (offline_store.derived_partition) is compared at its grain.
    """
    actual = _table(actual)
    expected = _at_grain_of(actual, expected)
    assert actual.column_names == expected.column_names, f"columns {actual.column_names} != {expected.column_names}"
    if check_types:
        got = {f.name: _normal_type(f.type) for f in actual.schema}
        want = {f.name: _normal_type(f.type) for f in expected.schema}
        assert got == want, f"types {got} != {want}"
    keys = expected.column_names[: expected.column_names.index(tiles.TILE_START)]  # join keys, timestamp
    a_rows = _sorted_rows(actual, keys)
    e_rows = _sorted_rows(expected, keys)
    assert len(a_rows) == len(e_rows), f"{len(a_rows)} tile rows, expected {len(e_rows)}"
    ties = {}
    for key, e, name, candidates in json.loads((expected.schema.metadata or {}).get(b"last_candidates", b"[]")):
        ties[(tuple(key), e, name)] = {json.dumps(c, default=str) for c in candidates}
    for got, want in zip(a_rows, e_rows):
        where = {k: want[k] for k in keys}
        for name in expected.column_names:
            g, w = got[name], want[name]
            tie = ties.get((tuple(want[k] for k in keys[:-1]), micros(want[keys[-1]]), name))
            if tie is not None:
                assert json.dumps(g, default=str) in tie, f"{name} at {where}: {g!r} not one of {tie}"
            elif isinstance(w, float) and g is not None:
                assert math.isclose(g, w, rel_tol=REL_TOL, abs_tol=ABS_TOL), f"{name} at {where}: {g!r} != {w!r}"
            else:
                assert _same(g, w), f"{name} at {where}: {g!r} != {w!r}"


def _sorted_rows(table: pa.Table, keys: Sequence[str]) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    return sorted(rows, key=lambda r: tuple(micros(r[k]) if isinstance(r[k], dt.datetime) else r[k] for k in keys))


def _same(got: Any, want: Any) -> bool:
    if isinstance(got, dt.datetime) and isinstance(want, dt.datetime):
        return micros(got) == micros(want)
    return (got == want and type(got) is type(want)) or (got is None and want is None)


def _normal_type(dtype: pa.DataType) -> pa.DataType:
    """Types that Delta round trips change without changing meaning (large/view strings)."""
    if pa.types.is_large_string(dtype) or str(dtype) == "string_view":
        return pa.string()
    return dtype


# -- combining tiles (the design's formulas, in Python) ------------------------------------------


def combine_tiles(
    tile_rows: Sequence[Mapping[str, Any]],
    entity: Any,
    t: Any,
    *,
    join_keys: Sequence[str],
    timestamp: str,
    window: dt.timedelta | int | str,
    interval: dt.timedelta | int | str,
    function: str,
    column: str,
) -> Any:
    """A value at t computed from tile rows the way training sets and serving do (AGG.md).

    Part B: the entity's row at or before t in t's own interval; part A: the final row of each of
    the w/i - 1 whole intervals before it. count adds; sum is NULL at count 0; mean = sum/n; min,
    max skip NULLs; stddev from N, S and M2 = sum(m2) + sum(sum^2/n) - S^2/N (clamped at 0); last
    from the newest tile that has one. Checked against `expected_value` by the oracle's own tests.
    """
    i, w = duration_micros(interval), duration_micros(window)
    key = _entity_key(entity, join_keys)
    b = micros(t) // i
    mine = [r for r in tile_rows if tuple(r[k] for k in join_keys) == key]
    picked = []
    for bucket in range(b - w // i + 1, b + 1):
        rows = [r for r in mine if micros(r[tiles.TILE_START]) == bucket * i and (bucket < b or micros(r[timestamp]) <= micros(t))]
        if rows:
            picked.append(max(rows, key=lambda r: micros(r[timestamp])))
    if column == tiles.STAR:
        return sum(r[tiles.EVENT_COUNT] for r in picked)

    def part(name: str) -> list[Any]:
        return [r[tiles.part_column(column, name)] for r in picked if r[tiles.part_column(column, name)] is not None]

    if function == "count":
        return sum(part("n"))
    if function in ("min", "max"):
        values = part(function)
        return (min if function == "min" else max)(values) if values else None
    if function == "last":
        known = [r for r in picked if r[tiles.part_column(column, "last_at")] is not None]
        return max(known, key=lambda r: micros(r[tiles.part_column(column, "last_at")]))[tiles.part_column(column, "last")] if known else None
    with_values = [r for r in picked if r[tiles.part_column(column, "n")]]
    n = sum(r[tiles.part_column(column, "n")] for r in with_values)
    if n == 0:
        return None
    total = _sum([r[tiles.part_column(column, "sum")] for r in with_values])
    if function == "sum":
        return total
    if function == "mean":
        return total / n
    if n < 2:
        return None
    q = math.fsum(float(r[tiles.part_column(column, "sum")]) ** 2 / r[tiles.part_column(column, "n")] for r in with_values)
    m2 = math.fsum([*(r[tiles.part_column(column, "m2")] for r in with_values), q, -float(total) ** 2 / n])
    return math.sqrt(max(m2, 0.0) / (n - 1))
