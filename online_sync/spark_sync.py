"""`sync(..., engine="spark")`: the middle of a view's sync (read, newest row per entity, write) on Spark executors.

The driver (`delta_sync.sync_view`, in the CLI process) keeps everything else exactly as the
single-process sync does: the view's lease (renewed by its thread), the state, the validation gate
and the report. This module only hands Spark the rows to read and gets back what was written:

1. Read: the whole Delta table at the snapshot's version (`versionAsOf`), or for an incremental
   sync the Parquet files added since the synced version that the snapshot still holds (delta-rs
   diffs the two versions' file lists; Sail has no change data feed). A rewritten file brings its
   unchanged rows again: they are not newer than their items, so the newest-wins check drops them
   or rewrites the same values. Tables whose files cannot be read as plain Parquet (deletion
   vectors, column mapping) or whose partition columns are columns the view reads, and version
   ranges whose log is gone, are read whole instead.
2. Newest row per entity: `row_number()` over the join keys by (event time, created time)
   descending, as `newest.newest_query` does in DuckDB.
3. Write: repartition by the join keys, then `mapInArrow` on each partition encodes rows with
   `delta_sync.items_from_batch` and writes them with `write_rule.write_synced_items` (the same
   write rule as the single-process sync, newest-wins against pushes included) on
   `write_threads` threads, and yields (written, skipped, rows read, newest event) per partition.

Executors get the online store settings inside the pickled function (an `OnlineStoreConfig`), never
from a local file. Every partition checks, at most every third of the lease period, that the
driver still holds the lease (`state.lease_held`) and stops with `LeaseLost` otherwise: a job
orphaned by a killed CLI stops writing instead of racing the rerun.

On Sail, Python UDFs run in the Sail server process itself, one partition per task thread; the
number of partitions is the parallelism (see docs for clusters).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hindsight.offline_store.tables import open_table
from hindsight.online_sync.batching import MAX_GET_BATCH, BoundedExecutor
from hindsight.online_sync.config import OnlineStoreConfig, make_client
from hindsight.online_sync.newest import DeltaSnapshot, view_columns
from hindsight.online_sync.state import LeaseLost, lease_held
from hindsight.registry_sync.model import FeatureView

log = logging.getLogger(__name__)

#: The Spark engine's name in `sync(engine=...)` and `hindsight sync --engine`.
ENGINE = "spark"
#: Reader features whose data files are not plain Parquet rows (read through Spark's Delta reader).
_NOT_PLAIN_PARQUET = {"deletionVectors", "columnMapping"}
_ROWS = "_hs_rows"
#: Default partitions: one per this many rows read (from the Delta log's record counts), at most
#: `_MAX_DEFAULT_PARTITIONS`. Each partition costs a client and a task (~0.1 s on Sail): Spark's
#: default of 200 shuffle partitions made a 1,000-row view take 38 s instead of 1.5 s.
ROWS_PER_PARTITION = 250_000
_MAX_DEFAULT_PARTITIONS = 200
_RESULT_SCHEMA = "written long, skipped long, rows_read long, newest_us long"


@dataclass(frozen=True)
class SparkViewResult:
    """What Spark did for one view."""

    #: "full" or "incremental" (the mode actually used).
    mode: str
    rows_read: int
    written: int
    skipped: int
    #: The greatest event time written or compared, epoch microseconds (None without rows).
    newest_us: int | None
    #: Data files Spark read (all of the snapshot's for a full sync).
    files: int


def _col(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def added_files(snapshot: DeltaSnapshot, view: FeatureView, since_version: int) -> list[str] | None:
    """The snapshot's data files added after `since_version`, or None when they cannot stand for the change.

    None means: read the whole table (files that are not plain Parquet rows, partition values the
    view reads, or a log that no longer holds `since_version`).
    """
    protocol = snapshot.table.protocol()
    if _NOT_PLAIN_PARQUET & set(protocol.reader_features or ()):
        return None
    if set(snapshot.table.metadata().partition_columns) & set(view_columns(view)):
        return None
    try:
        before = set(open_table(view.delta_uri, version=since_version).file_uris())
    except Exception as err:  # noqa: BLE001 - delta-rs raises several types for a vacuumed or missing log
        log.warning("feature view %s: version %s of its Delta table is unavailable (%s); full resync",
                    view.name, since_version, str(err).splitlines()[0] if str(err) else type(err).__name__)
        return None
    return [uri for uri in snapshot.table.file_uris() if uri not in before]


def default_partitions(snapshot: DeltaSnapshot, files: list[str] | None) -> int:
    """One partition per `ROWS_PER_PARTITION` rows of the files read (all the snapshot's if None).

    The rows of a file subset are estimated pro rata to its share of the snapshot's files.
    """
    actions = pa.table(snapshot.table.get_add_actions(flatten=True))
    rows = int(pc.sum(actions.column("num_records")).as_py() or 0) if actions.num_rows else 0
    if files is not None and actions.num_rows:
        rows = rows * len(files) // actions.num_rows
    return max(1, min(_MAX_DEFAULT_PARTITIONS, -(-rows // ROWS_PER_PARTITION)))


def _newest_frame(source: Any, view: FeatureView) -> Any:
    """Each entity's newest row, with `_hs_rows`: how many candidate rows the entity had."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = [_col(k) for k in view.join_keys]
    order = [_col(view.timestamp_field).desc_nulls_last()]
    if view.created_field:
        order.append(_col(view.created_field).desc_nulls_last())
    candidates = source.select(*[_col(c) for c in view_columns(view)]).where(
        F.expr(" AND ".join(f"`{c.replace('`', '``')}` IS NOT NULL" for c in (*view.join_keys, view.timestamp_field)))
    )
    return (
        candidates
        .withColumn("_hs_rank", F.row_number().over(Window.partitionBy(*keys).orderBy(*order)))
        .withColumn(_ROWS, F.count(F.lit(1)).over(Window.partitionBy(*keys)))
        .where(F.col("_hs_rank") == 1)
        .drop("_hs_rank")
    )


def partition_writer(config: OnlineStoreConfig, view: FeatureView, lease_owner: str,
                     check_online: bool) -> Any:
    """The function `mapInArrow` runs on each partition: write its rows, yield one row of totals.

    Pickled with the config and view (plain dataclasses): executors need Hindsight installed, and
    nothing else of the driver's.
    """

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # Imported here: delta_sync imports this module lazily, and executors import it afresh.
        from hindsight.online_sync.delta_sync import _micros, items_from_batch
        from hindsight.online_sync.write_rule import write_synced_items

        client = make_client(config)
        table = config.table_name(view.name)
        totals = {"written": 0, "skipped": 0, "rows_read": 0}
        newest: int | None = None
        checked = [0.0]

        def fence() -> None:
            if time.monotonic() - checked[0] >= config.lease_seconds / 3:
                if not lease_held(client, table, lease_owner):
                    raise LeaseLost(f"feature view {view.name!r}: the sync lease of {lease_owner} is gone "
                                    "(driver killed or lease expired); this executor stops writing")
                checked[0] = time.monotonic()

        def write_slice(rows: pa.RecordBatch) -> tuple[int, int]:
            counts = write_synced_items(client, table, view, list(items_from_batch(rows, view)),
                                        check_online=check_online)
            return counts.written, counts.skipped

        def done(result: tuple[int, int]) -> None:
            totals["written"] += result[0]
            totals["skipped"] += result[1]

        with BoundedExecutor(config.write_threads, on_done=done, name=f"spark-sync-{view.name}") as pool:
            for batch in batches:
                if not batch.num_rows:
                    continue
                fence()
                totals["rows_read"] += int(pc.sum(batch.column(_ROWS)).as_py() or 0)
                events = [m for m in _micros(batch.column(view.timestamp_field)) if m is not None]
                if events:
                    top = max(events)
                    newest = top if newest is None else max(newest, top)
                for start in range(0, batch.num_rows, MAX_GET_BATCH):
                    pool.submit(write_slice, batch.slice(start, MAX_GET_BATCH))
        yield pa.RecordBatch.from_pydict(
            {**{k: [v] for k, v in totals.items()}, "newest_us": [newest]},
            schema=pa.schema([("written", pa.int64()), ("skipped", pa.int64()), ("rows_read", pa.int64()),
                              ("newest_us", pa.int64())]),
        )

    return write


class SparkSync:
    """A Spark Connect session that runs views' syncs on its executors (a context manager).

    Args:
        remote: the Spark Connect URL (`sc://host:port`); a pinned `session_id` is dropped so this
            session is its own and may be released.
        partitions: partitions (parallel write tasks) per view; None = one per
            `ROWS_PER_PARTITION` rows read (the Delta log's record counts), at most 200.
    """

    def __init__(self, remote: str, partitions: int | None = None) -> None:
        from hindsight.offline_store.sail import open_session, own_session_url

        if partitions is not None and partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        self.partitions = partitions
        self.remote = own_session_url(remote)
        # SparkConnectError, a ConnectionError: pyspark missing or no server at `remote`.
        self.session: Any = open_session(remote)

    def write_view(self, config: OnlineStoreConfig, view: FeatureView, snapshot: DeltaSnapshot, mode: str,
                   since_version: int | None, lease_owner: str) -> SparkViewResult:
        """Read, reduce and write one view on the executors (mode "full" or "incremental")."""
        files = added_files(snapshot, view, since_version) if mode == "incremental" and since_version is not None else None
        if files is None:
            mode = "full"
            source = self.session.read.format("delta").option("versionAsOf", snapshot.version).load(view.delta_uri)
            file_count = len(snapshot.table.file_uris())
        elif not files:
            return SparkViewResult(mode, 0, 0, 0, None, 0)
        else:
            source = self.session.read.parquet(*files)
            file_count = len(files)
        newest = _newest_frame(source, view)
        keys = [_col(k) for k in view.join_keys]
        partitions = self.partitions or default_partitions(snapshot, files)
        spread = newest.repartition(partitions, *keys)
        writer = partition_writer(config, view, lease_owner, check_online=(mode == "incremental"))
        rows = spread.mapInArrow(writer, _RESULT_SCHEMA).collect()
        newest_values = [r["newest_us"] for r in rows if r["newest_us"] is not None]
        return SparkViewResult(
            mode=mode,
            rows_read=sum(r["rows_read"] for r in rows),
            written=sum(r["written"] for r in rows),
            skipped=sum(r["skipped"] for r in rows),
            newest_us=max(newest_values) if newest_values else None,
            files=file_count,
        )

    def close(self) -> None:
        self.session.stop()

    def __enter__(self) -> SparkSync:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
