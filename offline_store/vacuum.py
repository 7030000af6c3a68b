"""Vacuum feature views' Delta tables: delete the files no version still needs.

Owns the rule for what may be deleted. Reads a Delta table's log and folder; deletes Parquet files.

Delta keeps every file an older version read (time travel, replayed training sets), and a write
killed before its commit (a `kill -9` during a full refresh) leaves Parquet files that no version
references. `vacuum_table` runs delta-rs's full vacuum, which deletes both kinds once they are
older than the retention: a file a commit removed counts from that commit's time, an unreferenced
file from its modification time. Never deleted:
- files of the current version;
- files younger than the retention (default 7 days, at least 1 hour): a write in progress has not
  committed its files yet, and a version newer than the retention stays readable;
- files of `keep_versions`, the versions pinned training sets read, however old.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from hindsight.core.durations import format_duration
from hindsight.core.object_store import delta_storage_options

DEFAULT_RETENTION = dt.timedelta(days=7)
#: Below this a dbt run writing right now could lose files it has not committed yet.
MIN_RETENTION = dt.timedelta(hours=1)


class VacuumError(ValueError):
    """A vacuum that was refused; nothing was deleted."""


@dataclass(frozen=True)
class VacuumReport:
    """What vacuuming one table removed (or, in a dry run, would remove)."""

    view: str
    #: Files removed, relative to the table's folder.
    files: tuple[str, ...]
    #: Their total size; None when the table is not on the local file system.
    bytes: int | None
    dry_run: bool
    #: The table's version when vacuumed (None: there is no table at the location).
    version: int | None
    kept_versions: tuple[int, ...] = ()


def check_retention(retention: dt.timedelta) -> None:
    """Refuse a retention so short that files of a running write could go.

    >>> check_retention(dt.timedelta(days=7))
    >>> try:
    ...     check_retention(dt.timedelta(minutes=5))
    ... except VacuumError as error:
    ...     print(error)
    retention 5m is shorter than 1h: a dbt run writing now could lose files it has not committed yet
    """
    if retention < MIN_RETENTION:
        raise VacuumError(
            f"retention {format_duration(retention)} is shorter than {format_duration(MIN_RETENTION)}: "
            "a dbt run writing now could lose files it has not committed yet"
        )


def vacuum_table(
    view: str,
    uri: str,
    retention: dt.timedelta = DEFAULT_RETENTION,
    *,
    dry_run: bool = False,
    keep_versions: Iterable[int] = (),
    storage_options: dict[str, str] | None = None,
) -> VacuumReport:
    """Delete (or with `dry_run`, list) the files of one table that no kept version needs.

    Raises:
        VacuumError: the retention is below MIN_RETENTION, or a kept version does not exist.
    """
    check_retention(retention)
    try:
        table = DeltaTable(uri, storage_options=storage_options or delta_storage_options(uri))
    except TableNotFoundError:
        return VacuumReport(view, (), 0, dry_run, None)
    version = table.version()
    kept = tuple(sorted(set(keep_versions)))
    missing = [v for v in kept if v > version or v < 0]
    if missing:
        raise VacuumError(f"{view}: pinned version(s) {missing} do not exist (the table is at version {version})")
    options = {
        # Hours, rounded up: a retention never shrinks.
        "retention_hours": math.ceil(retention.total_seconds() / 3600),
        # The table's own minimum (delta.deletedFileRetentionDuration, 1 week by default) is
        # Delta's guard for concurrent readers; check_retention is ours.
        "enforce_retention_duration": False,
        # Full: also the files no log entry mentions (killed writes), by modification time.
        "full": True,
        "keep_versions": list(kept) or None,
    }
    listed = table.vacuum(dry_run=True, **options)
    sizes = _local_sizes(uri, listed)
    removed = listed if dry_run else table.vacuum(dry_run=False, **options)
    total = None if sizes is None else sum(sizes.get(f, 0) for f in removed)
    return VacuumReport(view, tuple(sorted(removed)), total, dry_run, version, kept)


def _local_sizes(uri: str, files: list[str]) -> dict[str, int] | None:
    """Sizes of the listed files of a local table (None for object stores)."""
    if "://" in uri and not uri.startswith("file://"):
        return None
    root = uri.removeprefix("file://")
    sizes = {}
    for name in files:
        try:
            sizes[name] = os.path.getsize(os.path.join(root, name))
        except OSError:
            sizes[name] = 0
    return sizes


def format_bytes(size: int | None) -> str:
    """A byte count for people.

    >>> format_bytes(315_000_000), format_bytes(2048), format_bytes(None)
    ('315.0 MB', '2.0 kB', 'unknown size')
    """
    if size is None:
        return "unknown size"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
