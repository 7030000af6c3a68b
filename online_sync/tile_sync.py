"""Sync of an aggregation feature view: its tiles, grouped per entity, into one item per entity.

Full: every entity with a tile in the longest window of the sync time gets its item rewritten.
Incremental: the change data feed since the last version synced names the entities whose tiles
changed (inserted, updated or deleted rows); only their items are rebuilt, from the whole table at
the snapshot's version, and an entity left without a tile in the window loses its item. Items are
rebuilt from the table, never patched, so a rerun after a crash writes the same items again.

The lease, the state and the fallback from the change feed to a full read are `delta_sync`'s, the
same as for other views. DuckDB does the grouping (final tile per interval, lists per entity).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
from sqlglot import exp

from hindsight.offline_store import tiles
from hindsight.online_sync.batching import (
    _MAX_ROUNDS,
    MAX_WRITE_BATCH,
    BoundedExecutor,
    RetriesExhausted,
    backoff_delay,
    chunked,
    write_batch,
)
from hindsight.online_sync.codec import KEY_ATTR, SYNC_WRITER, WRITER_ATTR, entity_key
from hindsight.online_sync.config import OnlineStoreConfig
from hindsight.online_sync.newest import ScratchSession
from hindsight.online_sync.tile_items import NEWEST, items_from_lists, longest_window_seconds, tile_columns
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
    with BoundedExecutor(config.write_threads, on_done=written.extend, name=f"sync-{view.name}") as pool:
        for batch in lists.batches():
            for start in range(0, batch.num_rows, _SLICE):
                pool.submit(_write_slice, client, table, view, batch.slice(start, _SLICE), sync_seconds)
    deleted = 0
    if lists.changed_keys is not None:
        kept = set(written)
        deleted = delete_items(client, table, [k for k in lists.changed_keys if k not in kept])
    return len(written), deleted
