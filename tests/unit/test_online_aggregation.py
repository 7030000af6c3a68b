"""The online side of aggregation views without DynamoDB: items from tiles, combined at request time,
against the brute-force oracle (tests/aggregation_oracle.py)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from hindsight.online_sync.codec import EXPIRES_ATTR, ItemTooLarge
from hindsight.online_sync.combine import CombinePlan
from hindsight.online_sync.store import _requests, _plan
from hindsight.online_sync.tile_items import TILES_ATTR, column_tiles_attr, decode_offsets, decode_values
from hindsight.registry_sync.model import Aggregation, Feature, FeatureView
from tests.aggregation_oracle import expected_features, micros, reference_tiles
from tests.aggregation_strategies import BASE, SCHEMA, AggregationCase, aggregation_cases
from tests.fixtures.aggregation_online import assert_values, build_items, case_view, known_events

UTC = dt.timezone.utc


def _read(view: FeatureView, items: dict, entity: int, t: dt.datetime) -> tuple[str, dict]:
    plan = CombinePlan.build(view, tuple(f.name for f in view.features))
    item = items.get(str(entity))
    combined = None if item is None else plan.combine(item, micros(t))
    return ("NOT_FOUND", plan.empty_values()) if combined is None else ("PRESENT", combined[0])


def _check(case: AggregationCase, sync_time: dt.datetime, times: list[dt.datetime]) -> None:
    view = case_view(case, "/unused")
    events = known_events(case.events, sync_time)
    if events.num_rows == 0:
        items = {}
    else:
        items = build_items(view, reference_tiles(events, ["user_id"], "ts", case.aggregations, case.interval),
                            sync_time)
    for t in times:
        for entity in case.entities:
            expected = expected_features(events, entity, t, **case.oracle_args)
            status, values = _read(view, items, entity, t)
            assert_values(values, expected, f"user {entity} at {t} (synced at {sync_time})")
            counts = [v for a, v in zip(view.aggregations, expected.values()) if a.function == "count"]
            no_events = all(v in (0, None) for v in expected.values()) and not any(counts)
            if status == "NOT_FOUND":
                assert no_events, f"user {entity} at {t}: NOT_FOUND but the oracle has events"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=aggregation_cases())
def test_synced_at_the_request_time_equals_the_oracle(case: AggregationCase) -> None:
    # Every query time, including before an entity's first event and on interval boundaries: the
    # item a sync at t writes (events after t not yet tiled), read at t.
    for t in case.query_times:
        _check(case, t, [t])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=aggregation_cases())
def test_read_after_the_sync_equals_the_oracle(case: AggregationCase) -> None:
    # One sync after the last event; reads at every later query time (tiles leave the windows).
    last = max(case.events["ts"].to_pylist())
    _check(case, last, [t for t in case.query_times if t >= last])


def _view(aggregations: tuple[Aggregation, ...], dtypes: dict[str, str], interval: int = 3600) -> FeatureView:
    from hindsight.offline_store.tiles import feature_dtype

    features = tuple(Feature(a.name, feature_dtype(a.function, dtypes.get(a.column))) for a in aggregations)
    return FeatureView("txn", "aggregation", ("user",), ("user_id",), "ts", None, None, True, "/x", features,
                       aggregation_interval_seconds=interval, aggregations=aggregations)


def _events(rows: list[tuple[int, dt.datetime, float | None, str | None]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"user_id": u, "ts": t, "amount": a, "quantity": None, "country": c} for u, t, a, c in rows], schema=SCHEMA)


def test_item_layout_expiry_and_sparse_columns() -> None:
    aggregations = (
        Aggregation("txn_count_2h", "count", "*", 7200),
        Aggregation("amount_max_1d", "max", "amount", 86_400),
        Aggregation("country_last_1d", "last", "country", 86_400),
    )
    view = _view(aggregations, {"amount": "float64", "country": "string"})
    spec = [{"column": "*", "functions": ["count"]}, {"column": "amount", "functions": ["max"]},
            {"column": "country", "functions": ["last"]}]
    events = _events([
        (1, BASE + dt.timedelta(minutes=10), 5.0, None),
        (1, BASE + dt.timedelta(hours=3, minutes=1), None, "FR"),
        (1, BASE + dt.timedelta(hours=3, minutes=2), 7.5, None),
        (1, BASE + dt.timedelta(hours=5), 1.0, "DE"),
    ])
    sync = BASE + dt.timedelta(hours=6)
    items = build_items(view, reference_tiles(events, ["user_id"], "ts", spec, "1h"), sync)
    item = items["1"]
    base, interval, offsets = decode_offsets(item[TILES_ATTR]["B"])
    assert (base, interval, list(offsets)) == (int(BASE.timestamp()) // 3600, 3600, [0, 3, 5])
    # newest tile starts at BASE+5h; the longest window is 1 day
    assert int(item[EXPIRES_ATTR]["N"]) == int(BASE.timestamp()) + 5 * 3600 + 86_400
    assert list(decode_values(item["_events"]["B"])) == [1, 2, 1]
    # country has values in 2 of the 3 tiles: its own tile list, and its values are parallel to it
    assert list(decode_values(item[column_tiles_attr("country")]["B"])) == [3, 5]
    assert decode_values(item["country__last"]["B"]) == ["FR", "DE"]
    assert column_tiles_attr("amount") not in item  # amount has values in every tile
    plan = CombinePlan.build(view, tuple(a.name for a in aggregations))
    values, newest = plan.combine(item, micros(sync))
    assert values == {"txn_count_2h": 1, "amount_max_1d": 7.5, "country_last_1d": "DE"}
    assert newest == BASE + dt.timedelta(hours=5)
    # At the expiry every tile has left every window: no value, as if DynamoDB's TTL had deleted it.
    assert plan.combine(item, int(item[EXPIRES_ATTR]["N"]) * 1_000_000) is None
    assert plan.combine(item, int(item[EXPIRES_ATTR]["N"]) * 1_000_000 - 1) is not None
    # A sync after the expiry writes no item at all.
    assert build_items(view, reference_tiles(events, ["user_id"], "ts", spec, "1h"),
                       BASE + dt.timedelta(hours=5 + 24)) == {}


def test_item_too_large_names_the_view_entity_and_fix() -> None:
    aggregations = (Aggregation("country_last_30d", "last", "country", 30 * 86_400),)
    view = _view(aggregations, {"country": "string"}, interval=60)
    # One event every 3 minutes for 30 days: each its own 1-minute tile (built directly: the brute
    # force oracle is quadratic).
    stamps = [BASE + dt.timedelta(minutes=m) for m in range(0, 30 * 1440, 3)]
    tiles = pa.table({
        "user_id": pa.array([7] * len(stamps), pa.int64()),
        "ts": pa.array(stamps, pa.timestamp("us", tz="UTC")),
        "_tile_start": pa.array(stamps, pa.timestamp("us", tz="UTC")),
        "country__last": pa.array(["x" * 40] * len(stamps)),
    })
    with pytest.raises(ItemTooLarge) as error:
        build_items(view, tiles, BASE + dt.timedelta(days=30) - dt.timedelta(seconds=1))
    message = str(error.value)
    assert "aggregation feature view 'txn', entity 7" in message
    assert "14,400 tiles" in message and "400 KB" in message
    assert "longer aggregation_interval (now 1m)" in message and "(30d)" in message


def test_plan_reads_one_slot_per_entity_and_only_the_parts_asked_for() -> None:
    aggregations = (
        Aggregation("amount_sum_1d", "sum", "amount", 86_400),
        Aggregation("amount_min_1d", "min", "amount", 86_400),
        Aggregation("txn_count_1d", "count", "*", 86_400),
    )
    view = _view(aggregations, {"amount": "float64"})
    plan = _plan(view, "t_txn", ("amount_sum_1d",))
    assert set(plan.attribute_names.values()) == {
        "_hs_key", "_hs_writer", "_hs_order", "_hs_expires", "_hs_tiles", "_hs_tiles:amount", "amount__n",
        "amount__sum"}
    # 150 entities: two BatchGetItem calls of 100 and 50 keys (one key each).
    requests = list(_requests([("t_txn", str(i)) for i in range(150)], {"t_txn": plan}))
    assert [len(r["t_txn"]["Keys"]) for r in requests] == [100, 50]
    assert {k["_hs_writer"]["S"] for r in requests for k in r["t_txn"]["Keys"]} == {"sync"}
    with pytest.raises(KeyError, match="has no feature 'nope'"):
        CombinePlan.build(view, ("nope",))


class _ItemsStore:
    """The store's read contract over items built as sync builds them (no DynamoDB)."""

    def __init__(self, registry, items: dict[str, dict]) -> None:
        from hindsight.online_sync.store import _aggregation_read

        self.registry, self.items, self._read = registry, items, _aggregation_read
        self.now = None

    def read(self, entity_rows, features, now=None, deadline=None):
        plans = {name: CombinePlan.build(self.registry.view(name), tuple(names)) for name, names in features.items()}
        return [{name: self._read(plan, self.items.get(str(row["user_id"])), micros(self.now))
                 for name, plan in plans.items()} for row in entity_rows]

    def ping(self) -> bool:
        return True


