"""Delta -> DynamoDB Local: full and incremental sync, the change feed of every write kind, TTL,
idempotent tables, and convergence after a sync that dies half-way."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from hindsight.online_sync import OnlineStore, ensure_tables, sync
from hindsight.online_sync.codec import EXPIRES_ATTR, KEY_ATTR, WRITER_ATTR
from hindsight.online_sync.state import read_state
from tests.fixtures.dynamodb import delta_schema, make_registry, make_view, write_rows

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)
FEATURES = ["amount", "count", "country"]


def hours(h: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=h)


def row(user: int, h: float, amount: float, created: float | None = None, country: str = "FR") -> dict:
    return {"user_id": user, "ts": hours(h), "created": hours(h if created is None else created),
            "amount": amount, "count": int(amount), "country": country}


class CountingClient:
    """Wraps a boto3 client, counting items written; can fail after N BatchWriteItem calls."""

    def __init__(self, client, fail_after: int | None = None):
        self._client = client
        self.items_written = 0
        self.batches = 0
        self.fail_after = fail_after

    def batch_write_item(self, RequestItems):
        self.batches += 1
        if self.fail_after is not None and self.batches > self.fail_after:
            raise ConnectionError("injected failure")
        self.items_written += sum(len(r) for r in RequestItems.values())
        return self._client.batch_write_item(RequestItems=RequestItems)

    def __getattr__(self, name):
        return getattr(self._client, name)


def amounts(store: OnlineStore, users: list[int]) -> dict[int, float | None]:
    reads = store.read([{"user_id": u} for u in users], {"user_stats": ["amount"]}, now=hours(0))
    return {u: r["user_stats"].values["amount"] for u, r in zip(users, reads)}


def test_sync_writes_the_newest_row_per_entity(tmp_path, online_config):
    view = make_view(tmp_path)
    write_rows(view, [row(1, 0, 1.0), row(1, 2, 2.0), row(1, 1, 1.5), row(2, 5, 5.0),
                      row(3, 1, 3.0, created=1), row(3, 1, 3.5, created=2)])
    registry = make_registry(view)
    report = sync(registry, online_config, progress=False)
    (only,) = report.views
    assert (only.mode, only.rows_read, only.rows_written, only.from_version, only.to_version) == ("full", 6, 3, None, 0)
    reads = OnlineStore(registry, online_config).read([{"user_id": u} for u in (1, 2, 3, 4)], {"user_stats": FEATURES})
    got = [(r["user_stats"].status, r["user_stats"].values, r["user_stats"].event_timestamp) for r in reads]
    assert got == [
        ("PRESENT", {"amount": 2.0, "count": 2, "country": "FR"}, hours(2)),
        ("PRESENT", {"amount": 5.0, "count": 5, "country": "FR"}, hours(5)),
        ("PRESENT", {"amount": 3.5, "count": 3, "country": "FR"}, hours(1)),  # later created wins
        ("NOT_FOUND", {"amount": None, "count": None, "country": None}, None),
    ]


def test_incremental_sync_writes_only_changed_rows_and_never_older_ones(tmp_path, online_config, dynamodb_client):
    view = make_view(tmp_path)
    registry = make_registry(view)
    write_rows(view, [row(u, 10, float(u)) for u in range(100)])
    counting = CountingClient(dynamodb_client)
    sync(registry, online_config, progress=False, client=counting)
    assert counting.items_written == 100

    # Version 1: two entities get newer rows, one gets a late row older than its newest, one is new.
    write_rows(view, [row(1, 11, 111.0), row(2, 12, 222.0), row(3, 5, -3.0, created=20), row(500, 1, 5.0)])
    counting.items_written = 0
    report = sync(registry, online_config, progress=False, client=counting).views[0]
    assert (report.mode, report.from_version, report.to_version) == ("incremental", 0, 1)
    assert (report.rows_read, report.rows_written, report.rows_skipped) == (4, 3, 1)
    assert counting.items_written == 3
    store = OnlineStore(registry, online_config)
    assert amounts(store, [1, 2, 3, 4, 500]) == {1: 111.0, 2: 222.0, 3: 3.0, 4: 4.0, 500: 5.0}

    counting.items_written = 0
    again = sync(registry, online_config, progress=False, client=counting).views[0]
    assert (again.mode, again.rows_written, counting.items_written) == ("unchanged", 0, 0)
    assert read_state(dynamodb_client, online_config.table_name(view.name)).delta_version == 1


def test_change_feed_of_merge_and_overwrite_with_predicate(tmp_path, online_config, dynamodb_client):
    view = make_view(tmp_path)
    registry = make_registry(view)
    write_rows(view, [row(u, 1, float(u)) for u in range(1, 6)])
    sync(registry, online_config, progress=False)
    counting = CountingClient(dynamodb_client)

    # MERGE: correct user 1's row in place (same event) and insert a newer row for user 2.
    source = pa.Table.from_pylist(
        [{**r, "_partition_date": r["ts"].date()} for r in (row(1, 1, 10.0), row(2, 3, 20.0))], schema=delta_schema(view)
    )
    (DeltaTable(view.delta_uri).merge(source, "s.user_id = t.user_id AND s.ts = t.ts AND s.created = t.created",
                                      source_alias="s", target_alias="t")
     .when_matched_update_all().when_not_matched_insert_all().execute())
    report = sync(registry, online_config, progress=False, client=counting).views[0]
    assert (report.mode, report.rows_read, report.rows_written) == ("incremental", 2, 2)

    # Overwrite with a predicate (a backfill of one day): replaces user 3's and user 4's rows.
    write_rows(view, [row(3, 2, 30.0), row(4, 2, 40.0)], mode="overwrite",
               predicate="_partition_date = '2024-03-01'")
    report = sync(registry, online_config, progress=False, client=counting).views[0]
    assert (report.mode, report.rows_written) == ("incremental", 2)
    assert counting.items_written == 4
    assert amounts(OnlineStore(registry, online_config), [1, 2, 3, 4, 5]) == {1: 10.0, 2: 20.0, 3: 30.0, 4: 40.0, 5: 5.0}


def test_full_overwrite_and_a_vacuumed_change_feed_fall_back_to_a_full_resync(tmp_path, online_config, caplog):
    view = make_view(tmp_path)
    registry = make_registry(view)
    write_rows(view, [row(u, 1, float(u)) for u in range(1, 4)])
    sync(registry, online_config, progress=False)

    write_rows(view, [row(u, 2, 10.0 * u) for u in range(1, 4)], mode="overwrite")
    report = sync(registry, online_config, progress=False).views[0]
    assert (report.mode, report.rows_written) == ("incremental", 3)

    write_rows(view, [row(1, 3, 100.0)], mode="overwrite")
    write_rows(view, [row(2, 3, 200.0)])
    table = DeltaTable(view.delta_uri)
    table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    with caplog.at_level(logging.WARNING, logger="hindsight.online_sync.delta_sync"):
        report = sync(registry, online_config, progress=False).views[0]
    assert report.mode == "full" and report.rows_written == 2
    assert "change data feed of versions 2.." in caplog.text and "falling back to a full resync" in caplog.text
    assert amounts(OnlineStore(registry, online_config), [1, 2, 3]) == {1: 100.0, 2: 200.0, 3: 30.0}


def test_full_flag_resyncs_everything(tmp_path, online_config):
    view = make_view(tmp_path)
    registry = make_registry(view)
    write_rows(view, [row(u, 1, float(u)) for u in range(10)])
    sync(registry, online_config, progress=False)
    report = sync(registry, online_config, full=True, progress=False).views[0]
    assert (report.mode, report.rows_written, report.from_version) == ("full", 10, None)


def test_ttl_attribute_is_event_time_plus_ttl(tmp_path, online_config, dynamodb_client):
    # Expiring a day from now: DynamoDB Local deletes expired items in the background, within
    # seconds on a loaded machine, so an item already past its expiry may be gone when read.
    ttl_seconds = int(dt.datetime.now(dt.timezone.utc).timestamp() - T0.timestamp()) + 86_400
    view = make_view(tmp_path, ttl_seconds=ttl_seconds)
    write_rows(view, [row(1, 0, 1.0)])
    sync(make_registry(view), online_config, progress=False)
    table = online_config.table_name(view.name)
    stored = dynamodb_client.get_item(TableName=table, Key={KEY_ATTR: {"S": "1"}, WRITER_ATTR: {"S": "sync"}})["Item"]
    assert int(stored[EXPIRES_ATTR]["N"]) == int(T0.timestamp()) + ttl_seconds
    ttl = dynamodb_client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", EXPIRES_ATTR)


def test_ensure_tables_is_idempotent_and_skips_offline_views(tmp_path, online_config, dynamodb_client):
    registry = make_registry(make_view(tmp_path, "a_view"), make_view(tmp_path, "b_view", online=False))
    first = ensure_tables(registry, online_config)
    second = ensure_tables(registry, online_config)
    name = online_config.table_name("a_view")
    assert first == {name: "created"} and second == {name: "exists"}
    pages = dynamodb_client.get_paginator("list_tables").paginate()
    tables = [table for page in pages for table in page["TableNames"]]
    assert name in tables and online_config.table_name("b_view") not in tables
    assert dynamodb_client.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"


def test_a_sync_failing_half_way_does_not_advance_and_the_rerun_converges(tmp_path, online_config, dynamodb_client):
    view = make_view(tmp_path)
    registry = make_registry(view)
    write_rows(view, [row(u, 1, float(u)) for u in range(300)])
    sync(registry, online_config, progress=False)
    write_rows(view, [row(u, 2, 1000.0 + u) for u in range(300)])

    failing = CountingClient(dynamodb_client, fail_after=4)
    with pytest.raises(ConnectionError, match="injected"):
        sync(registry, online_config, progress=False, client=failing)
    table = online_config.table_name(view.name)
    assert read_state(dynamodb_client, table).delta_version == 0
    store = OnlineStore(registry, online_config)
    assert 0 < sum(v >= 1000 for v in amounts(store, list(range(300))).values()) < 300

    report = sync(registry, online_config, progress=False).views[0]
    assert (report.mode, report.from_version, report.to_version) == ("incremental", 0, 1)
    assert amounts(store, list(range(300))) == {u: 1000.0 + u for u in range(300)}
    entity_items = dynamodb_client.scan(TableName=table, Select="COUNT",
                                        FilterExpression="#w = :s", ExpressionAttributeNames={"#w": WRITER_ATTR},
                                        ExpressionAttributeValues={":s": {"S": "sync"}})["Count"]
    assert entity_items == 300
    assert read_state(dynamodb_client, table).delta_version == 1


KILLED_SYNC = textwrap.dedent("""
    import json, os, signal, sys
    from hindsight.online_sync import OnlineStoreConfig, sync
    from hindsight.online_sync import write_rule
    from hindsight.registry_sync.model import Registry
    config = OnlineStoreConfig(**json.loads(sys.argv[1]))
    registry = Registry.from_dict(json.loads(sys.argv[2]))
    real = write_rule.write_batch
    calls = []
    def die_after_three(client, table, items):
        result = real(client, table, items)
        calls.append(1)  # counted once written: batches run in parallel threads
        if len(calls) >= 3:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no lease release: a real crash
        return result
    write_rule.write_batch = die_after_three
    sync(registry, config, progress=False)
