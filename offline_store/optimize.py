"""Optimize feature views' Delta tables: merge small files into fewer, larger ones (and optionally z-order).

Owns the rule for when a table is rewritten and how. Reads a Delta table's log (its add actions);
writes one `OPTIMIZE` commit through delta-rs (`DeltaTable.optimize.compact` / `.z_order`).

Incremental runs, backfills and pushes each add small files to the partitions they touch; a read
then opens many files per partition (bench/bench_layout_variants.py). A table is rewritten
only when one of its partitions holds at least `min_small_files` files below the target size (then
delta-rs merges the small files of every partition; z-order rewrites every partition), so a table
that has no small files is left alone: no commit, no new version. An optimize commit changes no row
(`dataChange: false`): every version before it stays readable with the same rows (Delta
snapshots), so readers and training sets pinned to an older version are unaffected, and the
replaced files go only when `hindsight vacuum` deletes them after its retention.

Compaction cannot merge across partitions: a view with few rows a day keeps one small file per day
however often it is optimized, and every read opens them all (about 0.1 ms a file: the demo's
merchant_profile, 10,000 rows in 2,162 daily files, reads in 0.19 s, the same rows from one file in
0.003 s). `coarser_partition_hint` says so, with the count and the fix (a coarser `partition_by`).

Z-ordering by the view's entity keys sorts rows across the rewritten files so that reads of a few
entities skip files; it costs a full rewrite of the partitions touched, and for training sets
(which read every row) it measured slower, so it is off unless `optimize.z_order` is set.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from hindsight.core.config import OptimizeSection
from hindsight.core.object_store import delta_storage_options
from hindsight.offline_store.derived_partition import DEFAULT as DEFAULT_PARTITION
from hindsight.offline_store.vacuum import format_bytes

#: Recorded in the commit's metadata, so the table's history says who rewrote it.
COMMIT_METADATA = {"hindsight.operation": "optimize"}

#: A table with at least this many partitions, averaging under SMALL_PARTITION_BYTES, is worth
#: partitioning more coarsely: at ~0.1 ms a file, its every read pays 0.1 s or more for files alone.
#: (The demo's user_profile, 180 daily files of 70 kB, pays 0.03 s: not worth a full refresh.)
MANY_PARTITIONS = 1000
SMALL_PARTITION_BYTES = 1_000_000


class OptimizeError(RuntimeError):
    """delta-rs refused to rewrite a table (e.g. a table feature it cannot write); nothing was committed."""


@dataclass(frozen=True)
class FileStats:
    """The files of one table version."""

    files: int
    bytes: int
    #: Partitions holding at least `min_small_files` files below the target size.
    partitions_to_rewrite: int
    #: Partitions holding at least one file (1 for an unpartitioned table).
    partitions: int = 1
    #: Distinct months among the partition values, when the table has one partition column of dates.
    months: int | None = None
    #: The table's partition columns.
    partition_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class OptimizeReport:
    """What optimizing one table did."""

    view: str
    #: Version before and after (None: there is no table at the location).
    version_before: int | None
    version_after: int | None
    before: FileStats | None
    after: FileStats | None
    seconds: float
    #: The columns the rewritten files were z-ordered by; empty when only compacted (or untouched).
    z_order_by: tuple[str, ...] = ()

    @property
    def rewritten(self) -> bool:
        """Whether a new version was committed."""
        return self.version_before != self.version_after


def file_stats(table: DeltaTable, target_size: int, min_small_files: int) -> FileStats:
    """Files, bytes and partitions worth rewriting in the table's current version."""
    # An arro3 table: pyarrow reads it through the Arrow C stream interface.
    actions = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    sizes = actions.get("size_bytes", [])
    partition_keys = [name for name in actions if name.startswith("partition.")]
    partition_of = [tuple(actions[key][row] for key in partition_keys) for row in range(len(sizes))]
    small = Counter(partition for partition, size in zip(partition_of, sizes) if size < target_size)
    partitions = set(partition_of)
    return FileStats(
        files=len(sizes),
        bytes=int(sum(sizes)),
        partitions_to_rewrite=sum(1 for count in small.values() if count >= min_small_files),
        partitions=len(partitions),
        months=_months(actions[partition_keys[0]]) if len(partition_keys) == 1 else None,
        partition_columns=tuple(table.metadata().partition_columns),
    )