class _Velocity:
    """An on-demand view over aggregation features."""

    name = "velocity"
    feature_inputs = ("txn:txn_count_2h", "txn:amount_max_1d")
    request_fields = {"amount": "float64"}
    outputs = {"first_in_2h": "bool", "above_max": "bool"}

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def compute(self, columns):
        self.seen.append(columns)
        return {"first_in_2h": [c == 0 for c in columns["txn_count_2h"]],
                "above_max": [None if m is None else a > m for a, m in zip(columns["amount"], columns["amount_max_1d"])]}


def test_served_counts_are_0_without_events_and_on_demand_views_read_aggregation_features() -> None:
    from hindsight.registry_sync.model import FeatureRef, FeatureService, Registry
    from hindsight.serving import create_app

    aggregations = (Aggregation("txn_count_2h", "count", "*", 7200), Aggregation("amount_max_1d", "max", "amount", 86_400))
    view = _view(aggregations, {"amount": "float64"})
    service = FeatureService("risk", (FeatureRef("txn", "txn_count_2h"), FeatureRef("velocity", "first_in_2h")))
    registry = Registry(project="t", feature_views=(view,), feature_services=(service,))
    spec = [{"column": "*", "functions": ["count"]}, {"column": "amount", "functions": ["max"]}]
    events = _events([(1, BASE + dt.timedelta(minutes=10), 5.0, None), (1, BASE + dt.timedelta(hours=3), 7.5, None)])
    store = _ItemsStore(registry, build_items(view, reference_tiles(events, ["user_id"], "ts", spec, "1h"),
                                              BASE + dt.timedelta(hours=4)))
    store.now = BASE + dt.timedelta(hours=4)
    velocity = _Velocity()
    app = create_app({"TESTING": True, "REGISTRY": registry, "ONLINE_STORE": store, "AUTH": "none",
                      "ON_DEMAND_VIEWS": {"velocity": velocity}})
    body = {"features": ["txn:*", "velocity:*"], "entities": [{"user_id": 1}, {"user_id": 2}],
            "request_context": {"amount": 6.0}, "include_metadata": True}
    response = app.test_client().post("/v1/features", json=body)
    assert response.status_code == 200, response.get_json()
    first, second = response.get_json()["results"]
    assert first["features"] == {"txn_count_2h": 1, "amount_max_1d": 7.5, "first_in_2h": False, "above_max": False}
    assert first["metadata"]["txn_count_2h"]["status"] == "PRESENT"
    assert first["metadata"]["txn_count_2h"]["event_timestamp"].startswith("2026-01-05T03:00:00")
    assert second["features"] == {"txn_count_2h": 0, "amount_max_1d": None, "first_in_2h": True, "above_max": None}
    assert second["metadata"]["txn_count_2h"] == {"status": "NOT_FOUND", "event_timestamp": None}
    assert velocity.seen[0]["txn_count_2h"] == [1, 0]
    described = app.test_client().get("/v1/feature-services/risk").get_json()["features"]
    assert described[0]["aggregation"] == {"function": "count", "column": "*", "window_seconds": 7200,
                                           "interval_seconds": 3600}
    assert "aggregation" not in described[1]


