"""Updating an aggregation view's online item in place: decode its tiles, merge events in, encode.

Sync writes an entity's item whole from the view's Delta tiles (`online_sync.tile_items`); a
stream-fed view's item is also updated event by event as events are ingested (`streams.ingest`).
This module is that update, on the same item layout and the same array encoding:

    decode_item   item -> EntityTiles (interval bucket -> Tile, newest event, _hs_version)
    event_tile    one event -> the Tile of just that event
    merge_tiles   two tiles of one interval -> one (the one function that combines tiles)
    add_events    EntityTiles + events -> EntityTiles, tiles past the longest window dropped
    encode_item   EntityTiles -> the item to write, _hs_version incremented

A Tile maps tile part attributes (`_events`, `amount__sum`, `amount__last_at`, ..., as in
offline_store/tiles.py) to values in their stored form: counts and sums as numbers, `m2` as a
float, min/max/last as the input column's value (timestamps as epoch microseconds, dates as days
since the epoch, bools as 0/1, decimals as Decimal), `last_at` as epoch microseconds. A column
without a value in the tile has n 0 and its other parts absent.

Merging follows the tile definitions: counts and sums add; m2 combines by Chan et al.'s parallel
formula (each part's M2 plus the squared difference of the means weighted by n_a n_b / n); min and
max take the smaller and larger; `last` keeps the value with the newer `last_at` (the later one
on a tie). Adding an event is merging its one-event tile, so the result does not depend on the
order events arrive in (up to float rounding).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from hindsight.offline_store import tiles
from hindsight.online_sync.codec import (
    EXPIRES_ATTR,
    KEY_ATTR,
    ORDER_ATTR,
    SYNC_WRITER,
    VERSION_ATTR,
    WRITER_ATTR,
    event_micros,
    order_key,
    to_micros,
)
from hindsight.online_sync.tile_items import (
    TILES_ATTR,
    _unsigned_code,
    check_size,
    column_tiles_attr,
    columns_parts,
    decode_offsets,
    decode_values,
    encode_offsets,
    encode_values,
    longest_window_seconds,
)
from hindsight.registry_sync.model import FeatureView

Tile = dict[str, Any]

_EPOCH_DATE = dt.date(1970, 1, 1)
#: Typecodes of min/max/last values by the input column's registry dtype.
_VALUE_CODES = {"timestamp": "q", "date": "i", "bool": "B", "int32": "q", "int64": "q", "float32": "f",
                "float64": "d", "decimal": "J", "string": "J"}


@dataclass(frozen=True)
class _Column:
    """One input column of the view: its tile part attributes and its value dtype."""

    name: str
    #: part name ("n", "sum", ...) -> attribute ("amount__n", ...), in PART_ORDER.
    parts: tuple[tuple[str, str], ...]
    #: The input column's registry dtype (from a min/max/last feature), None when unknown.
    dtype: str | None

    def attr(self, part: str) -> str | None:
        for name, attr in self.parts:
            if name == part:
                return attr
        return None


@dataclass(frozen=True)
class TileLayout:
    """What an item of one view holds: interval, longest window, and each column's parts."""

    view_name: str
    interval_s: int
    longest_s: int
    columns: tuple[_Column, ...]

    @classmethod
    def for_view(cls, view: FeatureView) -> TileLayout:
        """The layout of `view`'s items (build once per view and keep it: this is not cached)."""
        return _layout(view)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The input columns events must carry (not `*`)."""
        return tuple(c.name for c in self.columns if c.name != tiles.STAR)


def _layout(view: FeatureView) -> TileLayout:
    interval = view.aggregation_interval_seconds
    if interval is None:
        raise ValueError(f"feature view {view.name!r} is not an aggregation view")
    dtypes: dict[str, str] = {}
    for aggregation in view.aggregations:
        if aggregation.function in ("min", "max", "last"):
            dtypes[aggregation.column] = view.feature(aggregation.name).dtype
    columns = tuple(
        _Column(column, tuple((p, tiles.part_column(column, p)) for p in parts), dtypes.get(column))
        for column, parts in columns_parts(view).items()
    )
    return TileLayout(view.name, interval, longest_window_seconds(view), columns)


@dataclass
class EntityTiles:
    """One entity's tiles of one view, decoded from its item (or empty when it has none)."""

    #: Interval number since the epoch (start // interval) -> its tile.
    tiles: dict[int, Tile] = field(default_factory=dict)
    #: The newest event time in the tiles, epoch microseconds (None: no tile).
    newest_us: int | None = None
    #: The item's `_hs_version` as read: None when there was no item, 0 for an item without one
    #: (written by sync). The update is conditional on it.
    version: int | None = None


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


