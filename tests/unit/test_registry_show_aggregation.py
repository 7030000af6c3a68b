"""`hindsight registry show` of an aggregation view: its interval and what each feature aggregates."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hindsight.cli import main
from hindsight.registry_sync.store import RegistryStore
from tests.unit.test_registry_aggregation import build, manifest


@pytest.fixture
def project_dir(tmp_path, monkeypatch):
    root = tmp_path / "project"
    root.mkdir()
    (root / "dbt_project.yml").write_text("name: p\n")
    (root / "hindsight.yml").write_text("registry: reg\n")
    RegistryStore(root / "reg").write(build(manifest()))
    monkeypatch.chdir(tmp_path)
    return root


def run(project_dir, *args):
    result = CliRunner().invoke(main, ["registry", *args, "--project-dir", str(project_dir)])
    assert result.exit_code == 0, result.output
    return result.output


def test_show_prints_the_interval_and_each_feature_s_function_column_and_window(project_dir):
    lines = run(project_dir, "show", "user_txn").splitlines()
    # The longest label, aggregation_interval, sets where the values start.
    assert "kind:                 aggregation" in lines
    assert lines.index("ttl:                  -") + 1 == lines.index("aggregation_interval: 1h")
    start = lines.index("features (13):") + 1
    assert lines[start:start + 3] == [
        "  txn_count_1h      int64    count(*) over 1h        Transactions in the last hour.",
        "  txn_count_1d      int64    count(*) over 1d",
        "  amount_sum_1h     float64  sum(amount) over 1h",
    ]
    assert "  amount_stddev_7d  float64  stddev(amount) over 1w" in lines
    assert lines[-1] == "  country_last_30d  string   last(country) over 30d"


def test_show_json_describes_every_aggregation(project_dir):
    document = json.loads(run(project_dir, "show", "user_txn", "--json"))
    assert document["kind"] == "aggregation" and document["aggregation_interval"] == "1h"
    assert list(document)[:9] == ["name", "kind", "entities", "entity_names", "timestamp_field", "created_field", "ttl",
                                  "aggregation_interval", "online"]
    assert document["features"][0] == {"name": "txn_count_1h", "type": "int64", "description": "Transactions in the last hour.",
                                       "function": "count", "input_column": "*", "window": "1h"}
    assert document["features"][-1] == {"name": "country_last_30d", "type": "string", "description": "",
                                        "function": "last", "input_column": "country", "window": "30d"}
    listing = json.loads(run(project_dir, "list", "--json"))
    assert listing["feature_views"][0]["features"][2]["function"] == "sum"


def test_a_batch_view_s_document_has_no_aggregation_keys(project_dir):
    from hindsight.cli.registry import view_document
    from tests.fixtures.serving import build_serving_registry

    document = view_document(build_serving_registry().view("user_transaction_aggregates"))
    assert "aggregation_interval" not in document and set(document["features"][0]) == {"name", "type", "description"}
