"""`sync`: copy each online feature view's newest row per entity from Delta into its online item.

Per view: take the view's lease, read the state (last Delta version synced), read either the change
data feed since then or the whole table, keep the newest row per entity, drop rows the online sync
item already has something newer for (incremental only), write the rest in parallel under the
view's write rule (`write_rule`: BatchWriteItem, or newest-wins conditional writes for views that
take pushes), then advance the state. A sync killed half-way leaves the state where it was:
the rerun re-reads the same changes and rewrites the same items (puts are idempotent), so nothing is
lost and, items being keyed by entity, nothing is duplicated.

A view with data quality expectations publishes a Delta version only if `hindsight validate` passed
it (`hindsight.quality.gate`); otherwise that view is refused, the others still sync, and `sync`
raises `PublishRefused` at the end. `force=True` publishes anyway.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pyarrow as pa
from botocore.exceptions import BotoCoreError
from tqdm import tqdm

from hindsight.offline_store.freshness import newest_event
from hindsight.offline_store.tables import same_rows_versions
from hindsight.online_sync.batching import MAX_GET_BATCH, BoundedExecutor
from hindsight.online_sync.codec import (
    EXPIRES_ATTR,
    KEY_ATTR,
    ORDER_ATTR,
    SYNC_WRITER,
    WRITER_ATTR,
    check_item_size,
    encoder,
    entity_key,
    order_key,
    to_micros,
)
from hindsight.online_sync.config import OnlineStoreConfig, OnlineStoreUnavailable, shared_client
from hindsight.online_sync.newest import DeltaSnapshot, NewestRows, change_source, full_source, open_delta
from hindsight.online_sync.spark_sync import SparkSync
from hindsight.online_sync.state import Lease, LeaseLost, SyncInProgress, SyncState, read_state, record_error
from hindsight.online_sync.tables import online_views, prepare_table
from hindsight.online_sync.tile_sync import TileLists, window_source, write_tile_items
from hindsight.online_sync.write_rule import online_orders, write_synced_items
from hindsight.quality.gate import PublishRefused, Refusal, check_publish
from hindsight.quality.records import ValidationLog
from hindsight.registry_sync.model import FeatureView, Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewSyncReport:
    """What one view's sync did."""

    view: str
    #: "full", "incremental", "unchanged" or "refused" (validation gate: nothing written).
    mode: str
    #: Delta rows read (changed rows for incremental).
    rows_read: int
    #: Items written to DynamoDB.
    rows_written: int
    #: Rows not written because the online store already held a newer row for the entity.
    rows_skipped: int
    #: Delta versions covered: (from, to]; from is None for a full sync.
    from_version: int | None
    to_version: int
    seconds: float
    #: Why the gate refused the version (mode "refused").
    refusal: Refusal | None = None
    #: Aggregation views: items deleted because the entity's tiles left the table (incremental).
    items_deleted: int = 0
    #: Push items of an older version folded into their entities' items (`online_sync.fold`; once).
    push_items_folded: int = 0
    #: The view takes pushes: its skipped rows lost to newer pushed rows (or a newer sync).
    pushes: bool = False
    #: Where its rows were reduced and written: "duckdb" (this process) or "spark" (executors).
    engine: str = "duckdb"
    #: Why a view synced in this process although `engine="spark"` was asked for (else None).
    not_on_spark: str | None = None


@dataclass(frozen=True)
class SyncReport:
    """What a `sync` call did, per view."""

    views: tuple[ViewSyncReport, ...]

    @property
    def refusals(self) -> list[Refusal]:
        return [v.refusal for v in self.views if v.refusal is not None]

    @property
    def rows_written(self) -> int:
        return sum(v.rows_written for v in self.views)

    def __str__(self) -> str:
        lines = [f"{'view':<32} {'mode':<12} {'versions':>12} {'read':>10} {'written':>10} {'skipped':>8} {'s':>7}"]
        for v in self.views:
            versions = f"{'' if v.from_version is None else v.from_version}..{v.to_version}"
            lines.append(
                f"{v.view:<32} {v.mode:<12} {versions:>12} {v.rows_read:>10,} {v.rows_written:>10,} "
                f"{v.rows_skipped:>8,} {v.seconds:>7.2f}"
            )
        lines += [f"{v.view}: {v.items_deleted:,} item{'' if v.items_deleted == 1 else 's'} deleted (entities left without tiles)"
                  for v in self.views if v.items_deleted]
        lines += [f"{v.view}: {v.push_items_folded:,} push item{'' if v.push_items_folded == 1 else 's'} of an older "
                  "version folded into the entities' items" for v in self.views if v.push_items_folded]
        lines += [f"{v.view}: {v.rows_skipped:,} row{'' if v.rows_skipped == 1 else 's'} skipped: newer online (pushed)"
                  for v in self.views if v.rows_skipped and v.pushes]
        lines += [f"{v.view}: synced in this process, not on Spark: {v.not_on_spark}" for v in self.views if v.not_on_spark]
        return "\n".join(lines)


