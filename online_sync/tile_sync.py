"""Sync of an aggregation feature view: its tiles, grouped per entity, into one item per entity.

Full: every entity with a tile in the longest window of the sync time gets its item rewritten.
Incremental: the change data feed since the last version synced names the entities whose tiles
changed (inserted, updated or deleted rows); only their items are rebuilt, from the whole table at
the snapshot's version, and an entity left without a tile in the window loses its item. Items are
rebuilt from the table, never patched, so a rerun after a crash writes the same items again.

The lease, the state and the fallback from the change feed to a full read are `delta_sync`'s, the
same as for other views. DuckDB does the grouping (final tile per interval, lists per entity).

A stream-fed view's items are also updated in place by ingest (`streams.ingest`), with events that
may not have reached its Delta table yet. Sync must not undo that, so for those views it merges
instead of overwriting: per interval it keeps the tile holding more events, the synced one on a tie
(`merge_synced`), and writes the item with a condition on the `_hs_version` it read, redoing the
merge when an ingest got there first. Entities left without a Delta tile keep their streamed item
(its TTL ends it).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
from botocore.exceptions import ClientError
from sqlglot import exp

from hindsight.offline_store import tiles
from hindsight.online_sync.batching import (
    _MAX_ROUNDS,
    MAX_WRITE_BATCH,
    BoundedExecutor,
    RetriesExhausted,
    backoff_delay,
    chunked,
    get_batch,
    write_batch,
)
from hindsight.online_sync.codec import KEY_ATTR, SYNC_WRITER, VERSION_ATTR, WRITER_ATTR, entity_key
from hindsight.online_sync.config import OnlineStoreConfig
from hindsight.online_sync.newest import ScratchSession
from hindsight.online_sync.tile_items import NEWEST, items_from_lists, longest_window_seconds, tile_columns
from hindsight.online_sync.tile_merge import EntityTiles, Tile, TileLayout, decode_item, encode_item
from hindsight.registry_sync.model import FeatureView

#: Entities per writer job: one slice of per-entity lists, encoded and written on a writer thread.
_SLICE = 100


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def lists_query(view: FeatureView, source: str, keys_table: str | None) -> exp.Select:
    """Per entity: its newest as-of time and, in time order, each interval's final tile as lists.

    >>> from hindsight.online_sync.tile_items import _example_view
    >>> from hindsight.registry_sync.model import Aggregation
    >>> v = _example_view((Aggregation("n_1h", "count", "*", 3600),))
    >>> lists_query(v, "src", None).sql("duckdb")
    'WITH "hs_final" AS (SELECT "user_id", "ts", "_tile_start", "_events" FROM "src" WHERE NOT "user_id" IS NULL AND NOT "ts" IS NULL AND NOT "_tile_start" IS NULL QUALIFY ROW_NUMBER() OVER (PARTITION BY "user_id", "_tile_start" ORDER BY "ts" DESC) = 1) SELECT "user_id", MAX("ts") AS "_hs_newest", ARRAY_AGG("_tile_start" ORDER BY "_tile_start") AS "_tile_start", ARRAY_AGG("_events" ORDER BY "_tile_start") AS "_events" FROM "hs_final" GROUP BY "user_id"'
    """  # noqa: E501 - a doctest's expected output is one line
    keys = [_col(k) for k in view.join_keys]
    columns = tile_columns(view)
    not_null = [_col(c).is_(exp.null()).not_() for c in (*view.join_keys, view.timestamp_field, tiles.TILE_START)]
    newest_first = exp.Window(
        this=exp.RowNumber(),
        partition_by=[*keys, _col(tiles.TILE_START)],
        order=exp.Order(expressions=[exp.Ordered(this=_col(view.timestamp_field), desc=True, nulls_first=False)]),
    )
    final = (
        exp.select(*[_col(c) for c in columns])
        .from_(exp.table_(source, quoted=True))
        .where(exp.and_(*not_null))
        .qualify(exp.EQ(this=newest_first, expression=exp.Literal.number(1)))
    )
    if keys_table is not None:
        final = final.join(exp.table_(keys_table, quoted=True), using=list(view.join_keys))

    def in_time_order(column: str) -> exp.Expression:
        ordered = exp.Order(this=_col(column), expressions=[exp.Ordered(this=_col(tiles.TILE_START))])
        return exp.ArrayAgg(this=ordered).as_(column, quoted=True)

    lists = [in_time_order(c) for c in columns[len(view.join_keys) + 1:]]
    return (
        exp.select(*keys, exp.Max(this=_col(view.timestamp_field)).as_(NEWEST, quoted=True), *lists)
        .from_(exp.table_("hs_final", quoted=True))
        .group_by(*keys)
        .with_(exp.to_identifier("hs_final", quoted=True), as_=final)
    )


def _time_filter(schema: pa.Schema, column: str, lower: dt.datetime) -> ds.Expression:
    """`column > lower` as a pyarrow dataset filter, typed like the column (prunes files by stats)."""
    kind = schema.field(column).type
    if pa.types.is_timestamp(kind) and kind.tz is None:
        lower = lower.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return ds.field(column) > pa.scalar(lower, type=kind)


def window_source(dataset: ds.Dataset, view: FeatureView, sync_time: dt.datetime) -> ds.Dataset:
    """The tile rows that may be in an item at `sync_time`: tile start within the longest window.

    A tile is kept while tile start + longest window > sync time; its as-of time is never earlier
    than its start, so filtering both columns lets the Parquet statistics skip old files.

    Args:
        dataset: the tile table (`DeltaTable.to_pyarrow_dataset()` at the snapshot's version).
    """
    lower = sync_time - dt.timedelta(seconds=longest_window_seconds(view))
    schema = dataset.schema
    condition = _time_filter(schema, tiles.TILE_START, lower) & _time_filter(schema, view.timestamp_field, lower)
    return dataset.filter(condition)


class TileLists(ScratchSession):
    """One aggregation view's final tiles grouped per entity."""

    def __init__(self, view: FeatureView, threads: int = 2) -> None:
        super().__init__(view, threads)
        self.changed_keys: list[str] | None = None
        # DuckDB 1.5 pushes a join's key filter into the pyarrow scan of the window; for a string
        # key it sends a string_view constant, which pyarrow cannot compare with the table's string
        # column. With one changed entity the incremental sync then failed and fell back to full.
        self._con.execute("SET disabled_optimizers = 'join_filter_pushdown'")

    def load(self, window: Any, changes: pa.RecordBatchReader | None = None) -> None:
        """Group the tiles of `window` per entity: all entities, or only those `changes` names.

        Args:
            window: the tile rows that may be in an item (`window_source`).
            changes: the change data feed since the last sync (any change type counts), or None
                for a full sync.
        """
        con = self._con
        for name in ("hs_changed", "hs_lists"):
            con.execute(exp.Drop(tables=[exp.table_(name, quoted=True)], kind="TABLE", exists=True).sql("duckdb"))
        keys_table = None
        self.changed_keys = None
        if changes is not None:
            con.register("hs_changes", changes)
            try:
                keys = [_col(k) for k in self.view.join_keys]
                changed = (
                    exp.select(*keys).distinct()
                    .from_(exp.table_("hs_changes", quoted=True))
                    .where(exp.and_(*[k.is_(exp.null()).not_() for k in keys]))
                )
                con.sql(changed.sql("duckdb")).create("hs_changed")
            finally:
                con.unregister("hs_changes")
            keys_table = "hs_changed"
            rows = con.sql(exp.select(*keys).from_(exp.table_(keys_table, quoted=True)).sql("duckdb")).fetchall()
            self.changed_keys = [entity_key(list(row)) for row in rows]
            self.rows_read = len(self.changed_keys)
        con.register("hs_window", window)
        try:
            con.sql(lists_query(self.view, "hs_window", keys_table).sql("duckdb")).create("hs_lists")
        finally:
            con.unregister("hs_window")
        (self.count,) = con.sql(
            exp.select(exp.Count(this=exp.Star())).from_(exp.table_("hs_lists", quoted=True)).sql("duckdb")
        ).fetchone() or (0,)
        if changes is None:
            self.rows_read = self.count

    def batches(self, batch_size: int = 2_000) -> Iterator[pa.RecordBatch]:
        return self._stream("hs_lists", batch_size)


def _write_slice(client: Any, table: str, view: FeatureView, lists: pa.RecordBatch, sync_seconds: int) -> list[str]:
    """Encode and write the items of up to 100 entities (on a writer thread); returns their keys."""
    items = list(items_from_lists(lists, view, sync_seconds))
    for chunk in chunked([item for _, _, item in items], MAX_WRITE_BATCH):
        write_batch(client, table, chunk)
    return [key for _, key, _ in items]


# ---------------------------------------------------------------------------------------------
# Stream-fed views: merge with what ingest wrote, conditionally
# ---------------------------------------------------------------------------------------------


def _tile_weight(layout: TileLayout, tile: Tile) -> tuple[int, int]:
    """(events in the tile, its newest `last_at`): `_events` when the view counts `*`, else the
    largest count of a column; `last_at` only breaks ties between views without counts."""
    events = tile.get(tiles.EVENT_COUNT)
    if events is None:
        counts = [tile.get(attr) or 0 for attr in (c.attr("n") for c in layout.columns) if attr]
        events = max(counts, default=0)
    newest = [tile.get(attr) or 0 for attr in (c.attr("last_at") for c in layout.columns) if attr]
    return int(events), int(max(newest, default=0))


def merge_synced(layout: TileLayout, synced: EntityTiles, online: EntityTiles, sync_seconds: int) -> EntityTiles:
    """One entity's tiles after a sync of a stream-fed view: per interval the tile with more events.

    A streamed tile holds every event ingested into its interval; the synced one the events the
    view's Delta table had when dbt last ran. The one with more events is the newer of the two
    (ties keep the synced tile: the offline definition). Tiles past the longest window of the sync
    time are dropped, as a plain sync does. The result carries the online item's version, which
    the write is conditional on.
    """
    merged = dict(synced.tiles)
    for bucket, tile in online.tiles.items():
        held = merged.get(bucket)
        if held is None or _tile_weight(layout, tile) > _tile_weight(layout, held):
            merged[bucket] = tile
    merged = {b: t for b, t in merged.items() if b * layout.interval_s + layout.longest_s > sync_seconds}
    newest = max((us for us in (synced.newest_us, online.newest_us) if us is not None), default=None)
    return EntityTiles(dict(sorted(merged.items())), newest, online.version)


def _version_condition(online: dict[str, Any] | None) -> dict[str, Any]:
    """PutItem arguments that make the write fail if the item changed since it was read."""
    if online is None:
        return {"ConditionExpression": "attribute_not_exists(#k)", "ExpressionAttributeNames": {"#k": KEY_ATTR}}
    if VERSION_ATTR not in online:
        return {"ConditionExpression": "attribute_exists(#k) AND attribute_not_exists(#v)",
                "ExpressionAttributeNames": {"#k": KEY_ATTR, "#v": VERSION_ATTR}}
    return {"ConditionExpression": "#v = :v", "ExpressionAttributeNames": {"#v": VERSION_ATTR},
            "ExpressionAttributeValues": {":v": online[VERSION_ATTR]}}


def _online_items(client: Any, table: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The sync-slot items of up to 100 entities, read consistently."""
    request = {table: {"Keys": [{KEY_ATTR: {"S": k}, WRITER_ATTR: {"S": SYNC_WRITER}} for k in keys],
                       "ConsistentRead": True}}
    return {item[KEY_ATTR]["S"]: item for item in get_batch(client, request).get(table, [])}


def _merge_slice(client: Any, table: str, view: FeatureView, layout: TileLayout, lists: pa.RecordBatch,
                 sync_seconds: int) -> list[str]:
    """`_write_slice` for a stream-fed view: merge each synced item with the online one, conditionally."""
    synced = {key: item for _, key, item in items_from_lists(lists, view, sync_seconds)}
    todo = dict(synced)
    for attempt in range(_MAX_ROUNDS):
        online = _online_items(client, table, list(todo)) if todo else {}
        conflicts: dict[str, dict[str, Any]] = {}
        for key, item in todo.items():
            current = online.get(key)
            merged = merge_synced(layout, decode_item(layout, item), decode_item(layout, current), sync_seconds)
            new_item = encode_item(view, layout, key, merged)
            if new_item is None:
                continue
            try:
                client.put_item(TableName=table, Item=new_item, **_version_condition(current))
            except ClientError as err:
                if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                conflicts[key] = item  # an ingest updated it since the read: merge again
        if not conflicts:
            return list(synced)
        todo = conflicts
        time.sleep(backoff_delay(attempt))
    raise RetriesExhausted(f"table {table}: {len(todo)} items kept changing under the sync ({_MAX_ROUNDS} attempts)")


def delete_items(client: Any, table: str, keys: list[str]) -> int:
    """Delete the sync-slot items of `keys` (entities left without a tile in any window)."""
    deleted = 0
    for chunk in chunked(keys, MAX_WRITE_BATCH):
        request = {table: [{"DeleteRequest": {"Key": {KEY_ATTR: {"S": k}, WRITER_ATTR: {"S": SYNC_WRITER}}}}
                           for k in chunk]}
        for attempt in range(_MAX_ROUNDS):
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                break
            time.sleep(backoff_delay(attempt))
        else:
            raise RetriesExhausted(f"table {table}: deletes still unprocessed after {_MAX_ROUNDS} attempts")
        deleted += len(chunk)
    return deleted


def write_tile_items(client: Any, config: OnlineStoreConfig, view: FeatureView, lists: TileLists,
                     sync_time: dt.datetime) -> tuple[int, int]:
    """Write the items of `lists`' entities; (items written, items deleted)."""
    table = config.table_name(view.name)
    sync_seconds = int(sync_time.timestamp())
    written: list[str] = []
    layout = TileLayout.for_view(view) if view.stream_source else None
    with BoundedExecutor(config.write_threads, on_done=written.extend, name=f"sync-{view.name}") as pool:
        for batch in lists.batches():
            for start in range(0, batch.num_rows, _SLICE):
                if layout is None:
                    pool.submit(_write_slice, client, table, view, batch.slice(start, _SLICE), sync_seconds)
                else:
                    pool.submit(_merge_slice, client, table, view, layout, batch.slice(start, _SLICE), sync_seconds)
    deleted = 0
    # A stream-fed entity without Delta tiles may still have streamed ones: its item stays.
    if lists.changed_keys is not None and layout is None:
        kept = set(written)
        deleted = delete_items(client, table, [k for k in lists.changed_keys if k not in kept])
    return len(written), deleted
