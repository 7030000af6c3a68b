"""Read a feature view's Delta table (whole, or its change data feed) down to the newest row per entity.

The newest row of an entity is the one with the greatest (timestamp_field, created_field); within a
change feed a later commit wins a tie (a MERGE that corrected values in place). DuckDB does the
de-duplication over the Arrow stream deltalake produces, so memory stays bounded (DuckDB spills to
its temp directory) and the result is read back in Arrow batches.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from sqlglot import exp

from hindsight.offline_store.tables import open_table
from hindsight.online_sync.tile_items import tile_columns
from hindsight.registry_sync.model import FeatureView

#: Change types of the Delta change data feed that carry a row's new values.
CHANGED_ROW_TYPES = ("insert", "update_postimage")
COMMIT_VERSION = "_commit_version"
CHANGE_TYPE = "_change_type"


class DeltaTableMissing(FileNotFoundError):
    """A feature view's Delta table does not exist (yet)."""


@dataclass(frozen=True)
class DeltaSnapshot:
    """One version of a view's Delta table, pinned for the whole sync."""

    table: DeltaTable
    version: int
    table_id: str


def open_delta(view: FeatureView) -> DeltaSnapshot:
    """Open the view's Delta table at its latest version and check it has the view's columns.

    Raises:
        DeltaTableMissing: no table at `view.delta_uri`.
        ValueError: the table lacks columns the view declares.
    """
    try:
        table = open_table(view.delta_uri)
    except TableNotFoundError as err:
        raise DeltaTableMissing(
            f"feature view {view.name!r}: no Delta table at {view.delta_uri} (build it with dbt first)"
        ) from err
    present = {field.name for field in table.schema().fields}
    missing = [c for c in view_columns(view) if c not in present]
    if missing:
        raise ValueError(
            f"feature view {view.name!r}: the Delta table at {view.delta_uri} lacks columns {missing}; "
            "the registry and the table disagree (re-run dbt and hindsight apply)"
        )
    return DeltaSnapshot(table=table, version=table.version(), table_id=table.metadata().id)


def view_columns(view: FeatureView) -> list[str]:
    """The columns online sync reads: join keys, event time, created time, features (tiles' for an
    aggregation view: `tile_items.tile_columns`)."""
    if view.is_aggregation:
        return tile_columns(view)
    columns = [*view.join_keys, view.timestamp_field]
    if view.created_field:
        columns.append(view.created_field)
    columns.extend(f.name for f in view.features)
    return list(dict.fromkeys(columns))


def full_source(snapshot: DeltaSnapshot) -> Any:
    """The whole table at the snapshot's version, as a pyarrow dataset DuckDB can scan lazily."""
    return snapshot.table.to_pyarrow_dataset()


def change_source(snapshot: DeltaSnapshot, view: FeatureView, from_version: int) -> pa.RecordBatchReader:
    """The change data feed of versions [from_version, snapshot.version] as an Arrow stream.

    Raises whatever deltalake raises when the feed is unavailable for the range (vacuumed files,
    CDF not enabled): the caller falls back to a full read.
    """
    columns = [*view_columns(view), CHANGE_TYPE, COMMIT_VERSION]
    reader = snapshot.table.load_cdf(
        starting_version=from_version, ending_version=snapshot.version, columns=[_cdf_column(c) for c in columns]
    )
    return pa.RecordBatchReader.from_stream(reader)


def _cdf_column(name: str) -> str:
    """A column for `load_cdf(columns=...)`, quoted: its DataFusion folds bare names to lower case,
    so a feature `Plan_Tier` would not be found and every sync would fall back to a full resync.

    >>> _cdf_column('Plan_Tier'), _cdf_column('a"b')
    ('"Plan_Tier"', '"a""b"')
    """
    return '"' + name.replace('"', '""') + '"'


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def candidates_query(view: FeatureView, source: str, from_change_feed: bool) -> exp.Select:
    """The rows that may be an entity's newest: non-null keys and event time, new values only.

    >>> from hindsight.registry_sync.model import FeatureView, Feature
    >>> v = FeatureView("v", "batch", ("user",), ("user_id",), "ts", None, None, True, "/x",
    ...                 (Feature("f", "int64"),))
    >>> candidates_query(v, "src", True).sql("duckdb")
    'SELECT "user_id", "ts", "f", "_commit_version" FROM "src" WHERE NOT "user_id" IS NULL AND NOT "ts" IS NULL AND "_change_type" IN (\\'insert\\', \\'update_postimage\\')'
    """  # noqa: E501 - a doctest's expected output is one line
    columns = [_col(c) for c in view_columns(view)]
    columns.append(_col(COMMIT_VERSION) if from_change_feed else exp.Literal.number(0).as_(COMMIT_VERSION))
    conditions: list[exp.Expression] = [_col(c).is_(exp.null()).not_() for c in (*view.join_keys, view.timestamp_field)]
    if from_change_feed:
        conditions.append(_col(CHANGE_TYPE).isin(*CHANGED_ROW_TYPES))
    return exp.select(*columns).from_(exp.table_(source, quoted=True)).where(exp.and_(*conditions))


