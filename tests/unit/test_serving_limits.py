"""Hostile and out-of-range input to POST /v1/features: always a 4xx JSON error naming the field.

Keys longer than DynamoDB's 2,048-byte limit, integers outside int64, numbers of thousands of
digits, deep nesting, infinities, chunked bodies over the size limit, methods that are not
allowed, and error bodies that must not reveal the store's endpoint.
"""

from __future__ import annotations

import io
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hindsight.registry_sync.model import Entity, Feature, FeatureView, Registry
from tests.fixtures.serving import FakeOnlineStore, free_port

FRAUD = {
    "feature_service": "fraud_detection",
    "entities": {"user_id": 12, "merchant_id": 7},
    "request_context": {"amount": 99.5, "country": "DE"},
}


def error_of(response):
    body = response.get_json()
    assert set(body) == {"error"}, body
    return response.status_code, body["error"]["code"], body["error"]["message"]


def post_raw(client, data: bytes | str, **kwargs):
    return client.post("/v1/features", data=data, content_type="application/json", **kwargs)


def _string_keyed_registry() -> Registry:
    def view(name, keys):
        return FeatureView(
            name=name, kind="batch", entities=("device",), join_keys=keys, join_key_dtypes=("string",) * len(keys),
            timestamp_field="ts", created_field=None, ttl_seconds=None, online=True, delta_uri=f"/tmp/{name}",
            features=(Feature("risk", "float64"),), partition_columns=(),
        )

    return Registry(project="t", entities=(Entity("device", ("device_id",)),),
                    feature_views=(view("device_risk", ("device_id",)), view("pair_risk", ("device_id", "app"))))


@pytest.fixture
def string_client():
    from hindsight.serving import create_app

    registry = _string_keyed_registry()
    store = FakeOnlineStore(registry)
    return create_app({"TESTING": True, "REGISTRY": registry, "ONLINE_STORE": store, "ON_DEMAND_VIEWS": {}}).test_client()


@pytest.mark.parametrize(("key", "status"), [("d" * 2048, 200), ("d" * 2049, 400), ("é" * 1024, 200),
                                             ("é" * 1025, 400), ("", 400)])
def test_string_keys_within_dynamodb_limits(string_client, key, status):
    response = string_client.post("/v1/features", json={"features": ["device_risk:risk"], "entities": {"device_id": key}})
    assert response.status_code == status, response.get_json()
    if status == 400:
        code, message = error_of(response)[1:]
        assert code == "invalid_join_key" and "join key 'device_id'" in message
        assert len(message) < 300  # the 2 KB value is not echoed whole


def test_composite_key_over_the_limit(string_client):
    body = {"features": ["pair_risk:risk"], "entities": {"device_id": "d" * 1500, "app": "a" * 1500}}
    status, code, message = error_of(string_client.post("/v1/features", json=body))
    assert (status, code) == (400, "invalid_join_key")
    assert "join keys 'device_id', 'app' together" in message and "2048-byte" in message


@pytest.mark.parametrize(
    ("raw_id", "expected"),
    [
        ("9223372036854775807", 200),  # int64's largest
        ("-9223372036854775808", 200),
        ("9223372036854775808", "out of the int64 range"),
        ("-9223372036854775809", "out of the int64 range"),
        ("1" * 4000, "out of the int64 range [-9223372036854775808, 9223372036854775807], got <a 4000-digit number>"),
        ("1" * 5000, "got <a 5000-digit number>"),  # past Python's 4,300-digit conversion limit
        ("1e300", "out of the int64 range"),  # an integral float
        ("1e999", "got number inf"),
    ],
)
def test_integer_keys_out_of_range(serving_client, raw_id, expected):
    text = '{"features": ["user_profile:home_country"], "entities": {"user_id": %s}}' % raw_id
    response = post_raw(serving_client, text)
    if expected == 200:
        assert response.status_code == 200 and response.get_json() == {"features": {"home_country": None}}
        return
    status, code, message = error_of(response)
    assert (status, code) == (400, "invalid_join_key")
    assert message.startswith("entities: join key 'user_id'") and expected in message


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("1e999", "got number inf"), ("-1e999", "got number -inf"), ("1" * 400, "<a 400-digit number>"),
     ("1" * 4500, "<a 4500-digit number>")],
)
def test_huge_numbers_in_request_context(serving_client, amount, expected):
    text = json.dumps(FRAUD).replace("99.5", amount)
    status, code, message = error_of(post_raw(serving_client, text))
    assert (status, code) == (400, "invalid_request_field")
    assert "request_context: request field 'amount' must be float64 (a finite number)" in message
    assert expected in message


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_malformed(serving_client, literal):
    text = json.dumps(FRAUD).replace("99.5", literal)
    status, code, message = error_of(post_raw(serving_client, text))
    assert (status, code) == (400, "malformed_json") and f"{literal} is not a JSON value" in message