""")


def test_a_killed_sync_process_leaves_a_lease_that_the_next_run_takes_over(tmp_path, online_config):
    import dataclasses
    import json

    view = make_view(tmp_path)
    registry = make_registry(view)
    write_rows(view, [row(u, 1, float(u)) for u in range(500)])
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", KILLED_SYNC, json.dumps(dataclasses.asdict(online_config)),
         json.dumps(registry.to_dict(), default=str)],
        cwd=repo, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == -9, done.stderr
    report = sync(registry, online_config, progress=False).views[0]
    assert (report.mode, report.rows_written) == ("full", 500)
    assert amounts(OnlineStore(registry, online_config), list(range(500))) == {u: float(u) for u in range(500)}


def test_a_live_sync_lease_blocks_another_sync_and_is_renewed(tmp_path, online_config, dynamodb_client):
    import time

    from hindsight.online_sync.state import Lease, SyncInProgress
    from hindsight.online_sync.tables import ensure_table

    view = make_view(tmp_path)
    ensure_table(dynamodb_client, online_config, view)
    table = online_config.table_name(view.name)
    lock_key = {KEY_ATTR: {"S": "_"}, WRITER_ATTR: {"S": "lock"}}
    with Lease(dynamodb_client, table, seconds=3):
        first = float(dynamodb_client.get_item(TableName=table, Key=lock_key)["Item"]["expires_at"]["N"])
        with pytest.raises(SyncInProgress, match="holds the lease"):
            Lease(dynamodb_client, table, seconds=3).acquire()
        # The renewer runs every seconds/3 = 1 s: poll for its write against a deadline instead
        # of sleeping a fixed time that a loaded machine can overrun.
        deadline = time.monotonic() + 10
        renewed = first
        while renewed <= first and time.monotonic() < deadline:
            time.sleep(0.1)
            renewed = float(dynamodb_client.get_item(TableName=table, Key=lock_key)["Item"]["expires_at"]["N"])
        assert renewed > first, "the lease was not renewed within 10 s"
    assert "Item" not in dynamodb_client.get_item(TableName=table, Key=lock_key)
