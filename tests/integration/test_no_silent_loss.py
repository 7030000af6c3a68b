"""No silent data loss in the feature_view materialization (DuckDB): rows from the future, NULL
keys on incremental runs, full refreshes that would empty a table. Real dbt runs on a copy of the
demo project; each test reproduces a defect that once passed with exit 0."""

from __future__ import annotations

import datetime as dt
import json
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hindsight.demo.raw_files import SCHEMAS
from tests.fixtures.dbt_project import DbtProject
from tests.integration.delta_compare import assert_same_rows

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
UTA_KEYS = ["user_id", "event_timestamp"]


def append_raw(project: DbtProject, table: str, rows: list[dict], name: str) -> None:
    """A new part file of raw rows (missing columns are NULL), as an upstream load would add it."""
    schema = SCHEMAS[table]
    columns = {f.name: [row.get(f.name) for row in rows] for f in schema}
    pq.write_table(pa.table(columns, schema=schema), project.settings.raw_data_dir / table / f"part-{name}.parquet")


def transaction(tid: int, user: int, ts: dt.datetime, loaded_at: dt.datetime | None = None, amount: float = 10.0) -> dict:
    return {"transaction_id": tid, "user_id": user, "merchant_id": 1, "amount": amount, "country": "FR", "ts": ts,
            "is_fraud": False, "loaded_at": loaded_at or ts}


def newest(project: DbtProject, view: str, column: str = "event_timestamp") -> dt.datetime:
    return project.table(view).to_pandas()[column].max().to_pydatetime()


def test_a_future_row_no_longer_hides_later_rows_from_incremental_runs(project_copy):
    """Before: one row dated in the future moved the watermark, and the next incremental run skipped
    a good row that arrived later (exit 0) until a full refresh."""
    view = "user_transaction_aggregates"
    good_time = newest(project_copy, view) + dt.timedelta(hours=1)
    future = dt.datetime.now(UTC) + dt.timedelta(days=30)
    append_raw(project_copy, "transactions", [transaction(9_000_001, 1, future)], "future")
    first = project_copy.dbt("run", "--select", view)
    assert "deferred 1 row(s) with event_timestamp at or after this run's clock" in first.stdout
    assert newest(project_copy, view) < dt.datetime.now(UTC), "a row from the future was written"

    append_raw(project_copy, "transactions", [transaction(9_000_002, 2, good_time)], "late-good")
    project_copy.dbt("run", "--select", view)
    incremental = project_copy.table(view).to_pandas()
    assert ((incremental["user_id"] == 2) & (incremental["event_timestamp"] == good_time)).sum() == 1

    project_copy.dbt("run", "--select", view, "--full-refresh")
    assert_same_rows(incremental, project_copy.table(view).to_pandas(), UTA_KEYS)


def test_a_deferred_row_is_written_by_the_first_run_after_its_time(project_copy):
    view = "user_transaction_aggregates"
    soon = (dt.datetime.now(UTC) + dt.timedelta(seconds=20)).replace(microsecond=0)
    append_raw(project_copy, "transactions", [transaction(9_000_003, 3, soon)], "soon")
    project_copy.dbt("run", "--select", view)
    assert not (project_copy.table(view).to_pandas()["event_timestamp"] == soon).any()
    time.sleep(max(0.0, (soon - dt.datetime.now(UTC)).total_seconds()) + 1)
    result = project_copy.dbt("run", "--select", view)
    assert "deferred" not in result.stdout
    table = project_copy.table(view).to_pandas()
    assert ((table["user_id"] == 3) & (table["event_timestamp"] == soon)).sum() == 1


