"""The online item of an aggregation feature view: one per entity, holding its final tiles.

Sync writes, per entity, the final tile (the row with the greatest as-of time) of every interval
whose start lies within the view's longest window of the sync time; serving combines them at the
request time (`online_sync.combine`). One item per entity in the sync slot of the view's table:

    _hs_key, _hs_writer   the entity, "sync" (aggregation views have no push slot)
    _hs_order       N     order_key(the newest as-of time of the entity's tiles)
    _hs_expires     N     newest tile start + the longest window, epoch seconds: from then on every
                          tile has left every window, and DynamoDB's TTL deletes the item
    _hs_tiles       B     "T", base bucket (int64) and interval seconds (uint32), then an array of
                          each tile's bucket (interval number since the epoch) minus the base, ascending
    _hs_tiles:<c>   B     the same offsets for only the tiles where input column c has a value,
                          written only when that is not every tile
    <tile column>   B     one array per tile part the features need (`_events`, `amount__sum`, ...,
                          named as in offline_store/tiles.py), parallel to its column's tiles

An array attribute is one type byte followed by the values: an `array` typecode (`B H I q i f d`)
and the little-endian values, or `J` and a JSON list (strings, decimals). Arrays decode with one
`array.frombytes` call, and serving projects only the attributes the requested features need.
`last_at` is not needed to read: tiles are in time order, so an interval's last value is the
newest one. Stream-fed views store it all the same (`<column>__last_at`, epoch microseconds), since
a late event must be able to tell whether it is newer than its tile's last value
(`online_sync.tile_merge` updates their items in place, event by event).
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hindsight.core.durations import format_duration
from hindsight.offline_store import tiles
from hindsight.online_sync.codec import (
    EXPIRES_ATTR,
    KEY_ATTR,
    MAX_ITEM_BYTES,
    ORDER_ATTR,
    SYNC_WRITER,
    WRITER_ATTR,
    ItemTooLarge,
    entity_key,
    order_key,
)
from hindsight.registry_sync.model import FeatureView

#: Every tile's bucket offset; see the module docstring.
TILES_ATTR = "_hs_tiles"
_HEADER = struct.Struct("<qI")
_BIG_ENDIAN = sys.byteorder == "big"
#: Parts serving combines; `last_at` only orders tiles offline.
STORED_PARTS = ("n", "sum", "m2", "min", "max", "last")
#: Stream-fed views also keep each tile's `last_at`: an event that arrives late inside an interval
#: replaces the tile's last value only if it is newer (online_sync.tile_merge).
STREAM_STORED_PARTS = (*STORED_PARTS, "last_at")


def stored_parts(view: FeatureView) -> tuple[str, ...]:
    """The tile parts a view's online item holds: STORED_PARTS, plus `last_at` if stream-fed."""
    return STREAM_STORED_PARTS if view.stream_source else STORED_PARTS
_NUMPY = {"B": "<u1", "H": "<u2", "I": "<u4", "q": "<i8", "i": "<i4", "f": "<f4", "d": "<f8"}


def column_tiles_attr(column: str) -> str:
    """The attribute listing the tiles where `column` has a value.

    >>> column_tiles_attr("amount")
    '_hs_tiles:amount'
    """
    return f"{TILES_ATTR}:{column}"


def columns_parts(view: FeatureView) -> dict[str, list[str]]:
    """Input column -> the tile parts (of STORED_PARTS) its aggregations need, in PART_ORDER.

    >>> from hindsight.registry_sync.model import Aggregation
    >>> v = _example_view((Aggregation("n_1h", "count", "*", 3600), Aggregation("a_1h", "mean", "a", 3600)))
    >>> columns_parts(v)
    {'*': ['n'], 'a': ['n', 'sum']}
    """
    wanted: dict[str, set[str]] = {}
    for aggregation in view.aggregations:
        wanted.setdefault(aggregation.column, set()).update(tiles.PARTS[aggregation.function])
    kept = stored_parts(view)
    return {c: [p for p in tiles.PART_ORDER if p in parts and p in kept] for c, parts in wanted.items()}


def longest_window_seconds(view: FeatureView) -> int:
    return max(a.window_seconds for a in view.aggregations)


def tile_columns(view: FeatureView) -> list[str]:
    """The tile table's columns sync reads: join keys, as-of time, tile start, the stored parts.

    >>> from hindsight.registry_sync.model import Aggregation
    >>> tile_columns(_example_view((Aggregation("a_max_1h", "max", "a", 3600),)))
    ['user_id', 'ts', '_tile_start', 'a__max']
    """
    columns = [*view.join_keys, view.timestamp_field, tiles.TILE_START]
    for column, parts in columns_parts(view).items():
        columns.extend(tiles.part_column(column, p) for p in parts)
    return list(dict.fromkeys(columns))


