"""Clients that stall, and bodies gunicorn cannot de-frame, against a real `hindsight serve`.

One worker with 4 threads and HINDSIGHT_SERVING_CLIENT_TIMEOUT_MS=1000: three times as many
stalled clients as threads must not stop /healthz and a feature read from being answered once the
timeout has freed the threads, and each stalled client's connection is closed (after a 408 when it
stalled in its body).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests

from hindsight.online_sync import OnlineStoreConfig, ensure_tables, sync
from tests.fixtures.dynamodb import write_rows
from tests.fixtures.serving import build_serving_registry, start_server

pytestmark = pytest.mark.integration

THREADS = 4
CLIENT_TIMEOUT_S = 1.0
#: Stalled clients: more than workers x threads of them.
STALLED = 3 * THREADS
#: Slack for a loaded 2-core machine, on top of the rounds of timeouts the stalled clients cost.
MARGIN_S = 3.0
BODY = {"feature_service": "user_basics", "entities": {"user_id": 12}}


@pytest.fixture(scope="module")
def server(dynamodb_endpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("serving-slow-clients")
    registry = build_serving_registry(str(root / "offline"))
    config = OnlineStoreConfig(endpoint_url=dynamodb_endpoint, table_prefix=f"slow{uuid.uuid4().hex[:8]}_",
                               region="us-east-1")
    ensure_tables(registry, config)
    # Synced from Delta, not pushed: a push journals rows the server would then try to flush to Delta.
    write_rows(registry.view("user_profile"), [
        {"user_id": 12, "event_timestamp": dt.datetime.now(dt.timezone.utc), "home_country": "FR",
         "credit_limit": 2500.5, "account_tier": "gold"},
    ])
    assert sync(registry, config, select=["user_profile"], progress=False).rows_written == 1
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": dynamodb_endpoint, "HINDSIGHT_DYNAMODB_TABLE_PREFIX": config.table_prefix,
           "HINDSIGHT_SERVING_CLIENT_TIMEOUT_MS": str(int(CLIENT_TIMEOUT_S * 1000))}
    process = start_server(registry, root / "server", env, workers=1, args=("--threads", str(THREADS)))
    requests.post(process.url + "/v1/features", json=BODY, timeout=10)  # the worker's first read is slow
    yield process
    process.stop()


def _connect(server) -> socket.socket:
    address = urlsplit(server.url)
    return socket.create_connection((address.hostname, address.port), timeout=10)


def _stall(server, partial_request: bytes, count: int) -> list[socket.socket]:
    """`count` connections that each send `partial_request` and then nothing."""
    sockets = []
    for _ in range(count):
        sock = _connect(server)
        sock.sendall(partial_request)
        sockets.append(sock)
    return sockets


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends on `sock` until it closes the connection."""
    received = b""
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _answered_within(server, budget_s: float) -> None:
    """/healthz and a feature read both answer 200, each within `budget_s` seconds."""
    for method, path, body in [("GET", "/healthz", None), ("POST", "/v1/features", BODY)]:
        started = time.perf_counter()
        response = requests.request(method, server.url + path, json=body, timeout=budget_s + 10)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text
        assert elapsed < budget_s, f"{path} took {elapsed:.1f}s with {STALLED} stalled clients"
    assert requests.post(server.url + "/v1/features", json=BODY, timeout=10).json() == {
        "features": {"home_country": "FR", "credit_limit": 2500.5}}


def _rounds_budget() -> float:
    """How long the last stalled client can hold up a new request: its round of timeouts, plus slack."""
    return math.ceil(STALLED / THREADS) * CLIENT_TIMEOUT_S + MARGIN_S


def test_clients_stalled_in_their_body_get_408_and_do_not_freeze_the_server(server):
    stalled = _stall(server, b"POST /v1/features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n{", STALLED)
    _answered_within(server, _rounds_budget())
    for sock in stalled:
        head, _, body = _until_closed(sock).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), head
        assert json.loads(body)["error"]["code"] == "request_timeout"


def test_clients_stalled_in_their_headers_are_disconnected(server):
    stalled = _stall(server, b"POST /v1/features HTTP/1.1\r\nHost: x\r\nContent-Ty", STALLED)
    _answered_within(server, _rounds_budget())
    for sock in stalled:
        assert _until_closed(sock) == b""  # nothing can be answered to half a request: closed
    log = server.log()
    assert "client timeout (HINDSIGHT_SERVING_CLIENT_TIMEOUT_MS)" in log
    assert "Socket error processing request" not in log  # no traceback per stalled client


def test_malformed_chunked_body_is_400_json_and_the_connection_closes(server):
    sock = _connect(server)
    sock.sendall(b"POST /v1/features HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n")
    head, _, body = _until_closed(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    error = json.loads(body)["error"]
    assert error["code"] == "malformed_body" and "Invalid chunk size: b'zz'" in error["message"]


def test_gzip_body_is_415_over_http(server):
    response = requests.post(server.url + "/v1/features", data=b"\x1f\x8b\x08\x00",
                             headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}, timeout=10)
    assert response.status_code == 415 and response.headers["Accept-Encoding"] == "identity"
    assert response.json()["error"]["code"] == "unsupported_content_encoding"
