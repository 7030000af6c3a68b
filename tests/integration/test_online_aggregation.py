"""Aggregation views online, for real: events -> reference tiles (the oracle) -> a Delta table ->
`sync` into DynamoDB Local -> `OnlineStore.read(now=t)` equal to the oracle at t; incremental sync,
TTL attribute, deletes, check-parity, push refused, and the HTTP API at wall-clock time."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
import requests
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings

from hindsight.cli import main
from hindsight.online_sync import OnlineStore, check_parity, push, sync
from hindsight.online_sync.codec import EXPIRES_ATTR, KEY_ATTR, WRITER_ATTR
from hindsight.online_sync.push import PushRefused
from hindsight.online_sync.tile_items import decode_offsets, encode_values, longest_window_seconds
from hindsight.registry_sync.model import Registry
from tests.aggregation_oracle import expected_features, reference_tiles
from tests.aggregation_strategies import SCHEMA, AggregationCase, aggregation_cases
from tests.fixtures.aggregation_online import assert_values, case_view, future_base, shifted
from tests.fixtures.serving import start_server

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
SPEC = [
    {"column": "*", "name": "txn", "functions": ["count"]},
    {"column": "amount", "functions": ["count", "sum", "mean", "min", "max", "stddev", "last"]},
    {"column": "quantity", "functions": ["sum", "mean", "stddev", "min", "max"], "windows": ["1d"]},
    {"column": "country", "functions": ["count", "min", "max", "last"]},
]


def write_tiles(uri: str, events: pa.Table, case: AggregationCase, mode: str = "overwrite") -> None:
    tiles = reference_tiles(events, ["user_id"], "ts", case.aggregations, case.interval)
    write_deltalake(uri, tiles.replace_schema_metadata(None), mode=mode, partition_by=["_partition_date"],
                    configuration={"delta.enableChangeDataFeed": "true"})


def read_all(store: OnlineStore, view_name: str, features: list[str], users: list[int], t: dt.datetime):
    return store.read([{"user_id": u} for u in users], {view_name: features}, now=t)


def check_reads(store, view, events, users, times):
    names = [f.name for f in view.features]
    for t in times:
        for user, read in zip(users, read_all(store, view.name, names, users, t)):
            got = read[view.name]
            expected = expected_features(events, user, t, join_keys=("user_id",), timestamp="ts",
                                         aggregations=view.aggregations, interval=view.aggregation_interval_seconds)
            assert_values(got.values, expected, f"user {user} at {t}")
            if got.status == "NOT_FOUND":
                assert all(v in (0, None) for v in expected.values()), f"user {user} at {t}: NOT_FOUND with events"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(case=aggregation_cases())
def test_sync_then_read_at_random_times_equals_the_oracle(case, online_config, tmp_path):
    case = shifted(case)
    view = case_view(case, str(tmp_path / f"agg_{uuid.uuid4().hex[:8]}"), name=f"agg_{uuid.uuid4().hex[:8]}")
    registry = Registry(project="test", feature_views=(view,))
    write_tiles(view.delta_uri, case.events, case)
    last = max(case.events["ts"].to_pylist())
    report = sync(registry, online_config, progress=False, now=last)
    assert report.views[0].mode == "full"
    users = [*case.entities, 999]  # 999 has no events: NOT_FOUND, counts 0
    longest = dt.timedelta(seconds=longest_window_seconds(view))
    interval = dt.timedelta(seconds=view.aggregation_interval_seconds)
    seconds = view.aggregation_interval_seconds
    boundary = dt.datetime.fromtimestamp((int(last.timestamp()) // seconds + 1) * seconds, UTC)
    times = sorted({t for t in case.query_times if t >= last} | {boundary, boundary - dt.timedelta(microseconds=1),
                                                                 last + longest, last + longest + interval})
    check_reads(OnlineStore(registry, online_config), view, case.events, users, times)


def _case(events: list[tuple[int, dt.datetime, float | None, int | None, str | None]]) -> AggregationCase:
    rows = [{"user_id": u, "ts": t, "amount": a, "quantity": q, "country": c} for u, t, a, q, c in events]
    return AggregationCase(interval="1h", windows=["1h", "3h", "1d"], aggregations=SPEC,
                           events=pa.Table.from_pylist(rows, schema=SCHEMA), entities=sorted({r[0] for r in events}))


def test_incremental_sync_rewrites_only_entities_whose_tiles_changed(online_config, dynamodb_client, tmp_path):
    hour = dt.timedelta(hours=1)
    start = future_base()  # items expire in the future: DynamoDB Local's TTL sweeper keeps them
    first = [(1, start + 0.5 * hour, 10.0, 1, "FR"), (1, start + 2.25 * hour, 20.0, 2, None),
             (2, start + 1.5 * hour, 5.0, None, "DE"), (3, start + 2 * hour, 1.0, 3, "ES")]
    case = _case(first)
    view = case_view(case, str(tmp_path / "txn"), name="txn")
    registry = Registry(project="test", feature_views=(view,))
    write_tiles(view.delta_uri, case.events, case)
    sync_1 = start + 3 * hour
    assert sync(registry, online_config, progress=False, now=sync_1).views[0].rows_written == 3
    table = online_config.table_name("txn")
    item = dynamodb_client.get_item(TableName=table, Key={KEY_ATTR: {"S": "1"}, WRITER_ATTR: {"S": "sync"}})["Item"]
    ttl = dynamodb_client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", EXPIRES_ATTR)
    # TTL: the newest tile starts at start+2h; the longest window is 1 day.
    assert int(item[EXPIRES_ATTR]["N"]) == int((start + 2 * hour + dt.timedelta(days=1)).timestamp())

    # New events for users 1 and 4: their tile rows are appended (earlier rows unchanged).
    later = [(1, start + 3.5 * hour, 30.0, 4, "DE"), (4, start + 3.75 * hour, 2.0, 1, "IT")]
    everything = _case(first + later)
    all_tiles = reference_tiles(everything.events, ["user_id"], "ts", SPEC, "1h").replace_schema_metadata(None)
    new_rows = all_tiles.filter(pa.compute.greater(all_tiles["ts"], pa.scalar(sync_1, pa.timestamp("us", tz="UTC"))))
    assert new_rows.num_rows == 2
    write_deltalake(view.delta_uri, new_rows, mode="append", partition_by=["_partition_date"])
    before_2 = dynamodb_client.get_item(TableName=table, Key={KEY_ATTR: {"S": "2"}, WRITER_ATTR: {"S": "sync"}})["Item"]
    sync_2 = start + 4 * hour
    report = sync(registry, online_config, progress=False, now=sync_2).views[0]
    assert (report.mode, report.rows_read, report.rows_written, report.items_deleted) == ("incremental", 2, 2, 0)
    after_2 = dynamodb_client.get_item(TableName=table, Key={KEY_ATTR: {"S": "2"}, WRITER_ATTR: {"S": "sync"}})["Item"]
    assert after_2 == before_2
    store = OnlineStore(registry, online_config)
    check_reads(store, view, everything.events, [1, 2, 3, 4, 5],
                [sync_2, start + 5 * hour, start + 6 * hour - dt.timedelta(microseconds=1), start + dt.timedelta(days=2)])

    # A backfill that removes user 3's events: its item goes, the others stay.
    DeltaTable(view.delta_uri).delete("user_id = 3")
    full_report = sync(registry, online_config, progress=False, now=sync_2)
    report = full_report.views[0]
    assert (report.mode, report.rows_written, report.items_deleted) == ("incremental", 0, 1)
    assert "txn: 1 item deleted (entities left without tiles)" in str(full_report)
    read = read_all(store, "txn", ["txn_count_1d", "amount_sum_1d"], [3], sync_2)[0]["txn"]
    assert (read.status, read.values, read.event_timestamp) == ("NOT_FOUND", {"txn_count_1d": 0, "amount_sum_1d": None},
                                                                 None)
    # A full resync writes the same items again.
    assert sync(registry, online_config, progress=False, now=sync_2, full=True).views[0].rows_written == 3
    check_reads(store, view, _case(first[:3] + later).events, [1, 2, 3, 4], [sync_2, start + dt.timedelta(hours=27)])


def _recent_case(now: dt.datetime) -> AggregationCase:
    """Events in the last hours before `now`: parity and the HTTP API read at wall-clock time."""
    hour = dt.timedelta(hours=1)
    return _case([(1, now - 20 * hour, 3.0, 2, "FR"), (1, now - 2 * hour, 4.5, 1, "DE"), (1, now - 0.2 * hour, 8.0, 5, None),
                  (2, now - 5 * hour, None, 7, "ES"), (3, now - 30 * hour, 1.0, 1, "IT")])


def test_check_parity_compares_served_values(online_config, dynamodb_client, tmp_path):
    now = dt.datetime.now(UTC)
    case = _recent_case(now)
    view = case_view(case, str(tmp_path / "txn"), name="txn")
    registry = Registry(project="test", feature_views=(view,))
    write_tiles(view.delta_uri, case.events, case)
    sync(registry, online_config, progress=False)
    report = check_parity(registry, online_config, sample=10)
    assert report.ok and report.checked == {"txn": 2}, report  # user 3's tiles are all older than 1 day
    table = online_config.table_name("txn")
    key = {KEY_ATTR: {"S": "1"}, WRITER_ATTR: {"S": "sync"}}
    item = dynamodb_client.get_item(TableName=table, Key=key)["Item"]
    _, _, offsets = decode_offsets(item["_hs_tiles"]["B"])
    item["_events"] = {"B": encode_values([9] * len(offsets), "B")}
    dynamodb_client.put_item(TableName=table, Item=item)
    report = check_parity(registry, online_config, sample=10)
    assert [(m.entity, m.problem[:len("value differs: txn_count_")]) for m in report.mismatches] == [
        ({"user_id": 1}, "value differs: txn_count_")]
    dynamodb_client.delete_item(TableName=table, Key=key)
    report = check_parity(registry, online_config, sample=10)
    assert [(m.entity, m.problem) for m in report.mismatches] == [({"user_id": 1}, "missing online")]


def test_push_is_refused_naming_the_view(online_config, tmp_path):
    case = _recent_case(dt.datetime.now(UTC))
    view = case_view(case, str(tmp_path / "txn"), name="txn")
    registry = Registry(project="test", feature_views=(view,))
    with pytest.raises(PushRefused, match="push to 'txn': it is an aggregation feature view"):
        push(registry, online_config, "txn", [{"user_id": 1, "ts": dt.datetime.now(UTC)}])
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(registry.to_dict()))
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": online_config.endpoint_url,
           "HINDSIGHT_DYNAMODB_TABLE_PREFIX": online_config.table_prefix}
    result = CliRunner().invoke(main, ["push", "txn", "--registry", str(registry_file)], input='{"user_id": 1}', env=env)
    assert result.exit_code == 1
    assert "push to 'txn': it is an aggregation feature view" in result.output
    assert "run dbt and `hindsight sync`" in result.output


def test_http_api_at_wall_clock_time_equals_the_oracle(online_config, tmp_path: Path):
    now = dt.datetime.now(UTC)
    case = _recent_case(now)
    view = case_view(case, str(tmp_path / "txn"), name="txn")
    registry = Registry(project="test", feature_views=(view,))
    write_tiles(view.delta_uri, case.events, case)
    sync(registry, online_config, progress=False)
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": online_config.endpoint_url,
           "HINDSIGHT_DYNAMODB_TABLE_PREFIX": online_config.table_prefix}
    server = start_server(registry, tmp_path / "server", env, workers=1)
    try:
        users = [1, 2, 3, 42]
        body = {"features": ["txn:*"], "entities": [{"user_id": u} for u in users], "include_metadata": True}
        for _ in range(5):
            before = dt.datetime.now(UTC)
            response = requests.post(server.url + "/v1/features", json=body, timeout=10)
            after = dt.datetime.now(UTC)
            assert response.status_code == 200, response.text
            results = response.json()["results"]
            expected = [[expected_features(case.events, u, t, **case.oracle_args) for u in users] for t in (before, after)]
            if expected[0] == expected[1]:
                break  # no interval boundary between the two clock reads: the answer is determined
            time.sleep(0.5)
        else:
            pytest.fail("an interval boundary fell inside every request")
        for user, result, want in zip(users, results, expected[0]):
            # JSON: timestamps and floats come back as JSON values; compare features by the oracle
            assert_values(result["features"], want, f"user {user} over HTTP")
        assert results[3]["features"]["txn_count_1h"] == 0 and results[3]["features"]["amount_sum_1d"] is None
        assert results[3]["metadata"]["txn_count_1h"] == {"status": "NOT_FOUND", "event_timestamp": None}
        status = results[0]["metadata"]["amount_mean_1d"]
        assert status["status"] == "PRESENT"
        newest = max(t for u, t in zip(case.events["user_id"].to_pylist(), case.events["ts"].to_pylist()) if u == 1)
        assert dt.datetime.fromisoformat(status["event_timestamp"].replace("Z", "+00:00")) == newest
    finally:
        server.stop()


class _FailingWrites:
    """A boto3 client whose BatchWriteItem fails after `allowed` calls (a sync killed half-way)."""

    def __init__(self, client, allowed: int) -> None:
        self._client, self.allowed = client, allowed

    def batch_write_item(self, RequestItems):
        if self.allowed <= 0:
            raise ConnectionError("injected failure")
        self.allowed -= 1
        return self._client.batch_write_item(RequestItems=RequestItems)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_sync_killed_half_way_leaves_the_state_and_the_rerun_converges(online_config, dynamodb_client, tmp_path):
    from hindsight.online_sync.state import read_state

    start = future_base()
    hour = dt.timedelta(hours=1)
    first = [(u, start + (u % 5) * hour, float(u), u, "FR") for u in range(1, 80)]
    case = _case(first)
    view = case_view(case, str(tmp_path / "txn"), name="txn")
    registry = Registry(project="test", feature_views=(view,))
    write_tiles(view.delta_uri, case.events, case)
    sync(registry, online_config, progress=False, now=start + 5 * hour)
    table = online_config.table_name("txn")
    version = read_state(dynamodb_client, table).delta_version
    later = [(u, start + 6 * hour, 100.0 + u, 1, "DE") for u in range(1, 80)]
    everything = _case(first + later)
    tiles = reference_tiles(everything.events, ["user_id"], "ts", SPEC, "1h").replace_schema_metadata(None)
    write_deltalake(view.delta_uri, tiles.filter(pa.compute.greater(tiles["ts"], pa.scalar(start + 5 * hour, tiles["ts"].type))),
                    mode="append", partition_by=["_partition_date"])
    with pytest.raises(ConnectionError):
        sync(registry, online_config, progress=False, now=start + 7 * hour, client=_FailingWrites(dynamodb_client, 1))
    assert read_state(dynamodb_client, table).delta_version == version
    report = sync(registry, online_config, progress=False, now=start + 7 * hour).views[0]
    assert (report.mode, report.rows_written) == ("incremental", 79)
    check_reads(OnlineStore(registry, online_config), view, everything.events, [1, 2, 50, 79],
                [start + 7 * hour, start + dt.timedelta(hours=30)])
