"""Aggregation feature views in the registry: their config, read from dbt's manifest.

A `feature_view` model with `aggregation_interval` in its config is an aggregation view: its Delta
table holds tiles (offline_store/tiles.py) and its features are the declared aggregations, combined
at the time of use. This module turns the config keys `aggregation_interval`, `windows` and
`aggregations` into `Aggregation`s and `Feature`s, the features' dtypes coming from the tile
table's part columns. Names and dtypes follow `offline_store.tiles` only; every problem is added to
`problems` (the manifest reader raises them together).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from hindsight.core.durations import format_duration, parse_duration
from hindsight.core.suggest import did_you_mean
from hindsight.offline_store import tiles
from hindsight.registry_sync.model import Aggregation, Feature
from hindsight.registry_sync.types import arrow_type_name

#: Keys of one entry of `aggregations`.
AGGREGATION_KEYS = ("column", "functions", "name", "windows")
#: Functions window_aggregates has that aggregation views refuse, and why.
REFUSED_FUNCTIONS = {
    "count_distinct": "count_distinct has no exact tile form; use window_aggregates(evaluate='event') for it",
}


@dataclass(frozen=True)
class AggregationSpec:
    """An aggregation view's config, parsed: the interval and one Aggregation per feature."""

    interval_seconds: int
    aggregations: tuple[Aggregation, ...]


def is_aggregation_config(config: Mapping[str, Any]) -> bool:
    """Whether a feature_view model's config makes it an aggregation view."""
    return config.get("aggregation_interval") not in (None, "")


def check_batch_config(config: Mapping[str, Any], where: str, problems: list[str]) -> bool:
    """A view without aggregation_interval must not set the other aggregation keys; False if it does."""
    for key in ("aggregations", "windows"):
        if config.get(key) is not None:
            problems.append(f"{where}: config '{key}' needs 'aggregation_interval' (e.g. aggregation_interval='1h'): "
                            "together they declare an aggregation view")
            return False
    return True


def parse_spec(config: Mapping[str, Any], where: str, problems: list[str]) -> AggregationSpec | None:
    """Read `aggregation_interval`, `windows` and `aggregations`; None (and problems) when invalid.

    Features come in config order: aggregation, then function, then window.
    """
    before = len(problems)
    if config.get("created_field"):
        problems.append(
            f"{where}: created_field is not supported on aggregation views yet: an event counts from its event "
            "time; remove created_field"
        )
    if config.get("ttl") not in (None, ""):
        problems.append(f"{where}: ttl does not apply to aggregation views: each window bounds its events; remove ttl")
    interval = _seconds(config.get("aggregation_interval"), f"{where}: aggregation_interval", problems)
    labels = _window_list(config.get("windows"), f"{where}: windows", problems)
    # The view's windows are checked once here, not again in every aggregation that uses them.
    default_windows = {label: _window_seconds(label, interval, f"{where}: windows", problems) for label in labels}
    entries = config.get("aggregations")
    if not isinstance(entries, list) or not entries:
        problems.append(
            f"{where}: aggregations must be a non-empty list like "
            "[{'column': 'amount', 'functions': ['sum', 'mean']}] (aggregation_interval makes this an aggregation view)"
        )
        return None
    out: list[Aggregation] = []
    for number, entry in enumerate(entries, start=1):
        out += _entry(entry, f"{where}: aggregations[{number}]", default_windows, interval, problems)
    seen: set[str] = set()
    for aggregation in out:
        if aggregation.name in seen:
            problems.append(f"{where}: feature {aggregation.name} is declared twice in aggregations; give one a 'name'")
        seen.add(aggregation.name)
    if len(problems) > before or interval is None:
        return None
    return AggregationSpec(interval, tuple(out))


def _seconds(text: Any, where: str, problems: list[str]) -> int | None:
    try:
        seconds = int(parse_duration(str(text)).total_seconds())
    except ValueError as error:
        problems.append(f"{where}: {error}")
        return None
    if seconds <= 0:
        problems.append(f"{where}: {text!r} must be longer than 0s")
        return None
    return seconds


def _window_list(value: Any, where: str, problems: list[str]) -> list[str]:
    if value in (None, ""):
        return []
    labels = [value] if isinstance(value, str) else value
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
        problems.append(f"{where}: expected a list of durations like ['1h', '1d', '7d'], got {value!r}")
        return []
    return labels


