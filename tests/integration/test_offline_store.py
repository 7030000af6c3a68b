"""The feature_view materialization on DuckDB, end to end: real dbt runs, real Delta tables."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from hindsight.offline_store.derived_partition import partition_values
from tests import aggregation_oracle
from tests.fixtures.dbt_project import DEMO_CUTOFF, FEATURE_VIEWS, DbtProject
from tests.integration.backfill_check import backfill_one_day_after_doubling_amounts
from tests.integration.delta_compare import assert_same_rows

pytestmark = pytest.mark.integration

KEYS = {
    "user_transaction_aggregates": ["user_id", "event_timestamp"],
    "merchant_risk": ["merchant_id", "event_timestamp"],
    "user_profile": ["user_id", "event_timestamp", "created_timestamp"],
    "merchant_profile": ["merchant_id", "event_timestamp"],
}


def raw(project: DbtProject, table: str) -> pd.DataFrame:
    return ds.dataset(project.settings.raw_data_dir / table, format="parquet").to_table().to_pandas()


def frame(project: DbtProject, view: str, version: int | None = None) -> pd.DataFrame:
    return project.table(view, version).to_pandas()


def snapshot(project: DbtProject) -> dict[str, pd.DataFrame]:
    return {view: frame(project, view) for view in FEATURE_VIEWS}


def demo_events(project: DbtProject, view: str) -> pa.Table:
    """What the model's SQL selects from the raw transactions (the events its tiles aggregate), typed as DuckDB types them."""
    transactions = ds.dataset(project.settings.raw_data_dir / "transactions", format="parquet").to_table()
    columns = {"user_transaction_aggregates": {"user_id": "user_id", "event_timestamp": "ts", "amount": "amount", "country": "country"},
               "merchant_risk": {"merchant_id": "merchant_id", "event_timestamp": "ts", "amount": "amount", "fraud": "is_fraud"}}[view]
    events = pa.table({name: transactions[source] for name, source in columns.items()})
    if "fraud" in columns:
        events = events.set_column(events.schema.get_field_index("fraud"), "fraud", pc.cast(events["fraud"], pa.int32()))
    return events


@pytest.mark.parametrize(("view", "interval"), [("user_transaction_aggregates", "5m"), ("merchant_risk", "1d")])
def test_the_demos_aggregation_views_hold_the_reference_tiles(demo_project, view, interval):
    config = json.loads((demo_project.settings.dbt_target_dir / "manifest.json").read_text())["nodes"][f"model.hindsight.{view}"]["config"]
    assert config["aggregation_interval"] == interval
    expected = aggregation_oracle.reference_tiles(demo_events(demo_project, view), KEYS[view][:1], "event_timestamp",
                                                  config["aggregations"], interval)
    actual = demo_project.table(view).to_pyarrow_table()
    assert actual.num_rows > 20_000
    aggregation_oracle.assert_tiles_match(actual, expected)


def test_every_feature_view_is_partitioned_at_the_grain_its_rows_choose_and_records_its_dbt_run(demo_project):
    chosen = {}
    for view in FEATURE_VIEWS:
        table = demo_project.table(view)
        [column] = table.metadata().partition_columns
        rows = table.to_pyarrow_table(columns=["event_timestamp", column])
        days = pc.count_distinct(pc.cast(rows.column("event_timestamp"), pa.date32())).as_py()
        # The rule of macros/materializations/feature_view/derived_partition.sql, on the rows it wrote.
        assert column == ("_partition_month" if rows.num_rows / days < 10_000 else "_partition_date"), view
        assert rows.column(column).to_pylist() == partition_values(column, rows.column("event_timestamp")).to_pylist()
        chosen[view] = column
        commit = table.history(1)[0]
        assert commit["dbt_model"] == f"model.hindsight.{view}"
        assert len(commit["dbt_invocation_id"]) == 36
        assert table.metadata().configuration["delta.enableChangeDataFeed"] == "true"
    # The small demo has a few rows a day in every view (at medium scale the tiles are daily).
    assert set(chosen.values()) == {"_partition_month"}


