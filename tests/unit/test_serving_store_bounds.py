"""Bounds on waiting for the online store outside feature reads: the API-key lookup (the store
deadline), ingest and push (the write deadline), botocore's attempts, and what the 503s and
/readyz say about a missing table (the fix, never the table's name).

A hung store is a local TCP server that accepts connections and reads requests but never answers
(what a SIGSTOPped DynamoDB Local looks like to a client).
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from hindsight.online_sync.config import (
    OnlineStoreConfig,
    OnlineStoreUnavailable,
    OnlineTableMissing,
    make_client,
    store_error,
)
from hindsight.online_sync.keys import KeyStore
from hindsight.online_sync.store import deadline_config
from hindsight.serving import state as serving_state
from hindsight.serving.config import ServingConfig
from hindsight.registry_sync.model import Registry
from tests.fixtures.serving import FakeKeyStore, build_serving_registry
from tests.unit.test_serving_ingest import EVENT, PUSHED, TRANSACTIONS, FakeIngestor

#: Slack over a bound, for a loaded machine.
MARGIN_S = 0.4


class HungStore:
    """Accepts TCP connections and reads what is sent, never answering; counts HTTP requests."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.requests = 0
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self._sockets.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.requests += data.count(b"POST / HTTP/1.1")

    def close(self) -> None:
        self._stop.set()
        self.server.close()
        for conn in self._sockets:
            conn.close()


@pytest.fixture
def ingest_registry() -> Registry:
    """The serving registry with a stream source and user_profile taking pushes."""
    base = build_serving_registry()
    views = tuple(dataclasses.replace(v, push=True) if v.name == "user_profile" else v for v in base.feature_views)
    return dataclasses.replace(base, feature_views=views, stream_sources=(TRANSACTIONS,))


@pytest.fixture
def ingestor(ingest_registry: Registry) -> FakeIngestor:
    return FakeIngestor(ingest_registry)


@pytest.fixture
def hung():
    store = HungStore()
    yield store
    store.close()


def hung_config(url: str) -> OnlineStoreConfig:
    return OnlineStoreConfig(endpoint_url=url, region="us-east-1", table_prefix="bounds_")


# ---------------------------------------------------------------------------------------------
# botocore's attempts
# ---------------------------------------------------------------------------------------------


def test_max_attempts_counts_the_first_attempt():
    # botocore's `max_attempts` counts retries: 1 made two attempts, a hung store held a deadline
    # read twice as long, and the default (3) made four attempts of 10 s: the 40 s the key lookup took.
    client = make_client(OnlineStoreConfig(endpoint_url="http://127.0.0.1:1", region="us-east-1"))
    assert client.meta.config.retries["total_max_attempts"] == 3
    bounded = make_client(deadline_config(OnlineStoreConfig(endpoint_url="http://127.0.0.1:1"), 0.5))
    assert bounded.meta.config.retries["total_max_attempts"] == 1


def test_a_deadline_client_makes_one_attempt_and_gives_up_at_the_deadline(hung):
    client = make_client(deadline_config(hung_config(hung.url), 0.3))
    began = time.perf_counter()
    with pytest.raises(ReadTimeoutError):
        client.get_item(TableName="bounds_api_keys", Key={"key_id": {"S": "0" * 12}})
    elapsed = time.perf_counter() - began
    assert elapsed < 0.3 + MARGIN_S, elapsed
    time.sleep(0.1)
    assert hung.requests == 1


def test_the_key_table_lookup_is_bounded_by_the_store_deadline(hung):
    keys = KeyStore(deadline_config(hung_config(hung.url), 0.3))
    assert keys.client is not None  # built first: building a client is CPU, not waiting on the store
    began = time.perf_counter()
    with pytest.raises(OnlineStoreUnavailable):
        keys.lookup("0123456789ab")
    assert time.perf_counter() - began < 0.3 + MARGIN_S


# ---------------------------------------------------------------------------------------------
# The API-key check of every endpoint
# ---------------------------------------------------------------------------------------------


