"""Every client error of POST /v1/features: status, stable code, and a message naming the problem."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FRAUD = {
    "feature_service": "fraud_detection",
    "entities": {"user_id": 12, "merchant_id": 7},
    "request_context": {"amount": 99.5, "country": "FR"},
}


def error_of(response):
    body = response.get_json()
    assert set(body) == {"error"}, body
    return response.status_code, body["error"]["code"], body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "code", "fragments"),
    [
        ({**FRAUD, "feature_service": "fraud_detectoin"}, 404, "unknown_feature_service",
         ["'fraud_detectoin'", "did you mean 'fraud_detection'"]),
        ({**FRAUD, "feature_service": "zzz"}, 404, "unknown_feature_service", ["known: 'fraud_detection'"]),
        ({"features": ["user_profil:home_country"], "entities": {"user_id": 1}}, 404, "unknown_feature_view",
         ["'user_profil'", "did you mean 'user_profile'"]),
        ({"features": ["user_profile:home_contry"], "entities": {"user_id": 1}}, 404, "unknown_feature",
         ["'user_profile:home_contry'", "'user_profile:home_country'"]),
        ({"features": ["user_profile"], "entities": {"user_id": 1}}, 400, "invalid_feature_ref", ["'view:feature'"]),
        ({"features": "user_profile:*", "entities": {"user_id": 1}}, 400, "invalid_request", ["must be a list"]),
        ({"features": [{"view": "user_profile"}], "entities": {"user_id": 1}}, 400, "invalid_feature_ref",
         ["{'view': 'user_profile'}"]),
        ({**FRAUD, "feature_service": ["fraud_detection"]}, 400, "invalid_request", ["must be a string"]),
        ({"features": [], "entities": {"user_id": 1}}, 400, "no_features", ["at least one"]),
        ({"features": ["merchant_profile:category"], "entities": {"merchant_id": 1}}, 400, "view_not_online",
         ["'merchant_profile'", "online: false"]),
        ({"feature_service": "merchant_catalog", "entities": {"merchant_id": 1}}, 400, "view_not_online",
         ["'merchant_profile'"]),
        ({**FRAUD, "features": ["user_profile:*"]}, 400, "invalid_request", ["exactly one of"]),
        ({"entities": {"user_id": 1}}, 400, "invalid_request", ["exactly one of"]),
        ({**FRAUD, "feature_service": 3}, 400, "invalid_request", ["'feature_service' must be a string"]),
        ({**FRAUD, "entity": {}}, 400, "unknown_field", ["'entity'", "accepted: feature_service"]),
        ({**FRAUD, "entities": {"merchant_id": 7}}, 400, "missing_join_key",
         ["entities is missing join key 'user_id' (int64)", "'user_transaction_aggregates'"]),
        ({**FRAUD, "entities": {"user_id": "12", "merchant_id": 7}}, 400, "invalid_join_key",
         ["join key 'user_id' must be int64", "got string '12'; nearest valid value: 12"]),
        ({**FRAUD, "entities": {"user_id": " 12 ", "merchant_id": 7}}, 400, "invalid_join_key", ["nearest valid value: 12"]),
        ({**FRAUD, "entities": {"user_id": 1.5, "merchant_id": 7}}, 400, "invalid_join_key", ["got number 1.5"]),
        ({**FRAUD, "entities": {"user_id": "2" * 30, "merchant_id": 7}}, 400, "invalid_join_key",
         ["must be int64", "got string '222"]),
        ({**FRAUD, "entities": {"user_id": True, "merchant_id": 7}}, 400, "invalid_join_key", ["got boolean True"]),
        ({**FRAUD, "entities": {"user_id": None, "merchant_id": 7}}, 400, "invalid_join_key", ["got null"]),
        ({**FRAUD, "entities": [{"user_id": 1, "merchant_id": 7}, {"user_id": 2}]}, 400, "missing_join_key",
         ["entities[1] is missing join key 'merchant_id' (int64)"]),
        ({**FRAUD, "entities": "12"}, 400, "invalid_entities", ["got string"]),
        ({**FRAUD, "entities": [12]}, 400, "invalid_entities", ["entities[0] must be an object"]),
        ({**FRAUD, "request_context": {"amount": 1.0}}, 400, "missing_request_field",
         ["missing request field(s) 'country' (string)", "'transaction_context'"]),
        ({**FRAUD, "request_context": None}, 400, "missing_request_field", ["'amount' (float64), 'country' (string)"]),
        ({k: v for k, v in FRAUD.items() if k != "request_context"}, 400, "missing_request_field", ["'amount'"]),
        ({**FRAUD, "request_context": {"amount": "lots", "country": "FR"}}, 400, "invalid_request_field",
         ["request field 'amount' must be float64", "got string 'lots'"]),
        ({**FRAUD, "request_context": {"amount": "99.5", "country": "FR"}}, 400, "invalid_request_field",
         ["got string '99.5'; nearest valid value: 99.5"]),
        ({**FRAUD, "request_context": {"amount": 99.5, "country": 33}}, 400, "invalid_request_field",
         ["request field 'country' must be string", "nearest valid value: '33'"]),
        ({**FRAUD, "request_context": [{"amount": 1.0, "country": "FR"}]}, 400, "invalid_request_context",
         ["must be an object"]),
        ({**FRAUD, "entities": [FRAUD["entities"]] * 2, "request_context": [{"amount": 1.0, "country": "FR"}]}, 400,
         "invalid_request_context", ["has 1 items but 'entities' has 2"]),
        ({**FRAUD, "entities": [FRAUD["entities"]], "request_context": [{"amount": 1.0}]}, 400,
         "missing_request_field", ["request_context[0] is missing request field(s) 'country'"]),
        ({**FRAUD, "include_metadata": "yes"}, 400, "invalid_request", ["'include_metadata' must be true or false"]),
        ({**FRAUD, "latency_budget_ms": 0}, 400, "invalid_request", ["'latency_budget_ms'"]),
        ({**FRAUD, "latency_budget_ms": "10"}, 400, "invalid_request", ["'latency_budget_ms'"]),
        ({**FRAUD, "entities": [FRAUD["entities"]] * 101}, 413, "batch_too_large", ["101 entity rows", "limit is 100"]),
    ],
)
def test_bad_requests_name_the_problem(serving_client, serving_store, body, status, code, fragments):
    got_status, got_code, message = error_of(serving_client.post("/v1/features", json=body))
    assert (got_status, got_code) == (status, code), message
    for fragment in fragments:
        assert fragment in message
    assert serving_store.calls == []  # rejected before touching the store


def test_the_nearest_valid_value_is_in_details(serving_client):
    body = {**FRAUD, "entities": {"user_id": "12", "merchant_id": 7}}
    error = serving_client.post("/v1/features", json=body).get_json()["error"]
    assert error["details"] == {"nearest": "12"}
    # Sending the nearest valid value is the fix.
    body["entities"]["user_id"] = json.loads(error["details"]["nearest"])
    assert serving_client.post("/v1/features", json=body).status_code == 200


def test_an_integral_number_is_an_integer_request_field():
    """12.0 (JavaScript, pandas) is the integer 12 in request_context, as it is in entities and ingest."""
    from hindsight.serving.parsing import _CONVERTERS, _INVALID

    assert _CONVERTERS["int64"](12.0) == 12 and type(_CONVERTERS["int64"](12.0)) is int
    assert _CONVERTERS["int32"](2.0**40) is _INVALID  # still range-checked


def test_suggestions_are_listed_in_details(serving_client):
    body = serving_client.post("/v1/features", json={**FRAUD, "feature_service": "fraud_detectoin"}).get_json()
    assert body["error"]["details"] == {"suggestions": ["fraud_detection"]}


def test_malformed_json(serving_client):
    response = serving_client.post("/v1/features", data=b'{"entities": {', content_type="application/json")
    status, code, message = error_of(response)
    assert (status, code) == (400, "malformed_json")
    assert "not valid JSON" in message and "line 1" in message


def test_non_object_body(serving_client):
    assert error_of(serving_client.post("/v1/features", json=[1, 2]))[:2] == (400, "invalid_request")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type(serving_client, content_type):
    response = serving_client.post("/v1/features", data=b'{"a": 1}', content_type=content_type)
    status, code, message = error_of(response)
    assert (status, code) == (415, "unsupported_media_type")
    assert "application/json" in message


def test_json_with_charset_is_accepted(serving_client):
    body = b'{"features": ["user_profile:home_country"], "entities": {"user_id": 12}}'
    response = serving_client.post("/v1/features", data=body, content_type="application/json; charset=utf-8")
    assert response.get_json() == {"features": {"home_country": "FR"}}


def test_batch_limit_is_configurable(make_serving_app):
    client = make_serving_app(MAX_BATCH_ROWS=2).test_client()
    body = {"features": ["user_profile:home_country"], "entities": [{"user_id": 1}] * 3}
    status, code, message = error_of(client.post("/v1/features", json=body))
    assert (status, code) == (413, "batch_too_large") and "limit is 2" in message


def test_oversized_body(make_serving_app):
    client = make_serving_app(MAX_BODY_BYTES=64).test_client()
    body = {"features": ["user_profile:home_country"], "entities": {"user_id": 1, "padding": "x" * 100}}
    status, code, message = error_of(client.post("/v1/features", json=body))
    assert (status, code) == (413, "payload_too_large") and "64 bytes" in message


def test_unreachable_store_is_503(serving_client, serving_store):
    serving_store.down = True
    status, code, message = error_of(serving_client.post("/v1/features", json=FRAUD))
    assert (status, code) == (503, "online_store_unavailable")
    assert "cannot be reached" in message


def test_unreachable_store_under_a_budget_is_503(serving_client, serving_store):
    serving_store.down = True
    response = serving_client.post("/v1/features", json={**FRAUD, "latency_budget_ms": 1000})
    assert error_of(response)[:2] == (503, "online_store_unavailable")


def test_unexpected_error_is_a_json_500_without_traceback(serving_client, serving_store, caplog):
    def broken(*args, **kwargs):
        raise KeyError("secret internals")

    serving_store.read = broken
    with caplog.at_level(logging.ERROR):
        response = serving_client.post("/v1/features", json=FRAUD)
    status, code, _message = error_of(response)
    assert (status, code) == (500, "internal_error")
    assert b"secret" not in response.data and b"Traceback" not in response.data
    assert "secret internals" in caplog.text  # the traceback is logged


def test_failing_on_demand_view_is_a_json_500_naming_it(serving_client, serving_on_demand):
    def fail(columns):
        raise ZeroDivisionError("division by zero")

    serving_on_demand.compute = fail
    status, code, message = error_of(serving_client.post("/v1/features", json=FRAUD))
    assert (status, code) == (500, "on_demand_failed")
    assert "'transaction_context'" in message and "ZeroDivisionError" in message


def test_on_demand_view_returning_short_columns_is_a_500(serving_client, serving_on_demand):
    serving_on_demand.compute = lambda columns: {"amount_vs_user_mean_30d": [], "is_foreign_country": []}
    assert error_of(serving_client.post("/v1/features", json=FRAUD))[:2] == (500, "on_demand_failed")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("get", "/v1/features", 405, "method_not_allowed"), ("get", "/nowhere", 404, "not_found")],
)
def test_http_errors_are_json(serving_client, method, path, status, code):
    assert error_of(getattr(serving_client, method)(path))[:2] == (status, code)


def test_errors_are_counted_in_metrics(serving_client):
    serving_client.post("/v1/features", json={**FRAUD, "feature_service": "nope"})
    text = serving_client.get("/metrics").get_data(as_text=True)
    sample = 'hindsight_serving_errors_total{code="unknown_feature_service"}'
    line = next(line for line in text.splitlines() if line.startswith(sample))
    assert float(line.split()[-1]) >= 1.0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 20) | st.floats(allow_nan=False, width=32) | st.text(max_size=8)
    | st.sampled_from(["fraud_detection", "user_profile:*", "user_profile:home_country", "FR"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["user_id", "merchant_id", "amount", "country", "x"]), inner, max_size=4),
    max_leaves=12,
)
bodies = st.dictionaries(
    st.sampled_from(["feature_service", "features", "entities", "request_context", "include_metadata",
                     "latency_budget_ms"]),
    json_values,
    max_size=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
def test_arbitrary_bodies_never_cause_a_500(serving_client, body):
    response = serving_client.post("/v1/features", json=body)
    assert response.status_code in (200, 400, 404, 413), response.get_data(as_text=True)
    payload = response.get_json()
    if response.status_code == 200:
        assert set(payload) in ({"features"}, {"features", "metadata"}, {"results"})
    else:
        assert set(payload["error"]) <= {"code", "message", "details"}
