"""Push views for real: a dbt-built view with push=true and push_partial=true, rows pushed into
DynamoDB Local (online and journal), flushed into the Delta table, kept by dbt rebuilds, and seen by
a point-in-time training set."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hindsight.offline_store.pushed_rows import PUSHED_AT, append_pushed_rows
from hindsight.online_sync import OnlineStore, ensure_tables, push, sync
from hindsight.online_sync.journal import view_target
from hindsight.online_sync.push import PushRefused
from hindsight.offline_store.event_log import INGESTED_AT
from hindsight.project import project_registry
from hindsight.streams.flush import Flusher
from hindsight.training_sets import training_set
from tests.fixtures.dbt_project import DbtFailed

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
VIEW = "user_push_profile"
MODEL = """{{ config(
    materialized='feature_view', entities=['user_id'], timestamp_field='event_timestamp',
    online=true, push=true, push_partial=true,
) }}
select user_id, signup_ts as event_timestamp, home_country, cast(birth_year as bigint) as birth_year,
       cast(birth_year as double) / 1000 as score
from {{ source('raw', 'users') }}
"""


def flush(registry, config) -> int:
    """One flush of the view's journaled rows into its Delta table (streams.flush): rows written."""
    report = Flusher(registry, config).flush_once(view_target(VIEW))
    return report.inserted


def rows_of(project, user_id):
    table = project.table(VIEW).to_pyarrow_table().filter(pc.field("user_id") == user_id)
    return sorted(table.to_pylist(), key=lambda r: r["event_timestamp"])


@pytest.fixture
def built(project_copy, online_config):
    project_copy.add_model(VIEW, MODEL, features=["home_country", "birth_year", "score"])
    project_copy.dbt("build", "--select", VIEW)
    registry = project_registry(project_copy.settings)
    ensure_tables(registry, online_config)
    sync(registry, online_config, select=[VIEW], progress=False)
    return project_copy, registry


def test_pushed_rows_reach_the_table_survive_rebuilds_and_appear_in_training_sets(built, online_config):
    project, registry = built
    view = next(v for v in registry.feature_views if v.name == VIEW)
    assert (view.push, view.push_partial) == (True, True)
    assert PUSHED_AT not in {f.name for f in view.features}
    computed = project.table(VIEW).to_pyarrow_table()
    assert computed.column(PUSHED_AT).null_count == computed.num_rows  # the model's rows: not pushed

    user = computed.column("user_id")[0].as_py()
    (base,) = rows_of(project, user)
    t1 = base["event_timestamp"] + dt.timedelta(days=1)
    t2 = t1 + dt.timedelta(days=1)
    pushed = [
        {"user_id": user, "event_timestamp": t1, "home_country": "ZZ"},   # partial: one feature
        {"user_id": user, "event_timestamp": t2, "score": 9.5},           # partial: another
    ]
    report = push(registry, online_config, VIEW, pushed)
    assert (report.rows, report.written, report.stale, report.journaled, report.duplicates) == (2, 1, 1, 2, 0)

    # Online now: the pushes over the synced row, in event order; the features not pushed kept.
    online = OnlineStore(registry, online_config).read([{"user_id": user}], {VIEW: ["home_country", "birth_year", "score"]})
    value = online[0][VIEW]
    assert value.event_timestamp == t2
    assert value.values == {"home_country": "ZZ", "birth_year": base["birth_year"], "score": 9.5}

    # Offline after the flush: each row filled from the entity's newest earlier row.
    assert flush(registry, online_config) == 2
    stored = rows_of(project, user)
    assert [(r["event_timestamp"], r["home_country"], r["birth_year"], r["score"]) for r in stored] == [
        (base["event_timestamp"], base["home_country"], base["birth_year"], base["score"]),
        (t1, "ZZ", base["birth_year"], base["score"]),
        (t2, "ZZ", base["birth_year"], 9.5),
    ]
    assert [r[PUSHED_AT] is None for r in stored] == [True, False, False]
    # The flushed rows' partition, derived at the table's (monthly) grain.
    assert [r["_partition_month"] for r in stored] == [r["event_timestamp"].date().replace(day=1) for r in stored]

    # A retried push adds nothing: its journal entries exist (and the Delta append would dedupe).
    again = push(registry, online_config, VIEW, pushed)
    assert (again.journaled, again.duplicates) == (0, 2)
    assert flush(registry, online_config) == 0

    # dbt keeps the pushed rows: incremental run, full refresh, and a backfill over their days.
    rows_before = project.table(VIEW).to_pyarrow_table().num_rows
    for args in ([], ["--full-refresh"],
                 ["--vars", f'{{"backfill_start": "{t1.date()}", "backfill_end": "{(t2 + dt.timedelta(days=1)).date()}"}}']):
        project.dbt("run", "--select", VIEW, *args)
        assert rows_of(project, user) == stored, args
        assert project.table(VIEW).to_pyarrow_table().num_rows == rows_before, args

    # A full refresh that changes the partition grain derives the pushed rows' partitions again.
    assert project.table(VIEW).metadata().partition_columns == ["_partition_month"]  # a few signups a day
    project.dbt("run", "--select", VIEW, "--full-refresh", "--vars", '{"hindsight_month_partition_below_rows_per_day": 0}')
    assert project.table(VIEW).metadata().partition_columns == ["_partition_date"]
    daily = rows_of(project, user)
    assert [r.pop("_partition_date") for r in daily] == [r["event_timestamp"].date() for r in stored]
    assert daily == [{k: v for k, v in r.items() if k != "_partition_month"} for r in stored]
    assert project.table(VIEW).to_pyarrow_table().num_rows == rows_before

    # A training set sees them, point in time.
    spine = pa.table({
        "user_id": [user] * 4,
        "event_timestamp": pa.array([t1 - dt.timedelta(hours=1), t1 + dt.timedelta(hours=1), t2, t2 + dt.timedelta(days=3)],
                                    pa.timestamp("us", tz="UTC")),
    })
    result = training_set(spine, features=[f"{VIEW}:home_country", f"{VIEW}:score"], registry=registry)
    got = list(zip(result.column("home_country").to_pylist(), result.column("score").to_pylist()))
    assert got == [(base["home_country"], base["score"]), ("ZZ", base["score"]), ("ZZ", 9.5), ("ZZ", 9.5)]

    # Dropping them takes one explicit full refresh.
    project.dbt("run", "--select", VIEW, "--full-refresh", "--vars", '{"hindsight_drop_pushed_rows": true}')
    assert rows_of(project, user) == [base]