def _entry(
    entry: Any, where: str, default_windows: dict[str, int | None], interval: int | None, problems: list[str]
) -> list[Aggregation]:
    if not isinstance(entry, Mapping):
        problems.append(f"{where}: expected a mapping with keys {', '.join(AGGREGATION_KEYS)}, got {entry!r}")
        return []
    unknown = [key for key in entry if key not in AGGREGATION_KEYS]
    for key in unknown:
        problems.append(f"{where}: unknown key '{key}'{did_you_mean(key, AGGREGATION_KEYS)}; accepted: {', '.join(AGGREGATION_KEYS)}")
    column = entry.get("column")
    if not isinstance(column, str) or not column:
        problems.append(f"{where}: 'column' is required: an input column of the model, or '*' to count events")
        return []
    functions = entry.get("functions")
    functions = [functions] if isinstance(functions, str) else functions
    if not isinstance(functions, list) or not functions:
        problems.append(f"{where}: 'functions' is required: a list of {', '.join(tiles.FUNCTIONS)}")
        return []
    for function in functions:
        if function in REFUSED_FUNCTIONS:
            problems.append(f"{where}: {REFUSED_FUNCTIONS[function]}; aggregation views support {', '.join(tiles.FUNCTIONS)}")
        elif function not in tiles.FUNCTIONS:
            problems.append(f"{where}: unknown function {function!r}{did_you_mean(str(function), tiles.FUNCTIONS)}; "
                            f"aggregation views support {', '.join(tiles.FUNCTIONS)}")
        elif column == tiles.STAR and function != "count":
            problems.append(f"{where}: column '*' only supports count (got {function}); name an input column")
    own = _window_list(entry.get("windows"), f"{where}: windows", problems)
    seconds = {label: _window_seconds(label, interval, where, problems) for label in own} if own else default_windows
    windows = list(seconds)
    if not windows:
        problems.append(f"{where}: no windows: set 'windows' on it or the view's windows config")
    if unknown or any(f not in tiles.FUNCTIONS or (column == tiles.STAR and f != "count") for f in functions):
        return []
    name = entry.get("name") or tiles.default_name(column)
    return [
        Aggregation(tiles.feature_name(name, function, label), function, column, window)
        for function in functions
        for label in windows
        if (window := seconds[label]) is not None
    ]


def _window_seconds(label: str, interval: int | None, where: str, problems: list[str]) -> int | None:
    seconds = _seconds(label, f"{where}: window", problems)
    if seconds is None or interval is None:
        return seconds
    if seconds % interval:
        # The wording and the nearest value of the dbt side (macros/aggregations/aggregation_view_config.sql).
        nearest = max(math.floor(seconds / interval + 0.5), 1) * interval
        problems.append(
            f"{where}: window {label!r} is not a positive multiple of aggregation_interval {_label(interval)!r}; "
            f"the nearest valid window is {_label(nearest)!r}"
        )
        return None
    return seconds


def _label(seconds: int) -> str:
    return format_duration(dt.timedelta(seconds=seconds))


def features(
    spec: AggregationSpec, schema: pa.Schema, docs: Mapping[str, Any], where: str, rebuild: str, problems: list[str]
) -> tuple[Feature, ...]:
    """The view's features, dtypes from the tile table's part columns (`tiles.feature_dtype`).

    Every part column a feature needs must be in the table; a missing one means the table was built
    from another config (`rebuild` says how to fix that). Such features are still listed (dtype "")
    so feature services naming them report nothing more; the problem keeps the registry from applying.
    """
    missing: dict[str, list[str]] = {}
    if tiles.TILE_START not in schema.names:
        problems.append(f"{where}: the Delta table has no {tiles.TILE_START} column, so it does not hold tiles "
                        f"(it was built before aggregation_interval was set); {rebuild}")
    out = []
    for aggregation in spec.aggregations:
        needed = tiles.parts_needed(aggregation.column, [aggregation.function])
        absent = [part for part in needed if part not in schema.names]
        if tiles.TILE_START in schema.names:
            for part in absent:
                missing.setdefault(part, []).append(aggregation.name)
        dtype = "" if absent else tiles.feature_dtype(aggregation.function, input_dtype(aggregation.column, schema))
        out.append(Feature(aggregation.name, dtype, str((docs.get(aggregation.name) or {}).get("description", ""))))
    for part, names in missing.items():
        problems.append(f"{where}: the Delta table lacks the tile column {part} (needed by {', '.join(names)}): "
                        f"its aggregations changed since the last build; {rebuild}")
    return tuple(out)


def input_dtype(column: str, schema: pa.Schema) -> str | None:
    """The registry dtype of an input column, read from its tile parts (None for '*' or no typed part).

    min, max and last carry the input's type; a sum part tells integer (int64) from the rest (float64).
    """
    if column == tiles.STAR:
        return None
    for part in ("min", "max", "last", "sum"):
        name = tiles.part_column(column, part)
        if name in schema.names:
            return arrow_type_name(schema.field(name).type)
    return None