# ---------------------------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------------------------


def _unsigned_code(largest: int) -> str:
    for code, limit in (("B", 1 << 8), ("H", 1 << 16), ("I", 1 << 32)):
        if largest < limit:
            return code
    return "q"


def encode_values(values: Any, code: str) -> bytes:
    """An array attribute: the typecode byte, then the values (numpy, little-endian) or JSON.

    >>> decode_values(encode_values(np.array([3, 1]), "H")).tolist()
    [3, 1]
    >>> decode_values(encode_values(["FR", "DE"], "J"))
    ['FR', 'DE']
    """
    if code == "J":
        return b"J" + json.dumps(list(values), separators=(",", ":")).encode()
    return code.encode() + np.ascontiguousarray(values, dtype=_NUMPY[code]).tobytes()


def decode_values(blob: bytes) -> Any:
    """An array attribute's values: an `array` (numbers) or a list (JSON)."""
    view = memoryview(blob)
    code = chr(blob[0])
    if code == "J":
        return json.loads(bytes(view[1:]))
    values = array(code)
    values.frombytes(view[1:])
    if _BIG_ENDIAN:
        values.byteswap()
    return values


def encode_offsets(base: int, interval_seconds: int, offsets: np.ndarray) -> bytes:
    code = _unsigned_code(int(offsets[-1]) if len(offsets) else 0)
    return b"T" + _HEADER.pack(base, interval_seconds) + encode_values(offsets, code)


def decode_offsets(blob: bytes) -> tuple[int, int, Any]:
    """(base bucket, interval seconds, offsets) of a `_hs_tiles` attribute."""
    if blob[:1] != b"T":
        raise ValueError("not a tile list")
    base, interval = _HEADER.unpack_from(blob, 1)
    return base, interval, decode_values(blob[1 + _HEADER.size:])


# ---------------------------------------------------------------------------------------------
# Sync: per-entity lists of final tiles (Arrow) -> items
# ---------------------------------------------------------------------------------------------


def _micros(column: pa.Array) -> pa.Array:
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.timestamp("us", column.type.tz)).cast(pa.int64())
    if pa.types.is_date(column.type):
        return column.cast(pa.timestamp("us")).cast(pa.int64())
    return column


@dataclass(frozen=True)
class _Part:
    """One stored tile column: its attribute name, values as numpy or a list, and the typecode."""

    attr: str
    values: Any
    code: str


