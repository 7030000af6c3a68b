"""registry_sync.catalog: what the feature catalog writes into dbt docs' manifest and catalog."""

from __future__ import annotations

import copy

from hindsight.registry_sync.catalog import enrich_docs, overview, service_card, view_card
from hindsight.registry_sync.model import Aggregation, Feature, FeatureView


def manifest_for(registry) -> dict:
    nodes = {
        f"model.hindsight.{v.name}": {"name": v.name, "resource_type": "model", "description": "Original text.",
                                      "columns": {}, "depends_on": {"nodes": []}}
        for v in registry.feature_views
    }
    exposures = {
        f"exposure.hindsight.{s.name}": {"name": s.name, "description": "Scores.", "meta": {"hindsight": {"features": []}, "team": "risk"},
                                         "config": {"meta": {"hindsight": {}}}, "depends_on": {"nodes": []}}
        for s in registry.feature_services
    }
    return {"metadata": {"project_name": "hindsight"}, "nodes": nodes, "exposures": exposures,
            "docs": {"doc.dbt.__overview__": {"block_contents": "Welcome!"}}, "parent_map": {}, "child_map": {}}


def catalog_for(registry) -> dict:
    return {"nodes": {f"model.hindsight.{v.name}": {"metadata": {"type": "VIEW"},
                                                     "columns": {"_partition_date": {}}}
                      for v in registry.feature_views}}


def test_views_get_a_card_services_a_list_and_on_demand_views_a_node(serving_registry) -> None:
    manifest, catalog = manifest_for(serving_registry), catalog_for(serving_registry)
    before = copy.deepcopy(manifest)
    docs, site_catalog = enrich_docs(manifest, catalog, serving_registry, {"transaction_context": "def f(): ..."})
    assert manifest == before  # the inputs are left as dbt wrote them

    profile = docs["nodes"]["model.hindsight.user_profile"]
    assert profile["description"].startswith("| | |")
    assert profile["description"].endswith("Original text.")
    assert site_catalog["nodes"]["model.hindsight.user_profile"]["metadata"]["type"] == "feature view (Delta)"

    exposure = docs["exposures"]["exposure.hindsight.fraud_detection"]
    assert "**Features** (7):" in exposure["description"]
    assert exposure["meta"] == {"team": "risk"} and exposure["config"]["meta"] == {}

    node = docs["nodes"]["model.hindsight.transaction_context"]
    assert node["config"]["materialized"] == "on_demand" and node["raw_code"] == "def f(): ..."
    assert set(node["depends_on"]["nodes"]) == {"model.hindsight.user_profile", "model.hindsight.user_transaction_aggregates"}
    assert "model.hindsight.transaction_context" in exposure["depends_on"]["nodes"]
    assert "model.hindsight.transaction_context" in docs["child_map"]["model.hindsight.user_profile"]
    assert docs["parent_map"]["exposure.hindsight.fraud_detection"] == exposure["depends_on"]["nodes"]
    assert docs["docs"]["doc.dbt.__overview__"]["block_contents"].startswith("# Feature catalog: ")
    assert docs["docs"]["doc.hindsight.__overview__"]["block_contents"].startswith("# Feature catalog: ")


def test_a_projects_own_overview_is_kept(serving_registry) -> None:
    manifest = manifest_for(serving_registry)
    manifest["docs"]["doc.hindsight.__overview__"] = {"block_contents": "Ours."}
    docs, _ = enrich_docs(manifest, catalog_for(serving_registry), serving_registry)
    assert docs["docs"]["doc.hindsight.__overview__"]["block_contents"] == "Ours."


def test_the_view_card_names_every_setting(serving_registry) -> None:
    view = serving_registry.view("merchant_risk")
    card = view_card(view, ("fraud_detection",), serving_registry)
    assert "| **TTL** | 2d |" in card
    assert "| **Online** | yes (synced to DynamoDB) |" in card
    assert f"| **Delta location** | `{view.delta_uri}` |" in card
    assert "[fraud_detection](#!/exposure/exposure.hindsight.fraud_detection)" in card


def test_an_aggregation_views_card_lists_interval_windows_and_each_aggregation(serving_registry) -> None:
    view = FeatureView(
        "clicks", "aggregation", ("user",), ("user_id",), "ts", None, None, True, "/d/clicks",
        (Feature("click_count_1h", "int64", "Clicks."), Feature("amount_sum_1d", "float64", "Spend.")),
        aggregation_interval_seconds=3600,
        aggregations=(Aggregation("click_count_1h", "count", "*", 3600), Aggregation("amount_sum_1d", "sum", "amount", 86400)),
    )
    card = view_card(view, (), serving_registry)
    assert "| **Kind** | aggregation feature view |" in card
    assert "| **Aggregation interval** | 1h |" in card and "| **Windows** | 1h, 1d |" in card
    assert "| `click_count_1h` | count | every event | 1h |" in card
    assert "| `amount_sum_1d` | sum | `amount` | 1d |" in card
    assert "TTL" not in card


def test_the_service_list_and_overview_read_as_text(serving_registry) -> None:
    card = service_card(serving_registry.service("fraud_detection"), serving_registry)
    assert "- `merchant_risk:fraud_rate_30d` as `merchant_fraud_rate` (float64)" in card
    page = overview(serving_registry, {"user_profile": "model.hindsight.user_profile"})
    assert "[user_profile](#!/model/model.hindsight.user_profile)" in page
    assert "## Feature services (" in page and "## Entities (" in page