def _micros(column: pa.Array) -> list[int | None]:
    """A timestamp or date column as epoch microseconds (naive timestamps are taken as UTC)."""
    if pa.types.is_date(column.type):
        column = column.cast(pa.timestamp("us"))
    elif column.type != pa.timestamp("us", column.type.tz):
        column = column.cast(pa.timestamp("us", column.type.tz))
    return column.cast(pa.int64()).to_pylist()


def _feature_columns(batch: pa.RecordBatch, view: FeatureView) -> list[tuple[str, Any, list[Any]]]:
    columns = []
    for feature in view.features:
        column = batch.column(feature.name)
        is_time = pa.types.is_timestamp(column.type) or (feature.dtype == "timestamp" and pa.types.is_date(column.type))
        values = _micros(column) if is_time else column.to_pylist()
        columns.append((feature.name, encoder(feature.dtype), values))
    return columns


def items_from_batch(batch: pa.RecordBatch, view: FeatureView, writer: str = SYNC_WRITER) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(entity key, order, DynamoDB item) for each row of a batch of newest rows."""
    keys = list(zip(*(batch.column(k).to_pylist() for k in view.join_keys)))
    # Never NULL: candidates_query drops rows without an event time.
    events = cast(list[int], _micros(batch.column(view.timestamp_field)))
    created = _micros(batch.column(view.created_field)) if view.created_field else [None] * len(events)
    features = _feature_columns(batch, view)
    ttl = view.ttl_seconds
    for i, key_values in enumerate(keys):
        key = entity_key(key_values)
        order = order_key(events[i], created[i])
        item: dict[str, Any] = {KEY_ATTR: {"S": key}, WRITER_ATTR: {"S": writer}, ORDER_ATTR: {"N": str(order)}}
        if ttl is not None:
            item[EXPIRES_ATTR] = {"N": str(events[i] // 1_000_000 + ttl)}
        for name, encode, values in features:
            value = values[i]
            if value is not None:
                item[name] = encode(value)
        check_item_size(item, f"feature view {view.name!r}, entity {key}")
        yield key, order, item


def _online_orders(client: Any, table: str, keys: list[str]) -> dict[str, int]:
    """The order of each key's current item (keys without one are absent); see `write_rule`."""
    return online_orders(client, table, keys)


def _write_slice(client: Any, table: str, view: FeatureView, rows: pa.RecordBatch,
                 skip_older_than_online: bool) -> tuple[int, int]:
    """Encode up to 100 rows and write them under the view's write rule (`write_rule`).

    Runs on a writer thread: encoding there, not in a producer thread, avoids the GIL convoy that
    made a CPU-busy producer stall the I/O threads (measured: ~30% fewer items/s).
    """
    encoded = list(items_from_batch(rows, view))
    written, skipped = write_synced_items(client, table, view, encoded, check_online=skip_older_than_online)
    return written, skipped


def _progress_bar(view: FeatureView, total: int, progress: bool) -> tqdm:
    return tqdm(total=total, unit="row", desc=view.name, disable=not (progress and sys.stderr.isatty()), leave=False)


