"""Training sets read a Delta snapshot's files as plain Parquet where that gives its rows, else delta_scan."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from hindsight.offline_store.tables import open_table, plain_parquet_files
from hindsight.training_sets.engine import DuckDBEngine, pin_tables
from hindsight.registry_sync.model import Feature, FeatureView

UTC = dt.timezone.utc


class _Table:
    """A stand-in with only what plain_parquet_files reads."""

    def __init__(self, reader: int, features: list[str] | None, files: list[str]) -> None:
        self._protocol = SimpleNamespace(min_reader_version=reader, reader_features=features)
        self._files = files

    def protocol(self) -> SimpleNamespace:
        return self._protocol

    def file_uris(self) -> list[str]:
        return self._files


@pytest.mark.parametrize(("reader", "features", "files", "plain"), [
    (1, None, ["a.parquet"], True),
    (2, None, ["a.parquet"], False),  # column mapping: files name columns by id
    (3, ["timestampNtz"], ["a.parquet"], True),
    (3, ["deletionVectors"], ["a.parquet"], False),
    (3, ["timestampNtz", "columnMapping"], ["a.parquet"], False),
    (3, ["typeWidening"], ["a.parquet"], False),
    (3, ["someFutureFeature"], ["a.parquet"], False),
    (4, None, ["a.parquet"], False),
    (1, None, [], False),  # no files: nothing to read_parquet
])
def test_plain_parquet_only_where_no_reader_feature_changes_the_rows(reader, features, files, plain) -> None:
    found = plain_parquet_files(_Table(reader, features, files))  # type: ignore[arg-type]
    assert (found == tuple(files)) if plain else found is None


def _rows(first_id: int, count: int, day: dt.date, with_score: bool) -> pa.Table:
    ts = [dt.datetime(day.year, day.month, day.day, 12, tzinfo=UTC) + dt.timedelta(minutes=i) for i in range(count)]
    columns = {
        "user_id": pa.array(range(first_id, first_id + count), pa.int64()),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "tier": pa.array([f"t{i % 3}" for i in range(count)]),
        "_partition_date": pa.array([day] * count, pa.date32()),
    }
    if with_score:
        columns["score"] = pa.array([i / 7 for i in range(count)], pa.float64())
    return pa.table(columns)


def _view(uri: str) -> FeatureView:
    return FeatureView(
        name="evolving", kind="batch", entities=("user",), join_keys=("user_id",), timestamp_field="ts",
        created_field=None, ttl_seconds=None, online=False, delta_uri=uri,
        features=(Feature("tier", "string"), Feature("score", "float64")), partition_columns=("_partition_date",),
    )


def _read(engine: DuckDBEngine, relation: str) -> list[tuple]:
    return engine.connection.sql(f'select * from "{relation}" order by all').fetchall()


def test_plain_parquet_reads_equal_delta_scan_across_schema_evolution(tmp_path) -> None:
    uri = str(tmp_path / "evolving")
    write_deltalake(uri, _rows(0, 5, dt.date(2026, 10, 1), with_score=False), partition_by=["_partition_date"])
    write_deltalake(uri, _rows(5, 5, dt.date(2026, 10, 2), with_score=True), partition_by=["_partition_date"],
                    mode="append", schema_mode="merge")
    pinned = pin_tables({"evolving": _view(uri)}, None)["evolving"]
    assert pinned.files is not None and len(pinned.files) == 2 and pinned.partition_columns == ("_partition_date",)
    engine = DuckDBEngine()
    try:
        columns = ["user_id", "ts", "tier", "score"]
        engine.register_delta("by_files", pinned, columns)
        engine.register_delta("by_delta_scan", pinned.__class__(**{**pinned.__dict__, "files": None}), columns)
        assert "read_parquet" in engine.connection.sql("select sql from duckdb_views() where view_name = 'by_files'").fetchone()[0]
        assert _read(engine, "by_files") == _read(engine, "by_delta_scan")
        assert [r[3] for r in _read(engine, "by_files")][:5] == [None] * 5  # written before the column
        types = engine.connection.sql('describe "by_files"').fetchall()
        assert [t[1] for t in types] == [t[1] for t in engine.connection.sql('describe "by_delta_scan"').fetchall()]
        # A partition column lives in the log: asking for it reads through delta_scan.
        engine.register_delta("with_partition", pinned, [*columns, "_partition_date"])
        assert "delta_scan" in engine.connection.sql("select sql from duckdb_views() where view_name = 'with_partition'").fetchone()[0]
        assert [r[:4] for r in _read(engine, "with_partition")] == _read(engine, "by_files")
    finally:
        engine.close()


def test_an_older_version_reads_its_own_files(tmp_path) -> None:
    uri = str(tmp_path / "versions")
    write_deltalake(uri, _rows(0, 3, dt.date(2026, 10, 1), with_score=True), partition_by=["_partition_date"])
    write_deltalake(uri, _rows(3, 4, dt.date(2026, 10, 2), with_score=True), partition_by=["_partition_date"], mode="overwrite")
    assert open_table(uri).version() == 1
    pinned = pin_tables({"evolving": _view(uri)}, {"evolving": 0})["evolving"]
    engine = DuckDBEngine()
    try:
        engine.register_delta("v0", pinned, ["user_id"])
        assert _read(engine, "v0") == [(0,), (1,), (2,)]
    finally:
        engine.close()


def test_a_path_duckdb_would_take_as_a_glob_reads_through_deltalakes_dataset(tmp_path) -> None:
    uri = str(tmp_path / "project?1" / "views")  # deltalake cannot write under a path with "["
    write_deltalake(uri, _rows(0, 3, dt.date(2026, 10, 1), with_score=True), partition_by=["_partition_date"])
    pinned = pin_tables({"evolving": _view(uri)}, None)["evolving"]
    engine = DuckDBEngine()
    try:
        engine.register_delta("bracketed", pinned, ["user_id", "score"])
        assert "__hs_dataset__" in engine.connection.sql("select sql from duckdb_views() where view_name = 'bracketed'").fetchone()[0]
        assert _read(engine, "bracketed") == [(0, 0.0), (1, 1 / 7), (2, 2 / 7)]
    finally:
        engine.close()


def test_int96_timestamps_as_spark_writes_them_read_as_the_same_utc_instants(tmp_path) -> None:
    """Spark (spark.sql.parquet.outputTimestampType=INT96) writes zone-less INT96 timestamps under a
    Delta schema that says UTC `timestamp`; read as plain Parquet they must be the same instants."""
    import pyarrow.parquet as pq
    from deltalake import Schema
    from deltalake.transaction import AddAction, create_table_with_add_actions

    uri = tmp_path / "spark_written"
    rows = _rows(0, 4, dt.date(2026, 10, 1), with_score=True).drop_columns(["_partition_date"])
    (uri / "_delta_log").mkdir(parents=True)
    pq.write_table(rows, uri / "part-00000.parquet", use_deprecated_int96_timestamps=True)
    assert pq.read_metadata(uri / "part-00000.parquet").schema.column(1).physical_type == "INT96"
    action = AddAction("part-00000.parquet", (uri / "part-00000.parquet").stat().st_size, {}, 0, True, "{}")
    create_table_with_add_actions(str(uri), Schema.from_arrow(rows.schema), [action])
    view = FeatureView(
        name="spark_written", kind="batch", entities=("user",), join_keys=("user_id",), timestamp_field="ts",
        created_field=None, ttl_seconds=None, online=False, delta_uri=str(uri),
        features=(Feature("tier", "string"), Feature("score", "float64")),
    )
    pinned = pin_tables({"spark_written": view}, None)["spark_written"]
    assert pinned.files is not None
    engine = DuckDBEngine()
    try:
        engine.register_delta("int96", pinned, ["user_id", "ts"])
        assert "read_parquet" in engine.connection.sql("select sql from duckdb_views() where view_name = 'int96'").fetchone()[0]
        read = engine.connection.sql('select user_id, epoch_us("ts") from "int96" order by user_id').fetchall()
        assert read == [(i, int(ts.timestamp()) * 1_000_000) for i, ts in enumerate(rows["ts"].to_pylist())]
        assert engine.connection.sql('select typeof("ts") from "int96" limit 1').fetchone()[0] == "TIMESTAMP WITH TIME ZONE"
    finally:
        engine.close()
