"""Feature-view definitions checked by real dbt runs: config keys, the breaking-change gate,
append_new_columns, window_aggregates after a model's WITH, and dbt unit tests."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.dataset as ds
import pytest

from hindsight.offline_store.contracts import UsedFeature, contracts_path, read_contract
from tests.fixtures.dbt_project import DbtProject
from tests.integration import window_oracle
from tests.integration.delta_compare import assert_same_rows

pytestmark = pytest.mark.integration

FEATURES = "models/features"
TYPO_VIEW = """{{ config(entities=['user_id'], timestamp_field='event_timestamp'%s) }}
select user_id, signup_ts as event_timestamp, home_country from {{ source('raw', 'users') }}
"""


@pytest.mark.parametrize(
    ("config", "yml", "key", "nearest"),
    [
        (", onlin=true", None, "onlin", "online"),
        ("", "version: 2\nmodels:\n  - name: typo_view\n    config:\n      timestamp_feild: ts\n", "timestamp_feild", "timestamp_field"),
        (", tag=['fraud']", None, "tag", "tags"),
    ],
    ids=["config_block", "model_yml", "dbt_key"],
)
def test_an_unknown_config_key_fails_the_run_naming_the_model_and_the_nearest_key(project_copy, config, yml, key, nearest):
    project_copy.add_model("typo_view", TYPO_VIEW % config, yml)
    result = project_copy.dbt("run", "--select", "typo_view", check=False)
    assert result.returncode == 1
    expected = f"typo_view (models/features/typo_view.sql): unknown config key '{key}' (did you mean {nearest}?)"
    assert expected in result.stdout, result.stdout[-3000:]
    assert not (project_copy.root / "data" / "offline_store" / "typo_view").exists()


README_EXAMPLE = """{{ config(entities=['user_id'], timestamp_field='event_timestamp', ttl='30d', online=true) }}