def write_newest(
    client: Any,
    config: OnlineStoreConfig,
    view: FeatureView,
    newest: NewestRows,
    *,
    skip_older_than_online: bool,
    progress: bool = True,
) -> tuple[int, int]:
    """Write the newest rows into the view's items; returns (written, skipped as not newer).

    Rows go to the writer threads in slices of 100 (one BatchGetItem for the staleness check, then
    four BatchWriteItem calls, or one TransactWriteItems for a view that takes pushes); at most 4
    slices per thread wait in the queue, so memory stays bounded.
    """
    table = config.table_name(view.name)
    totals = [0, 0]

    def done(result: tuple[int, int]) -> None:
        totals[0] += result[0]
        totals[1] += result[1]
        bar.update(result[0] + result[1])

    with _progress_bar(view, newest.count, progress) as bar:
        with BoundedExecutor(config.write_threads, on_done=done, name=f"sync-{view.name}") as pool:
            for batch in newest.batches():
                for start in range(0, batch.num_rows, MAX_GET_BATCH):
                    pool.submit(_write_slice, client, table, view, batch.slice(start, MAX_GET_BATCH),
                                skip_older_than_online)
    return totals[0], totals[1]


def _plan(view: FeatureView, state: SyncState | None, snapshot: DeltaSnapshot, full: bool) -> tuple[str, int | None]:
    """("full" | "incremental" | "unchanged", first Delta version to read)."""
    if full:
        return "full", None
    if state is None:
        log.info("feature view %s: never synced into this table; full sync", view.name)
        return "full", None
    if state.delta_table_id != snapshot.table_id:
        log.warning("feature view %s: the Delta table was recreated since the last sync; full resync", view.name)
        return "full", None
    if state.delta_version > snapshot.version:
        log.warning(
            "feature view %s: state says version %s but the table is at %s; full resync",
            view.name, state.delta_version, snapshot.version,
        )
        return "full", None
    if state.delta_version == snapshot.version:
        return "unchanged", state.delta_version + 1
    return "incremental", state.delta_version + 1


def _load(newest: NewestRows, view: FeatureView, snapshot: DeltaSnapshot, mode: str, first: int | None) -> str:
    """Fill `newest` for the plan; returns the mode actually used (CDF may fall back to full)."""
    if mode == "incremental" and first is not None:
        try:
            newest.load(change_source(snapshot, view, first), from_change_feed=True)
            return mode
        except Exception as err:  # noqa: BLE001 - delta-rs and DuckDB raise several types for this
            log.warning(
                "feature view %s: the change data feed of versions %s..%s is unavailable (%s); "
                "falling back to a full resync",
                view.name, first, snapshot.version, str(err).splitlines()[0] if str(err) else type(err).__name__,
            )
    newest.load(full_source(snapshot), from_change_feed=False)
    return "full"


def _sync_tiles(client: Any, config: OnlineStoreConfig, view: FeatureView, snapshot: DeltaSnapshot, mode: str,
                first: int | None, now: dt.datetime | None) -> tuple[str, int, int, int]:
    """An aggregation view's sync (`tile_sync`): (mode used, rows read, items written, items deleted).

    Incremental reads the change data feed only for the entities it names; without the feed it
    falls back to a full sync, as other views do.
    """
    sync_time = now or dt.datetime.now(dt.timezone.utc)
    window = window_source(snapshot.table.to_pyarrow_dataset(), view, sync_time)
    with TileLists(view) as lists:
        loaded = False
        if mode == "incremental" and first is not None:
            try:
                lists.load(window, change_source(snapshot, view, first))
                loaded = True
            except Exception as err:  # noqa: BLE001 - delta-rs and DuckDB raise several types for this
                log.warning(
                    "feature view %s: the change data feed of versions %s..%s is unavailable (%s); "
                    "falling back to a full resync",
                    view.name, first, snapshot.version, str(err).splitlines()[0] if str(err) else type(err).__name__,
                )
        if not loaded:
            mode = "full"
            lists.load(window_source(snapshot.table.to_pyarrow_dataset(), view, sync_time))
        written, deleted = write_tile_items(client, config, view, lists, sync_time)
        return mode, lists.rows_read, written, deleted