class SlowKeys(FakeKeyStore):
    """A key table that takes `delay_s` to answer each lookup."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def lookup(self, key_id: str) -> Any:
        time.sleep(self.delay_s)
        return super().lookup(key_id)


@pytest.mark.parametrize("method, path, body", [
    ("get", "/v1/feature-services", None),
    ("post", "/v1/features", {"feature_service": "user_basics", "entities": {"user_id": 12}}),
    ("get", "/openapi.json", None),
])
def test_a_slow_key_table_is_a_503_at_the_store_deadline(make_serving_app, method, path, body):
    keys = SlowKeys(delay_s=2.0)
    key = keys.create("reader", read=["*"])
    client = make_serving_app(AUTH="keys", API_KEYS=keys, STORE_DEADLINE_MS=300).test_client()
    began = time.perf_counter()
    response = getattr(client, method)(path, json=body, headers={"Authorization": f"Bearer {key}"})
    elapsed = time.perf_counter() - began
    assert response.status_code == 503, response.get_json()
    assert response.get_json()["error"] == {
        "code": "online_store_unavailable",
        "message": "cannot check the API key: the online store's key table did not answer within 300 ms of the "
                   "request's arrival"}
    assert elapsed < 0.3 + MARGIN_S, elapsed


def test_a_late_key_answer_is_cached_for_the_next_request(make_serving_app):
    keys = SlowKeys(delay_s=0.5)
    key = keys.create("reader", read=["*"])
    client = make_serving_app(AUTH="keys", API_KEYS=keys, STORE_DEADLINE_MS=200,
                              KEY_CACHE_SECONDS=60).test_client()
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/feature-services", headers=headers).status_code == 503
    time.sleep(0.5)  # the lookup finished in the background
    assert client.get("/v1/feature-services", headers=headers).status_code == 200
    assert keys.lookups == 1


def test_an_unreachable_key_table_is_still_a_503(make_serving_app):
    class Down(FakeKeyStore):
        def lookup(self, key_id: str) -> Any:
            raise OnlineStoreUnavailable("http://10.1.2.3:8000: connection refused")

    keys = Down()
    key = keys.create("reader", read=["*"])
    client = make_serving_app(AUTH="keys", API_KEYS=keys).test_client()
    response = client.get("/v1/feature-services", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 503
    assert "10.1.2.3" not in response.get_data(as_text=True)
    assert "cannot be reached" in response.get_json()["error"]["message"]


def test_the_default_key_table_client_has_the_store_deadline(make_serving_app, monkeypatch, hung):
    monkeypatch.setenv("HINDSIGHT_DYNAMODB_ENDPOINT", hung.url)
    from hindsight.serving.auth import EXTENSION

    app = make_serving_app(AUTH="keys", STORE_DEADLINE_MS=250)
    authenticator = app.extensions[EXTENSION]
    assert authenticator.deadline_s == 0.25
    serving_state.warm(app)  # gunicorn's post_fork: the client is built (and a first lookup made) now
    config = authenticator._store.config
    assert (config.endpoint_url, config.connect_timeout_s, config.read_timeout_s, config.max_attempts) == (
        hung.url, 0.25, 0.25, 1)
    began = time.perf_counter()
    response = app.test_client().get("/v1/feature-services",
                                     headers={"Authorization": "Bearer hsk_0123456789ab_" + "x" * 43})
    assert response.status_code == 503
    assert time.perf_counter() - began < 0.25 + MARGIN_S


# ---------------------------------------------------------------------------------------------
# Ingest and push under the write deadline
# ---------------------------------------------------------------------------------------------


class SlowIngestor:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.calls = 0

    def ingest(self, source: str, rows: list[dict[str, Any]]) -> Any:
        self.calls += 1
        time.sleep(self.delay_s)
        raise AssertionError("answered after the deadline")


def test_config_reads_the_write_deadline(monkeypatch):
    assert ServingConfig().write_deadline_ms == 5000
    monkeypatch.setenv("HINDSIGHT_SERVING_WRITE_DEADLINE_MS", "1500")
    assert ServingConfig.from_env().write_deadline_ms == 1500
    monkeypatch.setenv("HINDSIGHT_SERVING_WRITE_DEADLINE_MS", "0")
    with pytest.raises(ValueError, match="HINDSIGHT_SERVING_WRITE_DEADLINE_MS"):
        ServingConfig.from_env()


def test_a_slow_ingest_is_a_503_at_the_write_deadline(make_serving_app, ingest_registry):
    slow = SlowIngestor(delay_s=2.0)
    client = make_serving_app(REGISTRY=ingest_registry, INGESTOR=lambda registry: slow,
                              WRITE_DEADLINE_MS=300).test_client()
    began = time.perf_counter()
    response = client.post("/v1/ingest", json={"source": "transactions", "rows": [EVENT]})
    elapsed = time.perf_counter() - began
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "online_store_unavailable"
    assert error["message"].startswith("the online store did not commit the write within 300 ms of the request's "
                                       "arrival (it may still complete); the request was not acknowledged")
    assert "so retrying it is safe" in error["message"]
    assert elapsed < 0.3 + MARGIN_S, elapsed


def test_a_slow_push_is_a_503_at_the_write_deadline(make_serving_app, ingest_registry):
    def slow_push(registry, config, view, rows):
        time.sleep(2.0)
        raise AssertionError("answered after the deadline")

    client = make_serving_app(REGISTRY=ingest_registry, PUSH=slow_push, WRITE_DEADLINE_MS=300).test_client()
    began = time.perf_counter()
    response = client.post("/v1/push", json={"view": "user_profile", "rows": [PUSHED]})
    elapsed = time.perf_counter() - began
    assert response.status_code == 503
    assert "did not commit the write within 300 ms" in response.get_json()["error"]["message"]
    assert "so retrying it is safe" in response.get_json()["error"]["message"]
    assert elapsed < 0.3 + MARGIN_S, elapsed


def test_writes_within_the_deadline_are_answered(make_serving_app, ingest_registry, ingestor):
    client = make_serving_app(REGISTRY=ingest_registry, INGESTOR=lambda registry: ingestor,
                              WRITE_DEADLINE_MS=2000).test_client()
    response = client.post("/v1/ingest", json={"source": "transactions", "rows": [EVENT]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["accepted"] == 1


def test_the_default_write_client_has_the_write_deadline(make_serving_app, ingest_registry, monkeypatch, hung):
    monkeypatch.setenv("HINDSIGHT_DYNAMODB_ENDPOINT", hung.url)
    from hindsight.serving.ingest import EXTENSION

    app = make_serving_app(REGISTRY=ingest_registry, WRITE_DEADLINE_MS=400)
    serving_state.warm(app)
    config = app.extensions[EXTENSION].store_config()
    assert (config.endpoint_url, config.connect_timeout_s, config.read_timeout_s, config.max_attempts) == (
        hung.url, 0.4, 0.4, 1)
    client = app.test_client()
    for path, body in (("/v1/push", {"view": "user_profile", "rows": [PUSHED]}),
                       ("/v1/ingest", {"source": "transactions", "rows": [EVENT]})):
        began = time.perf_counter()
        response = client.post(path, json=body)
        elapsed = time.perf_counter() - began
        assert response.status_code == 503, (path, response.get_json())
        assert hung.url.rsplit(":", 1)[1] not in response.get_data(as_text=True)
        assert elapsed < 0.4 + MARGIN_S, (path, elapsed)


# ---------------------------------------------------------------------------------------------
# A missing table: told apart from an unreachable store, with its fix, without its name
# ---------------------------------------------------------------------------------------------


def not_found() -> ClientError:
    return ClientError({"Error": {"Code": "ResourceNotFoundException",
                                  "Message": "Requested resource not found: Table: prod_secret_view not found"}},
                       "BatchGetItem")


def test_store_error_tells_a_missing_table_apart():
    error = store_error(not_found(), "reading")
    assert isinstance(error, OnlineTableMissing) and isinstance(error, OnlineStoreUnavailable)
    assert "hindsight apply" in str(error)
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "BatchGetItem")
    assert type(store_error(throttled, "reading")) is OnlineStoreUnavailable


def test_a_feature_read_of_a_missing_table_says_so_without_naming_it(make_serving_app, serving_store):
    def read(*args, **kwargs):
        raise store_error(not_found(), "reading the online store at http://10.0.0.9:8000")

    serving_store.read = read
    response = make_serving_app().test_client().post(
        "/v1/features", json={"feature_service": "user_basics", "entities": {"user_id": 12}})
    assert response.status_code == 503
    assert response.get_json()["error"] == {
        "code": "online_store_unavailable",
        "message": "the online store has no table for a requested feature view (not created yet, or dropped): "
                   "run `hindsight apply`; the server log names it"}
    assert "prod_secret_view" not in response.get_data(as_text=True)


def test_a_write_to_a_missing_table_says_so(make_serving_app, ingest_registry, ingestor):
    def missing(source, rows):
        raise store_error(not_found(), "ingest into 'streams.transactions'")

    ingestor.ingest = missing
    client = make_serving_app(REGISTRY=ingest_registry, INGESTOR=lambda registry: ingestor).test_client()
    response = client.post("/v1/ingest", json={"source": "transactions", "rows": [EVENT]})
    assert response.status_code == 503
    message = response.get_json()["error"]["message"]
    assert message.startswith("a table of the online store is missing: run `hindsight apply`")
    assert "so retrying it is safe" in message and "prod_secret_view" not in message


class TablesClient:
    """`list_tables` of a boto3 client over a set of names, `page` names a page; counts calls."""

    def __init__(self, names: set[str], page: int = 100) -> None:
        self.names = names
        self.page = page
        self.calls: list[dict[str, Any]] = []

    def list_tables(self, **arguments: Any) -> dict[str, Any]:
        self.calls.append(arguments)
        names = sorted(n for n in self.names if n > arguments.get("ExclusiveStartTableName", ""))
        limit = min(arguments.get("Limit", 100), self.page)
        answer: dict[str, Any] = {"TableNames": names[:limit]}
        if len(names) > limit:
            answer["LastEvaluatedTableName"] = names[limit - 1]
        return answer


@dataclasses.dataclass
class TablesStore:
    """An online store whose client lists tables (the real OnlineStore's `client` and `config`)."""

    client: TablesClient
    config: OnlineStoreConfig = dataclasses.field(default_factory=lambda: OnlineStoreConfig(table_prefix="prod_"))
    pings: int = 0

    def ping(self) -> bool:
        self.pings += 1
        return True

    def read(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("not read")


ONLINE_TABLES = {"prod_user_transaction_aggregates", "prod_user_profile", "prod_merchant_risk"}


def test_missing_tables_pages_through_list_tables(serving_registry):
    others = {f"a{i:03d}" for i in range(250)} | {f"z{i:03d}" for i in range(250)}
    client = TablesClient(ONLINE_TABLES | others | {"prod_api_keys"}, page=100)
    store = TablesStore(client)
    assert serving_state.missing_tables(store, serving_registry) == ()
    # 250 names before the prefix: three pages, the third reaching past the last wanted name.
    assert len(client.calls) == 3
    client.names.discard("prod_merchant_risk")
    assert serving_state.missing_tables(store, serving_registry) == ("prod_merchant_risk",)
    assert serving_state.missing_tables(object(), serving_registry) is None  # no client: a fake store


def test_readyz_is_503_while_a_served_table_is_missing(make_serving_app, serving_registry, monkeypatch, caplog):
    monkeypatch.setattr(serving_state, "TABLE_CHECK_TTL_S", 0.3)
    client_ = TablesClient(ONLINE_TABLES - {"prod_merchant_risk"})
    store = TablesStore(client_)
    client = make_serving_app(ONLINE_STORE=store).test_client()
    with caplog.at_level("WARNING", logger="hindsight.serving.state"):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["error"] == {
        "code": "online_store_unavailable",
        "message": "the online store lacks the table of 1 served feature view(s): run `hindsight apply` to "
                   "create it (the server log names the tables)"}
    assert "prod_" not in response.get_data(as_text=True)
    assert "prod_merchant_risk" in caplog.text  # the operator finds the name in the log
    # Probes within the cache's lifetime only ping: one ListTables for all of them.
    for _ in range(5):
        assert client.get("/readyz").status_code == 503
    assert len(client_.calls) == 1 and store.pings == 5
    client_.names.add("prod_merchant_risk")  # `hindsight apply` created it
    time.sleep(0.35)
    assert client.get("/readyz").get_json() == {"status": "ready", "registry_version": 3}
    assert len(client_.calls) == 2
