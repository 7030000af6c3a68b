"""The Spark path without side effects or repeated work, on Sail: `dbt compile` and `dbt docs generate`
leave the catalog as it was, the engine is asked what it is once per dbt command, and a feature
view's SQL is computed once per run (its rows staged, then checked and written from the stage).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from pyspark.sql import SparkSession

from tests.fixtures.dbt_project import ALL_FEATURE_VIEWS, FEATURE_VIEWS, DbtProject

pytestmark = pytest.mark.integration


def catalog(project: DbtProject) -> dict[str, set[str]]:
    """Every schema of the project's Spark Connect session and the tables and views in it."""
    session_id = str(uuid.uuid5(uuid.NAMESPACE_URL, str(project.root)))
    # Never stop() this session: Sail refuses a pinned session id once it was stopped.
    spark = SparkSession.builder.remote(f"{project.spark_remote}/;session_id={session_id}").create()
    schemas = [row[0] for row in spark.sql("show schemas").collect()]
    return {schema: {row[1] for row in spark.sql(f"show tables in `{schema}`").collect()} for schema in schemas}


def dbt_log(project: DbtProject) -> str:
    return (project.root / "logs" / "dbt.log").read_text()


def fresh_log(project: DbtProject) -> None:
    (project.root / "logs" / "dbt.log").unlink(missing_ok=True)


def compiled(project: DbtProject, view: str) -> str:
    return (project.settings.dbt_target_dir / "compiled" / "hindsight" / "models" / "features" / f"{view}.sql").read_text()


def test_compile_and_docs_generate_leave_the_catalog_unchanged(spark_project_copy):
    # A new Spark Connect session: an empty catalog, as after a Sail restart, over existing Delta tables.
    project = spark_project_copy
    before = catalog(project)
    assert not any(FEATURE_VIEWS[0] in tables for tables in before.values())
    for command in (["compile"], ["docs", "generate"]):
        project.dbt(*command)
        assert catalog(project) == before, f"dbt {' '.join(command)} changed the catalog"
    # Without a catalog entry the view is not incremental: the model reads every source row.
    assert "1 = 1" in compiled(project, "merchant_risk")

    run = project.dbt("run")
    assert run.stdout.count("hindsight: registered") == len(ALL_FEATURE_VIEWS)
    after = catalog(project)
    assert set(FEATURE_VIEWS) <= after["hindsight"]
    for command in (["compile"], ["docs", "generate"]):
        project.dbt(*command)
        assert catalog(project) == after, f"dbt {' '.join(command)} changed the catalog"
    # Now the catalog knows the table: the model reads from the incremental range start on.
    assert re.search(r"ts >= cast\('\d{4}-\d\d-\d\d", compiled(project, "merchant_risk"))
    assert (project.settings.dbt_target_dir / "catalog.json").exists()


def test_the_engine_is_asked_what_it_is_once_per_command(spark_project_copy):
    project = spark_project_copy
    fresh_log(project)
    project.dbt("run")
    assert dbt_log(project).count("select current_catalog()") == 1
    # hindsight.yml is read through the engine at most once too (no env var names a setting here).
    assert dbt_log(project).count("from text.`") <= 1


#: One row before the run's clock and one after it (deferred: never written this run), both carrying
#: the same random number `v` of one evaluation; the deferred row's time encodes `v`.
RANDOM_VIEW = """
{{ config(entities=['user_id'], timestamp_field='event_timestamp') }}
select cast(pair.user_id as bigint) as user_id, pair.event_timestamp, pair.v
from (
    select explode(array(
        named_struct('user_id', 1, 'event_timestamp', cast('2026-01-01 00:00:00' as timestamp), 'v', v),
        named_struct('user_id', 2, 'event_timestamp', {{ hindsight.from_epoch_micros('4102444800000000 + cast(v * 1e12 as bigint)') }}, 'v', v)
    )) as pair
    from (select rand() as v) as draw
) as pairs
"""


def test_a_spark_feature_view_computes_its_sql_once(spark_project_copy):
    """The future-rows check and the write must see the same evaluation of the model's SQL.

    The check's warning names the newest deferred time, which encodes `v` of the evaluation it read;
    the written row holds `v` of the evaluation the write read. Each evaluation draws a new `v`, so
    they agree only if the rows were computed once and staged (temporary views over the model's SQL
    evaluated it once per check and once more for the write).
    """
    project = spark_project_copy
    project.add_model("random_view", RANDOM_VIEW, features=["v"])
    for _ in range(2):
        result = project.dbt("run", "--select", "random_view", "--full-refresh")
        newest = re.search(r"deferred 1 row\(s\) with event_timestamp .*?newest ([0-9: .-]+)", result.stdout)
        assert newest, result.stdout[-3000:]
        written = project.table("random_view").to_pandas()
        assert list(written["user_id"]) == [1]
        v = float(written["v"][0])
        expected = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=4102444800000000 + int(v * 1e12))
        assert dt.datetime.fromisoformat(newest.group(1).strip()) == expected
