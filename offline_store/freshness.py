"""How fresh a feature view's Delta table is, read from its log, not from its rows.

`offline_freshness` answers, for the table's latest version: the newest event time it holds (the
greatest `max` statistic of its timestamp column over the add actions: no data file is opened
unless one lacks statistics), and its last commit (version, time, and the dbt invocation and run
mode the `feature_view` materialization records in each commit's metadata). `commit_time` gives
the time of any one version, for the online sync's lag.

Delta keeps timestamp statistics at millisecond precision, truncated: the newest event time read
this way may be up to 1 ms earlier than the row's own value.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from sqlglot import exp

from hindsight.core.instants import utc_instant
from hindsight.core.object_store import delta_storage_options
from hindsight.offline_store.tables import ROW_PRESERVING_OPERATIONS

#: Commit metadata keys the feature_view materialization writes (delta_writer.WriteRequest).
INVOCATION_KEY = "dbt_invocation_id"
MODE_KEY = "hindsight_mode"


class FeatureView(Protocol):
    """What freshness needs of a registry feature view (the registry sits above this package)."""

    @property
    def name(self) -> str: ...
    @property
    def delta_uri(self) -> str: ...
    @property
    def timestamp_field(self) -> str: ...


@dataclass(frozen=True)
class Commit:
    """One Delta commit."""

    version: int
    #: When it was committed, UTC.
    at: dt.datetime
    #: "WRITE", "MERGE", ... as Delta names it.
    operation: str
    #: The dbt run that wrote it (None if not written by the feature_view materialization).
    dbt_invocation_id: str | None
    #: full_refresh | incremental | backfill (None as above).
    mode: str | None


@dataclass(frozen=True)
class OfflineFreshness:
    """The newest event time of a view's Delta table and its last commit."""

    view: str
    table_id: str
    version: int
    #: Greatest timestamp_field value at `version`, UTC; None for an empty table.
    newest_event: dt.datetime | None
    last_commit: Commit
    #: Data files whose statistics lacked the timestamp column, so they were read.
    files_scanned: int


def _utc(value: Any) -> dt.datetime | None:
    return None if value is None else utc_instant(value)


def _commit(entry: dict[str, Any]) -> Commit:
    # delta-rs merges a commit's custom metadata into its commitInfo; Spark puts it in userMetadata.
    return Commit(
        version=int(entry["version"]),
        at=dt.datetime.fromtimestamp(int(entry["timestamp"]) / 1000, dt.timezone.utc),
        operation=str(entry.get("operation") or ""),
        dbt_invocation_id=entry.get(INVOCATION_KEY) or _user_metadata(entry).get(INVOCATION_KEY),
        mode=entry.get(MODE_KEY) or _user_metadata(entry).get(MODE_KEY),
    )


def _user_metadata(entry: dict[str, Any]) -> dict[str, Any]:
    import json

    text = entry.get("userMetadata")
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


#: How many commits `last_commit` looks back over for one that wrote rows.
_LOOK_BACK = 20


def last_commit(table: DeltaTable) -> Commit:
    """The newest commit up to the table's loaded version that wrote rows (a materialization, a
    flush): compaction and vacuum commits (`hindsight optimize`, `hindsight vacuum`) change no row,
    so they are not when the view was last materialized."""
    entries = table.history(limit=_LOOK_BACK)
    wrote = next((e for e in entries if e.get("operation") not in ROW_PRESERVING_OPERATIONS), entries[-1])
    return _commit(wrote)


def commit_time(table: DeltaTable, version: int) -> dt.datetime | None:
    """When `version` was committed (None if the log no longer holds it)."""
    behind = table.version() - version
    if behind < 0:
        return None
    for entry in table.history(limit=behind + 1):
        if int(entry["version"]) == version:
            return _commit(entry).at
    return None


def newest_event(table: DeltaTable, column: str) -> tuple[dt.datetime | None, int]:
    """(greatest value of `column` at the table's version, data files read to find it).

    Reads the add actions' `max` statistics; only files without one for `column` are scanned.
    """
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return None, 0
    stat = f"max.{column}"
    if stat in actions.schema.names:
        maxima = actions.column(stat)
        missing = pc.is_null(maxima)
        newest = pc.max(maxima).as_py()
    else:
        missing = pa.array([True] * actions.num_rows)
        newest = None
    unscanned = actions.filter(missing).column("path").to_pylist()
    found = [t for t in (_utc(newest), _utc(_scan_max(table, column, unscanned)) if unscanned else None) if t is not None]
    return (max(found) if found else None), len(unscanned)


def _scan_max(table: DeltaTable, column: str, paths: list[str]) -> Any:
    """max(column) over some of the table's data files, read by DuckDB from a pyarrow dataset."""
    wanted = set(paths)
    dataset = table.to_pyarrow_dataset()
    fragments = [f for f in dataset.get_fragments() if any(f.path.endswith(p) for p in wanted)]
    import pyarrow.dataset as ds

    subset = ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
    query = exp.select(exp.Max(this=exp.column(column, quoted=True))).from_(exp.table_("hs_files", quoted=True))
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("hs_files", subset)
        row = connection.execute(query.sql("duckdb")).fetchone()
    finally:
        connection.close()
    return None if row is None else row[0]


def offline_freshness(view: FeatureView, storage_options: dict[str, str] | None = None) -> OfflineFreshness:
    """The newest event time and last commit of the view's Delta table at its latest version.

    Raises:
        deltalake.exceptions.TableNotFoundError: there is no table at `view.delta_uri`.
    """
    table = DeltaTable(view.delta_uri, storage_options=storage_options or delta_storage_options(view.delta_uri))
    newest, scanned = newest_event(table, view.timestamp_field)
    return OfflineFreshness(
        view=view.name,
        table_id=table.metadata().id,
        version=table.version(),
        newest_event=newest,
        last_commit=last_commit(table),
        files_scanned=scanned,
    )
