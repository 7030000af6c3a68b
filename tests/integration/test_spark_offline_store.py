"""The feature_view materialization on Spark (Sail), end to end: real dbt-spark runs, real Delta tables.

Every Spark-built table is compared with the DuckDB build of the same raw data, row for row.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest

from tests.fixtures.dbt_project import ALL_FEATURE_VIEWS, DEMO_CUTOFF, FEATURE_VIEWS, DbtProject
from tests.integration.backfill_check import backfill_one_day_after_doubling_amounts
from tests.integration.delta_compare import assert_same_rows
from tests.integration.test_offline_store import BROKEN_VIEW, DAILY_SPEND, KEYS

pytestmark = pytest.mark.integration

CHANGING_VIEWS = ("user_transaction_aggregates", "merchant_risk", "user_profile")


def frame(project: DbtProject, view: str) -> pd.DataFrame:
    return project.table(view).to_pandas()


def versions(project: DbtProject) -> dict[str, int]:
    return {view: project.version(view) for view in FEATURE_VIEWS}


def assert_same_tables(spark: DbtProject, duckdb: DbtProject) -> None:
    for view in FEATURE_VIEWS:
        assert_same_rows(frame(spark, view), frame(duckdb, view), KEYS[view])


def test_spark_built_views_hold_the_duckdb_rows_with_the_same_arrow_schema(spark_project, demo_project):
    assert_same_tables(spark_project, demo_project)
    for view in FEATURE_VIEWS:
        spark, duckdb = spark_project.table(view), demo_project.table(view)
        assert pa.schema(spark.schema().to_arrow()) == pa.schema(duckdb.schema().to_arrow()), view
        # Both engines choose the same derived partition grain from the same rows.
        assert spark.metadata().partition_columns == duckdb.metadata().partition_columns


def test_a_full_build_records_the_dbt_run_in_its_commit(spark_project):
    for view in FEATURE_VIEWS:
        commit = spark_project.table(view).history(1)[0]
        assert commit["operation"] == "CREATE TABLE"
        metadata = json.loads(commit["userMetadata"])
        assert metadata["dbt_model"] == f"model.hindsight.{view}"
        assert metadata["hindsight_mode"] == "full_refresh"
        assert len(metadata["dbt_invocation_id"]) == 36


def test_incremental_run_equals_the_duckdb_build_and_a_rerun_commits_nothing(spark_project_copy, project_copy):
    spark, duckdb = spark_project_copy, project_copy
    before = versions(spark)
    for project in (spark, duckdb):
        appended = project.generate(loaded_from=DEMO_CUTOFF)
        assert appended["transactions"] > 0 and appended["user_updates"] > 0
    duckdb.dbt("run")

    # The copy starts with an empty Sail catalog: the views are found at their Delta locations.
    first = spark.dbt("run")
    assert first.stdout.count("hindsight: registered") == len(ALL_FEATURE_VIEWS)
    after_first = versions(spark)
    for view in CHANGING_VIEWS:
        assert after_first[view] == before[view] + 1, f"{view} should have taken one MERGE commit"
        assert spark.table(view).history(1)[0]["operation"] == "MERGE"
    assert after_first["merchant_profile"] == before["merchant_profile"], "no new merchants: nothing to commit"
    assert_same_tables(spark, duckdb)

    spark.dbt("run")
    assert versions(spark) == after_first, "a second incremental run committed"

    # A full refresh over the existing tables (Sail overwrites them in place): one commit each.
    spark.dbt("run", "--full-refresh")
    assert versions(spark) == {view: version + 1 for view, version in after_first.items()}
    assert_same_tables(spark, duckdb)


def test_backfill_replaces_exactly_its_range_in_one_commit(spark_project_copy):
    project, view = spark_project_copy, "user_transaction_aggregates"
    version = project.version(view)
    backfill_one_day_after_doubling_amounts(project, view, KEYS[view])
    assert project.version(view) == version + 1
    assert project.table(view).history(1)[0]["operation"] == "MERGE"


#: Spark SQL wants a length after VARCHAR; STRING is its (and DuckDB's) unbounded text type.
SPARK_BROKEN_VIEW = BROKEN_VIEW.replace("cast(signup_ts as varchar)", "cast(signup_ts as string)")

#: Broken variants of the view and what dbt must say.
FAILURES = [
    ({"problem": "null_key"}, ["no NULL keys", "user_id", "1 row"]),
    ({"problem": "duplicate_key"}, ["unique (user_id, event_timestamp)", "1 key(s) occur more than once"]),
    ({"problem": "string_timestamp"}, ["time columns are timestamps", "event_timestamp", "string"]),
    ({"entity_column": "account_id"}, ["key columns exist", "account_id"]),
    ({"problem": "new_column"}, ["no longer match", "added: birth_year", "Sail cannot change the schema"]),
    ({"problem": "new_column", "full_refresh": True}, ["no longer match", "added: birth_year", "Sail cannot replace the schema"]),
]


def test_a_failed_validation_names_the_problem_and_leaves_the_table_as_it_was(spark_project_copy):
    # One project for every variant: each dbt run on Sail costs seconds, and none may write.
    project = spark_project_copy
    project.add_model("checked_view", SPARK_BROKEN_VIEW, features=["home_country", "birth_year"])
    project.dbt("run", "--select", "checked_view")
    version, rows = project.version("checked_view"), frame(project, "checked_view")
    assert version == 0 and len(rows) > 0

    for variables, expected in FAILURES:
        flags = ["--full-refresh"] if variables.get("full_refresh") else []
        result = project.dbt("run", "--select", "checked_view", *flags, "--vars", json.dumps(variables), check=False)
        assert result.returncode != 0, variables
        for text in ["checked_view", *expected]:
            assert text in result.stdout, f"{variables}: {text!r} not in dbt's output:\n{result.stdout[-3000:]}"
        assert project.version("checked_view") == version, f"{variables} committed"
    assert_same_rows(frame(project, "checked_view"), rows, ["user_id", "event_timestamp"])


PARTITIONED_MODEL = """{{{{ config(
    materialized='feature_view', entities=['user_id'], timestamp_field='event_timestamp', partition_by='{column}',
) }}}}
select user_id, signup_ts as event_timestamp, home_country, cast(birth_year as bigint) as birth_year
from {{{{ source('raw', 'users') }}}}
"""


def test_a_partition_by_that_spark_cannot_apply_is_refused_by_the_registry_with_the_fix(spark_project_copy):
    # A MERGE keeps the table's partitioning: an incremental Spark run after partition_by changed
    # succeeds with the old layout, so the registry reads the table's and refuses the mismatch.
    from hindsight.project import project_registry
    from hindsight.registry_sync.errors import DefinitionErrors

    project = spark_project_copy
    project.add_model("user_home", PARTITIONED_MODEL.format(column="home_country"), features=["home_country", "birth_year"])
    project.dbt("run", "--select", "user_home")
    assert project_registry(project.settings).view("user_home").partition_columns == ("home_country",)
    project.add_model("user_home", PARTITIONED_MODEL.format(column="birth_year"))
    project.dbt("run", "--select", "user_home")
    assert project.table("user_home").metadata().partition_columns == ["home_country"]
    with pytest.raises(DefinitionErrors) as refused:
        project_registry(project.settings)
    assert ("feature view user_home (models/features/user_home.sql): its Delta table is partitioned by ['home_country'], "
            "but partition_by is now ['birth_year']") in str(refused.value)
    assert "run `dbt run --full-refresh --select user_home`, or set partition_by back" in str(refused.value)


def test_a_date_event_time_runs_incrementally_on_spark_as_on_duckdb(spark_project_copy, project_copy):
    # The watermark reads a DATE as its day's midnight on both engines (processing_range.sql).
    for project in (spark_project_copy, project_copy):
        project.add_model("user_daily_spend", DAILY_SPEND, features=["amount"])
        project.dbt("run", "--select", "user_daily_spend")
        project.generate(loaded_from=DEMO_CUTOFF)
        project.dbt("run", "--select", "user_daily_spend")
        assert project.table("user_daily_spend").history(1)[0]["operation"] == "MERGE"

    assert_same_rows(frame(spark_project_copy, "user_daily_spend"), frame(project_copy, "user_daily_spend"),
                     ["user_id", "spend_date"])
