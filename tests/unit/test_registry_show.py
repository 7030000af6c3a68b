"""`hindsight registry show NAME` prints every kind readably, from any folder with --project-dir."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hindsight.cli import main
from hindsight.registry_sync.store import RegistryStore


@pytest.fixture
def project_dir(tmp_path, serving_registry, monkeypatch):
    root = tmp_path / "project"
    root.mkdir()
    (root / "dbt_project.yml").write_text("name: p\n")
    (root / "hindsight.yml").write_text("registry: reg\n")
    RegistryStore(root / "reg").write(serving_registry)
    monkeypatch.chdir(tmp_path)  # not the project: --project-dir finds it
    return root


def show(project_dir, *args):
    result = CliRunner().invoke(main, ["registry", "show", *args, "--project-dir", str(project_dir)])
    assert result.exit_code == 0, result.output
    return result.output


def test_show_a_feature_service(project_dir):
    lines = show(project_dir, "fraud_detection").splitlines()
    assert lines[:3] == ["name:            fraud_detection", "kind:            feature_service",
                         "description:     Scores card transactions."]
    assert "owner:           risk-team" in lines
    assert "features (7):" in lines
    features = [line.split(maxsplit=1 + line.count(" as ") * 2) for line in lines[lines.index("features (7):") + 1:]]
    assert features[3] == ["merchant_risk:fraud_rate_30d", "as", "merchant_fraud_rate",
                           "float64  fraud_rate_30d of merchant_risk"]
    assert features[6][0] == "transaction_context:is_foreign_country" and features[6][1].startswith("bool ")


def test_show_a_feature_view(project_dir):
    output = show(project_dir, "user_transaction_aggregates")
    assert "kind:            batch" in output
    assert "entities:        user_id" in output and "ttl:             30d" in output
    assert "features (3):" in output
    assert "  amount_mean_30d   float64  amount_mean_30d of user_transaction_aggregates" in output


def test_show_an_on_demand_view(project_dir):
    output = show(project_dir, "transaction_context")
    assert "kind:            on_demand" in output
    assert "request_fields:  amount (float64), country (string)" in output
    assert "feature_inputs:  user_transaction_aggregates:amount_mean_30d, user_profile:home_country" in output
    assert "  is_foreign_country" in output


def test_show_an_entity_and_json_unchanged(project_dir):
    assert "join_keys:       user_id" in show(project_dir, "user")
    document = json.loads(show(project_dir, "fraud_detection", "--json"))
    assert document["features"][3] == {"view": "merchant_risk", "feature": "fraud_rate_30d",
                                       "alias": "merchant_fraud_rate"}


def test_show_an_unknown_name(project_dir):
    result = CliRunner().invoke(main, ["registry", "show", "nope", "--project-dir", str(project_dir)])
    assert result.exit_code == 2 and "nothing named nope in registry version 1" in result.output
