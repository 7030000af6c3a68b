"""Freshness on the dbt side, with real dbt runs: the `expected_freshness` config (and its default
from dbt's own `freshness.build_after`) reaches the registry, a bad value fails the run, and
`dbt source freshness` passes on fresh demo data and fails on stale data."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from hindsight.demo_data import generate
from hindsight.project import project_registry
from tests.fixtures.dbt_project import new_project

pytestmark = pytest.mark.integration

VIEW = """{{ config(entities=['user_id'], timestamp_field='event_timestamp'%s) }}
select user_id, signup_ts as event_timestamp, home_country from {{ source('raw', 'users') }}
"""


def test_expected_freshness_reaches_the_registry(project_copy):
    project_copy.add_model("set_view", VIEW % ", expected_freshness='12h', ttl='30d'", features=["home_country"])
    # dbt 1.11's own model freshness (the schedule a view is built on): twice it is the default.
    project_copy.add_model("scheduled_view", VIEW % ", ttl='30d', freshness={'build_after': {'count': 6, 'period': 'hour'}}",
                           features=["home_country"])
    project_copy.add_model("ttl_view", VIEW % ", ttl='30d'", features=["home_country"])
    project_copy.dbt("run", "--select", "set_view", "scheduled_view", "ttl_view")
    registry = project_registry(project_copy.settings)
    figures = {name: (registry.view(name).expected_freshness_seconds, registry.view(name).expected_freshness_source)
               for name in ("set_view", "scheduled_view", "ttl_view", "user_profile", "merchant_risk")}
    assert figures == {
        "set_view": (43200, "config"),
        "scheduled_view": (43200, "schedule"),
        "ttl_view": (30 * 86400, "ttl"),
        "user_profile": (None, ""),
        "merchant_risk": (None, ""),  # an aggregation view: no ttl, no schedule, not checked
    }


def test_a_bad_expected_freshness_fails_the_run(project_copy):
    project_copy.add_model("bad_view", VIEW % ", expected_freshness='soon'")
    result = project_copy.dbt("run", "--select", "bad_view", check=False)
    assert result.returncode == 1
    expected = "Cannot parse the expected_freshness of feature view bad_view (models/features/bad_view.sql): soon."
    assert expected in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize(("days_ago", "exit_code", "status"), [(0, 0, "pass"), (5, 1, "error")], ids=["fresh", "stale"])
def test_dbt_source_freshness_on_the_demo_sources(tmp_path, days_ago, exit_code, status):
    project = new_project(tmp_path / "project")
    end = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days_ago)
    # Only rows loaded by the end date: the data as a daily load would have it.
    loaded_before = dt.datetime.combine(end, dt.time(), tzinfo=dt.timezone.utc)
    generate(project.settings.raw_data_dir, scale="small", end=end, loaded_before=loaded_before)
    result = project.dbt("source", "freshness", check=False)
    assert result.returncode == exit_code, result.stdout[-3000:]
    results = {r["unique_id"]: r for r in json.loads((project.root / "target" / "sources.json").read_text())["results"]}
    assert sorted(results) == ["source.hindsight.raw.transactions", "source.hindsight.raw.user_updates"]
    assert {r["status"] for r in results.values()} == {status}
    age = results["source.hindsight.raw.transactions"]["max_loaded_at_time_ago_in_s"]
    now = dt.datetime.now(dt.timezone.utc)
    # The newest transaction was loaded just before the end date's midnight.
    assert 0 < age - (now - loaded_before).total_seconds() < 3600
