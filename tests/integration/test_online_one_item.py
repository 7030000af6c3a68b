"""One item per view and entity: push and sync share it under newest-wins, and the push items of
older versions are folded into it once (DynamoDB Local, real Delta tables)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from hindsight.online_sync import OnlineStore, ensure_tables, push, sync
from hindsight.online_sync.codec import KEY_ATTR, ORDER_ATTR, WRITER_ATTR, order_key, to_micros
from tests.fixtures.dynamodb import make_registry, make_view, write_rows

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)


def row(user: int, hours: int, amount: float) -> dict:
    return {"user_id": user, "ts": T0 + dt.timedelta(hours=hours), "created": None, "amount": amount,
            "count": hours, "country": "FR"}


def items_of(client, table: str) -> dict[tuple[str, str], dict]:
    items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return {(i[KEY_ATTR]["S"], i[WRITER_ATTR]["S"]): i for i in items if i[KEY_ATTR]["S"] != "_"}


def amounts(registry, config, client, users) -> list:
    reads = OnlineStore(registry, config, client).read([{"user_id": u} for u in users], {"pv": ["amount"]}, now=T0)
    return [r["pv"].values["amount"] for r in reads]


def test_a_newer_push_survives_a_sync_and_an_older_one_does_not_win(tmp_path, online_config, dynamodb_client):
    view = make_view(tmp_path, "pv", push=True)
    registry = make_registry(view)
    write_rows(view, [row(1, 1, 10.0), row(2, 1, 20.0)])
    ensure_tables(registry, online_config, client=dynamodb_client)
    # Entity 1 gets a push newer than anything in Delta; entity 2 one older than its Delta row.
    report = push(registry, online_config, "pv", [row(1, 5, 15.0), row(2, 0, 2.0)], client=dynamodb_client)
    assert (report.written, report.stale) == (2, 0)  # nothing was online yet
    full = sync(registry, online_config, full=True, progress=False, client=dynamodb_client)
    # The full sync's conditional write loses to the newer push of entity 1 and beats entity 2's push.
    assert (full.views[0].rows_written, full.views[0].rows_skipped) == (1, 1)
    assert "pv: 1 row skipped: newer online (pushed)" in str(full)
    assert amounts(registry, online_config, dynamodb_client, [1, 2]) == [15.0, 20.0]
    # Delta moves on: entity 1's new Delta row is still older than the push, entity 2's is newer.
    write_rows(view, [row(1, 3, 13.0), row(2, 4, 24.0)])
    incremental = sync(registry, online_config, progress=False, client=dynamodb_client)
    assert incremental.views[0].mode == "incremental"
    assert (incremental.views[0].rows_written, incremental.views[0].rows_skipped) == (1, 1)
    assert "pv: 1 row skipped: newer online (pushed)" in str(incremental)
    assert amounts(registry, online_config, dynamodb_client, [1, 2]) == [15.0, 24.0]
    # A push older than the synced row changes nothing online; one item per entity, all "sync".
    stale = push(registry, online_config, "pv", [row(2, 2, 99.0)], client=dynamodb_client)
    assert (stale.written, stale.stale) == (0, 1)
    assert amounts(registry, online_config, dynamodb_client, [1, 2]) == [15.0, 24.0]
    assert sorted(items_of(dynamodb_client, online_config.table_name("pv"))) == [("1", "sync"), ("2", "sync")]


def _old_item(key: str, writer: str, hours: int, amount: float) -> dict:
    order = order_key(to_micros(T0 + dt.timedelta(hours=hours)), None)
    return {KEY_ATTR: {"S": key}, WRITER_ATTR: {"S": writer}, ORDER_ATTR: {"N": str(order)}, "amount": {"N": repr(amount)}}


def test_push_items_of_an_older_version_are_folded_once(tmp_path, online_config, dynamodb_client):
    view = make_view(tmp_path, "pv", push=True)
    registry = make_registry(view)
    write_rows(view, [row(1, 1, 10.0), row(2, 1, 20.0)])
    table = online_config.table_name("pv")
    assert ensure_tables(registry, online_config, client=dynamodb_client)[table] == "created"
    # What an older version left: two items per entity, and no layout marker.
    dynamodb_client.delete_item(TableName=table, Key={KEY_ATTR: {"S": "_"}, WRITER_ATTR: {"S": "layout"}})
    for item in (_old_item("1", "sync", 1, 10.0), _old_item("1", "push", 3, 13.0),   # newer push: folded
                 _old_item("2", "sync", 4, 24.0), _old_item("2", "push", 2, 22.0),   # older push: dropped
                 _old_item("3", "push", 1, 31.0)):                                 # push only: folded
        dynamodb_client.put_item(TableName=table, Item=item)
    assert ensure_tables(registry, online_config, client=dynamodb_client)[table] == "folded 2 push items"
    items = items_of(dynamodb_client, table)
    assert sorted(items) == [("1", "sync"), ("2", "sync"), ("3", "sync")]
    assert [items[(k, "sync")]["amount"]["N"] for k in "123"] == ["13", "24", "31"]
    assert amounts(registry, online_config, dynamodb_client, [1, 2, 3]) == [13.0, 24.0, 31.0]
    # Once: a second apply and a sync find the marker and fold nothing.
    assert ensure_tables(registry, online_config, client=dynamodb_client)[table] == "exists"
    report = sync(registry, online_config, progress=False, client=dynamodb_client)
    assert report.views[0].push_items_folded == 0 and "folded" not in str(report)


def test_sync_reports_the_fold(tmp_path, online_config, dynamodb_client):
    view = make_view(tmp_path, "pv", push=True)
    registry = make_registry(view)
    write_rows(view, [row(1, 1, 10.0)])
    table = online_config.table_name("pv")
    ensure_tables(registry, online_config, client=dynamodb_client)
    dynamodb_client.delete_item(TableName=table, Key={KEY_ATTR: {"S": "_"}, WRITER_ATTR: {"S": "layout"}})
    dynamodb_client.put_item(TableName=table, Item=_old_item("1", "push", 9, 19.0))
    report = sync(registry, online_config, progress=False, client=dynamodb_client)
    assert report.views[0].push_items_folded == 1
    assert "pv: 1 push item of an older version folded into the entities' items" in str(report)
    # The folded push (hour 9) is newer than the Delta row (hour 1): the sync's write skipped it.
    assert (report.views[0].rows_written, report.views[0].rows_skipped) == (0, 1)
    assert amounts(registry, online_config, dynamodb_client, [1]) == [19.0]


def test_the_read_clients_fast_decoding_matches_botocores(tmp_path, online_config, dynamodb_client):
    view = make_view(tmp_path, "pv", {"amount": "float64", "count": "int64", "country": "string", "at": "timestamp"})
    registry = make_registry(view)
    rows = [{**row(u, u, u / 3), "at": T0, "country": None if u % 2 else "ÉS"} for u in range(30)]
    write_rows(view, rows)
    sync(registry, online_config, progress=False, client=dynamodb_client)
    store = OnlineStore(registry, online_config)
    request = {online_config.table_name("pv"): {
        "Keys": [{KEY_ATTR: {"S": str(u)}, WRITER_ATTR: {"S": "sync"}} for u in range(40)]}}
    table = online_config.table_name("pv")
    fast, plain = store.client.batch_get_item(RequestItems=request), dynamodb_client.batch_get_item(RequestItems=request)
    assert set(fast) == set(plain) == {"Responses", "UnprocessedKeys", "ResponseMetadata"}
    # Item order within a table is not defined: compare as sorted JSON.
    assert len(fast["Responses"][table]) == 30
    assert sorted(json.dumps(i, sort_keys=True) for i in fast["Responses"][table]) == \
        sorted(json.dumps(i, sort_keys=True) for i in plain["Responses"][table])
    # Errors still go through botocore's parser: a missing table is its ResourceNotFoundException.
    with pytest.raises(store.client.exceptions.ResourceNotFoundException):
        store.client.batch_get_item(RequestItems={"no_such_table": request[online_config.table_name("pv")]})
