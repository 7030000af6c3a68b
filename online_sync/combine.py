"""Combining an aggregation view's online item into feature values at the request time.

The value at time t of an aggregation over window w with interval i aggregates the entity's events
with event time in [floor(t, i) + i - w, t]: the tiles of buckets floor(t/i) - w/i + 1 .. floor(t/i)
(docs/aggregation-views.md). The item holds each interval's final tile, in time order
(`online_sync.tile_items`), so a window is one contiguous slice of each column's tiles, found with
two bisections, and counts, sums, minima and maxima are builtin calls over array slices.

Exact whenever t is at or after the item's newest event (the request time is the serving clock, and
dbt runs defer rows from the future); a request time inside an interval whose tile holds later
events counts that interval's events as synced.

`CombinePlan` is built once per (view, features) and cached by the store: it knows the attributes
to project and, per feature, the function, column parts and window in intervals.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from decimal import Decimal
from typing import Any

from hindsight.offline_store import tiles
from hindsight.online_sync.codec import EXPIRES_ATTR, ORDER_ATTR, event_micros, micros_to_datetime
from hindsight.online_sync.tile_items import TILES_ATTR, column_tiles_attr, decode_offsets, decode_values
from hindsight.registry_sync.model import FeatureView

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_fsum = math.fsum
_sqrt = math.sqrt
_sub, _mul, _truediv = operator.sub, operator.mul, operator.truediv


def _convert(dtype: str) -> Callable[[Any], Any] | None:
    """How a stored min/max/last value becomes a value of the feature's dtype (None: as it is)."""
    if dtype == "timestamp":
        return micros_to_datetime
    if dtype == "date":
        return lambda days: dt.date.fromordinal(_EPOCH_ORDINAL + days)
    if dtype == "bool":
        return bool
    if dtype == "decimal":
        return Decimal
    return None


@dataclass(frozen=True)
class _Op:
    """One feature to compute: function over column parts in the last `k` buckets."""

    feature: str
    function: str
    #: Attribute of the column's tile offsets ("_hs_tiles" for every tile, or "_hs_tiles:<c>").
    tiles_attr: str
    #: Attributes of the parts it reads, in the order the function takes them.
    parts: tuple[str, ...]
    k: int
    convert: Callable[[Any], Any] | None
    float_sum: bool


_FUNCTION_PARTS = {
    "count": ("n",), "sum": ("n", "sum"), "mean": ("n", "sum"), "stddev": ("n", "sum", "m2"),
    "min": ("min",), "max": ("max",), "last": ("last",),
}


@dataclass(frozen=True)
class CombinePlan:
    """What to read and compute for some features of one aggregation view."""

    view: FeatureView
    features: tuple[str, ...]
    #: Item attributes to project (besides the key attributes the store adds).
    attributes: tuple[str, ...]
    ops: tuple[_Op, ...]
    interval_us: int

    @classmethod
    def build(cls, view: FeatureView, features: tuple[str, ...]) -> CombinePlan:
        """The plan for `features` of `view`.

        Raises:
            KeyError: a feature the view does not have.
        """
        interval = view.aggregation_interval_seconds
        assert interval is not None, f"{view.name} is not an aggregation view"
        by_name = {a.name: a for a in view.aggregations}
        ops = []
        attributes: dict[str, None] = {EXPIRES_ATTR: None, TILES_ATTR: None}
        for name in dict.fromkeys(features):
            aggregation = by_name.get(name)
            if aggregation is None:
                raise KeyError(f"feature view {view.name!r} has no feature {name!r}")
            column = aggregation.column
            parts = tuple(tiles.part_column(column, p) for p in _FUNCTION_PARTS[aggregation.function])
            tiles_attr = TILES_ATTR if column == tiles.STAR else column_tiles_attr(column)
            attributes.update(dict.fromkeys((tiles_attr, *parts)))
            float_sum = view.feature(name).dtype != "int64" or aggregation.function in ("mean", "stddev")
            convert = _convert(view.feature(name).dtype) if aggregation.function in ("min", "max", "last") else None
            ops.append(_Op(name, aggregation.function, tiles_attr, parts, aggregation.window_seconds // interval,
                           convert, float_sum))
        return cls(view, tuple(features), tuple(attributes), tuple(ops), interval * 1_000_000)

    def empty_values(self) -> dict[str, Any]:
        """The values without events: count 0, every other function None."""
        return {op.feature: 0 if op.function == "count" else None for op in self.ops}

    def combine(self, item: dict[str, Any], now_us: int) -> tuple[dict[str, Any], dt.datetime] | None:
        """(feature values at `now_us`, newest event time) from an item, or None when no tile of it
        lies in the longest window any more (or it was written for another interval)."""
        if int(item[EXPIRES_ATTR]["N"]) * 1_000_000 <= now_us:
            return None
        base, interval, every = decode_offsets(item[TILES_ATTR]["B"])
        if interval * 1_000_000 != self.interval_us:
            return None  # synced before the view's interval changed: the next sync rewrites it
        now_bucket = now_us // self.interval_us - base
        decoded: dict[str, Any] = {TILES_ATTR: every}
        values: dict[str, Any] = {}
        for op in self.ops:
            offsets = decoded.get(op.tiles_attr)
            if offsets is None:
                attr = item.get(op.tiles_attr)
                offsets = decoded[op.tiles_attr] = every if attr is None else decode_values(attr["B"])
            lo = bisect_left(offsets, now_bucket - op.k + 1)
            hi = bisect_right(offsets, now_bucket, lo)
            if hi <= lo:
                values[op.feature] = 0 if op.function == "count" else None
                continue
            columns = []
            for part in op.parts:
                column = decoded.get(part)
                if column is None:
                    column = decoded[part] = decode_values(item[part]["B"])
                columns.append(column)
            values[op.feature] = _compute(op, columns, lo, hi)
        return values, micros_to_datetime(event_micros(int(item[ORDER_ATTR]["N"])))


def _compute(op: _Op, columns: list[Any], lo: int, hi: int) -> Any:
    function = op.function
    if function == "count":
        return sum(columns[0][lo:hi])
    if function == "last":
        value = columns[0][hi - 1]
    elif function == "min":
        value = min(columns[0][lo:hi])
    elif function == "max":
        value = max(columns[0][lo:hi])
    else:
        count = sum(columns[0][lo:hi])
        sums = columns[1][lo:hi]
        total = _fsum(sums) if op.float_sum else sum(sums)
        if function == "sum":
            return total
        if function == "mean":
            return total / count
        if count < 2:
            return None
        # Chan et al.'s parallel combination: the tiles' M2 plus each tile mean's squared distance
        # from the overall mean, weighted by its count (stable: no difference of large sums).
        # n (s/n - mean)^2 written as (s - n mean)^2 / n, in C-level maps (a generator is 3x slower).
        counts = columns[0][lo:hi]
        deviations = list(map(_sub, sums, map(_mul, counts, repeat(total / count))))
        spread = _fsum(map(_truediv, map(_mul, deviations, deviations), counts))
        m2 = _fsum(columns[2][lo:hi]) + spread
        return _sqrt(max(m2, 0.0) / (count - 1))
    return value if op.convert is None else op.convert(value)