def test_future_rows_fail_refuses_the_run_with_counts(project_copy):
    project_copy.add_model("strict_profile", """
{{ config(entities=['user_id'], timestamp_field='event_timestamp', created_field='created_timestamp',
          future_rows='fail') }}
select user_id, updated_at as event_timestamp, loaded_at as created_timestamp, credit_limit
from {{ source('raw', 'user_updates') }}
""", features=["credit_limit"])
    project_copy.dbt("run", "--select", "strict_profile")
    version = project_copy.version("strict_profile")
    ahead = dt.datetime.now(UTC) + dt.timedelta(days=2)
    append_raw(project_copy, "user_updates", [
        {"user_id": 5, "home_country": "FR", "credit_limit": 1.0, "account_tier": "basic",
         "updated_at": ahead - dt.timedelta(days=3), "loaded_at": ahead},
        {"user_id": 6, "home_country": "FR", "credit_limit": 1.0, "account_tier": "basic",
         "updated_at": ahead - dt.timedelta(days=3), "loaded_at": ahead + dt.timedelta(hours=1)},
    ], "ahead")
    for args in ((), ("--full-refresh",)):
        result = project_copy.dbt("run", "--select", "strict_profile", *args, check=False)
        assert result.returncode == 1
        assert "rule 'no rows from the future' failed: 2 row(s) with created_timestamp at or after" in result.stdout
        assert "future_rows='defer'" in result.stdout
        assert project_copy.version("strict_profile") == version


def test_a_null_key_fails_an_incremental_window_run_as_it_fails_a_full_refresh(project_copy):
    """Before: the incremental run dropped the NULL-key row silently (0 rows, exit 0)."""
    view = "user_transaction_aggregates"
    version = project_copy.version(view)
    recent = newest(project_copy, view) + dt.timedelta(minutes=5)
    append_raw(project_copy, "transactions", [transaction(9_000_004, None, recent)], "null-key")
    for args in ((), ("--full-refresh",)):
        result = project_copy.dbt("run", "--select", view, *args, check=False)
        assert result.returncode == 1, result.stdout[-2000:]
        assert "rule 'no NULL keys' failed: column user_id is NULL in 1 row(s)" in result.stdout
        assert project_copy.version(view) == version


def test_a_null_key_fails_an_incremental_grid_run(project_copy):
    view = "merchant_risk"
    recent = newest(project_copy, "user_transaction_aggregates") + dt.timedelta(minutes=5)
    row = transaction(9_000_005, 1, recent)
    row["merchant_id"] = None
    append_raw(project_copy, "transactions", [row], "null-merchant")
    result = project_copy.dbt("run", "--select", view, check=False)
    assert result.returncode == 1
    assert "rule 'no NULL keys' failed: column merchant_id is NULL" in result.stdout


EMPTYABLE_VIEW = """
{{ config(entities=['user_id'], timestamp_field='event_timestamp') }}
select user_id, signup_ts as event_timestamp, home_country
from {{ source('raw', 'users') }}
{% if var('source_empty', false) %}where false{% endif %}
"""


def test_a_full_refresh_that_would_empty_the_table_is_refused_unless_allowed(project_copy):
    project_copy.add_model("emptyable", EMPTYABLE_VIEW, features=["home_country"])
    project_copy.dbt("run", "--select", "emptyable")
    version, rows = project_copy.version("emptyable"), len(project_copy.table("emptyable").to_pandas())
    assert rows > 0

    empty = json.dumps({"source_empty": True})
    refused = project_copy.dbt("run", "--select", "emptyable", "--full-refresh", "--vars", empty, check=False)
    assert refused.returncode == 1
    assert f"the full refresh computed 0 rows, but the Delta table holds {rows} rows" in refused.stdout
    assert "allow_empty_full_refresh" in refused.stdout
    assert project_copy.version("emptyable") == version

    # An incremental run over an empty source changes nothing and is not refused.
    assert project_copy.dbt("run", "--select", "emptyable", "--vars", empty).returncode == 0
    assert project_copy.version("emptyable") == version

    allowed = json.dumps({"source_empty": True, "allow_empty_full_refresh": True})
    project_copy.dbt("run", "--select", "emptyable", "--full-refresh", "--vars", allowed)
    assert len(project_copy.table("emptyable").to_pandas()) == 0
