"""What reads the offline store works unchanged on Spark-built tables: registry, online sync, training sets."""

from __future__ import annotations

import pandas as pd
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable

from hindsight.online_sync import check_parity, sync
from hindsight.project import project_registry
from hindsight.quality import ValidationLog, validate
from tests.fixtures.dbt_project import DEMO_CUTOFF, FEATURE_VIEWS
from tests.integration.delta_compare import assert_same_rows
from hindsight.training_sets import training_set

pytestmark = pytest.mark.integration

#: Every view, without the names two views share (merchant_risk's counts and sums).
FEATURES = [
    "user_transaction_aggregates:*",
    "merchant_risk:fraud_mean_7d",
    "merchant_risk:fraud_mean_30d",
    "user_profile:*",
    "merchant_profile:category",
]


def test_the_registry_of_a_spark_build_equals_the_duckdb_one_but_for_locations(spark_project, demo_project):
    spark, duckdb = project_registry(spark_project.settings), project_registry(demo_project.settings)
    # The demo's stream-fed view reads the empty event log the on-run-start hook created: 0 rows.
    assert [v.name for v in spark.feature_views] == sorted((*FEATURE_VIEWS, "user_stream_activity"))
    assert [(s.name, s.columns, s.join_keys) for s in spark.stream_sources] == [
        (s.name, s.columns, s.join_keys) for s in duckdb.stream_sources]
    assert spark.stream_sources[0].delta_uri == f"{spark_project.settings.offline_store}/_streams/streams/transactions"
    assert spark.view("user_stream_activity").stream_sql_dialect == "spark"
    assert spark.entities == duckdb.entities and spark.feature_services == duckdb.feature_services
    for view in spark.feature_views:
        expected = duckdb.view(view.name)
        assert view.delta_uri == f"{spark_project.settings.offline_store}/{view.name}"
        assert view.features == expected.features, view.name
        assert (view.join_keys, view.timestamp_field, view.created_field, view.ttl_seconds) == (
            expected.join_keys, expected.timestamp_field, expected.created_field, expected.ttl_seconds)
        table = DeltaTable(view.delta_uri)
        rows = table.to_pyarrow_table().num_rows
        assert rows == DeltaTable(expected.delta_uri).to_pyarrow_table().num_rows
        assert rows > 0 or view.stream_source is not None, view.name


#: Views without a ttl: DynamoDB Local deletes items whose `_hs_expires` has passed, and the demo
#: data ends on a fixed date, so a ttl'd view's online values go missing as the clock moves on.
TIMELESS_VIEWS = ["merchant_profile", "user_profile"]


def test_online_sync_and_parity_work_on_spark_tables_before_and_after_a_merge(spark_project_copy, online_config):
    project = spark_project_copy
    project.dbt("parse")
    registry = project_registry(project.settings)
    # The demo views declare expectations: sync publishes only validated versions.
    validations = ValidationLog.in_registry(project.settings.registry_dir)
    assert all(v.record.passed for v in validate(registry, validations, TIMELESS_VIEWS))
    first = sync(registry, online_config, select=TIMELESS_VIEWS, progress=False, validations=validations)
    assert {v.view: v.mode for v in first.views} == dict.fromkeys(TIMELESS_VIEWS, "full")

    project.generate(loaded_from=DEMO_CUTOFF)
    project.dbt("run", "--select", "user_profile")
    assert project.table("user_profile").history(1)[0]["operation"] == "MERGE"
    (merged,) = validate(registry, validations, ["user_profile"])
    assert merged.record.passed and merged.record.delta_version == project.table("user_profile").version()
    second = sync(registry, online_config, select=TIMELESS_VIEWS, progress=False, validations=validations)
    modes = {v.view: v.mode for v in second.views}
    # Sail writes no change data feed; delta-rs still reads the MERGE's added files as inserts (a
    # superset of the changes, which newest-wins handles), or the sync falls back to a full read.
    assert modes["merchant_profile"] == "unchanged" and modes["user_profile"] in ("incremental", "full")

    # Every entity of both views, including those the new user_updates changed.
    report = check_parity(registry, online_config, sample=100_000, select=TIMELESS_VIEWS, seed=7)
    assert report.mismatches == ()
    users = project.table("user_profile").to_pandas()["user_id"].nunique()
    assert report.checked == {"merchant_profile": 100, "user_profile": users}


def spine(project, rows: int = 3000) -> pd.DataFrame:
    """Labelled transactions: the entities and event times a fraud model trains on."""
    transactions = ds.dataset(project.settings.raw_data_dir / "transactions", format="parquet").to_table().to_pandas()
    sample = transactions.sample(rows, random_state=11).reset_index(drop=True)
    return pd.DataFrame({
        "row": range(rows),
        "user_id": sample["user_id"],
        "merchant_id": sample["merchant_id"],
        "event_timestamp": sample["ts"],
        "is_fraud": sample["is_fraud"],
    })


def test_a_training_set_on_spark_equals_the_duckdb_one_row_for_row(spark_project, demo_project, sail_remote):
    rows = spine(demo_project)
    spark_registry, duckdb_registry = project_registry(spark_project.settings), project_registry(demo_project.settings)
    on_spark = training_set(rows, features=FEATURES, registry=spark_registry, engine="spark", spark_remote=sail_remote)
    on_duckdb = training_set(rows, features=FEATURES, registry=duckdb_registry, engine="duckdb")

    assert on_spark.schema == on_duckdb.schema
    spark_frame, duckdb_frame = on_spark.to_pandas(), on_duckdb.to_pandas()
    assert spark_frame["row"].tolist() == list(range(len(rows))), "the spine's order is kept"
    assert spark_frame["amount_sum_30d"].notna().sum() > len(rows) // 2, "most rows should find features"
    assert_same_rows(spark_frame, duckdb_frame, ["row"])
