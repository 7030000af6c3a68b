"""Freshness figures and breach rules: Delta statistics, the sync state item, the Prometheus text.

Small real Delta tables; the DynamoDB state item comes from a fake client (the real one is in
tests/integration/test_status.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from prometheus_client import generate_latest
from prometheus_client.utils import floatToGoString

from hindsight.offline_store.freshness import newest_event
from hindsight.online_sync.config import OnlineStoreConfig
from hindsight.online_sync.status import Breach, StatusReport, ViewStatus, human, view_status
from hindsight.registry_sync.model import Feature, FeatureView
from hindsight.serving.pipeline_metrics import families

UTC = dt.timezone.utc
T = dt.datetime(2026, 11, 3, 1, 2, 3, 456789)


def _table(path, times, **kwargs):
    data = pa.table({"id": list(range(len(times))), "ts": pa.array(times, pa.timestamp("us"))})
    write_deltalake(str(path), data, mode="append", **kwargs)
    return DeltaTable(str(path))


def test_newest_event_comes_from_the_statistics_at_millisecond_precision(tmp_path):
    table = _table(tmp_path / "t", [T - dt.timedelta(days=1), T])
    _table(tmp_path / "t", [T - dt.timedelta(hours=5)])
    # Delta truncates timestamp statistics to milliseconds; no data file is read.
    assert newest_event(DeltaTable(str(tmp_path / "t")), "ts") == (T.replace(microsecond=456000, tzinfo=UTC), 0)
    assert table.version() == 0


def test_files_without_statistics_for_the_column_are_scanned(tmp_path):
    # Statistics for the first column only: the timestamp has none, so both files are read.
    _table(tmp_path / "t", [T - dt.timedelta(days=2)], configuration={"delta.dataSkippingNumIndexedCols": "1"})
    table = _table(tmp_path / "t", [T, T - dt.timedelta(days=1)])
    assert newest_event(table, "ts") == (T.replace(tzinfo=UTC), 2)


def test_an_empty_table_has_no_newest_event(tmp_path):
    table = _table(tmp_path / "t", [])
    assert newest_event(table, "ts") == (None, 0)


class FakeDynamoDB:
    """get_item of the state item only."""

    def __init__(self, item: dict) -> None:
        self.item = item

    def get_item(self, **_):
        return {"Item": self.item}


def _view(tmp_path, **changes) -> FeatureView:
    view = FeatureView("v", "aggregation", ("user",), ("id",), "ts", None, 86400, True, str(tmp_path / "t"),
                       (Feature("x", "int64"),), expected_freshness_seconds=86400, expected_freshness_source="ttl")
    return dataclasses.replace(view, **changes)


def _state(table_id: str, version: int, synced_at: dt.datetime, **extra) -> dict:
    item = {"delta_table_id": {"S": table_id}, "delta_version": {"N": str(version)},
            "synced_at": {"S": synced_at.isoformat()}, "syncs": {"N": "4"}, "rows_written": {"N": "10"}}
    return {**item, **extra}


def test_a_failed_sync_after_the_last_good_one_is_a_breach(tmp_path):
    table = _table(tmp_path / "t", [T])
    now = T.replace(tzinfo=UTC) + dt.timedelta(hours=2)
    item = _state(table.metadata().id, 0, now - dt.timedelta(hours=1), errors={"N": "2"},
                  last_error={"S": "ValueError: boom"}, last_error_at={"S": (now - dt.timedelta(minutes=5)).isoformat()})
    status = view_status(_view(tmp_path), now, FakeDynamoDB(item), OnlineStoreConfig(table_prefix="p_"))
    assert status.kind == "aggregation"
    assert (status.versions_behind, status.sync_lag_seconds, status.syncs, status.sync_errors) == (0, 0.0, 4, 2)
    assert status.breaches == (Breach("v", "sync_failing", f"the last sync failed at {now - dt.timedelta(minutes=5):%Y-%m-%d %H:%M:%S}Z: "
                                                           "ValueError: boom", "fix the error above, then `hindsight sync --select v`"),)


def test_a_recreated_delta_table_is_wholly_unsynced(tmp_path):
    table = _table(tmp_path / "t", [T])
    _table(tmp_path / "t", [T])
    now = dt.datetime.now(UTC)
    item = _state("an-older-table", 7, now - dt.timedelta(minutes=1))
    status = view_status(_view(tmp_path, expected_freshness_seconds=None), now, FakeDynamoDB(item), OnlineStoreConfig())
    assert status.versions_behind == 2  # versions 0 and 1 of the new table
    created = dt.datetime.fromtimestamp(table.history()[-1]["timestamp"] / 1000, UTC)
    assert status.sync_lag_seconds == (now - created).total_seconds()
    assert status.breaches == ()  # no expectation: figures only


def test_human_durations():
    assert [human(s) for s in (None, 0, 59, 61, 3600, 86400, 90061)] == ["-", "0s", "59s", "1m01s", "1h00m", "1d", "1d01h"]


def test_pipeline_gauges_in_prometheus_text():
    checked = dt.datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    view = ViewStatus(
        view="v", kind="batch", online=True, expected_freshness_seconds=86400, expected_freshness_source="ttl",
        delta_version=5, offline_newest_event=checked - dt.timedelta(hours=3), offline_age_seconds=10800.0,
        last_materialized_at=checked - dt.timedelta(hours=1), online_newest_event=checked - dt.timedelta(hours=4),
        online_age_seconds=14400.0, synced_version=4, last_synced_at=checked - dt.timedelta(hours=2), versions_behind=1,
        sync_lag_seconds=3600.0, syncs=3, sync_rows_written=120, sync_errors=1,
        breaches=(Breach("v", "sync_lag", "m", "f"),),
    )
    offline_only = ViewStatus(view="o", kind="batch", online=False, expected_freshness_seconds=None, expected_freshness_source="")
    report = StatusReport(checked_at=checked, registry_version=3, views=(view, offline_only))

    class Collected:
        def collect(self):
            # Scraped 60 s after the snapshot: ages and the lag have grown by 60 s.
            return families(report, checked.timestamp() + 60)

    lines = set(generate_latest(Collected()).decode().splitlines())
    expected = {
        f'hindsight_feature_view_newest_event_timestamp_seconds{{store="offline",view="v"}} {floatToGoString((checked - dt.timedelta(hours=3)).timestamp())}',
        'hindsight_feature_view_age_seconds{store="offline",view="v"} 10860.0',
        'hindsight_feature_view_age_seconds{store="online",view="v"} 14460.0',
        'hindsight_feature_view_expected_freshness_seconds{view="v"} 86400.0',
        'hindsight_feature_view_breaches{view="v"} 1.0',
        'hindsight_feature_view_breaches{view="o"} 0.0',
        'hindsight_feature_view_delta_version{view="v"} 5.0',
        'hindsight_feature_view_synced_delta_version{view="v"} 4.0',
        'hindsight_feature_view_sync_versions_behind{view="v"} 1.0',
        'hindsight_feature_view_sync_lag_seconds{view="v"} 3660.0',
        'hindsight_sync_runs_total{view="v"} 3.0',
        'hindsight_sync_rows_written_total{view="v"} 120.0',
        'hindsight_sync_errors_total{view="v"} 1.0',
        f"hindsight_pipeline_status_timestamp_seconds {floatToGoString(checked.timestamp())}",
    }
    assert expected <= lines, sorted(expected - lines)
    # An offline view without an expectation exports no online or expectation figures.
    assert not [line for line in lines if 'view="o"' in line and "breaches" not in line]


def test_expected_freshness_that_does_not_parse_is_a_registry_problem():
    from hindsight.registry_sync.manifest import expected_freshness

    problems: list[str] = []
    assert expected_freshness({"expected_freshness": "soon", "ttl": "1d"}, 86400, "feature view v (models/v.sql)", problems) == (None, "")
    assert problems == ["feature view v (models/v.sql): expected_freshness cannot parse duration 'soon': expected a number "
                        "and a unit (w, d, h, m, s), like '30d', '12h' or '1d12h'"]
    # dbt's build_after in minutes, and a ttl that a schedule overrides.
    assert expected_freshness({"freshness": {"build_after": {"count": 30, "period": "minute"}}}, 86400, "v", []) == (3600, "schedule")
    assert expected_freshness({"freshness": {"build_after": {"count": 0, "period": "hour"}}}, None, "v", []) == (None, "")