def sync_view(client: Any, config: OnlineStoreConfig, view: FeatureView, *, full: bool = False,
              progress: bool = True, validations: ValidationLog | None = None, force: bool = False,
              now: dt.datetime | None = None, spark: SparkSync | None = None) -> ViewSyncReport:
    """Sync one online view; see `sync`. `validations` is required for a view with expectations.

    With `spark`, a view's rows are read, reduced and written on Spark executors (`spark_sync`);
    the lease, state, gate and report stay here. Aggregation views stay in this process.
    """
    started = time.perf_counter()
    _, folded = prepare_table(client, config, view)
    table = config.table_name(view.name)
    with Lease(client, table, config.lease_seconds) as lease:
        # The snapshot is taken under the lease: a sync that waited for another must not write an
        # older version of the table than the one the other sync already wrote.
        snapshot = open_delta(view)
        state = read_state(client, table)
        mode, first = _plan(view, state, snapshot, full)
        previous = None if state is None else state.delta_version
        if mode == "unchanged":
            # Recorded all the same: `hindsight status` shows when the sync last ran successfully.
            lease.commit_state(snapshot.table_id, snapshot.version, state.newest_event_us if state else None)
            return ViewSyncReport(view.name, mode, 0, 0, 0, previous, snapshot.version, time.perf_counter() - started,
                                  push_items_folded=folded, pushes=view.push)
        engine, not_on_spark = "duckdb", None
        refusal = (check_publish(view, snapshot.table_id, snapshot.version, validations,
                                   same_rows_versions(snapshot.table, snapshot.version)) if validations else None)
        if refusal is not None and not force:
            return ViewSyncReport(view.name, "refused", 0, 0, 0, previous, snapshot.version,
                                  time.perf_counter() - started, refusal, push_items_folded=folded, pushes=view.push)
        if refusal is not None:
            log.warning("feature view %s: publishing Delta version %s despite the validation gate (--force): %s",
                        view.name, snapshot.version, refusal.reason.replace("_", " "))
        if view.is_aggregation:
            mode, rows_read, written, deleted = _sync_tiles(client, config, view, snapshot, mode, first, now)
            skipped = 0
            if spark is not None:
                not_on_spark = "aggregation view (its tiles are combined per entity in DuckDB)"
            # The tile rows' as-of time is their newest event: the table's maximum, from its statistics.
            newest_at, _ = newest_event(snapshot.table, view.timestamp_field)
            newest_us = None if newest_at is None else to_micros(newest_at)
        elif spark is not None:
            deleted = 0
            engine = "spark"
            result = spark.write_view(config, view, snapshot, mode, state.delta_version if state else None, lease.owner)
            mode, rows_read, written, skipped, newest_us = (
                result.mode, result.rows_read, result.written, result.skipped, result.newest_us)
        else:
            deleted = 0
            with NewestRows(view) as newest:
                mode = _load(newest, view, snapshot, mode, first)
                written, skipped = write_newest(
                    client, config, view, newest, skip_older_than_online=(mode == "incremental"), progress=progress
                )
                rows_read = newest.rows_read
                newest_us = _micros(newest.newest_event())[0]
        if mode == "incremental" and state is not None and state.newest_event_us is not None:
            newest_us = state.newest_event_us if newest_us is None else max(newest_us, state.newest_event_us)
        if lease.lost:
            raise LeaseLost(f"feature view {view.name}: the sync lease expired mid-sync; state not advanced")
        lease.commit_state(snapshot.table_id, snapshot.version, newest_us, written)
    seconds = time.perf_counter() - started
    log.info("feature view %s: %s sync wrote %d of %d rows in %.2f s", view.name, mode, written, rows_read, seconds)
    return ViewSyncReport(
        view.name, mode, rows_read, written, skipped,
        previous if mode == "incremental" else None, snapshot.version, seconds, items_deleted=deleted,
        push_items_folded=folded, pushes=view.push, engine=engine, not_on_spark=not_on_spark,
    )


