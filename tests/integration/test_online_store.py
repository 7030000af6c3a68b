"""The read API against DynamoDB Local: types, ttl, several views per call, push, errors."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest

from hindsight.online_sync import OnlineStore, OnlineStoreConfig, OnlineStoreUnavailable, ensure_tables, push, sync
from hindsight.online_sync.codec import ItemTooLarge
from tests.fixtures.dynamodb import make_registry, make_view, write_rows

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, 12, tzinfo=UTC)
ALL_TYPES = {"f_bool": "bool", "f_int32": "int32", "f_int64": "int64", "f_float32": "float32",
             "f_float64": "float64", "f_string": "string", "f_date": "date", "f_ts": "timestamp",
             "f_decimal": "decimal"}
VALUE_ROWS = [
    {"f_bool": True, "f_int32": -2**31, "f_int64": 2**63 - 1, "f_float32": 0.1, "f_float64": float("nan"),
     "f_string": "", "f_date": dt.date(1969, 12, 31), "f_ts": dt.datetime(1901, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
     "f_decimal": Decimal("-12345678901234.5678")},
    {"f_bool": False, "f_int32": 7, "f_int64": -1, "f_float32": float("inf"), "f_float64": 1e-300,
     "f_string": "naïve ✓ \"quoted\"", "f_date": dt.date(2999, 1, 1), "f_ts": dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
     "f_decimal": Decimal("0.0001")},
    {"f_bool": None, "f_int32": None, "f_int64": None, "f_float32": None, "f_float64": -0.0,
     "f_string": None, "f_date": None, "f_ts": None, "f_decimal": None},
]


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b and type(a) is type(b)


def test_every_dtype_round_trips_through_sync_and_push(tmp_path, online_config):
    synced = make_view(tmp_path, "typed_sync", ALL_TYPES, created=False)
    pushed = make_view(tmp_path, "typed_push", ALL_TYPES, created=False, push=True)
    write_rows(synced, [{"user_id": i, "ts": T0, **values} for i, values in enumerate(VALUE_ROWS)])
    registry = make_registry(synced, pushed)
    ensure_tables(registry, online_config)
    sync(registry, online_config, select=["typed_sync"], progress=False)
    push(registry, online_config, "typed_push", [{"user_id": i, "ts": T0, **v} for i, v in enumerate(VALUE_ROWS)])
    store = OnlineStore(registry, online_config)
    reads = store.read([{"user_id": i} for i in range(3)], {v: list(ALL_TYPES) for v in ("typed_sync", "typed_push")})
    import numpy as np

    for i, expected in enumerate(VALUE_ROWS):
        # float32 comes back as the float32 value, widened: compare in float32.
        expected = {**expected, "f_float32": None if expected["f_float32"] is None else float(np.float32(expected["f_float32"]))}
        for view in ("typed_sync", "typed_push"):
            got = reads[i][view]
            assert got.status == "PRESENT" and got.event_timestamp == T0
            bad = {k: (expected[k], got.values[k]) for k in ALL_TYPES if not same(expected[k], got.values[k])}
            assert not bad, (view, i, bad)


def test_one_entity_over_several_views_is_one_batch_get(tmp_path, online_config):
    views = [make_view(tmp_path, f"view_{n}", {"x": "int64"}, created=False) for n in range(30)]
    for n, view in enumerate(views):
        write_rows(view, [{"user_id": 1, "ts": T0, "x": n}])
    registry = make_registry(*views)
    sync(registry, online_config, progress=False)
    store = OnlineStore(registry, online_config)
    calls = []
    store.client.meta.events.register("before-call.dynamodb.BatchGetItem", lambda **kw: calls.append(1))
    result = store.read([{"user_id": 1}], {v.name: ["x"] for v in views})
    assert len(calls) == 1
    assert {name: r.values["x"] for name, r in result[0].items()} == {f"view_{n}": n for n in range(30)}


def test_values_older_than_ttl_come_back_expired(tmp_path, online_config):
    # An event of half an hour ago: DynamoDB Local deletes items past their expiry in the
    # background, so an item expired in real time may be gone before the reads below.
    t0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=30)
    view = make_view(tmp_path, "ttl_view", {"x": "int64"}, ttl_seconds=3600)
    write_rows(view, [{"user_id": 1, "ts": t0, "created": t0, "x": 1}])
    registry = make_registry(view)
    sync(registry, online_config, progress=False)
    store = OnlineStore(registry, online_config)
    inside = store.read([{"user_id": 1}], {"ttl_view": ["x"]}, now=t0 + dt.timedelta(minutes=59))[0]["ttl_view"]
    outside = store.read([{"user_id": 1}], {"ttl_view": ["x"]}, now=t0 + dt.timedelta(minutes=61))[0]["ttl_view"]
    assert (inside.status, inside.values) == ("PRESENT", {"x": 1})
    assert (outside.status, outside.values, outside.event_timestamp) == ("EXPIRED", {"x": None}, t0)


def test_push_keeps_the_newest_event(tmp_path, online_config):
    view = make_view(tmp_path, "pushed", {"x": "int64"}, push=True)
    registry = make_registry(view)
    ensure_tables(registry, online_config)

    def rows(*pairs):
        return [{"user_id": 1, "ts": T0 + dt.timedelta(hours=h), "created": None, "x": x} for h, x in pairs]

    assert push(registry, online_config, "pushed", rows((2, 20), (1, 10))).written == 1
    report = push(registry, online_config, "pushed", rows((1, 11)))
    assert (report.written, report.stale) == (0, 1)
    read = OnlineStore(registry, online_config).read([{"user_id": 1}], {"pushed": ["x"]})[0]["pushed"]
    assert (read.values, read.event_timestamp) == ({"x": 20}, T0 + dt.timedelta(hours=2))


def test_bad_pushes_name_the_problem(tmp_path, online_config):
    view = make_view(tmp_path, "pushed", {"x": "int64", "s": "string"}, push=True)
    registry = make_registry(view)
    ensure_tables(registry, online_config)
    good = {"user_id": 1, "ts": T0, "x": 1, "s": "a"}
    with pytest.raises(ValueError, match=r"row 0 lacks columns \['s'\]"):
        push(registry, online_config, "pushed", [{"user_id": 1, "ts": T0, "x": 1}])
    with pytest.raises(ValueError, match=r"columns \['typo'\] that the view does not declare"):
        push(registry, online_config, "pushed", [{**good, "typo": 1}])
    with pytest.raises(ValueError, match="row 1 has null"):
        push(registry, online_config, "pushed", [good, {**good, "ts": None}])
    with pytest.raises(ValueError, match="row 0: .*timestamp"):
        push(registry, online_config, "pushed", [{**good, "ts": 3.5}])
    with pytest.raises(ItemTooLarge, match="entity 1.*400 KB"):
        push(registry, online_config, "pushed", [{**good, "s": "x" * 500_000}])
    with pytest.raises(ValueError, match="no feature view named 'nope'"):
        push(registry, online_config, "nope", [good])


def test_a_big_item_under_the_limit_is_stored(tmp_path, online_config):
    view = make_view(tmp_path, "big", {"s": "string"})
    write_rows(view, [{"user_id": 1, "ts": T0, "created": T0, "s": "y" * 350_000}])
    registry = make_registry(view)
    sync(registry, online_config, progress=False)
    assert OnlineStore(registry, online_config).read([{"user_id": 1}], {"big": ["s"]})[0]["big"].values["s"] == "y" * 350_000


def test_an_unreachable_store_raises_online_store_unavailable(tmp_path):
    view = make_view(tmp_path, "v_unreachable", {"x": "int64"})
    config = OnlineStoreConfig(endpoint_url="http://127.0.0.1:9", region="us-east-1", connect_timeout_s=0.2,
                               read_timeout_s=0.2, max_attempts=1)
    store = OnlineStore(make_registry(view), config)
    assert store.ping() is False
    with pytest.raises(OnlineStoreUnavailable, match="127.0.0.1:9"):
        store.read([{"user_id": 1}], {"v_unreachable": ["x"]})
    write_rows(view, [{"user_id": 1, "ts": T0, "created": T0, "x": 1}])
    with pytest.raises(OnlineStoreUnavailable):
        sync(make_registry(view), config, progress=False)


def test_a_missing_table_is_unavailable_with_a_hint(tmp_path, online_config):
    registry = make_registry(make_view(tmp_path, "never_created", {"x": "int64"}, created=False, push=True))
    store = OnlineStore(registry, online_config)
    assert store.ping() is True
    with pytest.raises(OnlineStoreUnavailable, match="hindsight apply"):
        store.read([{"user_id": 1}], {"never_created": ["x"]})
    with pytest.raises(OnlineStoreUnavailable, match="hindsight apply"):
        push(registry, online_config, "never_created", [{"user_id": 1, "ts": T0, "x": 1}])
