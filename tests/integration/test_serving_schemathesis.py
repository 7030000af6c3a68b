"""schemathesis over the whole OpenAPI document of a live server (gunicorn + DynamoDB Local).

Every operation of `/openapi.json` gets generated requests, valid and invalid (every phase:
examples, coverage, fuzzing, stateful); every check runs: no 5xx, status code documented, content
type, body schema and headers as documented, invalid requests refused, valid ones accepted.
Bounded by MAX_EXAMPLES per operation so the test stays under about a minute.

schemathesis runs through its CLI (`st run`): its pytest plugin does not load lazily under pytest 9.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hindsight.online_sync import OnlineStoreConfig, ensure_tables, push
from hindsight.online_sync.keys import KeyStore
from tests.fixtures.serving import build_serving_registry, start_server

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 50
SEED = 20261130


@pytest.fixture(scope="module")
def live_server(dynamodb_endpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("schemathesis")
    registry = build_serving_registry(str(root / "offline"))
    config = OnlineStoreConfig(endpoint_url=dynamodb_endpoint, table_prefix=f"st{uuid.uuid4().hex[:8]}_",
                               region="us-east-1")
    ensure_tables(registry, config)
    now = dt.datetime.now(dt.timezone.utc)
    push(registry, config, "user_profile", [{"user_id": 12, "event_timestamp": now, "home_country": "FR",
                                             "credit_limit": 2500.5, "account_tier": "gold"}])
    push(registry, config, "merchant_risk", [{"merchant_id": 7, "event_timestamp": now, "txn_count_7d": 3,
                                              "fraud_rate_30d": 0.5}])
    # Served with API keys, as in production: schemathesis sends a '*' key and checks that requests
    # without one, or with a wrong one, are refused as the document says.
    key, _ = KeyStore(config).create("schemathesis", read=["*"], metrics=True)
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": dynamodb_endpoint, "HINDSIGHT_DYNAMODB_TABLE_PREFIX": config.table_prefix,
           "HINDSIGHT_SERVING_AUTH": "keys",
           # Generous on a shared 2-core machine: this test is about shapes, the fault tests about time.
           "HINDSIGHT_SERVING_STORE_DEADLINE_MS": "3000"}
    server = start_server(registry, root / "server", env, workers=2)
    server.api_key = key
    yield server
    server.stop()


def bearer(server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


#: The API refuses a batch over its row limit or a body over its size limit with 413, as documented.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [400, 404, 405, 413, 415]
"""


def test_every_operation_conforms_to_the_document(live_server, tmp_path):
    st = Path(sys.executable).parent / "st"
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [str(st), "--config-file", str(config), "run", live_server.url + "/openapi.json", "--checks", "all",
               "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--request-timeout", "10",
               "--workers", "2", "--no-color", "--header", f"Authorization: Bearer {live_server.api_key}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-12000:]
    assert "No issues found" in output or "passed" in output, output[-4000:]


def test_chunked_body_over_the_limit_is_413_over_http(live_server):
    import requests

    padding = b"x" * (1 << 20)

    def chunks():  # a generator body: requests sends it chunked, with no Content-Length
        yield b'{"features": ["user_profile:*"], "entities": {"user_id": 12, "pad": "'
        yield padding
        yield b'"}}'

    response = requests.post(live_server.url + "/v1/features", data=chunks(),
                             headers={"Content-Type": "application/json", **bearer(live_server)}, timeout=10)
    assert response.status_code == 413, response.text
    assert response.json()["error"] == {"code": "payload_too_large",
                                        "message": "request body too large: the limit is 1048576 bytes"}

    def small():
        yield b'{"feature_service": "user_basics", '
        yield b'"entities": {"user_id": 12}}'

    response = requests.post(live_server.url + "/v1/features", data=small(),
                             headers={"Content-Type": "application/json", **bearer(live_server)}, timeout=10)
    assert response.json() == {"features": {"home_country": "FR", "credit_limit": 2500.5}}


def test_405_over_http_carries_allow(live_server):
    import requests

    response = requests.get(live_server.url + "/v1/features", headers=bearer(live_server), timeout=5)
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert response.json()["error"]["code"] == "method_not_allowed"