def sync(
    registry: Registry,
    config: OnlineStoreConfig | None = None,
    select: list[str] | tuple[str, ...] | None = None,
    full: bool = False,
    progress: bool = True,
    *,
    client: Any = None,
    validations: ValidationLog | None = None,
    force: bool = False,
    now: dt.datetime | None = None,
    engine: str = "duckdb",
    spark_remote: str | None = None,
    partitions: int | None = None,
) -> SyncReport:
    """Upsert the newest row per entity of every online feature view into DynamoDB.

    An aggregation view gets one item per entity holding its final tiles within the longest window
    of the sync time (`tile_sync`); only the entities whose tiles changed, when incremental.

    Args:
        registry: the feature views (only `online=True` ones are synced).
        config: the online store; default `OnlineStoreConfig.from_env()`.
        select: only these view names.
        full: ignore the saved state and resync every view from its whole Delta table.
        progress: show a tqdm bar (only on a terminal).
        client: a boto3 DynamoDB client to reuse.
        validations: the validation log the gate reads; default the project's
            (`<registry>/validations.jsonl`), read only for views with expectations.
        force: publish versions that failed validation or were never validated.
        now: the sync time, which decides the tiles still in an aggregation view's windows
            (default: the current time, UTC).
        engine: "duckdb" (this process) or "spark": each view's rows are read, reduced to the
            newest per entity and written by Spark executors (`spark_sync`), under the same
            lease, state, gate and write rule. Aggregation views stay in this process (the
            report says so per view).
        spark_remote: the Spark Connect URL for engine "spark" (default $HINDSIGHT_SPARK_REMOTE).
        partitions: engine "spark": partitions, i.e. parallel write tasks, per view (default: one
            per `spark_sync.ROWS_PER_PARTITION` rows read, at most 200).

    Returns:
        A SyncReport with rows read, rows written, versions and seconds per view.

    Raises:
        ValueError: a selected view is unknown or not online, or its table lacks columns.
        DeltaTableMissing: a view's Delta table does not exist.
        SyncInProgress: another sync of a view is running.
        OnlineStoreUnavailable: DynamoDB cannot be reached.
        PublishRefused: after the other views synced, naming each view whose version failed
            validation or was never validated (its `report` holds what did sync).
    """
    spark_url = _spark_remote(engine, spark_remote)
    config = config or OnlineStoreConfig.from_env()
    client = client or shared_client(config)
    views = online_views(registry, select)
    if validations is None and any(v.expectations for v in views):
        from hindsight.core.settings import Settings

        validations = ValidationLog.in_registry(Settings.load().registry_dir)
    reports = []
    spark = SparkSync(spark_url, partitions) if spark_url and views else None
    try:
        for view in views:
            reports.append(_sync_one(client, config, view, full=full, progress=progress, validations=validations,
                                     force=force, now=now, spark=spark))
    finally:
        if spark is not None:
            spark.close()
    report = SyncReport(tuple(reports))
    if report.refusals:
        raise PublishRefused(report.refusals, report)
    return report


def _spark_remote(engine: str, spark_remote: str | None) -> str | None:
    """The Spark Connect URL for engine "spark", None for "duckdb"; raises ValueError otherwise."""
    import os

    from hindsight.core.suggest import did_you_mean
    from hindsight.offline_store.sail import SPARK_REMOTE_ENV

    if engine == "duckdb":
        return None
    if engine != "spark":
        raise ValueError(f"engine: unknown sync engine {engine!r}; expected 'duckdb' or 'spark'"
                         f"{did_you_mean(engine, ['duckdb', 'spark'])}")
    remote = spark_remote or os.environ.get(SPARK_REMOTE_ENV)
    if not remote:
        raise ValueError(f"engine 'spark' needs a Spark Connect URL (sc://host:port): pass --spark-remote "
                         f"(spark_remote= in Python) or set {SPARK_REMOTE_ENV} (`hindsight spark up` prints it)")
    return remote


def _sync_one(client: Any, config: OnlineStoreConfig, view: FeatureView, **options: Any) -> ViewSyncReport:
    """`sync_view`, with DynamoDB failures named and any failure counted in the view's state."""
    try:
        return sync_view(client, config, view, **options)
    except BotoCoreError as err:
        raise OnlineStoreUnavailable(
            f"feature view {view.name!r}: DynamoDB at {config.endpoint_url or 'AWS'} is unreachable: {err}"
        ) from err
    except Exception as err:
        if not isinstance(err, SyncInProgress):
            _record_error(client, config, view, err)
        err.add_note(f"while syncing feature view {view.name!r}")
        raise


def _record_error(client: Any, config: OnlineStoreConfig, view: FeatureView, err: BaseException) -> None:
    """Count the failure in the view's state item, for status and /metrics; best effort."""
    message = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    try:
        record_error(client, config.table_name(view.name), message)
    except Exception as failure:  # noqa: BLE001 - the sync's own error is the one to raise
        log.warning("feature view %s: could not record the failed sync (%s)", view.name, failure)