with transactions as (
    select user_id, ts, amount from {{ source('raw', 'transactions') }}
)
{{ hindsight.window_aggregates(
    relation='transactions', entities=['user_id'], timestamp='ts', timestamp_alias='event_timestamp',
    windows=['1h', '1d', '7d', '30d'],
    aggregations=[{'column': 'amount', 'functions': ['sum', 'mean', 'max']}],
) }}
"""


def test_window_aggregates_follows_a_models_own_with(project_copy):
    project_copy.add_model("readme_example", README_EXAMPLE, features=[
        f"amount_{f}_{w}" for f in ("sum", "mean", "max") for w in ("1h", "1d", "7d", "30d")])
    project_copy.dbt("run", "--select", "readme_example")
    columns = ["user_id", "event_timestamp", "amount_sum_1h", "amount_mean_1d", "amount_max_7d", "amount_sum_30d"]
    built = project_copy.table("readme_example").to_pandas()[columns]
    transactions = ds.dataset(project_copy.settings.raw_data_dir / "transactions", format="parquet").to_table().to_pandas()
    reference = window_oracle.user_aggregates(transactions)[columns]
    assert len(built) > 20_000
    assert_same_rows(built, reference, ["user_id", "event_timestamp"])
    # The incremental form (the by-join formulation) composes the same way.
    project_copy.dbt("run", "--select", "readme_example")
    assert project_copy.version("readme_example") == 0


def edit_user_profile(project: DbtProject, old: str, new: str) -> None:
    path = project.root / FEATURES / "user_profile.sql"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_breaking_change_to_a_served_view_is_refused_until_explicitly_allowed(project_copy):
    project_copy.dbt("parse")
    applied = project_copy.run("hindsight", "apply", "--no-online")
    assert "Applied registry version 1" in applied.stdout
    assert read_contract(contracts_path(project_copy.settings.registry_dir), "user_profile").features["credit_limit"] == UsedFeature(
        "double", ("feature service fraud_detection",)
    )
    version = project_copy.version("user_profile")

    edit_user_profile(project_copy, "    updates.credit_limit,", "    cast(updates.credit_limit as varchar) as credit_limit,")
    refused = project_copy.dbt("run", "--select", "user_profile", "--full-refresh", check=False)
    assert refused.returncode == 1
    assert (
        "feature view user_profile: refusing a breaking change: credit_limit changes type double -> string "
        "(used by feature service fraud_detection). The Delta table was not changed"
    ) in refused.stdout, refused.stdout[-3000:]
    assert "--vars '{\"hindsight_allow_breaking\": true}'" in refused.stdout
    assert project_copy.version("user_profile") == version

    # An incremental run that drops a feature two services use names both.
    edit_user_profile(project_copy, "    cast(updates.credit_limit as varchar) as credit_limit,", "    updates.credit_limit,")
    edit_user_profile(project_copy, "    updates.account_tier,", "")
    dropped = project_copy.dbt("run", "--select", "user_profile", check=False)
    assert dropped.returncode == 1
    assert "account_tier (string) is removed (used by feature service fraud_detection, feature service user_spend_profile)" in dropped.stdout
    assert project_copy.version("user_profile") == version

    # Dropping a feature no service uses is not breaking.
    edit_user_profile(project_copy, "    users.signup_ts,", "    updates.account_tier,")
    project_copy.dbt("run", "--select", "user_profile", "--full-refresh")
    assert project_copy.version("user_profile") == version + 1

    edit_user_profile(project_copy, "    updates.credit_limit,", "    cast(updates.credit_limit as varchar) as credit_limit,")
    allowed = project_copy.dbt("run", "--select", "user_profile", "--full-refresh", "--vars", '{"hindsight_allow_breaking": true}')
    assert "breaking change written because hindsight_allow_breaking is set: credit_limit changes type double -> string" in allowed.stdout
    assert project_copy.version("user_profile") == version + 2

    assert project_copy.run("hindsight", "apply", "--no-online", check=False).returncode == 1
    project_copy.run("hindsight", "apply", "--no-online", "--allow-breaking")
    assert read_contract(contracts_path(project_copy.settings.registry_dir), "user_profile").features["credit_limit"].dtype == "string"
    project_copy.dbt("run", "--select", "user_profile", "--full-refresh")
    assert project_copy.version("user_profile") == version + 3


APPENDED_VIEW = """{{ config(entities=['user_id'], timestamp_field='event_timestamp', on_schema_change='append_new_columns') }}
select user_id, signup_ts as event_timestamp, home_country
{%- if var('with_birth_year', false) %}, birth_year{% endif %}
from {{ source('raw', 'users') }}
"""


def test_append_new_columns_counts_the_rows_left_null_and_prints_the_backfill_that_fills_them(project_copy):
    project_copy.add_model("appended", APPENDED_VIEW, features=["home_country", "birth_year"])
    project_copy.dbt("run", "--select", "appended")
    result = project_copy.dbt("run", "--select", "appended", "--vars", '{"with_birth_year": true}')

    table = project_copy.table("appended").to_pandas()
    missing = table[table["birth_year"].isna()]
    assert 0 < len(missing) < len(table)
    first, last = missing["event_timestamp"].min(), missing["event_timestamp"].max()
    start, end = first.date().isoformat(), (last + pd.Timedelta(days=1)).date().isoformat()
    command = f"dbt run --select appended --vars '{{\"backfill_start\": \"{start}\", \"backfill_end\": \"{end}\"}}'"
    expected = (
        f"appended: new column(s) birth_year are NULL in {len(missing)} historical rows "
        f"(event times {first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S}); fill them with: {command}"
    )
    assert expected in result.stdout, result.stdout[-3000:]

    # The printed command is the one that fills them.
    project_copy.dbt("run", "--select", "appended", "--vars", json.dumps({"with_birth_year": True, "backfill_start": start, "backfill_end": end}))
    assert project_copy.table("appended").to_pandas()["birth_year"].notna().all()


UNIT_TESTS = {
    "merchant_profile": "merchant_profile_is_the_onboarding_record",
    "merchant_risk": "merchant_risk_selects_transactions_with_a_0_1_fraud_flag",
    "user_profile": "user_profile_keeps_late_corrections_as_versions",
    "user_transaction_aggregates": "user_transaction_aggregates_selects_the_transactions",
}


def test_dbt_unit_tests_run_on_every_kind_of_feature_view_and_catch_a_wrong_expectation(project_copy):
    passed = project_copy.dbt("test", "--select", "test_type:unit")
    for model, name in UNIT_TESTS.items():
        assert f"PASS {model}::{name}" in passed.stdout, passed.stdout[-3000:]

    path = project_copy.root / FEATURES / "user_transaction_aggregates.yml"
    path.write_text(path.read_text().replace("amount: 30, country: DE", "amount: 31, country: DE"))
    failed = project_copy.dbt("test", "--select", "test_type:unit", check=False)
    assert failed.returncode == 1
    assert f"FAIL 1 user_transaction_aggregates::{UNIT_TESTS['user_transaction_aggregates']}" in failed.stdout
    assert "actual" in failed.stdout and "differs from" in failed.stdout


UNDOCUMENTED_VIEW = """{{ config(entities=['user_id'], timestamp_field='event_timestamp') }}
select user_id, signup_ts as event_timestamp, home_country, birth_year from {{ source('raw', 'users') }}
"""


def test_a_feature_without_a_description_fails_the_build_naming_it(project_copy):
    project_copy.add_model("undocumented", UNDOCUMENTED_VIEW, features=["home_country"])
    result = project_copy.dbt("run", "--select", "undocumented", check=False)
    assert result.returncode == 1
    assert ("undocumented (models/features/undocumented.sql): rule 'every feature has a description' failed: "
            "1 feature(s) without one: birth_year. Describe each under `columns:` of model undocumented in "
            "models/features/undocumented.yml") in result.stdout, result.stdout[-3000:]
    assert not (project_copy.root / "data" / "offline_store" / "undocumented").exists()