def test_incremental_run_after_new_rows_equals_full_refresh_and_reruns_change_nothing(project_copy):
    before = {view: project_copy.version(view) for view in FEATURE_VIEWS}
    appended = project_copy.generate(loaded_from=DEMO_CUTOFF)
    assert appended["transactions"] > 0 and appended["user_updates"] > 0

    project_copy.dbt("run")
    incremental = snapshot(project_copy)
    after_first = {view: project_copy.version(view) for view in FEATURE_VIEWS}
    for view in ("user_transaction_aggregates", "merchant_risk", "user_profile"):
        assert after_first[view] == before[view] + 1, f"{view} should have taken one MERGE commit"
        assert project_copy.table(view).history(1)[0]["operation"] == "MERGE"

    project_copy.dbt("run")
    assert {view: project_copy.version(view) for view in FEATURE_VIEWS} == after_first, "a second incremental run committed"

    project_copy.dbt("run", "--full-refresh")
    for view in FEATURE_VIEWS:
        assert_same_rows(incremental[view], frame(project_copy, view), KEYS[view])


def test_late_rows_arrive_through_the_incremental_run(project_copy):
    project_copy.generate(loaded_from=DEMO_CUTOFF)
    transactions = raw(project_copy, "transactions")
    late = transactions[(transactions["loaded_at"] >= DEMO_CUTOFF) & (transactions["ts"] < DEMO_CUTOFF - dt.timedelta(hours=1))]
    assert len(late) > 0, "the demo data should contain late rows across the cutoff"
    project_copy.dbt("run", "--select", "user_transaction_aggregates")
    table = frame(project_copy, "user_transaction_aggregates")
    keys = set(zip(table["user_id"], table["event_timestamp"]))
    assert all((row.user_id, row.ts) in keys for row in late.itertuples())


def test_backfill_replaces_exactly_its_range_in_one_commit(project_copy):
    view = "user_transaction_aggregates"
    version = project_copy.version(view)
    backfill_one_day_after_doubling_amounts(project_copy, view, KEYS[view])
    assert project_copy.version(view) == version + 1
    assert project_copy.table(view).history(1)[0]["hindsight_mode"] == "backfill"


BROKEN_VIEW = """
{{ config(
    entities=[var('entity_column', 'user_id')],
    timestamp_field='event_timestamp',
    ttl=var('ttl', '30d'),
) }}
{% set problem = var('problem', 'none') %}
select
    user_id,
    {% if problem == 'string_timestamp' %}cast(signup_ts as varchar){% else %}signup_ts{% endif %} as event_timestamp,
    home_country
    {% if problem == 'new_column' %}, birth_year{% endif %}
from {{ source('raw', 'users') }}
{# The bad rows are recent, so an incremental run reads them too. #}
{% if problem == 'null_key' %}
union all select null, timestamp '2026-10-31 12:00:00', 'FR'
{% elif problem == 'duplicate_key' %}
union all select user_id, signup_ts, 'XX' from {{ source('raw', 'users') }}
where signup_ts = (select max(signup_ts) from {{ source('raw', 'users') }})
{% endif %}
"""


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"problem": "null_key"}, ["checked_view", "no NULL keys", "user_id", "1 row"]),
        ({"problem": "duplicate_key"}, ["checked_view", "unique (user_id, event_timestamp)", "1 key(s) occur more than once"]),
        ({"problem": "string_timestamp"}, ["checked_view", "time columns are timestamps", "event_timestamp", "varchar"]),
        ({"entity_column": "account_id"}, ["checked_view", "key columns exist", "account_id"]),
        ({"problem": "new_column"}, ["checked_view", "no longer match", "added: birth_year", "--full-refresh"]),
        ({"ttl": "thirty days"}, ["checked_view", "ttl", "thirty days", "'30d'"]),
        ({"backfill_start": "2026-06-02", "backfill_end": "2026-06-01"}, ["checked_view", "must be before backfill_end"]),
    ],
    ids=["null_key", "duplicate_key", "string_timestamp", "missing_column", "schema_change", "bad_ttl", "bad_backfill"],
)
def test_a_failed_validation_names_the_problem_and_leaves_the_table_as_it_was(project_copy, variables, expected):
    project_copy.add_model("checked_view", BROKEN_VIEW, features=["home_country", "birth_year"])
    project_copy.dbt("run", "--select", "checked_view")
    version = project_copy.version("checked_view")
    rows = frame(project_copy, "checked_view")

    result = project_copy.dbt("run", "--select", "checked_view", "--vars", json.dumps(variables), check=False)

    assert result.returncode != 0
    for text in expected:
        assert text in result.stdout, f"{text!r} not in dbt's output:\n{result.stdout[-3000:]}"
    assert project_copy.version("checked_view") == version
    assert_same_rows(frame(project_copy, "checked_view"), rows, ["user_id", "event_timestamp"])