def coarser_partition_hint(stats: FileStats) -> str | None:
    """Advice for a table split into many small partitions (None when its partitions are fine).

    >>> hint = coarser_partition_hint(FileStats(2162, 3_300_000, 0, partitions=2162, months=72))
    >>> hint[:hint.index(". ")]
    '2,162 partitions of 1.5 kB on average: every read opens them all; by month they would be 72'
    >>> hint[hint.index(". ") + 2:]
    'Set a coarser partition_by (docs/feature-views.md, "Partitions"), then `dbt run --full-refresh` the view'
    >>> derived = coarser_partition_hint(FileStats(2162, 3_300_000, 0, 2162, 72, ("_partition_date",)))
    >>> derived[derived.index(". ") + 2:derived.index(" (")]
    '`dbt run --full-refresh` the view: a full build partitions it by month when its rows are that sparse'
    >>> coarser_partition_hint(FileStats(180, 12_700_000, 0, partitions=180, months=6)) is None
    True
    >>> coarser_partition_hint(FileStats(1500, 3_000_000_000, 0, partitions=1500, months=50)) is None
    True
    """
    if stats.partitions < MANY_PARTITIONS or stats.bytes >= SMALL_PARTITION_BYTES * stats.partitions:
        return None
    by_month = f"; by month they would be {stats.months:,}" if stats.months else ""
    found = (f"{stats.partitions:,} partitions of {format_bytes(stats.bytes // stats.partitions)} on average: "
             f"every read opens them all{by_month}")
    if stats.partition_columns == (DEFAULT_PARTITION,):
        # A derived daily partition: a full build chooses the grain from the rows it writes.
        return (f"{found}. `dbt run --full-refresh` the view: a full build partitions it by month when its rows "
                'are that sparse (docs/feature-views.md, "Partitions"), else set a coarser partition_by')
    return f'{found}. Set a coarser partition_by (docs/feature-views.md, "Partitions"), then `dbt run --full-refresh` the view'


def _months(values: list) -> int | None:
    """Distinct year-months of date partition values (dates, or ISO text as some readers give them)."""
    months = set()
    for value in values:
        text = value.isoformat() if isinstance(value, dt.date) else str(value)
        if len(text) < 10 or text[4] != "-" or text[7] != "-" or not text[:4].isdigit():
            return None
        months.add(text[:7])
    return len(months)


def optimize_table(
    view: str,
    uri: str,
    entity_columns: Sequence[str],
    settings: OptimizeSection | None = None,
    *,
    storage_options: dict[str, str] | None = None,
) -> OptimizeReport:
    """Rewrite the small files of one feature view's table into files of the target size.

    Args:
        view: the feature view's name (for the report).
        uri: its Delta table.
        entity_columns: its join keys, the z-order columns when `settings.z_order` is set.
        settings: hindsight.yml's `optimize:` section (default: its defaults).
        storage_options: delta-rs storage options (default: the project's for `uri`).

    Returns:
        What was done; `rewritten` is False when no partition had enough small files.

    Raises:
        OptimizeError: delta-rs cannot rewrite this table (the message names the view and the cause).
    """
    settings = settings or OptimizeSection()
    started = time.perf_counter()
    try:
        table = DeltaTable(uri, storage_options=storage_options or delta_storage_options(uri))
    except TableNotFoundError:
        return OptimizeReport(view, None, None, None, None, time.perf_counter() - started)
    target = settings.target_file_size_mb * 1024 * 1024
    version = table.version()
    before = file_stats(table, target, settings.min_small_files)
    if before.partitions_to_rewrite == 0:
        return OptimizeReport(view, version, version, before, before, time.perf_counter() - started)
    commit = CommitProperties(custom_metadata=COMMIT_METADATA)
    # One commit for the whole table (min_commit_interval=None), so no reader sees half of it.
    z_order_by = tuple(entity_columns) if settings.z_order and entity_columns else ()
    try:
        if z_order_by:
            table.optimize.z_order(list(z_order_by), target_size=target, commit_properties=commit)
        else:
            table.optimize.compact(target_size=target, commit_properties=commit)
    except DeltaError as error:
        # e.g. a writer feature delta-rs does not support, or a conflicting concurrent commit.
        raise OptimizeError(f"{view}: cannot optimize {uri}: {error}; the table is unchanged") from error
    table.update_incremental()
    after = file_stats(table, target, settings.min_small_files)
    return OptimizeReport(view, version, table.version(), before, after, time.perf_counter() - started, z_order_by)
