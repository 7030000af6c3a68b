"""POST /v1/features over the Flask test client, with a fake online store and on-demand view."""

from __future__ import annotations

import time

FRAUD = {
    "feature_service": "fraud_detection",
    "entities": {"user_id": 12, "merchant_id": 7},
    "request_context": {"amount": 99.5, "country": "DE"},
}


def post(client, body):
    return client.post("/v1/features", json=body)


def test_service_returns_values_with_aliases_and_prefixed_collisions(serving_client):
    response = post(serving_client, FRAUD)
    assert response.status_code == 200
    assert response.get_json() == {
        "features": {
            "amount_mean_30d": 50.0,
            "user_transaction_aggregates__txn_count_7d": 4,
            "merchant_risk__txn_count_7d": 120,
            "merchant_fraud_rate": 0.015,
            "home": "FR",
            "amount_vs_user_mean_30d": 1.99,
            "is_foreign_country": True,
        }
    }
    # Response keys keep the service's order.
    assert list(response.get_json()["features"])[:2] == ["amount_mean_30d", "user_transaction_aggregates__txn_count_7d"]


def test_metadata_reports_present_not_found_and_expired(serving_client):
    body = {**FRAUD, "entities": {"user_id": 13, "merchant_id": 8}, "include_metadata": True}
    result = post(serving_client, body).get_json()
    features, metadata = result["features"], result["metadata"]
    # user 13 has a profile but no aggregates; merchant 8's row is 3 days old with a 2-day ttl.
    assert features["amount_mean_30d"] is None
    assert metadata["amount_mean_30d"] == {"status": "NOT_FOUND", "event_timestamp": None}
    assert features["merchant_risk__txn_count_7d"] is None
    assert metadata["merchant_risk__txn_count_7d"] == {"status": "EXPIRED", "event_timestamp": "2026-05-29T12:00:00+00:00"}
    assert features["home"] == "DE"
    assert metadata["home"] == {"status": "PRESENT", "event_timestamp": "2026-05-22T12:00:00+00:00"}
    # On-demand outputs are computed over the NULL input: the ratio is null, the flag is not.
    assert features["amount_vs_user_mean_30d"] is None
    assert features["is_foreign_country"] is False
    assert metadata["is_foreign_country"] == {"status": "PRESENT", "event_timestamp": None}


def test_unknown_entity_is_not_found_everywhere(serving_client):
    body = {"features": ["user_profile:*"], "entities": {"user_id": 999}, "include_metadata": True}
    result = post(serving_client, body).get_json()
    assert result["features"] == {"home_country": None, "credit_limit": None, "account_tier": None}
    assert {m["status"] for m in result["metadata"].values()} == {"NOT_FOUND"}


def test_feature_list_with_star_expands_a_view(serving_client):
    body = {"features": ["user_profile:*", "merchant_risk:fraud_rate_30d"], "entities": {"user_id": 12, "merchant_id": 7}}
    assert post(serving_client, body).get_json() == {
        "features": {"home_country": "FR", "credit_limit": 2500.0, "account_tier": "gold", "fraud_rate_30d": 0.015}
    }


def test_feature_list_collisions_get_view_prefixes(serving_client):
    body = {"features": ["user_transaction_aggregates:txn_count_7d", "merchant_risk:txn_count_7d"],
            "entities": {"user_id": 12, "merchant_id": 7}}
    assert post(serving_client, body).get_json()["features"] == {
        "user_transaction_aggregates__txn_count_7d": 4,
        "merchant_risk__txn_count_7d": 120,
    }


def test_only_needed_join_keys_and_views_are_read(serving_client, serving_store):
    body = {"features": ["user_profile:home_country"], "entities": {"user_id": 12, "merchant_id": 7, "extra": "x"}}
    post(serving_client, body)
    assert serving_store.calls == [([{"user_id": 12}], {"user_profile": ["home_country"]})]


def test_on_demand_inputs_are_fetched_but_not_returned(serving_client, serving_store, serving_on_demand):
    body = {
        "features": ["transaction_context:is_foreign_country"],
        "entities": {"user_id": 12},
        "request_context": {"amount": 10, "country": "FR"},
    }
    assert post(serving_client, body).get_json() == {"features": {"is_foreign_country": False}}
    (_rows, features), = serving_store.calls
    assert features == {"user_transaction_aggregates": ["amount_mean_30d"], "user_profile": ["home_country"]}
    # compute sees bare feature names and request fields, converted to their dtypes (10 -> 10.0).
    assert serving_on_demand.calls == [{"amount_mean_30d": [50.0], "home_country": ["FR"], "amount": [10.0], "country": ["FR"]}]
    assert type(serving_on_demand.calls[0]["amount"][0]) is float


