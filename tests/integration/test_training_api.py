"""The training-set SDK and CLI on real Delta tables: values worked out by hand, versions, errors.

The story (UTC): user 1's profile said FR from Feb 1; on Mar 1 06:00 that row was corrected to BE;
on Mar 3 a new profile (DE, valid from Feb 15) arrived late. Aggregates expire after 2 days,
merchant risk after 1 day.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake

from hindsight import on_demand
from hindsight.cli import main
from hindsight.on_demand.fraud import transaction_context
from hindsight.registry_sync.model import Entity, Feature, FeatureRef, FeatureService, FeatureView, Registry
from hindsight.registry_sync.store import RegistryStore
from hindsight.training_sets import TrainingSetError, features_as_of, read_versions, training_set

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc


def t(day: int, hour: int = 0, micro: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=UTC) + dt.timedelta(microseconds=micro)


def delta(path: Path, columns: dict[str, pa.Array], mode: str = "overwrite") -> None:
    times = columns["event_timestamp"].to_pylist()
    data = pa.table({**columns, "_partition_date": pa.array([x.date() for x in times], pa.date32())})
    write_deltalake(path, data, partition_by=["_partition_date"], mode=mode)


def stamps(*values: dt.datetime) -> pa.Array:
    return pa.array(values, pa.timestamp("us", tz="UTC"))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("offline_store")
    delta(root / "user_transaction_aggregates", {
        "user_id": pa.array([1, 1, 2], pa.int64()),
        "event_timestamp": stamps(t(1), t(2), t(1, 12)),
        "amount_mean_30d": pa.array([10.0, 20.0, 50.0]),
        "txn_count_1d": pa.array([1, 2, 5], pa.int64()),
    })
    delta(root / "user_profile", {
        "user_id": pa.array([1, 1, 1, 2], pa.int64()),
        "event_timestamp": stamps(t(1, month=2), t(1, month=2), t(15, month=2), t(10, month=2)),
        "created_timestamp": stamps(t(1, month=2), t(1, 6), t(3), t(10, month=2)),
        "home_country": pa.array(["FR", "BE", "DE", "IT"]),
        "credit_limit": pa.array([1000.0, 1500.0, 2000.0, 500.0]),
    })
    delta(root / "merchant_risk", {
        "merchant_id": pa.array([1, 1], pa.int64()),
        "event_timestamp": stamps(t(1), t(2)),
        "txn_count_1d": pa.array([3, 4], pa.int64()),
        "fraud_rate_7d": pa.array([0.1, 0.2]),
    })
    return root


def feature_view(root: Path, name: str, keys: tuple[str, ...], ttl: int | None, features: dict[str, str],
                 created: str | None = None) -> FeatureView:
    return FeatureView(
        name, "batch", (keys[0].removesuffix("_id"),), keys, "event_timestamp", created, ttl, True,
        str(root / name), tuple(Feature(n, d) for n, d in features.items()), partition_columns=("_partition_date",),
    )


def make_registry(root: Path) -> Registry:
    return Registry(
        "test",
        entities=(Entity("user", ("user_id",)), Entity("merchant", ("merchant_id",))),
        feature_views=(
            feature_view(root, "user_transaction_aggregates", ("user_id",), 2 * 86400,
                         {"amount_mean_30d": "float64", "txn_count_1d": "int64"}),
            feature_view(root, "user_profile", ("user_id",), None, {"home_country": "string", "credit_limit": "float64"},
                         created="created_timestamp"),
            feature_view(root, "merchant_risk", ("merchant_id",), 86400, {"txn_count_1d": "int64", "fraud_rate_7d": "float64"}),
        ),
        on_demand_views=(on_demand.to_registry(transaction_context),),
        feature_services=(
            FeatureService("fraud", (
                FeatureRef("user_transaction_aggregates", "amount_mean_30d", alias="mean_amount"),
                FeatureRef("user_profile", "home_country"),
                FeatureRef("transaction_context", "is_foreign_country"),
            )),
        ),
    )


@pytest.fixture(scope="module")
def registry(store: Path) -> Registry:
    return make_registry(store)


SPINE_TIMES = [t(1), t(2), t(4), t(4, micro=1), t(1, 11), t(1, 12), t(2)]


@pytest.fixture
def spine() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [1, 1, 1, 1, 2, 3, 1],
        "merchant_id": [1, 1, 1, 1, 2, 1, 1],
        # Naive: read as UTC.
        "event_timestamp": pd.to_datetime([x.replace(tzinfo=None) for x in SPINE_TIMES]),
        "amount": [25.0, 10.0, 40.0, 1.0, 5.0, 7.0, 10.0],
        "country": ["FR", "FR", "FR", "DE", "DE", "FR", "FR"],
        "seen_at": pd.to_datetime(SPINE_TIMES).tz_convert("Europe/Paris"),
        "is_fraud": [False, True, False, False, True, False, True],
    })


FEATURES = ["user_transaction_aggregates:*", "user_profile:home_country", "user_profile:credit_limit", "merchant_risk:*"]
EXPECTED = {
    "amount_mean_30d": [10.0, 20.0, 20.0, None, None, None, 20.0],
    "user_transaction_aggregates__txn_count_1d": [1, 2, 2, None, None, None, 2],
    # Row 0: the BE correction is not known yet; row 2 on: the late DE version is.
    "home_country": ["FR", "BE", "DE", "DE", "IT", None, "BE"],
    "credit_limit": [1000.0, 1500.0, 2000.0, 2000.0, 500.0, None, 1500.0],
    "merchant_risk__txn_count_1d": [3, 4, None, None, None, 3, 4],
    "fraud_rate_7d": [0.1, 0.2, None, None, None, 0.1, 0.2],
}


def test_each_spine_row_gets_the_values_known_at_its_event_time(spine, registry) -> None:
    result = training_set(spine, features=FEATURES, registry=registry)
    original = pa.Table.from_pandas(spine, preserve_index=False)
    assert result.column_names == [*original.column_names, *EXPECTED]
    assert result.select(original.column_names).equals(original.replace_schema_metadata(None))
    assert result.column("seen_at").type == pa.timestamp("ns", tz="Europe/Paris")
    assert {name: result.column(name).to_pylist() for name in EXPECTED} == EXPECTED
    assert read_versions(result) == {"merchant_risk": 0, "user_profile": 0, "user_transaction_aggregates": 0}


def test_the_spark_form_gives_the_same_result_on_duckdb(spine, registry, store) -> None:
    from hindsight.training_sets.api import run_plan
    from hindsight.training_sets.engine import DuckDBEngine, pin_tables
    from hindsight.training_sets.plan import plan_training_set
    from hindsight.training_sets.selection import select_features

    plan = plan_training_set(registry, select_features(registry, features=FEATURES))
    table = pa.Table.from_pandas(spine, preserve_index=False)
    engine = DuckDBEngine()
    try:
        result = run_plan(engine, plan, table, pin_tables(plan.views, None), event_timestamp="event_timestamp",
                          honor_created=True, dialect="spark")
    finally:
        engine.close()
    assert {name: result.column(name).to_pylist() for name in EXPECTED} == EXPECTED


def test_ignoring_created_times_lets_later_corrections_in(spine, registry) -> None:
    result = training_set(spine, features=["user_profile:home_country"], registry=registry, honor_created=False)
    assert result.column("home_country").to_pylist() == ["DE", "DE", "DE", "DE", "IT", None, "DE"]


def test_a_service_applies_aliases_and_on_demand_views_read_spine_fields(spine, registry) -> None:
    result = training_set(spine, service="fraud", registry=registry)
    assert result.column_names[-3:] == ["mean_amount", "home_country", "is_foreign_country"]
    assert result.column("is_foreign_country").to_pylist() == [False, True, True, False, True, None, True]
    assert result.schema.field("is_foreign_country").type == pa.bool_()


def test_on_demand_inputs_are_fetched_but_only_requested_outputs_kept(spine, registry) -> None:
    result = training_set(spine, features=["transaction_context:amount_vs_user_mean_30d"], registry=registry)
    assert result.column_names[-1] == "amount_vs_user_mean_30d"
    assert not [c for c in result.column_names if c.startswith("__hs_") or c == "amount_mean_30d"]
    assert result.column("amount_vs_user_mean_30d").to_pylist() == [2.5, 0.5, 2.0, None, None, None, 0.5]


def test_versions_replay_a_training_set_after_new_commits(spine, registry, tmp_path) -> None:
    root = tmp_path / "store"  # a copy of one table, so the module's tables stay at version 0
    source = DeltaTable(registry.view("user_transaction_aggregates").delta_uri).to_pyarrow_table()
    write_deltalake(root / "user_transaction_aggregates", source, partition_by=["_partition_date"])
    moved = make_registry(root)
    request = ["user_transaction_aggregates:amount_mean_30d"]
    first = training_set(spine, features=request, registry=moved)
    delta(root / "user_transaction_aggregates", {
        "user_id": pa.array([1], pa.int64()), "event_timestamp": stamps(t(3)),
        "amount_mean_30d": pa.array([99.0]), "txn_count_1d": pa.array([9], pa.int64()),
    }, mode="append")
    latest = training_set(spine, features=request, registry=moved)
    assert latest.column("amount_mean_30d").to_pylist()[2] == 99.0
    assert read_versions(latest) == {"user_transaction_aggregates": 1}
    replay = training_set(spine, features=request, registry=moved, versions=read_versions(first))
    assert read_versions(first) == {"user_transaction_aggregates": 0}
    assert replay.equals(first) and replay.schema.metadata == first.schema.metadata


def test_a_sql_spine_and_a_parquet_spine_work_on_duckdb(spine, registry, tmp_path) -> None:
    path = tmp_path / "spine.parquet"
    pq.write_table(pa.Table.from_pandas(spine, preserve_index=False), path)
    from_path = training_set(str(path), features=FEATURES, registry=registry)
    query = f"SELECT * FROM read_parquet('{path}') ORDER BY amount"
    from_sql = training_set(query, features=["user_profile:home_country"], registry=registry)
    assert from_path.column("home_country").to_pylist() == EXPECTED["home_country"]
    assert from_sql.column("amount").to_pylist() == sorted(spine["amount"])
    assert from_sql.column("home_country").to_pylist() == ["DE", "IT", None, "BE", "BE", "FR", "DE"]


def test_features_as_of_gives_every_known_entity_or_the_ones_asked_for(registry) -> None:
    snapshot = features_as_of("2026-03-02T12:00:00", features=["user_transaction_aggregates:*", "user_profile:home_country"],
                              registry=registry)
    assert snapshot.to_pydict() == {
        "user_id": [1, 2],
        "amount_mean_30d": [20.0, 50.0],
        "txn_count_1d": [2, 5],
        "home_country": ["BE", "IT"],
    }
    assert read_versions(snapshot) == {"user_profile": 0, "user_transaction_aggregates": 0}
    chosen = features_as_of(t(4, 1), features=["user_transaction_aggregates:amount_mean_30d"], registry=registry,
                            entities={"user_id": [2, 9, 1]})
    # Mar 4 01:00 is past the 2-day ttl of both users' latest aggregates.
    assert chosen.to_pydict() == {"user_id": [2, 9, 1], "amount_mean_30d": [None, None, None]}


def test_features_as_of_skips_or_refuses_on_demand_views_needing_a_request(registry) -> None:
    with pytest.warns(UserWarning, match=r"skips on-demand view\(s\) \['transaction_context'\]"):
        snapshot = features_as_of(t(2), service="fraud", registry=registry)
    assert snapshot.column_names == ["user_id", "mean_amount", "home_country"]
    with pytest.raises(TrainingSetError, match=r"transaction_context:is_foreign_country: on-demand view\(s\) that need request fields"):
        features_as_of(t(2), features=["transaction_context:is_foreign_country"], registry=registry)
    with pytest.raises(TrainingSetError, match=r"several key sets \(user_id: user_profile; merchant_id: merchant_risk\)"):
        features_as_of(t(2), features=["user_profile:home_country", "merchant_risk:fraud_rate_7d"], registry=registry)


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (lambda s: s.drop(columns="merchant_id"), {}, r"lacks join key column\(s\): merchant_id \(for merchant_risk\)"),
        (lambda s: s.assign(user_id=s.user_id.astype(str)), {},
         r"join key 'user_id': the spine's column is string but view 'user_transaction_aggregates' stores it as int64"),
        (lambda s: s.assign(event_timestamp=s.event_timestamp.astype(str)), {}, r"'event_timestamp' is string, not a timestamp"),
        (lambda s: s, {"event_timestamp": "ts"}, r"no event-time column 'ts'"),
        (lambda s: s, {"versions": {"user_profile": 42}}, r"view 'user_profile': cannot read version 42 of .* \(latest is 0\)"),
        (lambda s: s, {"versions": {"user_profiles": 0}}, r"versions= names view\(s\) \['user_profiles'\] that are not feature views"),
        (lambda s: s, {"versions": {"user_profile": "0"}}, r"must map views to Delta versions"),
        (lambda s: s.rename(columns={"amount": "fraud_rate_7d"}), {}, r"feature output column\(s\) \['fraud_rate_7d'\] have the name of a spine column"),
        (lambda s: s, {"engine": "spark", "spark_remote": None}, r"engine='spark' needs a Spark Connect URL"),
        (lambda s: s, {"engine": "polars"}, r"unknown engine 'polars'"),
    ],
)
def test_bad_requests_are_named_before_any_query(spine, registry, change, kwargs, message, monkeypatch) -> None:
    monkeypatch.delenv("HINDSIGHT_SPARK_REMOTE", raising=False)
    with pytest.raises(TrainingSetError, match=message):
        training_set(change(spine), features=FEATURES, registry=registry, **kwargs)


def test_a_missing_request_field_table_or_column_is_named(spine, registry, tmp_path) -> None:
    with pytest.raises(TrainingSetError, match=r"lacks column\(s\): amount \(request field of transaction_context\)"):
        training_set(spine.drop(columns="amount"), service="fraud", registry=registry)
    with pytest.raises(TrainingSetError, match=r"view 'merchant_risk': no Delta table at .*; has `dbt run` built it\?"):
        training_set(spine, features=["merchant_risk:*"], registry=make_registry(tmp_path))
    ghost = Registry("test", feature_views=(feature_view(Path(registry.view("user_profile").delta_uri).parent,
                                                         "user_profile", ("user_id",), None, {"ghost": "string"}),))
    with pytest.raises(TrainingSetError, match=r"view 'user_profile': Delta table .* has no column\(s\) \['ghost'\]"):
        training_set(spine, features=["user_profile:ghost"], registry=ghost)


@pytest.fixture
def cli_env(registry, tmp_path, monkeypatch) -> Path:
    RegistryStore(tmp_path / "registry").write(registry)
    monkeypatch.setenv("HINDSIGHT_REGISTRY", str(tmp_path / "registry"))
    return tmp_path


def test_the_cli_writes_the_training_set_and_replays_versions(spine, registry, cli_env) -> None:
    spine_path, out = cli_env / "spine.parquet", cli_env / "out.parquet"
    pq.write_table(pa.Table.from_pandas(spine, preserve_index=False), spine_path)
    run = CliRunner().invoke(main, ["training-set", "--features", ",".join(FEATURES), "--spine", str(spine_path),
                                    "--out", str(out), "--versions", '{"user_profile": 0}'])
    assert run.exit_code == 0, run.output
    written = pq.read_table(out)
    assert {name: written.column(name).to_pylist() for name in EXPECTED} == EXPECTED
    assert read_versions(written) == {"merchant_risk": 0, "user_profile": 0, "user_transaction_aggregates": 0}
    assert "wrote 7 rows x 13 columns" in run.output


def test_the_cli_prints_sql_per_dialect_and_names_errors(spine, cli_env) -> None:
    spine_path = cli_env / "spine.parquet"
    pq.write_table(pa.Table.from_pandas(spine, preserve_index=False), spine_path)
    duck = CliRunner().invoke(main, ["training-set", "--service", "fraud", "--spine", str(spine_path), "--print-sql"])
    spark = CliRunner().invoke(main, ["training-set", "--service", "fraud", "--spine", str(spine_path), "--print-sql",
                                      "--dialect", "spark", "--no-created"])
    assert duck.exit_code == 0 and "ASOF LEFT JOIN" in duck.output
    assert spark.exit_code == 0 and "ASOF" not in spark.output and "`user_profile__timeline`" in spark.output
    both = CliRunner().invoke(main, ["training-set", "--service", "fraud", "--features", "x:y", "--spine", str(spine_path)])
    assert both.exit_code == 2 and "pass exactly one of --service and --features" in both.output
    unknown = CliRunner().invoke(main, ["training-set", "--features", "user_profil:*", "--spine", str(spine_path),
                                        "--out", str(cli_env / "o.parquet")])
    assert unknown.exit_code == 1 and "unknown feature view 'user_profil' (did you mean 'user_profile'?)" in unknown.output
    bad_json = CliRunner().invoke(main, ["training-set", "--service", "fraud", "--spine", str(spine_path),
                                         "--out", str(cli_env / "o.parquet"), "--versions", "{nope"])
    assert bad_json.exit_code == 2 and "--versions" in bad_json.output


def test_an_empty_spine_gives_typed_empty_columns_and_a_date_spine_means_midnight(registry) -> None:
    empty = pa.table({"user_id": pa.array([], pa.int64()), "event_timestamp": pa.array([], pa.timestamp("us"))})
    result = training_set(empty, features=["user_profile:*"], registry=registry)
    assert result.num_rows == 0
    assert result.schema.field("credit_limit").type == pa.float64()
    days = pa.table({"user_id": [1, 1], "event_timestamp": pa.array([dt.date(2026, 3, 1), dt.date(2026, 3, 2)])})
    by_day = training_set(days, features=["user_profile:home_country"], registry=registry)
    assert by_day.column("event_timestamp").type == pa.date32()
    assert by_day.column("home_country").to_pylist() == ["FR", "BE"]  # Mar 1 00:00 precedes the 06:00 correction
