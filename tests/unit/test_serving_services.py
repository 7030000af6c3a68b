"""Feature-service listing and schema, health, readiness and metrics endpoints."""

from __future__ import annotations

import re


def test_lists_services_with_servability(serving_client):
    body = serving_client.get("/v1/feature-services").get_json()
    assert body["registry_version"] == 3
    summaries = {s["name"]: s for s in body["feature_services"]}
    assert set(summaries) == {"fraud_detection", "user_basics", "merchant_catalog"}
    assert summaries["fraud_detection"] == {
        "name": "fraud_detection",
        "description": "Scores card transactions.",
        "owner": "risk-team",
        "tags": [],
        "feature_count": 7,
        "servable": True,
    }
    assert summaries["merchant_catalog"]["servable"] is False


def test_service_schema(serving_client):
    schema = serving_client.get("/v1/feature-services/fraud_detection").get_json()
    assert schema["entities"] == [
        {"name": "user", "join_keys": ["user_id"], "description": "A card holder."},
        {"name": "merchant", "join_keys": ["merchant_id"], "description": "A merchant."},
    ]
    assert schema["join_keys"] == [
        {"name": "user_id", "dtype": "int64", "views": ["user_transaction_aggregates", "user_profile"]},
        {"name": "merchant_id", "dtype": "int64", "views": ["merchant_risk"]},
    ]
    assert schema["request_fields"] == [
        {"name": "amount", "dtype": "float64", "views": ["transaction_context"]},
        {"name": "country", "dtype": "string", "views": ["transaction_context"]},
    ]
    features = {f["name"]: f for f in schema["features"]}
    assert list(features) == [
        "amount_mean_30d",
        "user_transaction_aggregates__txn_count_7d",
        "merchant_risk__txn_count_7d",
        "merchant_fraud_rate",
        "home",
        "amount_vs_user_mean_30d",
        "is_foreign_country",
    ]
    assert features["home"] == {
        "name": "home",
        "ref": "user_profile:home_country",
        "view": "user_profile",
        "feature": "home_country",
        "dtype": "string",
        "description": "home_country of user_profile",
        "on_demand": False,
        "ttl_seconds": None,
    }
    assert features["merchant_fraud_rate"]["ttl_seconds"] == 2 * 86_400
    assert features["is_foreign_country"]["dtype"] == "bool"
    assert features["is_foreign_country"]["on_demand"] is True
    assert features["is_foreign_country"]["description"] == "the transaction is outside the user's home country"


def test_broken_service_schema_says_why(serving_client):
    schema = serving_client.get("/v1/feature-services/merchant_catalog").get_json()
    assert schema["servable"] is False
    assert schema["error"]["code"] == "view_not_online"
    assert schema["features"] == [{"name": "category", "ref": "merchant_profile:category"}]


def test_unknown_service_schema_is_404(serving_client):
    response = serving_client.get("/v1/feature-services/fraud")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "unknown_feature_service"
    assert "did you mean 'fraud_detection'" in response.get_json()["error"]["message"]


def test_healthz(serving_client, serving_store):
    serving_store.down = True  # liveness does not depend on the store
    response = serving_client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_follows_the_store(serving_client, serving_store):
    assert serving_client.get("/readyz").get_json() == {"status": "ready", "registry_version": 3}
    serving_store.down = True
    response = serving_client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "online_store_unavailable"


def test_readyz_when_ping_says_no(serving_client, serving_store):
    serving_store.ping = lambda: False
    assert serving_client.get("/readyz").status_code == 503


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, matched by name and exact label set."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    raise AssertionError(f"no sample {name}{labels} in metrics")


def test_metrics_latency_store_reads_and_statuses(serving_client, serving_store):
    before = serving_client.get("/metrics").get_data(as_text=True)

    def count(text: str) -> float:
        try:
            return _sample(text, "hindsight_serving_request_seconds_count", service="fraud_detection", form="single")
        except AssertionError:
            return 0.0

    reads_before = _sample(before, "hindsight_serving_store_read_seconds_count")
    body = {
        "feature_service": "fraud_detection",
        "entities": {"user_id": 12, "merchant_id": 7},
        "request_context": {"amount": 1.0, "country": "FR"},
    }
    for _ in range(3):
        assert serving_client.post("/v1/features", json=body).status_code == 200
    response = serving_client.get("/metrics")
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert count(text) - count(before) == 3
    assert _sample(text, "hindsight_serving_store_read_seconds_count") - reads_before == 3
    # Each (entity row, view) read is counted by status; the fake store has user 12 and merchant 7.
    assert _sample(text, "hindsight_serving_view_reads_total", view="merchant_risk", status="PRESENT") >= 3
    # Freshness comes from the pipeline (the Delta logs), not from what requests read
    # (tests/integration/test_status.py checks its figures).
    assert "hindsight_serving_feature_freshness_seconds" not in text
    assert _sample(text, "hindsight_pipeline_status_timestamp_seconds") > 0
