"""A changed `partition_by` takes a full refresh; any other write into the old layout is refused."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from hindsight.offline_store.delta_writer import FeatureViewWriteError, WriteRequest, write_feature_view


def rows() -> pa.Table:
    day = dt.date(2026, 11, 2)
    return pa.table({
        "user_id": [1, 2],
        "event_timestamp": pa.array([dt.datetime(2026, 11, 2, 9), dt.datetime(2026, 11, 2, 10)], pa.timestamp("us", "UTC")),
        "score": [0.5, 0.7],
        "_partition_date": [day, day],
        "event_month": [dt.date(2026, 11, 1)] * 2,
    })


def request(tmp_path, mode: str, partition_by: tuple[str, ...]) -> WriteRequest:
    return WriteRequest(
        model="user_stats", uri=str(tmp_path / "user_stats"), mode=mode,
        unique_key=("user_id", "event_timestamp"), timestamp_field="event_timestamp", partition_by=partition_by,
        on_schema_change="append_new_columns",
        **({"range_start": "2026-11-02T00:00:00", "range_end": "2026-11-03T00:00:00"} if mode == "backfill" else {}),
    )


@pytest.mark.parametrize("mode", ["incremental", "backfill"])
def test_a_changed_partition_by_is_refused_until_a_full_refresh(tmp_path, mode):
    write_feature_view(rows(), request(tmp_path, "full_refresh", ("_partition_date",)))

    with pytest.raises(FeatureViewWriteError) as refused:
        write_feature_view(rows(), request(tmp_path, mode, ("event_month",)))

    assert str(refused.value) == (
        "feature view user_stats: its Delta table is partitioned by ['_partition_date'], but partition_by is now "
        "['event_month']; only a full refresh rewrites the partitioning: run `dbt run --full-refresh --select "
        "user_stats`, or set partition_by back"
    )
    assert DeltaTable(str(tmp_path / "user_stats")).version() == 0
    write_feature_view(rows(), request(tmp_path, "full_refresh", ("event_month",)))
    assert DeltaTable(str(tmp_path / "user_stats")).metadata().partition_columns == ["event_month"]
    write_feature_view(rows(), request(tmp_path, mode, ("event_month",)))
