"""API keys for real: `hindsight keys` against DynamoDB Local, checked by a gunicorn `hindsight serve`
over HTTP (two workers, each with its own key cache)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from hindsight.client import HindsightClient, HindsightError
from hindsight.online_sync import OnlineStoreConfig, ensure_tables, push
from hindsight.online_sync.config import make_client
from hindsight.online_sync.keys import hash_key, parse_key
from tests.fixtures.serving import build_serving_registry, free_port, start_server

pytestmark = pytest.mark.integration

HINDSIGHT = str(Path(sys.executable).parent / "hindsight")
REPO = Path(__file__).resolve().parents[2]
#: The servers' key cache in these tests: a revocation must take effect within it.
CACHE_SECONDS = 1.0
ROW = {"user_id": 12}


@pytest.fixture(scope="module")
def deployment(dynamodb_endpoint, tmp_path_factory):
    """An online store with one user profile, and the environment every command and server shares."""
    root = tmp_path_factory.mktemp("serving-auth")
    registry = build_serving_registry(str(root / "offline"))
    config = OnlineStoreConfig(endpoint_url=dynamodb_endpoint, table_prefix=f"k{uuid.uuid4().hex[:8]}_",
                               region="us-east-1")
    ensure_tables(registry, config)
    push(registry, config, "user_profile", [
        {"user_id": 12, "event_timestamp": dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1),
         "home_country": "FR", "credit_limit": 2500.0, "account_tier": "gold"},
    ])
    env = {
        "HINDSIGHT_DYNAMODB_ENDPOINT": dynamodb_endpoint,
        "HINDSIGHT_DYNAMODB_TABLE_PREFIX": config.table_prefix,
        # No applied registry here: `keys create` cannot check names (unit tests cover that check).
        "HINDSIGHT_REGISTRY": str(root / "no-registry"),
        "HINDSIGHT_STATE": str(root / "state"),
        "HINDSIGHT_SERVING_KEY_CACHE_SECONDS": str(CACHE_SECONDS),
    }
    return registry, config, root, env


def hindsight(env, *args, check=True):
    result = subprocess.run([HINDSIGHT, *args], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True,
                            timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def create_key(env, *args):
    return hindsight(env, "keys", "create", *args).stdout.split()[-1]


@pytest.fixture(scope="module")
def server(deployment):
    registry, _, root, env = deployment
    process = start_server(registry, root / "server", {**env, "HINDSIGHT_SERVING_AUTH": "keys"}, workers=2)
    yield process
    process.stop()


def post(server, key, body):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(server.url + "/v1/features", json={"entities": ROW, **body}, headers=headers, timeout=5)


def test_keys_create_prints_the_key_last_and_stores_only_its_hash(deployment):
    _, config, _, env = deployment
    created = hindsight(env, "keys", "create", "--name", "fraud-model", "--read", "fraud_detection",
                        "--read", "user_profile", "--write", "merchant_risk")
    key = created.stdout.split()[-1]
    key_id = parse_key(key)
    assert key_id and created.stdout.count(key) == 1
    assert f"created API key 'fraud-model' (id {key_id}): read fraud_detection,user_profile; write merchant_risk" \
        in created.stdout
    listing = hindsight(env, "keys", "list").stdout
    assert key_id in listing and "fraud-model" in listing and "active" in listing
    assert key not in listing and hash_key(key) not in listing and key.split("_", 2)[2] not in listing
    # The table holds the hash, never the key.
    items = make_client(config).scan(TableName=config.table_name("api_keys"))["Items"]
    item = next(i for i in items if i["key_id"]["S"] == key_id)
    assert item["key_hash"]["S"] == hash_key(key) and key not in repr(items)
    assert item["read"]["L"] == [{"S": "fraud_detection"}, {"S": "user_profile"}] and "revoked_at" not in item


def test_keys_need_a_scope_and_revoke_names_unknown_ids(deployment):
    env = deployment[3]
    no_scope = hindsight(env, "keys", "create", "--name", "idle", check=False)
    assert no_scope.returncode == 1 and "a key needs at least one scope" in no_scope.stderr
    key = create_key(env, "--name", "typo-target", "--metrics")
    typo = parse_key(key)[:-1] + ("0" if parse_key(key)[-1] != "0" else "1")
    unknown = hindsight(env, "keys", "revoke", typo, check=False)
    assert unknown.returncode == 1
    assert f"no API key with id '{typo}'" in unknown.stderr and f"did you mean {parse_key(key)}" in unknown.stderr


def test_requests_without_a_valid_key_are_401(server, deployment):
    key = create_key(deployment[3], "--name", "reader", "--read", "*")
    for bad in (None, "hsk_000000000000_" + "a" * 43, key[:-2] + "zz", "Basic"):
        response = post(server, bad, {"feature_service": "user_basics"})
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="hindsight"')
        assert response.json()["error"]["code"] == "unauthorized"
    ok = post(server, key, {"feature_service": "user_basics"})
    assert ok.status_code == 200 and ok.json()["features"]["home_country"] == "FR"


def test_scopes_decide_403_or_200(server, deployment):
    env = deployment[3]
    service_key = create_key(env, "--name", "basics", "--read", "user_basics")
    assert post(server, service_key, {"feature_service": "user_basics"}).json()["features"] == {
        "home_country": "FR", "credit_limit": 2500.0}
    denied = post(server, service_key, {"features": ["user_profile:home_country"]})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    assert post(server, service_key, {"feature_service": "fraud_detection"}).status_code == 403
    view_key = create_key(env, "--name", "profiles", "--read", "user_profile")
    assert post(server, view_key, {"features": ["user_profile:*"]}).json()["features"]["account_tier"] == "gold"
    assert post(server, view_key, {"feature_service": "user_basics"}).status_code == 200
    assert post(server, view_key, {"features": ["merchant_risk:txn_count_7d"], "entities": {"merchant_id": 7}}
                ).status_code == 403
    star = create_key(env, "--name", "all", "--read", "*")
    assert post(server, star, {"features": ["merchant_risk:txn_count_7d"], "entities": {"merchant_id": 7}}
                ).json()["features"] == {"txn_count_7d": None}
    listing = requests.get(server.url + "/v1/feature-services", headers={"Authorization": f"Bearer {view_key}"},
                           timeout=5).json()
    assert [s["name"] for s in listing["feature_services"]] == ["user_basics"]
    with HindsightClient(server.url, api_key=service_key) as client:
        assert client.get_features(ROW, feature_service="user_basics")["features"]["home_country"] == "FR"
        with pytest.raises(HindsightError) as error:
            client.feature_service("fraud_detection")
        assert error.value.status == 403


def test_probes_are_open_and_metrics_are_protected(server, deployment):
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    assert requests.get(server.url + "/readyz", timeout=5).json()["status"] == "ready"
    env = deployment[3]
    reader = create_key(env, "--name", "reader", "--read", "*")
    prometheus = create_key(env, "--name", "prometheus", "--metrics")
    assert requests.get(server.url + "/metrics", timeout=5).status_code == 401
    assert requests.get(server.url + "/metrics", headers={"Authorization": f"Bearer {reader}"},
                        timeout=5).status_code == 403
    metrics = requests.get(server.url + "/metrics", headers={"Authorization": f"Bearer {prometheus}"}, timeout=5)
    assert metrics.status_code == 200 and "hindsight_serving_request_seconds" in metrics.text
    assert requests.get(server.url + "/openapi.json", timeout=5).status_code == 401


def test_a_revoked_key_is_refused_within_the_cache_time(server, deployment):
    env = deployment[3]
    key = create_key(env, "--name", "leaked", "--read", "user_basics")
    # Every worker caches the key as valid (2 workers, keep-alive off: requests spread over both).
    for _ in range(10):
        assert post(server, key, {"feature_service": "user_basics"}).status_code == 200
    revoked = hindsight(env, "keys", "revoke", parse_key(key))
    revoked_at = time.monotonic()
    expected = f"revoked API key {parse_key(key)} ('leaked'); servers refuse it within {CACHE_SECONDS:g} s"
    assert expected in revoked.stdout
    first_refusal = None
    while time.monotonic() - revoked_at < CACHE_SECONDS + 3:
        if post(server, key, {"feature_service": "user_basics"}).status_code == 401:
            first_refusal = first_refusal or time.monotonic() - revoked_at
        time.sleep(0.05)
    assert first_refusal is not None and first_refusal <= CACHE_SECONDS + 0.5
    # Past the cache time no worker accepts it.
    assert {post(server, key, {"feature_service": "user_basics"}).status_code for _ in range(20)} == {401}
    listing = hindsight(env, "keys", "list").stdout
    assert "revoked" in next(line for line in listing.splitlines() if parse_key(key) in line)
    again = hindsight(env, "keys", "revoke", key)  # the whole key works too
    assert "was already revoked" in again.stdout


@pytest.mark.parametrize("args, env", [
    (["--no-auth", "--host", "0.0.0.0"], {}),
    (["--host", "0.0.0.0"], {"HINDSIGHT_SERVING_AUTH": "none"}),
])
def test_keyless_serving_is_refused_on_the_network(deployment, args, env):
    port = free_port()
    result = hindsight({**deployment[3], **env}, "serve", "--port", str(port), *args, check=False)
    assert result.returncode == 2
    assert "refusing to serve without API keys on 0.0.0.0" in result.stderr


def test_demo_key_saved_replaced_and_used_by_demo_request(server, deployment, monkeypatch):
    from click.testing import CliRunner

    from hindsight.cli import main

    _, _, root, env = deployment
    key_file = Path(env["HINDSIGHT_STATE"]) / "demo_api_key"
    first = create_key(env, "--name", "demo", "--read", "*", "--replace", "--save", str(key_file))
    second = hindsight(env, "keys", "create", "--name", "demo", "--read", "*", "--replace", "--save", str(key_file))
    key = second.stdout.split()[-1]
    assert f"revoked the previous key {parse_key(first)} of 'demo'" in second.stdout
    assert key_file.read_text() == key + "\n" and (key_file.stat().st_mode & 0o777) == 0o600
    active_demo = [line for line in hindsight(env, "keys", "list", "--active").stdout.splitlines() if " demo " in line]
    assert [line.split()[0] for line in active_demo] == [parse_key(key)]

    monkeypatch.setattr("hindsight.demo.request.newest_entities", lambda *args, **kwargs: {"user_id": 12})
    monkeypatch.delenv("HINDSIGHT_API_KEY", raising=False)
    result = CliRunner().invoke(main, ["demo-request", "--url", server.url, "--service", "user_basics"],
                                env={"HINDSIGHT_STATE": env["HINDSIGHT_STATE"]})
    assert result.exit_code == 0, result.output
    curl = result.output.splitlines()[0]
    assert curl.startswith("$ curl ") and f"-H 'Authorization: Bearer {key}'" in curl
    # The printed curl works as printed.
    answer = subprocess.run(["bash", "-c", curl[2:]], capture_output=True, text=True, timeout=30)
    assert '"home_country":"FR"' in answer.stdout