def test_min_max_last_keep_their_types() -> None:
    from decimal import Decimal

    aggregations = tuple(
        Aggregation(f"{c}_{f}_1d", f, c, 86_400) for c in ("seen", "day", "ok", "price", "ratio") for f in ("min", "max", "last"))
    dtypes = {"seen": "timestamp", "day": "date", "ok": "bool", "price": "decimal", "ratio": "float32"}
    view = _view(aggregations, dtypes)
    stamp = pa.timestamp("us", tz="UTC")
    starts = [BASE, BASE + dt.timedelta(hours=1)]
    seen = [BASE + dt.timedelta(minutes=5), BASE + dt.timedelta(hours=1, minutes=5)]
    columns = {"user_id": pa.array([1, 1], pa.int64()), "ts": pa.array(seen, stamp), "_tile_start": pa.array(starts, stamp)}
    values = {
        "seen": pa.array(seen, stamp), "day": pa.array([dt.date(2026, 1, 5), dt.date(2025, 12, 31)], pa.date32()),
        "ok": pa.array([True, False]), "price": pa.array([Decimal("2.50"), Decimal("1.25")], pa.decimal128(10, 2)),
        "ratio": pa.array([0.5, 0.25], pa.float32()),
    }
    for column, array in values.items():
        for part in ("min", "max", "last"):
            columns[f"{column}__{part}"] = array
    item = build_items(view, pa.table(columns), BASE + dt.timedelta(hours=2))["1"]
    got, _ = CombinePlan.build(view, tuple(a.name for a in aggregations)).combine(item, micros(BASE + dt.timedelta(hours=2)))
    assert got["seen_max_1d"] == seen[1] and got["seen_min_1d"] == seen[0]
    assert (got["day_min_1d"], got["day_last_1d"]) == (dt.date(2025, 12, 31), dt.date(2025, 12, 31))
    assert (got["ok_min_1d"], got["ok_max_1d"], got["ok_last_1d"]) == (False, True, False)
    assert (got["price_min_1d"], got["price_max_1d"]) == (Decimal("1.25"), Decimal("2.50"))
    assert (got["ratio_min_1d"], got["ratio_last_1d"]) == (0.25, 0.25)