@pytest.mark.parametrize("depth", [33, 1_000, 200_000])
def test_deep_nesting_is_refused(serving_client, depth):
    inner = "[" * depth + "]" * depth
    text = json.dumps({**FRAUD, "request_context": "X"}).replace('"X"', inner)
    status, code, message = error_of(post_raw(serving_client, text))
    assert (status, code) == (400, "malformed_json") and "deeper than 32 levels" in message


def test_nesting_within_the_limit_reaches_field_checks(serving_client):
    inner = "[" * 20 + "]" * 20
    text = json.dumps({**FRAUD, "request_context": {"amount": "X", "country": "FR"}}).replace('"X"', inner)
    status, code, message = error_of(post_raw(serving_client, text))
    assert (status, code) == (400, "invalid_request_field") and "got array [[[...]]]" in message


def test_chunked_body_over_the_limit_is_413(make_serving_app):
    client = make_serving_app(MAX_BODY_BYTES=64).test_client()
    body = json.dumps({"features": ["user_profile:home_country"], "entities": {"user_id": 1, "pad": "x" * 100}})
    # No Content-Length and a server that ends the stream: what gunicorn gives for chunked bodies.
    response = client.post("/v1/features", input_stream=io.BytesIO(body.encode()), content_type="application/json",
                           environ_overrides={"wsgi.input_terminated": True})
    assert error_of(response) == (413, "payload_too_large", "request body too large: the limit is 64 bytes")


def test_chunked_body_within_the_limit_is_read(make_serving_app):
    client = make_serving_app(MAX_BODY_BYTES=200).test_client()
    body = json.dumps({"features": ["user_profile:home_country"], "entities": {"user_id": 12}})
    response = client.post("/v1/features", input_stream=io.BytesIO(body.encode()), content_type="application/json",
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.get_json() == {"features": {"home_country": "FR"}}


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("get", "/v1/features", {"POST"}),
    ("delete", "/healthz", {"GET", "HEAD", "OPTIONS"}),
    ("post", "/v1/feature-services", {"GET", "HEAD", "OPTIONS"}),
])
def test_405_carries_allow(serving_client, method, path, allowed):
    response = getattr(serving_client, method)(path)
    status, code, message = error_of(response)
    assert (status, code) == (405, "method_not_allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= allowed
    assert response.mimetype == "application/json" and "allowed:" in message


def test_error_bodies_do_not_reveal_the_store_endpoint(serving_registry, serving_on_demand):
    """A real OnlineStore pointed at a port nothing listens on: botocore's errors name the URL."""
    from hindsight.online_sync.store import OnlineStore, OnlineStoreConfig, deadline_config
    from hindsight.serving import create_app

    port = free_port()
    config = deadline_config(OnlineStoreConfig(endpoint_url=f"http://127.0.0.1:{port}",
                                               table_prefix=f"x{uuid.uuid4().hex[:6]}_", region="us-east-1"), 0.5)
    app = create_app({"TESTING": True, "REGISTRY": serving_registry, "ONLINE_STORE": OnlineStore(serving_registry, config),
                      "ON_DEMAND_VIEWS": {"transaction_context": serving_on_demand}})
    client = app.test_client()
    for response in (client.post("/v1/features", json=FRAUD), client.get("/readyz")):
        assert response.status_code == 503
        text = response.get_data(as_text=True)
        assert str(port) not in text and "127.0.0.1" not in text and "http" not in text and "/" not in text, text
        assert response.get_json()["error"]["code"] == "online_store_unavailable"


def test_on_demand_failure_does_not_echo_the_exception_text(serving_client, serving_on_demand):
    def fail(columns):
        raise FileNotFoundError("/srv/secrets/model.pkl")

    serving_on_demand.compute = fail
    response = serving_client.post("/v1/features", json=FRAUD)
    assert response.status_code == 500 and b"/srv" not in response.data
    assert "FileNotFoundError" in response.get_json()["error"]["message"]


# Any JSON a client may send, with unbounded integers, long strings and infinities: never a 5xx.
_numbers = st.integers() | st.floats(allow_nan=False) | st.integers(min_value=10**18, max_value=10**400)
_leaves = st.none() | st.booleans() | _numbers | st.text(max_size=3000) | st.sampled_from(
    ["fraud_detection", "user_profile:*", "user_profile:home_country", "FR", 12, 7])
_values = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["user_id", "merchant_id", "amount", "country", "x"]), inner, max_size=3), max_leaves=10)
_bodies = st.fixed_dictionaries({}, optional={
    "feature_service": _values, "features": _values, "entities": _values, "request_context": _values,
    "latency_budget_ms": _numbers,
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies)
def test_no_input_is_a_server_error(serving_client, body):
    text = json.dumps(body, allow_nan=True)  # infinities become Infinity: refused as malformed
    response = post_raw(serving_client, text)
    assert response.status_code in (200, 400, 404, 413), (response.status_code, response.get_data()[:300])
    if response.status_code != 200:
        error_of(response)
