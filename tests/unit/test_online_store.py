"""The read path, config and batching against fake clients (no DynamoDB)."""

from __future__ import annotations

import datetime as dt

import pytest

from hindsight.online_sync.batching import BoundedExecutor, RetriesExhausted, get_batch, write_batch
from hindsight.online_sync.codec import KEY_ATTR, ORDER_ATTR, WRITER_ATTR, order_key, to_micros
from hindsight.online_sync.config import OnlineStoreConfig
from hindsight.online_sync.store import OnlineStore
from hindsight.registry_sync.model import Feature, FeatureView, OnDemandFeatureView, Registry

UTC = dt.timezone.utc


def view(name: str, keys: tuple[str, ...] = ("user_id",), ttl: int | None = None, online: bool = True) -> FeatureView:
    return FeatureView(name, "batch", keys, keys, "ts", None, ttl, online, f"/tmp/{name}",
                       (Feature("a", "int64"), Feature("b", "string"), Feature("size", "float64")))


REGISTRY = Registry(
    "p",
    feature_views=(view("v1"), view("v2", ("user_id", "merchant_id"), ttl=3600), view("off", online=False)),
    on_demand_views=(OnDemandFeatureView("odv", (), (), (), "m:f"),),
)


class FakeDynamo:
    """Answers BatchGetItem from a dict of items; can hold keys back as unprocessed."""

    def __init__(self, items=None, unprocessed_rounds: int = 0):
        self.items = items or {}
        self.calls: list[dict] = []
        self.unprocessed_rounds = unprocessed_rounds

    def batch_get_item(self, RequestItems):
        self.calls.append(RequestItems)
        assert sum(len(r["Keys"]) for r in RequestItems.values()) <= 100
        if self.unprocessed_rounds:
            self.unprocessed_rounds -= 1
            return {"Responses": {}, "UnprocessedKeys": RequestItems}
        responses = {}
        for table, request in RequestItems.items():
            for key in request["Keys"]:
                item = self.items.get((table, key[KEY_ATTR]["S"], key[WRITER_ATTR]["S"]))
                if item:
                    responses.setdefault(table, []).append(item)
        return {"Responses": responses, "UnprocessedKeys": {}}


def item(key: str, writer: str, when: dt.datetime, **attrs):
    return {KEY_ATTR: {"S": key}, WRITER_ATTR: {"S": writer}, ORDER_ATTR: {"N": str(order_key(to_micros(when), None))},
            **attrs}


CONFIG = OnlineStoreConfig(endpoint_url="http://fake", table_prefix="p_", region="us-east-1")
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)


def test_one_row_over_several_views_is_one_call_projecting_only_the_asked_features():
    fake = FakeDynamo({("p_v1", "7", "sync"): item("7", "sync", T0, a={"N": "1"}, b={"S": "x"})})
    store = OnlineStore(REGISTRY, CONFIG, client=fake)
    result = store.read([{"user_id": 7, "merchant_id": 3}], {"v1": ["a"], "v2": ["size"]}, now=T0)
    assert len(fake.calls) == 1
    call = fake.calls[0]
    assert set(call) == {"p_v1", "p_v2"}
    assert call["p_v1"]["Keys"] == [{KEY_ATTR: {"S": "7"}, WRITER_ATTR: {"S": "sync"}}]  # one item per entity
    names = call["p_v1"]["ExpressionAttributeNames"]
    projected = {names[n.strip()] for n in call["p_v1"]["ProjectionExpression"].split(",")}
    assert projected == {KEY_ATTR, ORDER_ATTR, "a"}
    # "size" is a DynamoDB reserved word: it only appears through a placeholder.
    assert "size" in call["p_v2"]["ExpressionAttributeNames"].values()
    assert result[0]["v1"].status == "PRESENT" and result[0]["v1"].values == {"a": 1}
    assert result[0]["v1"].event_timestamp == T0
    assert result[0]["v2"].status == "NOT_FOUND" and result[0]["v2"].values == {"size": None}


def test_only_the_entity_item_is_read_and_ttl_expires_on_read():
    fake = FakeDynamo({
        ("p_v2", '["1","2"]', "sync"): item('["1","2"]', "sync", T0 + dt.timedelta(minutes=30), a={"N": "2"}),
        # An older version's push slot: folded at apply/sync time, never read.
        ("p_v2", '["1","2"]', "push"): item('["1","2"]', "push", T0 + dt.timedelta(minutes=40), a={"N": "3"}),
    })
    store = OnlineStore(REGISTRY, CONFIG, client=fake)
    row = [{"user_id": 1, "merchant_id": "2"}]
    fresh = store.read(row, {"v2": ["a"]}, now=T0 + dt.timedelta(minutes=90))[0]["v2"]
    assert (fresh.status, fresh.values["a"]) == ("PRESENT", 2)
    stale = store.read(row, {"v2": ["a"]}, now=T0 + dt.timedelta(minutes=91))[0]["v2"]
    assert (stale.status, stale.values, stale.event_timestamp) == ("EXPIRED", {"a": None}, T0 + dt.timedelta(minutes=30))


