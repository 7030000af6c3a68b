"""A hung or incomplete online store under a real server with API keys on: DynamoDB Local stopped
with SIGSTOP, and a served view's table dropped.

What must hold: every endpoint answers 503 within its bound (the store deadline for the key check
and feature reads, the write deadline for ingest and push, the readiness deadline for /readyz),
never botocore's default timeouts and retries; after SIGCONT everything answers normally and a
retried write counts once. A dropped table makes /readyz not ready and feature reads say to run
`hindsight apply`, naming no table.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from hindsight.core.settings import Settings
from hindsight.online_sync import OnlineStoreConfig, ensure_tables, push
from hindsight.online_sync.config import make_client
from hindsight.online_sync.keys import KeyStore
from hindsight.online_sync.local import DynamoDBLocal
from hindsight.registry_sync.model import Registry
from tests.fixtures.serving import build_serving_registry, free_port, start_server
from tests.fixtures.stream_registry import stream_source
from tests.integration.test_stream_ingest import txn_view

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STORE_DEADLINE_MS = 500
WRITE_DEADLINE_MS = 1500
READY_DEADLINE_MS = 800
#: Slack over a bound for a loaded machine.
MARGIN_S = 0.75
USER = 4242


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving-hung")
    local = DynamoDBLocal(Settings.from_env(REPO).tools_dir, root / "dynamodb-state")
    endpoint = local.start(port=free_port(), in_memory=True)
    base = build_serving_registry(str(root / "offline"))
    registry = Registry(project=base.project, entities=base.entities,
                        feature_views=(*base.feature_views, txn_view()), on_demand_views=base.on_demand_views,
                        feature_services=base.feature_services, stream_sources=(stream_source(str(root / "events")),),
                        version=base.version)
    config = OnlineStoreConfig(endpoint_url=endpoint, table_prefix="hung_", region="us-east-1")
    ensure_tables(registry, config)
    push(registry, config, "user_profile", [
        {"user_id": 12, "event_timestamp": dt.datetime.now(dt.timezone.utc), "home_country": "FR",
         "credit_limit": 2500.5, "account_tier": "gold"}])
    keys = KeyStore(config)
    writer, _ = keys.create("writer", read=["*"], write=["*"])
    fresh, _ = keys.create("fresh", read=["*"])  # never used before the store hangs: not cached
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": endpoint, "HINDSIGHT_DYNAMODB_TABLE_PREFIX": config.table_prefix,
           "HINDSIGHT_SERVING_AUTH": "keys", "HINDSIGHT_SERVING_KEY_CACHE_SECONDS": "60",
           "HINDSIGHT_SERVING_FLUSH": "off",
           "HINDSIGHT_SERVING_STORE_DEADLINE_MS": str(STORE_DEADLINE_MS),
           "HINDSIGHT_SERVING_WRITE_DEADLINE_MS": str(WRITE_DEADLINE_MS),
           "HINDSIGHT_SERVING_READY_DEADLINE_MS": str(READY_DEADLINE_MS)}
    # One worker: the writer key's cached lookup is the one every request finds.
    server = start_server(registry, root / "server", env, workers=1, timeout_s=60)
    try:
        yield local, server, config, {"writer": writer, "fresh": fresh}
    finally:
        pid = local.status().pid
        if pid:
            os.kill(pid, signal.SIGCONT)
        server.stop()
        local.stop()


def call(server, method: str, path: str, key: str | None = None, body=None) -> tuple[requests.Response, float]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    began = time.perf_counter()
    response = requests.request(method, server.url + path, json=body, headers=headers, timeout=60)
    return response, time.perf_counter() - began


def features_body() -> dict:
    return {"features": ["user_profile:home_country", "txn:txn_count_1d"], "entities": {"user_id": USER}}


def event(transaction_id: str) -> dict:
    return {"source": "transactions", "rows": [
        {"transaction_id": transaction_id, "user_id": USER, "ts": dt.datetime.now(dt.timezone.utc).isoformat(),
         "amount": 10.0, "quantity": 1, "country": "FR"}]}


def pushed(country: str) -> dict:
    return {"view": "user_profile", "rows": [
        {"user_id": USER, "event_timestamp": dt.datetime.now(dt.timezone.utc).isoformat(), "home_country": country,
         "credit_limit": 1.0, "account_tier": "gold"}]}


def assert_503(response: requests.Response, port: str) -> str:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "online_store_unavailable"
    assert (not port or port not in response.text) and "hung_" not in response.text
    return error["message"]


def test_every_endpoint_answers_503_within_its_bound_while_the_store_hangs(served):
    local, server, config, keys = served
    writer, fresh = keys["writer"], keys["fresh"]
    port = config.endpoint_url.rsplit(":", 1)[1]
    # Warm: the writer key is cached, the clients exist, one event and one row are in.
    assert call(server, "POST", "/v1/ingest", writer, event("e-1"))[0].json()["accepted"] == 1
    assert call(server, "POST", "/v1/push", writer, pushed("FR"))[0].status_code == 200
    answer = call(server, "POST", "/v1/features", writer, features_body())[0]
    assert answer.json()["features"] == {"home_country": "FR", "txn_count_1d": 1}
    assert call(server, "GET", "/readyz")[0].status_code == 200

    java = local.status().pid
    os.kill(java, signal.SIGSTOP)  # stopped, not dead: connections open, nothing answers
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = {
                "features": pool.submit(call, server, "POST", "/v1/features", writer, features_body()),
                "key check (features)": pool.submit(call, server, "POST", "/v1/features", fresh, features_body()),
                "key check (services)": pool.submit(call, server, "GET", "/v1/feature-services", fresh),
                "ingest": pool.submit(call, server, "POST", "/v1/ingest", writer, event("e-2")),
                "push": pool.submit(call, server, "POST", "/v1/push", writer, pushed("PT")),
                "readyz": pool.submit(call, server, "GET", "/readyz"),
            }
            answers = {name: future.result() for name, future in futures.items()}
    finally:
        os.kill(java, signal.SIGCONT)
    timings = {name: round(seconds, 3) for name, (_, seconds) in answers.items()}
    print("answers while DynamoDB Local was stopped (s):", timings)

    for name in ("features", "key check (features)", "key check (services)"):
        response, seconds = answers[name]
        message = assert_503(response, port)
        assert seconds < STORE_DEADLINE_MS / 1000 + MARGIN_S, (name, seconds)
        if name.startswith("key check"):
            assert message == (f"cannot check the API key: the online store's key table did not answer within "
                               f"{STORE_DEADLINE_MS} ms of the request's arrival")
    for name in ("ingest", "push"):
        response, seconds = answers[name]
        message = assert_503(response, port)
        assert f"did not commit the write within {WRITE_DEADLINE_MS} ms" in message
        assert "so retrying it is safe" in message
        assert seconds < WRITE_DEADLINE_MS / 1000 + MARGIN_S, (name, seconds)
    response, seconds = answers["readyz"]
    assert_503(response, port)
    assert seconds < READY_DEADLINE_MS / 1000 + MARGIN_S, seconds

    # Resumed: everything answers again, and the retried writes count once (the stopped store may
    # have committed them when it resumed: then they are duplicates).
    began = time.perf_counter()
    while call(server, "GET", "/readyz")[0].status_code != 200:
        assert time.perf_counter() - began < 15, server.log()
        time.sleep(0.1)
    retried = call(server, "POST", "/v1/ingest", writer, event("e-2"))[0]
    assert retried.status_code == 200, retried.text
    assert retried.json()["accepted"] + retried.json()["duplicates"] == 1
    again = call(server, "POST", "/v1/ingest", writer, event("e-2"))[0].json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    repushed = call(server, "POST", "/v1/push", writer, pushed("PT"))[0]
    assert repushed.status_code == 200, repushed.text
    assert call(server, "GET", "/v1/feature-services", fresh)[0].status_code == 200
    answer = call(server, "POST", "/v1/features", writer, features_body())[0]
    assert answer.status_code == 200, answer.text
    assert answer.json()["features"] == {"home_country": "PT", "txn_count_1d": 2}


def test_a_dropped_table_makes_readyz_not_ready_and_reads_say_to_apply(served):
    _, server, config, keys = served
    reader = keys["writer"]
    body = {"features": ["merchant_risk:txn_count_7d"], "entities": {"merchant_id": 7}}
    assert call(server, "POST", "/v1/features", reader, body)[0].status_code == 200
    client = make_client(config)
    table = config.table_name("merchant_risk")
    client.delete_table(TableName=table)
    client.get_waiter("table_not_exists").wait(TableName=table, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    try:
        began = time.perf_counter()
        while (ready := call(server, "GET", "/readyz")[0]).status_code == 200:
            assert time.perf_counter() - began < 3, "readyz stayed ready without the table"  # cached 1 s
            time.sleep(0.1)
        message = assert_503(ready, "")
        assert message == ("the online store lacks the table of 1 served feature view(s): run `hindsight apply` "
                           "to create it (the server log names the tables)")
        read = call(server, "POST", "/v1/features", reader, body)[0]
        assert assert_503(read, "").startswith("the online store has no table for a requested feature view")
        assert "hindsight apply" in read.json()["error"]["message"]
        assert table in server.log()  # the operator finds the name in the log
    finally:
        registry = Registry.from_dict(json.loads((server.log_path.parent / "registry.json").read_text()))
        ensure_tables(registry, config)  # what `hindsight apply` does for the online store
    began = time.perf_counter()
    while call(server, "GET", "/readyz")[0].status_code != 200:
        assert time.perf_counter() - began < 3, "readyz stayed not ready with the table back"
        time.sleep(0.1)
    answer = call(server, "POST", "/v1/features", reader, body)[0]
    assert answer.status_code == 200 and answer.json()["features"] == {"txn_count_7d": None}
