"""`hindsight plan` / `apply` / `registry` on the real dbt project, through the CLI as CI runs it."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def hindsight(project, *args, check=False):
    return project.run("hindsight", *args, check=check)


@pytest.fixture
def parsed_copy(project_copy):
    """A project copy with its own manifest (a copy's target/ is left behind: it names the original's paths)."""
    project_copy.dbt("parse")
    return project_copy


def test_apply_then_list_and_show_every_view(parsed_copy):
    project_copy = parsed_copy
    first = hindsight(project_copy, "apply", "--no-online", check=True)
    assert "Applied registry version 1" in first.stdout
    assert "Registry unchanged (version 1)" in hindsight(project_copy, "apply", "--no-online", check=True).stdout

    listing = json.loads(hindsight(project_copy, "registry", "list", "--json", check=True).stdout)
    assert {v["name"] for v in listing["feature_views"]} == {
        "merchant_profile", "merchant_risk", "user_profile", "user_transaction_aggregates", "transaction_context",
        "user_stream_activity",
    }
    assert [s["name"] for s in listing["stream_sources"]] == ["streams.transactions"]
    view = json.loads(hindsight(project_copy, "registry", "show", "user_profile", "--json", check=True).stdout)
    assert view["kind"] == "batch" and view["entities"] == ["user_id"] and view["created_field"] == "created_timestamp"
    assert view["timestamp_field"] == "event_timestamp" and view["online"] is True and view["ttl"] is None
    assert view["delta_uri"].endswith("/data/offline_store/user_profile")
    assert {"name": "credit_limit", "type": "float64", "description": "Credit limit in EUR."} in view["features"]
    odfv = json.loads(hindsight(project_copy, "registry", "show", "transaction_context", "--json", check=True).stdout)
    assert odfv["kind"] == "on_demand" and odfv["request_fields"] == {"amount": "float64", "country": "string"}


def test_plan_gates_a_breaking_change_and_apply_keeps_old_versions(parsed_copy):
    project_copy = parsed_copy
    hindsight(project_copy, "apply", "--no-online", check=True)
    features = project_copy.root / "models" / "features"
    # Drop a feature that user_spend_profile reads through user_transaction_aggregates:* ...
    aggregates = features / "user_transaction_aggregates.sql"
    aggregates.write_text(aggregates.read_text().replace(
        "        {'column': 'country', 'functions': ['last'], 'windows': ['30d']},\n", ""))
    # ... and change the type of merchant_risk's amount sums (an aggregation's dtype follows its input).
    risk = features / "merchant_risk.sql"
    risk.write_text(risk.read_text().replace("    amount,\n    cast(is_fraud", "    cast(amount as bigint) as amount,\n    cast(is_fraud"))
    # The materialization's gate refuses these without the var (tests/integration/test_feature_view_checks.py).
    project_copy.dbt("run", "--select", "merchant_risk", "user_transaction_aggregates", "--full-refresh",
                     "--vars", '{"hindsight_allow_breaking": true}')

    plan = hindsight(project_copy, "plan")
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert ("- feature user_transaction_aggregates:country_last_30d: still used by feature service "
            "user_spend_profile  [BREAKING]") in plan.stdout
    assert "~ feature merchant_risk:amount_sum_7d: type float64 -> int64  [BREAKING]" in plan.stdout
    assert "~ feature merchant_risk:amount_sum_30d: type float64 -> int64  [BREAKING]" in plan.stdout
    assert "3 breaking" in plan.stdout
    assert hindsight(project_copy, "apply", "--no-online").returncode == 1

    assert hindsight(project_copy, "plan", "--allow-breaking").returncode == 0
    assert "Applied registry version 2" in hindsight(project_copy, "apply", "--no-online", "--allow-breaking", check=True).stdout
    old = json.loads(hindsight(project_copy, "registry", "show", "user_transaction_aggregates", "--json", "--version", "1", check=True).stdout)
    new = json.loads(hindsight(project_copy, "registry", "show", "user_transaction_aggregates", "--json", check=True).stdout)
    assert "country_last_30d" in {f["name"] for f in old["features"]}
    assert "country_last_30d" not in {f["name"] for f in new["features"]}


def test_definition_errors_name_the_exposure_and_its_file(project_copy):
    services = project_copy.root / "models" / "features" / "feature_services.yml"
    services.write_text(services.read_text().replace("merchant_risk:fraud_mean_7d", "merchant_risk:fraud_mean_8d"))
    project_copy.dbt("parse")
    result = hindsight(project_copy, "plan")
    assert result.returncode == 2
    assert ("feature service fraud_detection (models/features/feature_services.yml): feature view merchant_risk "
            "has no feature fraud_mean_8d (did you mean fraud_mean_7d") in result.stderr


def test_plan_and_apply_parse_the_project_as_it_is_now(project_copy):
    # The copy has no target/: no manifest at all until plan parses.
    assert not (project_copy.root / "target" / "manifest.json").exists()
    first = hindsight(project_copy, "apply", "--no-online", check=True)
    assert "Applied registry version 1" in first.stdout
    assert "Parsed the dbt project in" in first.stderr
    profile = project_copy.root / "models" / "features" / "user_profile.yml"
    profile.write_text(profile.read_text().replace('"Credit limit in EUR."', '"Credit limit in EUR, at the time."'))
    # No `dbt parse` in between: plan sees the edit.
    result = hindsight(project_copy, "plan", "--json", check=True)
    assert json.loads(result.stdout)["changes"] == [
        {"action": "changed", "kind": "feature", "name": "user_profile:credit_limit", "detail": "description",
         "breaking": False},
    ]


def test_no_parse_refuses_a_manifest_older_than_the_project(parsed_copy):
    project_copy = parsed_copy
    assert hindsight(project_copy, "plan", "--no-parse", check=True).stdout.startswith("+ ")
    risk = project_copy.root / "models" / "features" / "merchant_risk.sql"
    risk.write_text(risk.read_text() + "\n-- edited after the last parse\n")
    result = hindsight(project_copy, "plan", "--no-parse")
    assert result.returncode == 2
    assert "is older than 1 project file(s) changed since (models/features/merchant_risk.sql)" in result.stderr
    assert "run `dbt parse` (or `dbt build`) first, or drop --no-parse" in result.stderr
    assert hindsight(project_copy, "apply", "--no-online", "--no-parse").returncode == 2
    project_copy.dbt("parse")
    assert hindsight(project_copy, "plan", "--no-parse").returncode == 0


def test_a_project_dbt_cannot_parse_is_a_clear_error(project_copy):
    services = project_copy.root / "models" / "features" / "feature_services.yml"
    services.write_text(services.read_text() + "\n  - name: [unclosed\n")
    result = hindsight(project_copy, "plan")
    assert result.returncode == 2
    assert "error:\ndbt could not parse the project in" in result.stderr
    assert "feature_services.yml" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