def test_batch_with_one_context_for_all_rows(serving_client, serving_on_demand):
    body = {**FRAUD, "entities": [{"user_id": 12, "merchant_id": 7}, {"user_id": 13, "merchant_id": 8}]}
    results = post(serving_client, body).get_json()["results"]
    assert [r["features"]["home"] for r in results] == ["FR", "DE"]
    assert [r["features"]["is_foreign_country"] for r in results] == [True, False]
    assert [r["features"]["merchant_fraud_rate"] for r in results] == [0.015, None]
    # One compute call for the whole batch.
    assert len(serving_on_demand.calls) == 1 and serving_on_demand.calls[0]["amount"] == [99.5, 99.5]


def test_batch_with_one_context_per_row(serving_client):
    body = {
        **FRAUD,
        "entities": [{"user_id": 12, "merchant_id": 7}, {"user_id": 12, "merchant_id": 7}],
        "request_context": [{"amount": 25.0, "country": "FR"}, {"amount": 100.0, "country": "US"}],
        "include_metadata": True,
    }
    results = post(serving_client, body).get_json()["results"]
    assert [r["features"]["amount_vs_user_mean_30d"] for r in results] == [0.5, 2.0]
    assert [r["features"]["is_foreign_country"] for r in results] == [False, True]
    assert all(set(r) == {"features", "metadata"} for r in results)


def test_empty_batch_answers_no_results(serving_client, serving_store):
    assert post(serving_client, {**FRAUD, "entities": []}).get_json() == {"results": []}


def test_batch_at_the_limit_is_served(make_serving_app):
    client = make_serving_app(MAX_BATCH_ROWS=3).test_client()
    body = {"features": ["user_profile:home_country"], "entities": [{"user_id": 12}] * 3}
    assert post(client, body).get_json() == {"results": [{"features": {"home_country": "FR"}}] * 3}


def test_nan_values_are_answered_as_null(serving_client, serving_store):
    serving_store.put("user_profile", {"user_id": 14}, {"home_country": "IT", "credit_limit": float("nan")}, serving_store.now)
    response = post(serving_client, {"features": ["user_profile:credit_limit"], "entities": {"user_id": 14}})
    assert response.data == b'{"features":{"credit_limit":null}}'


def test_integral_float_ids_read_the_same_entity(serving_client):
    body = {"features": ["user_profile:home_country"], "entities": {"user_id": 12.0}}
    assert post(serving_client, body).get_json() == {"features": {"home_country": "FR"}}


def test_latency_budget_marks_a_late_read_time_out(serving_client, serving_store):
    # One BatchGetItem reads every view: a late answer makes all of them TIME_OUT.
    serving_store.delays["user_transaction_aggregates"] = 0.5
    body = {**FRAUD, "include_metadata": True, "latency_budget_ms": 100}
    began = time.perf_counter()
    result = post(serving_client, body).get_json()
    assert time.perf_counter() - began < 0.35  # the budget, not the store's 0.5 s
    features, metadata = result["features"], result["metadata"]
    # Every stored feature times out, and so do both outputs of the on-demand view reading them.
    assert set(features) == set(metadata) == {
        "amount_mean_30d", "user_transaction_aggregates__txn_count_7d", "merchant_risk__txn_count_7d",
        "merchant_fraud_rate", "home", "amount_vs_user_mean_30d", "is_foreign_country"}
    for name in features:
        assert features[name] is None
        assert metadata[name] == {"status": "TIME_OUT", "event_timestamp": None}
    text = serving_client.get("/metrics").get_data(as_text=True)
    for view in ("user_transaction_aggregates", "merchant_risk", "user_profile"):
        assert f'hindsight_serving_view_reads_total{{status="TIME_OUT",view="{view}"}}' in text


def test_late_store_without_budget_is_503_at_the_deadline(make_serving_app, serving_store):
    client = make_serving_app(STORE_DEADLINE_MS=150).test_client()
    serving_store.delays["merchant_risk"] = 1.0
    began = time.perf_counter()
    response = post(client, FRAUD)
    elapsed = time.perf_counter() - began
    assert response.status_code == 503 and 0.14 < elapsed < 0.45
    assert response.get_json()["error"] == {
        "code": "online_store_unavailable",
        "message": "the online store did not answer within 150 ms of the request's arrival",
    }


def test_budget_above_the_store_deadline_is_capped_by_it(make_serving_app, serving_store):
    client = make_serving_app(STORE_DEADLINE_MS=150).test_client()
    serving_store.delays["merchant_risk"] = 1.0
    response = post(client, {**FRAUD, "latency_budget_ms": 5000})
    assert response.status_code == 503  # the server's bound wins: no partial answer after 5 s


def test_generous_latency_budget_changes_nothing(serving_client):
    with_budget = post(serving_client, {**FRAUD, "latency_budget_ms": 5000, "include_metadata": True}).get_json()
    without = post(serving_client, {**FRAUD, "include_metadata": True}).get_json()
    assert with_budget == without
    assert {m["status"] for m in with_budget["metadata"].values()} == {"PRESENT"}


def test_null_request_field_reaches_compute_as_null(serving_client):
    body = {**FRAUD, "request_context": {"amount": None, "country": "FR"}}
    features = post(serving_client, body).get_json()["features"]
    assert features["amount_vs_user_mean_30d"] is None
    assert features["is_foreign_country"] is False