def test_a_feature_view_config_error_is_reported_before_any_sql_runs(project_copy):
    project_copy.add_model("no_entities", "{{ config(timestamp_field='ts') }}\nselect 1 as user_id, current_timestamp as ts")
    result = project_copy.dbt("run", "--select", "no_entities", check=False)
    assert result.returncode != 0
    assert "config 'entities' is required" in result.stdout
    assert not (project_copy.settings.raw_data_dir.parent / "offline_store" / "no_entities").exists()


DAILY_SPEND = """\
{{ config(entities=['user_id'], timestamp_field='spend_date', allowed_lateness='2d', online=true) }}
select user_id, cast(ts as date) as spend_date, sum(amount) as amount
from {{ source('raw', 'transactions') }}
where {{ hindsight.source_time_filter('ts') }}
group by user_id, cast(ts as date)
"""


def test_a_date_event_time_runs_incrementally_like_a_timestamp(project_copy):
    # A DATE event time counts as its day's midnight: the watermark and the range compare so.
    project_copy.add_model("user_daily_spend", DAILY_SPEND, features=["amount"])
    project_copy.dbt("run", "--select", "user_daily_spend")
    project_copy.generate(loaded_from=DEMO_CUTOFF)

    project_copy.dbt("run", "--select", "user_daily_spend")
    incremental = frame(project_copy, "user_daily_spend")
    assert project_copy.table("user_daily_spend").history(1)[0]["operation"] == "MERGE"
    project_copy.dbt("run", "--select", "user_daily_spend", "--full-refresh")

    assert_same_rows(incremental, frame(project_copy, "user_daily_spend"), ["user_id", "spend_date"])


def test_a_date_event_time_is_read_as_midnight_utc_by_every_command(project_copy, online_config, monkeypatch):
    monkeypatch.setenv("HINDSIGHT_DYNAMODB_ENDPOINT", online_config.endpoint_url)
    monkeypatch.setenv("HINDSIGHT_DYNAMODB_TABLE_PREFIX", online_config.table_prefix)
    project_copy.add_model("user_daily_spend", DAILY_SPEND, features=["amount"])
    project_copy.dbt("run", "--select", "user_daily_spend")
    newest = max(frame(project_copy, "user_daily_spend")["spend_date"])

    project_copy.run("hindsight", "apply")
    project_copy.run("hindsight", "sync", "--select", "user_daily_spend", "--no-progress")
    parity = project_copy.run("hindsight", "check-parity", "--select", "user_daily_spend", "--sample", "20")
    summary = project_copy.run("hindsight", "summary", "--no-parse")
    status = project_copy.run("hindsight", "status", "--json", check=False)

    assert "0 mismatches" in parity.stdout, parity.stdout
    assert f"{newest.isoformat()} 00:00:00" in summary.stdout, summary.stdout
    view = next(v for v in json.loads(status.stdout)["views"] if v["view"] == "user_daily_spend")
    assert view["offline_newest_event"].startswith(f"{newest.isoformat()}T00:00:00"), view