def test_many_rows_split_into_calls_of_at_most_100_keys_and_duplicates_are_fetched_once():
    fake = FakeDynamo()
    store = OnlineStore(REGISTRY, CONFIG, client=fake)
    rows = [{"user_id": i % 120} for i in range(300)]
    result = store.read(rows, {"v1": ["a"]}, now=T0)
    assert len(result) == 300
    assert sum(len(c["p_v1"]["Keys"]) for c in fake.calls) == 120
    assert len(fake.calls) == 2


def test_unprocessed_keys_are_retried():
    fake = FakeDynamo({("p_v1", "1", "sync"): item("1", "sync", T0, a={"N": "5"})}, unprocessed_rounds=2)
    store = OnlineStore(REGISTRY, CONFIG, client=fake)
    assert store.read([{"user_id": 1}], {"v1": ["a"]})[0]["v1"].values == {"a": 5}
    assert len(fake.calls) == 3


def test_request_errors_name_the_problem():
    store = OnlineStore(REGISTRY, CONFIG, client=FakeDynamo())
    with pytest.raises(KeyError, match="lacks join key 'merchant_id'.*'v2'"):
        store.read([{"user_id": 1}], {"v2": ["a"]})
    with pytest.raises(KeyError, match="no feature 'nope'"):
        store.read([{"user_id": 1}], {"v1": ["nope"]})
    with pytest.raises(KeyError, match="no feature view named 'ghost'"):
        store.read([{"user_id": 1}], {"ghost": ["a"]})
    with pytest.raises(KeyError, match="on-demand"):
        store.read([{"user_id": 1}], {"odv": ["a"]})
    with pytest.raises(ValueError, match="not online"):
        store.read([{"user_id": 1}], {"off": ["a"]})


def test_config_from_env(tmp_path):
    env = {"HINDSIGHT_PROJECT_DIR": str(tmp_path)}  # a project with no hindsight.yml: defaults
    local = OnlineStoreConfig.from_env({**env, "HINDSIGHT_DYNAMODB_ENDPOINT": "http://127.0.0.1:8000"})
    assert (local.endpoint_url, local.region, local.table_prefix) == ("http://127.0.0.1:8000", None, "hindsight_")
    aws = OnlineStoreConfig.from_env({**env, "HINDSIGHT_DYNAMODB_REGION": "eu-west-1",
                                      "HINDSIGHT_DYNAMODB_TABLE_PREFIX": "prod_"})
    assert (aws.endpoint_url, aws.region, aws.table_prefix) == (None, "eu-west-1", "prod_")
    assert OnlineStoreConfig.from_env(env).region is None  # boto3's own chain decides
    with pytest.raises(ValueError, match="not a valid DynamoDB table name"):
        OnlineStoreConfig(table_prefix="").table_name("ab")


class FlakyWriter:
    """BatchWriteItem that leaves the last item unprocessed `rounds` times."""

    def __init__(self, rounds: int):
        self.rounds = rounds
        self.sent: list[int] = []

    def batch_write_item(self, RequestItems):
        (table, requests), = RequestItems.items()
        self.sent.append(len(requests))
        if self.rounds:
            self.rounds -= 1
            return {"UnprocessedItems": {table: requests[-1:]}}
        return {"UnprocessedItems": {}}


def test_unprocessed_items_are_resent_until_written():
    client = FlakyWriter(rounds=3)
    assert write_batch(client, "t", [{"k": {"S": str(i)}} for i in range(25)]) == 25
    assert client.sent == [25, 1, 1, 1]


def test_a_batch_that_never_gets_through_raises(monkeypatch):
    monkeypatch.setattr("hindsight.online_sync.batching.time.sleep", lambda s: None)
    with pytest.raises(RetriesExhausted):
        write_batch(FlakyWriter(rounds=100), "t", [{"k": {"S": "1"}}])
    with pytest.raises(RetriesExhausted):
        get_batch(FakeDynamo(unprocessed_rounds=100), {"t": {"Keys": [{KEY_ATTR: {"S": "1"}, WRITER_ATTR: {"S": "sync"}}]}})


def test_bounded_executor_runs_every_job_and_never_holds_more_than_its_bound():
    import threading

    running, peak, results = [0], [0], []
    lock = threading.Lock()
    release = threading.Event()

    def job(n):
        with lock:
            running[0] += 1
        release.wait(0.01)
        with lock:
            running[0] -= 1
        return n

    pool = BoundedExecutor(threads=2, on_done=results.append, max_in_flight=3)
    with pool:
        for n in range(20):
            pool.submit(job, n)
            peak[0] = max(peak[0], len(pool._pending))
    assert sorted(results) == list(range(20)) and peak[0] <= 3


def test_bounded_executor_reraises_a_failed_job():
    def boom():
        raise ConnectionError("lost")

    with pytest.raises(ConnectionError, match="lost"):
        with BoundedExecutor(threads=1) as pool:
            pool.submit(boom)


def test_a_view_named_like_the_key_table_is_refused(tmp_path) -> None:
    from hindsight.online_sync.tables import check_view_fits
    from tests.fixtures.dynamodb import make_view

    with pytest.raises(ValueError, match=r"feature view 'api_keys': its online table would be the API keys' table"):
        check_view_fits(make_view(tmp_path, name="api_keys"))
    check_view_fits(make_view(tmp_path, name="user_stats"))
