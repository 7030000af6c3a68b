"""hindsight.client against the app, through a requests adapter that calls the Flask test client."""

from __future__ import annotations

import pytest
import requests

from hindsight.client import HindsightClient, HindsightError


class FlaskAdapter(requests.adapters.BaseAdapter):
    """Routes a requests.Session to a Flask test client: the client's real HTTP code, no socket."""

    def __init__(self, test_client):
        super().__init__()
        self.test_client = test_client
        self.sent = []

    def send(self, request, **kwargs):
        self.sent.append(request)
        path = request.path_url
        answer = self.test_client.open(path, method=request.method, data=request.body, headers=dict(request.headers))
        response = requests.Response()
        response.status_code = answer.status_code
        response._content = answer.data
        response.headers.update(answer.headers)
        response.url = request.url
        response.request = request
        return response

    def close(self):
        pass


@pytest.fixture
def client(serving_client):
    session = requests.Session()
    adapter = FlaskAdapter(serving_client)
    session.mount("http://hindsight.test", adapter)
    with HindsightClient("http://hindsight.test/", timeout=2, session=session) as hindsight:
        yield hindsight


def test_get_features_for_a_service(client):
    result = client.get_features(
        {"user_id": 12, "merchant_id": 7},
        feature_service="fraud_detection",
        request_context={"amount": 25.0, "country": "FR"},
        include_metadata=True,
    )
    assert result["features"]["amount_vs_user_mean_30d"] == 0.5
    assert result["metadata"]["home"]["status"] == "PRESENT"


def test_get_features_by_name(client):
    result = client.get_features({"user_id": 12}, features=["user_profile:home_country"])
    assert result == {"features": {"home_country": "FR"}}


def test_get_features_batch(client):
    results = client.get_features_batch([{"user_id": 12}, {"user_id": 13}], features=["user_profile:home_country"])
    assert results == [{"features": {"home_country": "FR"}}, {"features": {"home_country": "DE"}}]


def test_services_and_schema(client):
    assert {s["name"] for s in client.feature_services()} == {"fraud_detection", "user_basics", "merchant_catalog"}
    assert client.feature_service("user_basics")["join_keys"][0]["name"] == "user_id"


def test_server_errors_raise_with_code_and_message(client):
    with pytest.raises(HindsightError) as raised:
        client.get_features({"user_id": 12}, feature_service="fraud_detectoin")
    assert raised.value.status == 404
    assert raised.value.code == "unknown_feature_service"
    assert "did you mean 'fraud_detection'" in raised.value.message
    assert raised.value.details == {"suggestions": ["fraud_detection"]}


def test_ready(client, serving_store):
    assert client.ready() is True
    serving_store.down = True
    assert client.ready() is False


def test_one_of_service_or_features_is_required(client):
    with pytest.raises(ValueError, match="exactly one"):
        client.get_features({"user_id": 1})


def test_unreachable_server():
    with HindsightClient("http://127.0.0.1:9", timeout=0.5) as client:
        with pytest.raises(HindsightError) as raised:
            client.feature_services()
    assert raised.value.code == "unreachable" and raised.value.status == 0