def _part(attr: str, part: str, flat: pa.Array) -> _Part:
    """A flat Arrow column of one part as the values to slice per entity, and its typecode."""
    kind = flat.type
    if part == "n":
        filled = pc.fill_null(flat.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        return _Part(attr, filled, _unsigned_code(int(filled.max()) if len(filled) else 0))
    if pa.types.is_timestamp(kind) or pa.types.is_date64(kind):
        return _Part(attr, pc.fill_null(_micros(flat), 0).to_numpy(zero_copy_only=False), "q")
    if pa.types.is_date32(kind):
        return _Part(attr, pc.fill_null(flat.cast(pa.int32()), 0).to_numpy(zero_copy_only=False), "i")
    if pa.types.is_boolean(kind):
        return _Part(attr, pc.fill_null(flat, False).cast(pa.uint8()).to_numpy(zero_copy_only=False), "B")
    if pa.types.is_integer(kind):
        return _Part(attr, pc.fill_null(flat.cast(pa.int64()), 0).to_numpy(zero_copy_only=False), "q")
    if pa.types.is_float32(kind) and part != "sum" and part != "m2":
        return _Part(attr, pc.fill_null(flat, 0.0).to_numpy(zero_copy_only=False), "f")
    if pa.types.is_floating(kind) or (pa.types.is_decimal(kind) and part in ("sum", "m2")):
        return _Part(attr, pc.fill_null(flat.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False), "d")
    if pa.types.is_decimal(kind):
        return _Part(attr, [None if v is None else str(v) for v in flat.to_pylist()], "J")
    return _Part(attr, flat.to_pylist(), "J")


def _presence(parts: dict[str, pa.Array]) -> np.ndarray | None:
    """Which tiles hold a value of a column: n > 0 and every value part non-null (None: all do)."""
    mask = None
    for part, flat in parts.items():
        present = pc.greater(pc.fill_null(flat, 0), 0) if part == "n" else pc.is_valid(flat)
        mask = present if mask is None else pc.and_(mask, present)
    if mask is None:
        return None
    array_mask = mask.to_numpy(zero_copy_only=False)
    return None if array_mask.all() else array_mask


def items_from_lists(batch: pa.RecordBatch, view: FeatureView,
                     sync_seconds: int) -> Iterator[tuple[tuple[Any, ...], str, dict[str, Any]]]:
    """(join-key values, entity key, item) for each entity of a batch of per-entity tile lists.

    `batch` has the join keys, `_hs_newest` (the newest as-of time), `_tile_start` (a list, in time
    order) and one list per tile column, all lists parallel (`tile_sync.lists_query`). Entities without a
    tile in the longest window of `sync_seconds` yield nothing.

    Raises:
        ItemTooLarge: an entity's item would pass DynamoDB's 400 KB limit.
    """
    interval = view.aggregation_interval_seconds
    assert interval is not None
    longest = longest_window_seconds(view)
    keys = list(zip(*(batch.column(k).to_pylist() for k in view.join_keys)))
    newest = _micros(batch.column(NEWEST)).to_pylist()
    starts_list = batch.column(tiles.TILE_START)
    offsets = starts_list.offsets.to_numpy()
    offsets = offsets - offsets[0]  # a sliced list array's offsets point into the unsliced values
    buckets = np.floor_divide(_micros(starts_list.flatten()).to_numpy(zero_copy_only=False), interval * 1_000_000)
    column_parts: list[tuple[str, np.ndarray | None, list[_Part]]] = []
    for column, parts in columns_parts(view).items():
        flats = {p: batch.column(tiles.part_column(column, p)).flatten() for p in parts}
        column_parts.append((column, _presence(flats),
                             [_part(tiles.part_column(column, p), p, flat) for p, flat in flats.items()]))
    for i, key_values in enumerate(keys):
        start, end = int(offsets[i]), int(offsets[i + 1])
        entity_buckets = buckets[start:end]
        if end == start or (int(entity_buckets[-1]) * interval + longest) <= sync_seconds:
            continue
        key = entity_key(key_values)
        base = int(entity_buckets[0])
        relative = entity_buckets - base
        item: dict[str, Any] = {
            KEY_ATTR: {"S": key},
            WRITER_ATTR: {"S": SYNC_WRITER},
            ORDER_ATTR: {"N": str(order_key(newest[i], None))},
            EXPIRES_ATTR: {"N": str(int(entity_buckets[-1]) * interval + longest)},
            TILES_ATTR: {"B": encode_offsets(base, interval, relative)},
        }
        for column, mask, encoded_parts in column_parts:
            chosen: Any = slice(start, end)
            if mask is not None:
                entity_mask = mask[start:end]
                if not entity_mask.all():
                    item[column_tiles_attr(column)] = {"B": encode_values(relative[entity_mask], _unsigned_code(
                        int(relative[entity_mask][-1]) if entity_mask.any() else 0))}
                    chosen = np.flatnonzero(entity_mask) + start
            for part in encoded_parts:
                if part.code == "J":
                    values = part.values[start:end] if isinstance(chosen, slice) else [part.values[j] for j in chosen]
                else:
                    values = part.values[chosen]
                item[part.attr] = {"B": encode_values(values, part.code)}
        check_size(item, view, key, end - start)
        yield key_values, key, item


#: The newest as-of time of an entity's tiles, a column of `tiles_query`'s result.
NEWEST = "_hs_newest"


def item_bytes(item: dict[str, dict[str, Any]]) -> int:
    """An item's size as DynamoDB counts it (names plus values), to within a few bytes per number."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        (payload,) = value.values()
        size += len(payload) if isinstance(payload, bytes) else len(str(payload).encode())
    return size


def check_size(item: dict[str, dict[str, Any]], view: FeatureView, key: str, tile_count: int) -> None:
    """Raise ItemTooLarge, naming the view, the entity and the fix, past DynamoDB's 400 KB."""
    size = item_bytes(item)
    if size > MAX_ITEM_BYTES:
        interval = format_duration_seconds(view.aggregation_interval_seconds or 0)
        raise ItemTooLarge(
            f"aggregation feature view {view.name!r}, entity {key}: its online item holds {tile_count:,} tiles "
            f"({size:,} bytes), over DynamoDB's 400 KB ({MAX_ITEM_BYTES:,}-byte) item limit; declare a longer "
            f"aggregation_interval (now {interval}) so fewer tiles cover the longest window "
            f"({format_duration_seconds(longest_window_seconds(view))}), or shorten that window"
        )


def format_duration_seconds(seconds: int) -> str:
    return format_duration(dt.timedelta(seconds=seconds))


def _example_view(aggregations: tuple[Any, ...]) -> FeatureView:
    """A small aggregation view for doctests."""
    from hindsight.registry_sync.model import Feature

    return FeatureView("v", "aggregation", ("user",), ("user_id",), "ts", None, None, True, "/x",
                       tuple(Feature(a.name, "float64") for a in aggregations),
                       aggregation_interval_seconds=3600, aggregations=aggregations)