def test_a_pushed_row_wins_over_a_computed_row_with_the_same_key(built, online_config):
    project, registry = built
    user = project.table(VIEW).to_pyarrow_table().column("user_id")[0].as_py()
    (base,) = rows_of(project, user)
    report = push(registry, online_config, VIEW, [{"user_id": user, "event_timestamp": base["event_timestamp"], "score": -1.0}])
    assert (report.written, report.journaled) == (1, 1)  # a push wins a tie online
    assert flush(registry, online_config) == 1
    (replaced,) = rows_of(project, user)
    assert (replaced["score"], replaced["home_country"]) == (-1.0, base["home_country"])
    for args in ([], ["--full-refresh"]):
        project.dbt("run", "--select", VIEW, *args)
        assert rows_of(project, user) == [replaced], args


def test_only_push_views_take_pushes(built, online_config):
    project, registry = built
    with pytest.raises(PushRefused, match=r"push to 'merchant_profile': the feature view does not take pushed rows: "
                                          r"set config push=true on its model \(models/features/merchant_profile.sql\)"):
        push(registry, online_config, "merchant_profile", [{"merchant_id": 1, "event_timestamp": dt.datetime.now(UTC)}])
    project.add_model("bad_push", MODEL.replace("push=true, ", ""), features=["home_country", "birth_year", "score"])
    with pytest.raises(DbtFailed, match="config push_partial=true needs push=true"):
        project.dbt("run", "--select", "bad_push")


def test_spark_runs_keep_pushed_rows_too(project_copy, sail_remote):
    """The Spark materialization (Sail) keeps pushed rows through incremental runs and full refreshes,
    and the table it builds takes appends from `append_pushed_rows`."""
    import dataclasses
    import shutil

    spark = project_copy.with_target("spark", sail_remote)
    spark.add_model(VIEW, MODEL, features=["home_country", "birth_year", "score"])
    shutil.rmtree(f"{spark.settings.offline_store}/{VIEW}", ignore_errors=True)
    spark.dbt("run", "--select", VIEW)
    table = spark.table(VIEW).to_pyarrow_table()
    assert table.column(PUSHED_AT).null_count == table.num_rows
    user = table.column("user_id")[0].as_py()
    (base,) = rows_of(spark, user)
    view = dataclasses.replace(
        next(v for v in project_registry(spark.settings).feature_views if v.name == VIEW))
    assert view.push_partial
    t1 = base["event_timestamp"] + dt.timedelta(days=1)
    pushed_at = dt.datetime.now(UTC)
    added = append_pushed_rows(view, pa.table({
        "user_id": pa.array([user, user], table.schema.field("user_id").type),
        "event_timestamp": [t1.isoformat(), base["event_timestamp"].isoformat()],
        "score": [7.0, -1.0],
        "_hs_features": [["score"], ["score"]],
        INGESTED_AT: pa.array([pushed_at, pushed_at], pa.timestamp("us", tz="UTC")),
    }))
    assert added == 2
    stored = rows_of(spark, user)
    assert [(r["event_timestamp"], r["score"], r["home_country"]) for r in stored] == [
        (base["event_timestamp"], -1.0, base["home_country"]), (t1, 7.0, base["home_country"])]
    for args in ([], ["--full-refresh"]):
        spark.dbt("run", "--select", VIEW, *args)
        assert rows_of(spark, user) == stored, args
        assert spark.table(VIEW).to_pyarrow_table().num_rows == table.num_rows + 1, args
