"""Training sets on Spark (Sail over Spark Connect) equal DuckDB's, row for row and type for type."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from hindsight import on_demand
from hindsight.on_demand.fraud import transaction_context
from hindsight.registry_sync.model import Entity, Feature, FeatureView, Registry
from hindsight.training_sets import features_as_of, read_versions, training_set

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
COUNTRIES = ["FR", "DE", "IT"]


def moment(rng: random.Random) -> dt.datetime:
    # Whole minutes over 3 days: ties and exact ttl edges happen.
    return T0 + dt.timedelta(minutes=rng.randrange(3 * 24 * 60))


def write(path: Path, rows: list[dict], types: dict[str, pa.DataType], mode: str = "overwrite") -> None:
    table = pa.table({name: pa.array([r[name] for r in rows], kind) for name, kind in types.items()})
    dates = pa.array([r["event_timestamp"].date() for r in rows], pa.date32())
    write_deltalake(path, table.append_column("_partition_date", dates), partition_by=["_partition_date"], mode=mode)


STAMP = pa.timestamp("us", tz="UTC")
AGGREGATES = {"user_id": pa.int64(), "event_timestamp": STAMP, "amount_mean_30d": pa.float64(),
              "txn_count_1d": pa.int32(), "last_seen": STAMP, "first_day": pa.date32()}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    root = tmp_path_factory.mktemp("spark_store")
    rng = random.Random(7)
    aggregates = {}
    for _ in range(600):
        user, ts = rng.randrange(40), moment(rng)
        aggregates[(user, ts)] = {
            "user_id": user, "event_timestamp": ts, "amount_mean_30d": rng.choice([None, rng.uniform(0, 100)]),
            "txn_count_1d": rng.randrange(50), "last_seen": ts - dt.timedelta(hours=1), "first_day": ts.date(),
        }
    write(root / "user_transaction_aggregates", list(aggregates.values()), AGGREGATES)
    profiles = {}
    for _ in range(300):
        user, ts = rng.randrange(40), moment(rng)
        created = ts + dt.timedelta(minutes=rng.choice([0, 0, 30, 24 * 60]))
        profiles[(user, ts, created)] = {"user_id": user, "event_timestamp": ts, "created_timestamp": created,
                                         "home_country": rng.choice(COUNTRIES)}
    write(root / "user_profile", list(profiles.values()),
          {"user_id": pa.int64(), "event_timestamp": STAMP, "created_timestamp": STAMP, "home_country": pa.string()})
    merchants = {}
    for _ in range(300):
        key, ts = (f"m{rng.randrange(10)}", rng.choice(COUNTRIES)), moment(rng)
        merchants[(key, ts)] = {"merchant_id": key[0], "country": key[1], "event_timestamp": ts,
                                "fraud_rate_7d": rng.random()}
    write(root / "merchant_country_risk", list(merchants.values()),
          {"merchant_id": pa.string(), "country": pa.string(), "event_timestamp": STAMP, "fraud_rate_7d": pa.float64()})

    def view(name, keys, ttl, features, created=None):
        return FeatureView(name, "batch", keys, keys, "event_timestamp", created, ttl, False, str(root / name),
                           tuple(Feature(n, d) for n, d in features.items()))

    return Registry(
        "spark-test",
        entities=(Entity("user_id", ("user_id",)),),
        feature_views=(
            view("user_transaction_aggregates", ("user_id",), 6 * 3600,
                 {"amount_mean_30d": "float64", "txn_count_1d": "int32", "last_seen": "timestamp", "first_day": "date"}),
            view("user_profile", ("user_id",), None, {"home_country": "string"}, created="created_timestamp"),
            view("merchant_country_risk", ("merchant_id", "country"), 12 * 3600, {"fraud_rate_7d": "float64"}),
        ),
        on_demand_views=(on_demand.to_registry(transaction_context),),
    )


@pytest.fixture(scope="module")
def spine() -> pa.Table:
    rng = random.Random(11)
    rows = [(rng.choice([None, *range(45)]), f"m{rng.randrange(11)}", rng.choice(COUNTRIES), moment(rng),
             rng.uniform(1, 200)) for _ in range(1500)]
    rows += rng.sample(rows, 50)  # duplicates stay
    return pa.table({
        "user_id": pa.array([r[0] for r in rows], pa.int64()),
        "merchant_id": pa.array([r[1] for r in rows]),
        "country": pa.array([r[2] for r in rows]),
        "event_timestamp": pa.array([r[3].replace(tzinfo=None) for r in rows], pa.timestamp("us")),  # naive = UTC
        "amount": pa.array([r[4] for r in rows]),
        "label": pa.array([i % 2 == 0 for i in range(len(rows))]),
    })


FEATURES = ["user_transaction_aggregates:*", "user_profile:home_country", "merchant_country_risk:fraud_rate_7d",
            "transaction_context:*"]


@pytest.mark.parametrize("honor_created", [True, False])
def test_spark_equals_duckdb_row_for_row(registry, spine, sail_remote, honor_created) -> None:
    on_duckdb = training_set(spine, features=FEATURES, registry=registry, honor_created=honor_created)
    on_spark = training_set(spine, features=FEATURES, registry=registry, honor_created=honor_created,
                            engine="spark", spark_remote=sail_remote)
    assert on_spark.schema == on_duckdb.schema
    assert on_spark.equals(on_duckdb)
    # The data is rich enough to mean something: most rows match, some expire, some have no row.
    matched = on_duckdb.column("home_country").drop_null()
    assert 0.5 * on_duckdb.num_rows < len(matched) < on_duckdb.num_rows
    assert 0 < on_duckdb.column("fraud_rate_7d").null_count < on_duckdb.num_rows


def test_spark_replays_pinned_versions(registry, spine, sail_remote) -> None:
    request = ["user_transaction_aggregates:amount_mean_30d"]
    first = training_set(spine, features=request, registry=registry)
    # A new commit with a row just before the first spine row's event time (off the minute grid).
    row = next(r for r in spine.to_pylist() if r["user_id"] is not None)
    when = row["event_timestamp"].replace(tzinfo=dt.timezone.utc) - dt.timedelta(microseconds=1)
    late = {"user_id": row["user_id"], "event_timestamp": when, "amount_mean_30d": -1.0,
            "txn_count_1d": 0, "last_seen": when, "first_day": when.date()}
    write(Path(registry.view("user_transaction_aggregates").delta_uri), [late], AGGREGATES, mode="append")
    replayed = training_set(spine, features=request, registry=registry, engine="spark", spark_remote=sail_remote,
                            versions=read_versions(first))
    latest = training_set(spine, features=request, registry=registry, engine="spark", spark_remote=sail_remote)
    assert replayed.equals(first)
    assert read_versions(latest)["user_transaction_aggregates"] == read_versions(first)["user_transaction_aggregates"] + 1
    assert -1.0 in latest.column("amount_mean_30d").to_pylist()
    assert -1.0 not in replayed.column("amount_mean_30d").to_pylist()


def test_features_as_of_on_spark_equals_duckdb(registry, sail_remote) -> None:
    request = ["user_transaction_aggregates:amount_mean_30d", "user_profile:home_country"]
    when = T0 + dt.timedelta(days=1, hours=7, minutes=30)
    on_duckdb = features_as_of(when, features=request, registry=registry)
    on_spark = features_as_of(when, features=request, registry=registry, engine="spark", spark_remote=sail_remote)
    assert on_spark.equals(on_duckdb)
    assert on_duckdb.num_rows == 40 and on_duckdb.column("user_id").to_pylist() == list(range(40))