def newest_query(view: FeatureView, source: str) -> exp.Select:
    """The newest row per entity: greatest (event time, created time, commit version).

    >>> from hindsight.registry_sync.model import FeatureView, Feature
    >>> v = FeatureView("v", "batch", ("user",), ("user_id",), "ts", "created", None, True, "/x",
    ...                 (Feature("f", "int64"),))
    >>> newest_query(v, "c").sql("duckdb")
    'SELECT "user_id", "ts", "created", "f" FROM "c" QUALIFY ROW_NUMBER() OVER (PARTITION BY "user_id" ORDER BY "ts" DESC, "created" DESC, "_commit_version" DESC) = 1'
    """  # noqa: E501 - a doctest's expected output is one line
    order_by = [view.timestamp_field, *([view.created_field] if view.created_field else []), COMMIT_VERSION]
    # Rows without a created time are older than rows with one at the same event time (as in codec).
    window = exp.Window(
        this=exp.RowNumber(),
        partition_by=[_col(k) for k in view.join_keys],
        order=exp.Order(expressions=[exp.Ordered(this=_col(c), desc=True, nulls_first=False) for c in order_by]),
    )
    return (
        exp.select(*[_col(c) for c in view_columns(view)])
        .from_(exp.table_(source, quoted=True))
        .qualify(exp.EQ(this=window, expression=exp.Literal.number(1)))
    )


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    query = exp.select(exp.Count(this=exp.Star())).from_(exp.table_(table, quoted=True))
    (count,) = con.sql(query.sql("duckdb")).fetchone() or (0,)
    return int(count)


class ScratchSession:
    """A private DuckDB session that spills to its own temporary folder (a context manager).

    Sync reduces a view's rows in one (NewestRows here, TileLists for aggregation views) and streams
    the result table back in Arrow batches.
    """

    def __init__(self, view: FeatureView, threads: int = 2) -> None:
        self.view = view
        self._tmp = tempfile.TemporaryDirectory(prefix="hindsight-sync-")
        self._con = duckdb.connect(config={"threads": threads, "temp_directory": self._tmp.name})
        # Spilling needs no order: keep memory low on big tables.
        self._con.execute("SET preserve_insertion_order = false")
        self.rows_read = 0
        self.count = 0

    def _stream(self, table: str, batch_size: int) -> Iterator[pa.RecordBatch]:
        yield from self._con.table(table).to_arrow_reader(batch_size)

    def close(self) -> None:
        self._con.close()
        self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


class NewestRows(ScratchSession):
    """One view's newest rows per entity."""

    def load(self, source: Any, from_change_feed: bool) -> None:
        """Read `source` (a dataset or Arrow stream) and keep each entity's newest row."""
        self._con.register("hs_source", source)
        try:
            for name in ("hs_candidates", "hs_newest"):
                self._con.execute(exp.Drop(tables=[exp.table_(name, quoted=True)], kind="TABLE", exists=True).sql("duckdb"))
            self._con.sql(candidates_query(self.view, "hs_source", from_change_feed).sql("duckdb")).create("hs_candidates")
            self.rows_read = _count(self._con, "hs_candidates")
            self._con.sql(newest_query(self.view, "hs_candidates").sql("duckdb")).create("hs_newest")
            self.count = _count(self._con, "hs_newest")
        finally:
            self._con.unregister("hs_source")

    def newest_event(self) -> pa.Array:
        """The greatest event time among the newest rows, as a one-value Arrow array (null if none)."""
        query = exp.select(exp.Max(this=_col(self.view.timestamp_field))).from_(exp.table_("hs_newest", quoted=True))
        return self._con.sql(query.sql("duckdb")).to_arrow_table().column(0).combine_chunks()

    def batches(self, batch_size: int = 2_000) -> Iterator[pa.RecordBatch]:
        """The newest rows, streamed in Arrow batches."""
        return self._stream("hs_newest", batch_size)