def stored_value(value: Any, dtype: str | None) -> Any:
    """A min/max/last input value in its stored form (see the module docstring).

    >>> stored_value(dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.timezone.utc), "timestamp")
    1000000
    >>> stored_value(dt.date(1970, 1, 3), "date"), stored_value(True, "bool"), stored_value(1.5, "decimal")
    (2, 1, Decimal('1.5'))
    """
    if value is None:
        return None
    if dtype == "timestamp" or (dtype is None and isinstance(value, dt.datetime)):
        return to_micros(value)
    if dtype == "date" or (dtype is None and isinstance(value, dt.date)):
        if isinstance(value, dt.datetime):
            value = value.date()
        return (value - _EPOCH_DATE).days
    if dtype == "bool" or isinstance(value, (bool, np.bool_)):
        return int(bool(value))
    if dtype == "decimal":
        return value if isinstance(value, Decimal) else Decimal(str(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


def _summable(value: Any) -> Any:
    """A value as its tile sum adds it: ints stay exact, everything else is a float."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(value)


# ---------------------------------------------------------------------------------------------
# Tiles
# ---------------------------------------------------------------------------------------------


def event_tile(layout: TileLayout, values: Mapping[str, Any], ts_us: int) -> Tile:
    """The tile of one event: `values` maps input columns to the event's values (None = null)."""
    tile: Tile = {}
    for column in layout.columns:
        if column.name == tiles.STAR:
            tile[tiles.EVENT_COUNT] = 1
            continue
        value = values.get(column.name)
        if value is None:
            continue
        for part, attr in column.parts:
            if part == "n":
                tile[attr] = 1
            elif part == "sum":
                tile[attr] = _summable(value)
            elif part == "m2":
                tile[attr] = 0.0
            elif part == "last_at":
                tile[attr] = ts_us
            else:  # min, max, last
                tile[attr] = stored_value(value, column.dtype)
    return tile


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def merge_tiles(layout: TileLayout, a: Tile, b: Tile) -> Tile:
    """One interval's tile from two tiles of it (events of `b` arrived after those of `a`).

    >>> from hindsight.online_sync.tile_items import _example_view
    >>> from hindsight.registry_sync.model import Aggregation
    >>> lay = TileLayout.for_view(_example_view((Aggregation("a_sd_1h", "stddev", "a", 3600),)))
    >>> t = merge_tiles(lay, event_tile(lay, {"a": 1.0}, 0), event_tile(lay, {"a": 3.0}, 1))
    >>> (t["a__n"], t["a__sum"], t["a__m2"])
    (2, 4.0, 2.0)
    """
    out: Tile = {}
    for column in layout.columns:
        n_attr = column.attr("n")
        n_a: int = a.get(n_attr, 0) if n_attr else 0
        n_b: int = b.get(n_attr, 0) if n_attr else 0
        value: Any
        for part, attr in column.parts:
            va, vb = a.get(attr), b.get(attr)
            if part == "n":
                value = n_a + n_b
            elif part == "sum":
                value = _add(va, vb)
            elif part == "m2":
                value = _chan_m2(column, a, b, n_a, n_b)
            elif part == "min":
                value = vb if va is None else (va if vb is None else min(va, vb))
            elif part == "max":
                value = vb if va is None else (va if vb is None else max(va, vb))
            elif part in ("last", "last_at"):
                continue  # below: the pair moves together
            if value is not None:
                out[attr] = value
        last_attr, at_attr = column.attr("last"), column.attr("last_at")
        if last_attr is not None:
            chosen = b if _newer_last(b, a, last_attr, at_attr) else a
            if chosen.get(last_attr) is not None:
                out[last_attr] = chosen[last_attr]
                if at_attr is not None and chosen.get(at_attr) is not None:
                    out[at_attr] = chosen[at_attr]
    return out


def _newer_last(b: Tile, a: Tile, last_attr: str, at_attr: str | None) -> bool:
    """Whether b's last value replaces a's: it has one and it is at least as new (a tile written
    without `last_at`, by a sync before the view was stream-fed, counts as older)."""
    if b.get(last_attr) is None:
        return False
    if a.get(last_attr) is None or at_attr is None:
        return True
    at_a, at_b = a.get(at_attr), b.get(at_attr)
    return at_a is None or (at_b is not None and at_b >= at_a)


def _chan_m2(column: _Column, a: Tile, b: Tile, n_a: int, n_b: int) -> float | None:
    # stddev's parts always include n and sum (offline_store.tiles.PARTS)
    sum_attr, m2_attr = str(column.attr("sum")), str(column.attr("m2"))
    m2_a, m2_b = a.get(m2_attr), b.get(m2_attr)
    if not n_a:
        return m2_b
    if not n_b:
        return m2_a
    delta = float(b[sum_attr]) / n_b - float(a[sum_attr]) / n_a
    return (m2_a or 0.0) + (m2_b or 0.0) + delta * delta * n_a * n_b / (n_a + n_b)


def _present(column: _Column, tile: Tile) -> bool:
    for part, attr in column.parts:
        value = tile.get(attr)
        if part == "n":
            if not value:
                return False
        elif value is None:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Items
# ---------------------------------------------------------------------------------------------


def decode_item(layout: TileLayout, item: dict[str, Any] | None) -> EntityTiles:
    """An item's tiles (an empty EntityTiles for None or an item of another interval)."""
    if item is None:
        return EntityTiles()
    version = int(item[VERSION_ATTR]["N"]) if VERSION_ATTR in item else 0
    base, interval, offsets = decode_offsets(item[TILES_ATTR]["B"])
    if interval != layout.interval_s:
        # Written before the view's interval changed: its tiles cannot be merged; start afresh.
        return EntityTiles(version=version)
    buckets = [base + int(o) for o in offsets]
    decoded: dict[int, Tile] = {b: {} for b in buckets}
    for column in layout.columns:
        listed = item.get(column_tiles_attr(column.name))
        mine = buckets if listed is None else [base + int(o) for o in decode_values(listed["B"])]
        for part, attr in column.parts:
            if attr not in item:
                continue
            values = decode_values(item[attr]["B"])
            if part in ("min", "max", "last") and column.dtype == "decimal":
                values = [None if v is None else Decimal(v) for v in values]
            for bucket, value in zip(mine, values):
                decoded[bucket][attr] = value
    newest = event_micros(int(item[ORDER_ATTR]["N"])) if ORDER_ATTR in item else None
    return EntityTiles(decoded, newest, version)


def add_events(layout: TileLayout, entity: EntityTiles, events: Iterable[tuple[int, Mapping[str, Any]]]) -> EntityTiles:
    """The entity's tiles with `events` ((event time in epoch microseconds, input values)) merged in.

    Tiles that left the longest window as of the newest event are dropped: no request at or after
    it can need them (the same rule sync applies at its sync time).
    """
    interval_us = layout.interval_s * 1_000_000
    merged = dict(entity.tiles)
    newest = entity.newest_us
    for ts_us, values in events:
        bucket = ts_us // interval_us
        single = event_tile(layout, values, ts_us)
        held = merged.get(bucket)
        merged[bucket] = single if held is None else merge_tiles(layout, held, single)
        newest = ts_us if newest is None else max(newest, ts_us)
    if newest is not None:
        longest_us = layout.longest_s * 1_000_000
        merged = {b: t for b, t in merged.items() if b * interval_us + longest_us > newest}
    return EntityTiles(merged, newest, entity.version)


def _code(part: str, column: _Column, values: list[Any]) -> str:
    if part == "n":
        return _unsigned_code(max(values, default=0))
    if part in ("m2",):
        return "d"
    if part == "last_at":
        return "q"
    if part == "sum":
        return "q" if all(isinstance(v, int) for v in values) else "d"
    if column.dtype is not None:
        return _VALUE_CODES.get(column.dtype, "J")
    if all(isinstance(v, int) for v in values):
        return "q"
    if all(isinstance(v, (int, float)) for v in values):
        return "d"
    return "J"


def encode_item(view: FeatureView, layout: TileLayout, key: str, entity: EntityTiles) -> dict[str, Any] | None:
    """The item to write for `entity` (None when no tile is left), `_hs_version` one up.

    Raises:
        ItemTooLarge: the item would pass DynamoDB's 400 KB limit.
    """
    if not entity.tiles or entity.newest_us is None:
        return None
    buckets = sorted(entity.tiles)
    base = buckets[0]
    relative = np.array([b - base for b in buckets], dtype=np.int64)
    item: dict[str, Any] = {
        KEY_ATTR: {"S": key},
        WRITER_ATTR: {"S": SYNC_WRITER},
        ORDER_ATTR: {"N": str(order_key(entity.newest_us, None))},
        EXPIRES_ATTR: {"N": str(buckets[-1] * layout.interval_s + layout.longest_s)},
        TILES_ATTR: {"B": encode_offsets(base, layout.interval_s, relative)},
        VERSION_ATTR: {"N": str((entity.version or 0) + 1)},
    }
    for column in layout.columns:
        present = [i for i, b in enumerate(buckets) if _present(column, entity.tiles[b])]
        if len(present) != len(buckets):
            offsets = relative[present]
            item[column_tiles_attr(column.name)] = {
                "B": encode_values(offsets, _unsigned_code(int(offsets[-1]) if len(offsets) else 0))}
        for part, attr in column.parts:
            values = [entity.tiles[buckets[i]][attr] for i in present]
            code = _code(part, column, values)
            if code == "J":
                values = [str(v) if isinstance(v, Decimal) else v for v in values]
            item[attr] = {"B": encode_values(values, code)}
    check_size(item, view, key, len(buckets))
    return item
