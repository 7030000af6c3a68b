"""`sync(engine="spark")` on Sail + DynamoDB Local: the same items as the single-process sync, incremental
reads of the added files, newest-wins against pushes, the lease fence on executors, and a driver
CLI killed half-way (SIGKILL of its process group) whose rerun leaves `check_parity` clean."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from hindsight.online_sync import ensure_tables, push, sync
from hindsight.online_sync.codec import KEY_ATTR, WRITER_ATTR
from hindsight.online_sync.newest import open_delta
from hindsight.online_sync.spark_sync import added_files, partition_writer
from hindsight.online_sync.state import Lease, LeaseLost, read_state
from tests.fixtures.dynamodb import make_registry, make_view, write_rows

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def row(user: int, h: float, amount: float | None, created: float | None = None, country: str | None = "FR") -> dict:
    return {"user_id": user, "ts": T0 + dt.timedelta(hours=h),
            "created": None if created is None else T0 + dt.timedelta(hours=created),
            "amount": amount, "count": None if amount is None else int(amount), "country": country}


def items_of(client, table: str) -> dict[str, dict]:
    """Entity key -> item (bookkeeping items left out), over every page of the scan."""
    items, start = [], None
    while True:
        page = client.scan(TableName=table, ConsistentRead=True, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    return {i[KEY_ATTR]["S"]: i for i in items if i[KEY_ATTR]["S"] != "_"}


def test_spark_sync_writes_the_items_the_single_process_sync_writes(tmp_path, online_config, dynamodb_client, sail_remote):
    view = make_view(tmp_path)
    registry = make_registry(view)
    # Ties on event time broken by created time (null created loses), null features, 3 days of files.
    rows = [row(u, h, float(u * 10 + h), created=None if (u + h) % 3 == 0 else h + (u % 2))
            for u in range(60) for h in (1, 25, 25, 49)]
    rows += [row(60, 2, None, country=None), row(61, 3, 5.0, created=3), row(61, 3, 6.0, created=4)]
    write_rows(view, rows)
    on_duckdb = dataclasses.replace(online_config, table_prefix=online_config.table_prefix + "duck_")
    on_spark = dataclasses.replace(online_config, table_prefix=online_config.table_prefix + "spark_")
    sync(registry, on_duckdb, progress=False, client=dynamodb_client)
    report = sync(registry, on_spark, progress=False, client=dynamodb_client, engine="spark",
                  spark_remote=sail_remote, partitions=3).views[0]
    assert (report.engine, report.mode, report.rows_read, report.rows_written, report.rows_skipped) == \
        ("spark", "full", len(rows), 62, 0)
    expected = items_of(dynamodb_client, on_duckdb.table_name(view.name))
    assert len(expected) == 62
    assert items_of(dynamodb_client, on_spark.table_name(view.name)) == expected
    state = read_state(dynamodb_client, on_spark.table_name(view.name))
    assert (state.delta_version, state.newest_event_us) == \
        (0, read_state(dynamodb_client, on_duckdb.table_name(view.name)).newest_event_us)

    # Incremental: only the files the new version added are read; an older row is skipped.
    version = write_rows(view, [row(1, 100, 1.5), row(2, 0, 2.5), row(99, 5, 9.0)])
    snapshot = open_delta(view)
    assert len(added_files(snapshot, view, 0)) == 2  # rows of two days: two new files
    sync(registry, on_duckdb, progress=False, client=dynamodb_client)
    again = sync(registry, on_spark, progress=False, client=dynamodb_client, engine="spark",
                 spark_remote=sail_remote).views[0]
    assert (again.mode, again.from_version, again.to_version) == ("incremental", 0, version)
    assert (again.rows_read, again.rows_written, again.rows_skipped) == (3, 2, 1)
    assert items_of(dynamodb_client, on_spark.table_name(view.name)) == \
        items_of(dynamodb_client, on_duckdb.table_name(view.name))
    unchanged = sync(registry, on_spark, progress=False, client=dynamodb_client, engine="spark",
                     spark_remote=sail_remote).views[0]
    assert (unchanged.mode, unchanged.rows_written) == ("unchanged", 0)


def test_spark_sync_keeps_newer_pushes_and_refuses_unknown_engines(
        tmp_path, online_config, dynamodb_client, sail_remote):
    view = make_view(tmp_path, "pv", push=True)
    registry = make_registry(view)
    write_rows(view, [row(1, 1, 10.0), row(2, 1, 20.0)])
    ensure_tables(registry, online_config, client=dynamodb_client)
    push(registry, online_config, "pv", [row(1, 5, 15.0), row(2, 0, 2.0)], client=dynamodb_client)
    report = sync(registry, online_config, full=True, progress=False, client=dynamodb_client,
                  engine="spark", spark_remote=sail_remote)
    assert (report.views[0].rows_written, report.views[0].rows_skipped) == (1, 1)
    assert "pv: 1 row skipped: newer online (pushed)" in str(report)
    items = items_of(dynamodb_client, online_config.table_name("pv"))
    assert (items["1"]["amount"], items["2"]["amount"]) == ({"N": "15"}, {"N": "20"})

    with pytest.raises(ValueError, match=r"unknown sync engine 'sprak'.*\(did you mean spark\?\)"):
        sync(registry, online_config, engine="sprak")


def test_an_executor_whose_driver_lost_the_lease_writes_nothing(tmp_path, online_config, dynamodb_client):
    view = make_view(tmp_path)
    registry = make_registry(view)
    ensure_tables(registry, online_config, client=dynamodb_client)
    table = online_config.table_name(view.name)
    batch = pa.RecordBatch.from_pylist(
        [{**row(1, 1, 1.0), "_hs_rows": 1}],
        schema=pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us", "UTC")), ("created", pa.timestamp("us", "UTC")),
                          ("amount", pa.float64()), ("count", pa.int64()), ("country", pa.string()),
                          ("_hs_rows", pa.int64())]))
    with Lease(dynamodb_client, table, seconds=30) as lease:
        with pytest.raises(LeaseLost, match="this executor stops writing"):
            list(partition_writer(online_config, view, "a-killed-driver", check_online=False)(iter([batch])))
        assert items_of(dynamodb_client, table) == {}
        (totals,) = list(partition_writer(online_config, view, lease.owner, check_online=False)(iter([batch])))
    assert totals.to_pylist() == [{"written": 1, "skipped": 0, "rows_read": 1, "newest_us": totals["newest_us"][0].as_py()}]
    assert list(items_of(dynamodb_client, table)) == ["1"]


def test_a_cli_killed_half_way_reruns_to_a_clean_parity(tmp_path, online_config, dynamodb_client, sail_remote):
    users = 12_000
    view = make_view(tmp_path)
    registry = make_registry(view)
    write_rows(view, [row(u, 1 + u % 3, float(u)) for u in range(users)])
    ensure_tables(registry, online_config, client=dynamodb_client)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(registry.to_dict(), default=str))
    table = online_config.table_name(view.name)
    env = {**os.environ, "HINDSIGHT_DYNAMODB_ENDPOINT": online_config.endpoint_url,
           "HINDSIGHT_DYNAMODB_TABLE_PREFIX": online_config.table_prefix, "HINDSIGHT_DYNAMODB_REGION": "us-east-1"}
    command = [str(Path(sys.executable).parent / "hindsight"), "sync", "--engine", "spark", "--spark-remote", sail_remote,
               "--registry", str(registry_file), "--no-progress"]
    cli = subprocess.Popen([*command, "--partitions", "1"], cwd=REPO, env=env, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 90
    written = 0
    while written < 1_000 and time.monotonic() < deadline and cli.poll() is None:
        time.sleep(0.1)
        written = dynamodb_client.scan(TableName=table, Select="COUNT")["Count"]
    assert cli.poll() is None, f"the sync ended before it could be killed: {cli.communicate()[0][-2000:]}"
    os.killpg(cli.pid, signal.SIGKILL)  # the CLI and its children: no cleanup, no lease release
    cli.wait(timeout=30)
    assert cli.returncode == -signal.SIGKILL
    assert read_state(dynamodb_client, table) is None  # killed before the state advanced
    assert dynamodb_client.scan(TableName=table, Select="COUNT")["Count"] < users + 2

    rerun = subprocess.run([*command, "--partitions", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert re.search(rf"user_stats\s+full\s+\.\.0\s+{users:,}\s+{users:,}\s+0\s", rerun.stdout), rerun.stdout
    assert read_state(dynamodb_client, table).delta_version == 0
    parity = subprocess.run([str(Path(sys.executable).parent / "hindsight"), "check-parity", "--sample", str(users),
                             "--registry", str(registry_file)], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=180)
    assert parity.returncode == 0, parity.stdout + parity.stderr[-2000:]
    assert f"checked user_stats: {users}; 0 mismatches; 0 online values newer than Delta" in parity.stdout
    items = items_of(dynamodb_client, table)
    assert len(items) == users and {i[WRITER_ATTR]["S"] for i in items.values()} == {"sync"}


def test_spark_sync_of_a_two_key_view_with_string_keys_matches_the_single_process_sync(
        tmp_path, online_config, dynamodb_client, sail_remote):
    view = make_view(tmp_path, "pairs", join_keys=("user_id", "merchant_id"))
    registry = make_registry(view)
    rows = [{**row(u, h, float(u + h)), "merchant_id": m} for u in range(5) for m in ("a", "b", 'q"x') for h in (1, 2)]
    write_rows(view, rows, key_types={"merchant_id": pa.string()})
    on_duckdb = dataclasses.replace(online_config, table_prefix=online_config.table_prefix + "duck_")
    sync(registry, on_duckdb, progress=False, client=dynamodb_client)
    report = sync(registry, online_config, progress=False, client=dynamodb_client, engine="spark",
                  spark_remote=sail_remote).views[0]
    assert (report.engine, report.rows_read, report.rows_written) == ("spark", 30, 15)
    expected = items_of(dynamodb_client, on_duckdb.table_name("pairs"))
    assert sorted(expected)[-1] == '["4","q\\"x"]' and len(expected) == 15
    assert items_of(dynamodb_client, online_config.table_name("pairs")) == expected
