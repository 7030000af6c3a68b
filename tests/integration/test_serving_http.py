"""The serving API for real: gunicorn via `hindsight serve`, DynamoDB Local, values written by
the online store's own write paths (sync from Delta, push), read back over HTTP."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import requests

from hindsight.client import HindsightClient, HindsightError
from hindsight.online_sync import OnlineStoreConfig, ensure_tables, push, sync
from tests.fixtures.dynamodb import write_rows
from hindsight.core.ports import free_port
from tests.fixtures.serving import build_serving_registry, start_server

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=123456)
FRESH = NOW - dt.timedelta(hours=2)
PROFILE_TIME = NOW - dt.timedelta(days=400)


@pytest.fixture(scope="module")
def seeded(dynamodb_endpoint, tmp_path_factory):
    """A registry whose tables hold known values: user_profile synced from Delta, the rest pushed."""
    root = tmp_path_factory.mktemp("serving-http")
    registry = build_serving_registry(str(root / "offline"))
    config = OnlineStoreConfig(endpoint_url=dynamodb_endpoint, table_prefix=f"s{uuid.uuid4().hex[:8]}_", region="us-east-1")
    ensure_tables(registry, config)
    profile = registry.view("user_profile")
    write_rows(profile, [
        {"user_id": 12, "event_timestamp": PROFILE_TIME - dt.timedelta(days=30), "home_country": "DE",
         "credit_limit": 1000.0, "account_tier": "basic"},
        {"user_id": 12, "event_timestamp": PROFILE_TIME, "home_country": "FR", "credit_limit": 2500.5,
         "account_tier": "gold"},
        {"user_id": 13, "event_timestamp": PROFILE_TIME, "home_country": "DE", "credit_limit": None,
         "account_tier": "basic"},
    ])
    assert sync(registry, config, select=["user_profile"], progress=False).rows_written == 2
    push(registry, config, "user_transaction_aggregates", [
        {"user_id": 12, "event_timestamp": FRESH, "amount_mean_30d": 40.25, "txn_count_7d": 9, "country_last_30d": "FR"},
    ])
    push(registry, config, "merchant_risk", [
        {"merchant_id": 7, "event_timestamp": FRESH, "txn_count_7d": 120, "fraud_rate_30d": 0.015},
    ])
    push_expired(registry, config)
    return registry, config, root


def push_expired(registry, config):
    """Values already past their ttl. DynamoDB Local's TTL sweeper may delete them at any time (AWS
    within days), after which they read as NOT_FOUND: tests push them again right before reading."""
    # 31 days old with a 30-day ttl.
    push(registry, config, "user_transaction_aggregates", [
        {"user_id": 14, "event_timestamp": NOW - dt.timedelta(days=31), "amount_mean_30d": 1.0, "txn_count_7d": 1,
         "country_last_30d": "IT"},
    ])
    # 3 days old with a 2-day ttl.
    push(registry, config, "merchant_risk", [
        {"merchant_id": 8, "event_timestamp": NOW - dt.timedelta(days=3), "txn_count_7d": 3, "fraud_rate_30d": 0.5},
    ])


@pytest.fixture(scope="module")
def server(seeded):
    registry, config, root = seeded
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": config.endpoint_url, "HINDSIGHT_DYNAMODB_TABLE_PREFIX": config.table_prefix}
    process = start_server(registry, root / "server", env, workers=2)
    yield process
    process.stop()


def features(server, body):
    response = requests.post(server.url + "/v1/features", json=body, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


FRAUD = {
    "feature_service": "fraud_detection",
    "entities": {"user_id": 12, "merchant_id": 7},
    "request_context": {"amount": 100.625, "country": "US"},
    "include_metadata": True,
}


def test_starts_and_answers_within_seconds(server):
    assert server.startup_s < 10, server.log()


def test_values_written_come_back_exactly(server):
    result = features(server, FRAUD)
    assert result["features"] == {
        "amount_mean_30d": 40.25,
        "user_transaction_aggregates__txn_count_7d": 9,
        "merchant_risk__txn_count_7d": 120,
        "merchant_fraud_rate": 0.015,
        "home": "FR",  # the newer of the two synced rows
        "amount_vs_user_mean_30d": 2.5,  # the real on_demand.fraud.transaction_context
        "is_foreign_country": True,
    }
    metadata = result["metadata"]
    assert metadata["amount_mean_30d"] == {"status": "PRESENT", "event_timestamp": FRESH.isoformat()}
    assert metadata["home"] == {"status": "PRESENT", "event_timestamp": PROFILE_TIME.isoformat()}
    assert metadata["is_foreign_country"] == {"status": "PRESENT", "event_timestamp": None}


def test_ttl_expiry_and_missing_entities(seeded, server):
    push_expired(*seeded[:2])
    body = {**FRAUD, "entities": {"user_id": 14, "merchant_id": 8}}
    result = features(server, body)
    statuses = {name: m["status"] for name, m in result["metadata"].items()}
    assert statuses["amount_mean_30d"] == "EXPIRED" and result["features"]["amount_mean_30d"] is None
    assert statuses["merchant_fraud_rate"] == "EXPIRED" and result["features"]["merchant_fraud_rate"] is None
    assert result["metadata"]["merchant_fraud_rate"]["event_timestamp"] == (NOW - dt.timedelta(days=3)).isoformat()
    assert statuses["home"] == "NOT_FOUND"  # user 14 has no profile
    assert result["features"]["amount_vs_user_mean_30d"] is None  # computed over NULL inputs


def test_batch_and_nulls(server):
    body = {"features": ["user_profile:*"], "entities": [{"user_id": 12}, {"user_id": 13}, {"user_id": 99}]}
    assert features(server, body) == {"results": [
        {"features": {"home_country": "FR", "credit_limit": 2500.5, "account_tier": "gold"}},
        {"features": {"home_country": "DE", "credit_limit": None, "account_tier": "basic"}},
        {"features": {"home_country": None, "credit_limit": None, "account_tier": None}},
    ]}


def test_errors_over_http(server):
    response = requests.post(server.url + "/v1/features", data="{", headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_json"
    response = requests.post(server.url + "/v1/features", json={**FRAUD, "entities": {"user_id": 12}}, timeout=5)
    assert response.status_code == 400 and "'merchant_id' (int64)" in response.json()["error"]["message"]


def test_client_against_the_live_server(server):
    with HindsightClient(server.url, timeout=5) as client:
        one = client.get_features({"user_id": 12, "merchant_id": 7}, feature_service="fraud_detection",
                                  request_context={"amount": 80.5, "country": "FR"})
        same_over_http = features(server, {**FRAUD, "request_context": {"amount": 80.5, "country": "FR"}})
        assert one == {"features": same_over_http["features"]}
        assert one["features"]["amount_vs_user_mean_30d"] == 2.0 and one["features"]["is_foreign_country"] is False
        batch = client.get_features_batch([{"user_id": 12}, {"user_id": 13}], features=["user_profile:home_country"])
        assert [r["features"]["home_country"] for r in batch] == ["FR", "DE"]
        assert {s["name"] for s in client.feature_services()} == {"fraud_detection", "user_basics", "merchant_catalog"}
        assert client.ready() is True
        with pytest.raises(HindsightError) as raised:
            client.get_features({"user_id": 12}, features=["user_profile:nope"])
        assert (raised.value.status, raised.value.code) == (404, "unknown_feature")


def test_metrics_are_merged_across_workers(server):
    for _ in range(12):
        features(server, FRAUD)
    text = requests.get(server.url + "/metrics", timeout=5).text
    counts = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith("hindsight_serving_request_seconds_count") and 'service="fraud_detection"' in line]
    assert sum(counts) >= 12
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("hindsight_") and not line.startswith("#")}
    # Reads by status, summed over the workers: every request read merchant 7, which was pushed.
    assert samples['hindsight_serving_view_reads_total{status="PRESENT",view="merchant_risk"}'] >= 12
    # Freshness from the pipeline, not from requests: user_profile was synced from Delta version 0,
    # whose newest event is PROFILE_TIME (the sync state keeps microseconds).
    assert samples['hindsight_feature_view_synced_delta_version{view="user_profile"}'] == 0
    online_newest = samples['hindsight_feature_view_newest_event_timestamp_seconds{store="online",view="user_profile"}']
    assert online_newest == pytest.approx(PROFILE_TIME.timestamp(), abs=1e-3)
    assert "hindsight_serving_feature_freshness_seconds" not in text


def test_openapi_health_and_readiness(server):
    assert requests.get(server.url + "/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(server.url + "/readyz", timeout=5).json()["status"] == "ready"
    document = requests.get(server.url + "/openapi.json", timeout=5).json()
    assert document["openapi"].startswith("3.1") and "/v1/features" in document["paths"]


def test_unreachable_store_answers_503(seeded):
    registry, config, root = seeded
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": nowhere, "HINDSIGHT_DYNAMODB_TABLE_PREFIX": config.table_prefix}
    # Started without the start-up check (which would refuse this store), as where an orchestrator
    # starts the store later: requests get 503 until it answers.
    down = start_server(registry, root / "down", env, workers=1, args=("--no-store-check",))
    try:
        response = requests.post(down.url + "/v1/features", json=FRAUD, timeout=10)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "online_store_unavailable"
        assert "Traceback" not in response.text
        assert requests.get(down.url + "/readyz", timeout=10).status_code == 503
        assert requests.get(down.url + "/healthz", timeout=5).status_code == 200
    finally:
        down.stop()
