"""The breaking-change gate on Spark (Sail): the same contracts file and messages as on DuckDB."""

from __future__ import annotations

import pytest

from tests.integration.test_feature_view_checks import TYPO_VIEW, edit_user_profile

pytestmark = pytest.mark.integration


def test_sail_refuses_a_breaking_change_to_a_served_view_with_the_duckdb_message(spark_project_copy):
    project = spark_project_copy
    project.dbt("parse")
    project.run("hindsight", "apply", "--no-online")
    version = project.version("user_profile")

    # Nothing changed: the gate lets the incremental run through.
    project.dbt("run", "--select", "user_profile")

    edit_user_profile(project, "    updates.credit_limit,", "    cast(updates.credit_limit as string) as credit_limit,")
    refused = project.dbt("run", "--select", "user_profile", "--full-refresh", check=False)
    assert refused.returncode == 1
    assert (
        "feature view user_profile: refusing a breaking change: credit_limit changes type double -> string "
        "(used by feature service fraud_detection). The Delta table was not changed."
    ) in refused.stdout, refused.stdout[-3000:]
    assert "--vars '{\"hindsight_allow_breaking\": true}'" in refused.stdout
    assert project.version("user_profile") == version

    edit_user_profile(project, "    cast(updates.credit_limit as string) as credit_limit,", "    updates.credit_limit,")
    edit_user_profile(project, "    updates.account_tier,", "")
    dropped = project.dbt("run", "--select", "user_profile", check=False)
    assert dropped.returncode == 1
    assert "account_tier (string) is removed (used by feature service fraud_detection, feature service user_spend_profile)" in dropped.stdout, dropped.stdout[-3000:]
    assert project.version("user_profile") == version


def test_sail_fails_an_unknown_config_key_naming_the_nearest(spark_project_copy):
    spark_project_copy.add_model("typo_view", TYPO_VIEW % ", onlin=true")
    result = spark_project_copy.dbt("run", "--select", "typo_view", check=False)
    assert result.returncode == 1
    assert "typo_view (models/features/typo_view.sql): unknown config key 'onlin' (did you mean online?)" in result.stdout, result.stdout[-3000:]
