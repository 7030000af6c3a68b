"""`POST /v1/ingest` and `POST /v1/push` over a fake Ingestor and push function: body checks, the
writers' refusals as 4xx naming field, row and rule, write scopes, the store down, the document."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from referencing import Registry as SchemaRegistry
from referencing import Resource
from referencing.jsonschema import DRAFT202012

from hindsight.online_sync.config import OnlineStoreUnavailable
from hindsight.online_sync.push import PushRefused, PushReport
from hindsight.registry_sync.model import Feature, Registry, StreamSource
from hindsight.online_sync.tables import needs_journal
from hindsight.serving.ingest import FlushLoop
from tests.fixtures.serving import build_serving_registry

TRANSACTIONS = StreamSource(
    name="streams.transactions",
    event_id_field="transaction_id",
    timestamp_field="ts",
    entities=("user",),
    join_keys=("user_id",),
    columns=(Feature("transaction_id", "string"), Feature("user_id", "int64"), Feature("amount", "float64"),
             Feature("ts", "timestamp")),
    delta_uri="/tmp/event_log/streams/transactions",
)
CLICKS = dataclasses.replace(TRANSACTIONS, name="streams.clicks", delta_uri="/tmp/event_log/streams/clicks")
EVENT = {"transaction_id": "t-1", "user_id": 12, "amount": 9.5, "ts": "2026-11-30T12:00:00+00:00"}
PUSHED = {"user_id": 12, "event_timestamp": "2026-11-30T12:00:00+00:00", "home_country": "FR",
          "credit_limit": 2500.0, "account_tier": "gold"}


class RowError(ValueError):
    """IngestValidationError's shape: field, row index, rule."""

    def __init__(self, message: str, field: str, index: int, rule: str) -> None:
        super().__init__(message)
        self.field, self.index, self.rule = field, index, rule


@dataclass(frozen=True)
class Report:
    source: str
    received: int
    accepted: int
    duplicates: int
    seconds: float = 0.0


class FakeIngestor:
    """Checks columns and the event id's type, dedupes on event ids across calls (as the journal does)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.seen: set[str] = set()
        self.calls: list[tuple[str, list[dict[str, Any]]]] = []
        self.down = False

    def ingest(self, source: str, rows: list[dict[str, Any]]) -> Report:
        if self.down:
            raise OnlineStoreUnavailable("http://127.0.0.1:1: connection refused")
        stream = self.registry.stream_source(source)
        for index, row in enumerate(rows):
            for column in stream.columns:
                if column.name not in row:
                    raise RowError(f"row {index}: missing field {column.name!r}", column.name, index, "missing")
            if type(row["transaction_id"]) is not str:
                raise RowError(f"row {index}: transaction_id must be a string, got {row['transaction_id']!r}",
                               "transaction_id", index, "type")
        self.calls.append((source, rows))
        new = [r for r in rows if r["transaction_id"] not in self.seen]
        self.seen.update(r["transaction_id"] for r in rows)
        return Report(stream.name, len(rows), len(new), len(rows) - len(new))


@pytest.fixture
def registry() -> Registry:
    base = build_serving_registry()
    views = tuple(dataclasses.replace(v, push=True) if v.name == "user_profile" else v for v in base.feature_views)
    return dataclasses.replace(base, feature_views=views, stream_sources=(TRANSACTIONS,))


@pytest.fixture
def ingestor(registry) -> FakeIngestor:
    return FakeIngestor(registry)


@pytest.fixture
def pushes() -> list[tuple[str, list[dict[str, Any]]]]:
    return []


@pytest.fixture
def make_app(make_serving_app, registry, ingestor, pushes):
    def fake_push(registry_, config, view, rows):
        if view == "merchant_risk":
            raise PushRefused(view, "config", "models/features/merchant_risk.sql")
        if "home_country" not in rows[0]:
            raise ValueError(f"push to {view!r}: row 0 lacks columns ['home_country']")
        pushes.append((view, rows))
        return PushReport(view, len(rows), len(rows), 0, 0.01, journaled=len(rows))

    def make(**overrides: Any):
        return make_serving_app(REGISTRY=registry, INGESTOR=lambda _: ingestor, PUSH=fake_push, **overrides)

    return make


@pytest.fixture
def client(make_app):
    return make_app().test_client()


def error(response) -> dict[str, Any]:
    return response.get_json()["error"]


def test_ingest_answers_the_report_once_written_and_a_retry_counts_once(client, ingestor):
    response = client.post("/v1/ingest", json={"source": "transactions", "rows": [EVENT, {**EVENT, "transaction_id": "t-2"}]})
    assert response.status_code == 200
    assert response.get_json() == {"source": "streams.transactions", "received": 2, "accepted": 2, "duplicates": 0}
    # The bare table name was resolved: the writer is handed the full name.
    assert ingestor.calls[0][0] == "streams.transactions"
    retry = client.post("/v1/ingest", json={"source": "streams.transactions", "rows": [EVENT]})
    assert retry.get_json() == {"source": "streams.transactions", "received": 1, "accepted": 0, "duplicates": 1}


def test_unknown_source_is_a_404_with_the_nearest_name(client, ingestor):
    response = client.post("/v1/ingest", json={"source": "transactoins", "rows": [EVENT]})
    assert response.status_code == 404
    assert error(response)["code"] == "unknown_stream_source"
    assert "unknown stream source 'transactoins': did you mean 'streams.transactions'?" in error(response)["message"]
    assert error(response)["details"] == {"suggestions": ["streams.transactions"]}
    assert ingestor.calls == []


def test_a_table_name_two_sources_share_is_ambiguous(make_serving_app, registry, ingestor):
    both = dataclasses.replace(registry, stream_sources=(TRANSACTIONS, dataclasses.replace(
        TRANSACTIONS, name="other.transactions")))
    client = make_serving_app(REGISTRY=both, INGESTOR=lambda _: ingestor).test_client()
    response = client.post("/v1/ingest", json={"source": "transactions", "rows": [EVENT]})
    assert response.status_code == 400
    assert error(response)["code"] == "ambiguous_stream_source"
    assert "name one of 'other.transactions', 'streams.transactions'" in error(response)["message"]


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({"rows": [EVENT]}, 400, "missing_field", "request field(s) 'source' missing"),
        ({"source": "transactions"}, 400, "missing_field", "request field(s) 'rows' missing"),
        ({"source": "transactions", "rows": [EVENT], "flush": True}, 400, "unknown_field",
         "unknown request field(s) 'flush'; accepted: source, rows"),
        ({"source": 12, "rows": [EVENT]}, 400, "invalid_request", "'source' must be a non-empty string, got integer 12"),
        ({"source": "transactions", "rows": {"a": 1}}, 400, "invalid_rows",
         "'rows' must be a list of row objects, got object"),
        ({"source": "transactions", "rows": []}, 400, "invalid_rows", "'rows' is empty"),
        ({"source": "transactions", "rows": [EVENT, 7]}, 400, "invalid_rows",
         "rows[1] must be an object of column values, got integer 7"),
        ({"source": "transactions", "rows": [{**EVENT, "amount": [1, 2]}]}, 400, "invalid_row",
         "rows[0].amount must be a single value (a string, number, boolean or null), got array"),
    ],
)
def test_malformed_bodies_are_400s_naming_the_field(client, ingestor, body, status, code, message):
    response = client.post("/v1/ingest", json=body)
    assert response.status_code == status, response.get_json()
    assert error(response)["code"] == code
    assert message in error(response)["message"]
    assert ingestor.calls == []


def test_a_number_no_column_can_hold_is_a_400_not_a_500(client):
    body = '{"source": "transactions", "rows": [{"transaction_id": "t", "user_id": ' + "9" * 40 + "}]}"
    response = client.post("/v1/ingest", data=body, content_type="application/json")
    assert response.status_code == 400
    assert error(response)["message"] == ("rows[0].user_id: <a 40-digit number> is out of the range of every column "
                                          "type (int64 is at most 19 digits)")
    assert error(response)["details"] == {"row": 0, "field": "user_id", "rule": "range"}


def test_a_row_the_writer_refuses_is_a_400_naming_field_row_and_rule(client):
    rows = [EVENT, {**EVENT, "transaction_id": 5}]
    response = client.post("/v1/ingest", json={"source": "transactions", "rows": rows})
    assert response.status_code == 400
    assert error(response) == {
        "code": "invalid_row",
        "message": "stream source 'streams.transactions': row 1: transaction_id must be a string, got 5",
        "details": {"row": 1, "field": "transaction_id", "rule": "type"},
    }
    missing = client.post("/v1/ingest", json={"source": "transactions", "rows": [{"transaction_id": "x"}]})
    assert error(missing)["details"] == {"row": 0, "field": "user_id", "rule": "missing"}


def test_oversize_bodies_and_batches_are_413s(make_app, ingestor):
    client = make_app(MAX_BODY_BYTES=2000, MAX_WRITE_ROWS=5).test_client()
    big = client.post("/v1/ingest", json={"source": "transactions", "rows": [{**EVENT, "transaction_id": "x" * 3000}]})
    assert big.status_code == 413
    assert error(big) == {"code": "payload_too_large", "message": "request body too large: the limit is 2000 bytes"}
    many = client.post("/v1/ingest", json={"source": "transactions", "rows": [EVENT] * 6})
    assert many.status_code == 413
    assert error(many)["code"] == "batch_too_large"
    assert "'rows' has 6 rows; the limit is 5 per request" in error(many)["message"]
    assert ingestor.calls == []


def test_not_json_is_a_415(client):
    response = client.post("/v1/ingest", data=json.dumps({"source": "transactions", "rows": [EVENT]}),
                           content_type="text/plain")
    assert response.status_code == 415


def test_store_down_is_a_503_and_nothing_acknowledged(client, ingestor):
    ingestor.down = True
    response = client.post("/v1/ingest", json={"source": "transactions", "rows": [EVENT]})
    assert response.status_code == 503
    assert error(response)["code"] == "online_store_unavailable"
    assert "so retrying it is safe" in error(response)["message"]


def test_push_answers_its_report(client, pushes):
    response = client.post("/v1/push", json={"view": "user_profile", "rows": [PUSHED]})
    assert response.status_code == 200
    assert response.get_json() == {"view": "user_profile", "rows": 1, "written": 1, "stale": 0, "journaled": 1,
                                      "duplicates": 0}
    assert pushes == [("user_profile", [PUSHED])]


def test_push_errors_are_4xx(client, pushes):
    unknown_view = client.post("/v1/push", json={"view": "user_profil", "rows": [PUSHED]})
    assert unknown_view.status_code == 404
    assert error(unknown_view)["code"] == "unknown_feature_view"
    assert "did you mean 'user_profile'?" in error(unknown_view)["message"]
    bad_row = client.post("/v1/push", json={"view": "user_profile", "rows": [{"user_id": 12}]})
    assert bad_row.status_code == 400
    assert error(bad_row) == {"code": "invalid_row", "message": "push to 'user_profile': row 0 lacks columns ['home_country']"}
    refused = client.post("/v1/push", json={"view": "merchant_risk", "rows": [PUSHED]})
    assert refused.status_code == 400 and error(refused)["code"] == "push_refused"
    assert "does not take pushed rows: set config push=true on its model (models/features/merchant_risk.sql)" \
        in error(refused)["message"]
    no_view = client.post("/v1/push", json={"rows": [PUSHED]})
    assert no_view.status_code == 400 and error(no_view)["code"] == "missing_field"
    assert pushes == []


# --- write scopes ---------------------------------------------------------------------------


@pytest.fixture
def keyed(make_app, serving_keys):
    return make_app(AUTH="keys", API_KEYS=serving_keys).test_client(), serving_keys


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_writing_needs_the_write_scope_on_the_target(keyed, ingestor, pushes):
    client, keys = keyed
    reader = keys.create("model", read=["*"])
    writer = keys.create("producer", write=["streams.transactions"])
    body = {"source": "transactions", "rows": [EVENT]}
    assert client.post("/v1/ingest", json=body).status_code == 401
    denied = client.post("/v1/ingest", json=body, headers=bearer(reader))
    assert denied.status_code == 403
    assert error(denied)["code"] == "forbidden"
    assert "may not write to 'streams.transactions'" in error(denied)["message"]
    assert "Ask for a key created with --write streams.transactions" in error(denied)["message"]
    assert ingestor.calls == []
    assert client.post("/v1/ingest", json=body, headers=bearer(writer)).status_code == 200
    # The scope covers that source only: not a push view, and an unknown name tells nothing.
    assert client.post("/v1/push", json={"view": "user_profile", "rows": [PUSHED]},
                       headers=bearer(writer)).status_code == 403
    unknown_source = client.post("/v1/ingest", json={"source": "transactoins", "rows": [EVENT]}, headers=bearer(writer))
    assert unknown_source.status_code == 403
    pusher = keys.create("profiles", write=["user_profile"])
    assert client.post("/v1/push", json={"view": "user_profile", "rows": [PUSHED]},
                       headers=bearer(pusher)).status_code == 200
    everything = keys.create("admin", write=["*"])
    assert client.post("/v1/ingest", json={"source": "transactoins", "rows": [EVENT]},
                       headers=bearer(everything)).status_code == 404


# --- the document ---------------------------------------------------------------------------


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    registry = SchemaRegistry().with_resource("urn:openapi", Resource(contents=document, specification=DRAFT202012))

    def rebase(node):
        if isinstance(node, dict):
            return {k: ("urn:openapi" + v if k == "$ref" else rebase(v)) for k, v in node.items()}
        return [rebase(v) for v in node] if isinstance(node, list) else node

    return jsonschema.Draft202012Validator(rebase(schema), registry=registry)


def test_the_document_describes_both_endpoints_and_real_answers_match(client):
    document = client.get("/openapi.json").get_json()
    ingest = document["paths"]["/v1/ingest"]["post"]
    push = document["paths"]["/v1/push"]["post"]
    schemas = document["components"]["schemas"]
    assert "streams.transactions" in schemas["IngestRequest"]["properties"]["source"]["description"]
    assert "user_profile" in schemas["PushRequest"]["properties"]["view"]["description"]
    assert schemas["IngestRequest"]["properties"]["rows"]["maxItems"] == 1000
    request = _validator(document, ingest["requestBody"]["content"]["application/json"]["schema"])
    request.validate(ingest["requestBody"]["content"]["application/json"]["example"])
    assert not request.is_valid({"source": "transactions", "rows": []})
    assert not request.is_valid({"source": "transactions", "rows": [{"a": [1]}]})
    for path, operation, body in (("/v1/ingest", ingest, {"source": "transactions", "rows": [EVENT]}),
                                  ("/v1/push", push, {"view": "user_profile", "rows": [PUSHED]})):
        response = client.post(path, json=body)
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        _validator(document, schema).validate(response.get_json())
        bad = client.post(path, json={**body, "rows": []})
        schema = operation["responses"][str(bad.status_code)]["content"]["application/json"]["schema"]
        _validator(document, schema).validate(bad.get_json())


# --- the background flusher -----------------------------------------------------------------


@dataclass(frozen=True)
class FakeReport:
    entries: int


class FakeFlusher:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.flushes = 0
        #: Entries each flush finds, in turn (then none).
        self.found: list[int] = []

    def flush_once(self, target: str | None = None) -> FakeReport:
        self.flushes += 1
        return FakeReport(self.found.pop(0) if self.found else 0)


def test_an_idle_worker_flushes_rarely_and_a_writing_one_on_the_next_tick(registry):
    flusher = FakeFlusher(registry)
    loop = FlushLoop(lambda: registry, 3600, lambda r: flusher, idle_ticks=5)
    assert loop.tick() is not None and flusher.flushes == 1  # the first tick: leftovers of a killed process
    for _ in range(3):
        assert loop.tick() is None
    loop.poke()  # this worker acknowledged a write
    flusher.found = [100, 0]
    assert loop.tick().entries == 100 and flusher.flushes == 2
    assert loop.tick().entries == 0 and flusher.flushes == 3  # it found entries: it looked again
    assert [loop.tick() for _ in range(4)] == [None] * 4
    assert loop.tick() is not None and flusher.flushes == 4  # idle_ticks later, unasked


def test_acknowledged_writes_poke_the_workers_flusher(make_app):
    from hindsight.serving.ingest import FLUSH_EXTENSION

    app = make_app()
    pokes = []
    app.extensions[FLUSH_EXTENSION] = type("Loop", (), {"poke": lambda self: pokes.append(1)})()
    client = app.test_client()
    client.post("/v1/ingest", json={"source": "transactions", "rows": [{**EVENT, "transaction_id": "p-1"}]})
    client.post("/v1/ingest", json={"source": "transactions", "rows": []})  # refused: no poke
    client.post("/v1/push", json={"view": "user_profile", "rows": [PUSHED]})
    assert len(pokes) == 2


def test_flush_loop_follows_the_served_registry(registry):
    served = {"registry": registry}
    made: list[FakeFlusher] = []

    def factory(r: Registry) -> FakeFlusher:
        made.append(FakeFlusher(r))
        return made[-1]

    loop = FlushLoop(lambda: served["registry"], 3600, factory)
    loop.flush_once()
    loop.flush_once()
    assert len(made) == 1 and made[0].flushes == 2
    newer = dataclasses.replace(registry, version=registry.version + 1)
    served["registry"] = newer
    loop.flush_once()
    assert len(made) == 2 and made[1].registry is newer
    # A registry with nothing to flush gets no flusher at all (no journal table to read).
    served["registry"] = dataclasses.replace(registry, stream_sources=(), feature_views=tuple(
        dataclasses.replace(v, push=False) for v in registry.feature_views))
    assert not needs_journal(served["registry"]) and needs_journal(registry)
    assert loop.flush_once() is None and len(made) == 2
    served["registry"] = registry
    loop.start()
    loop.stop()
    assert made[-1].flushes == 1 and loop.ran  # stop() flushes what is pending once more


# --- keys for writers -----------------------------------------------------------------------


def test_keys_create_write_takes_stream_sources_by_either_name(monkeypatch, registry):
    import importlib

    from click.testing import CliRunner

    from hindsight.cli import main

    keys_cli = importlib.import_module("hindsight.cli.keys")  # the package's `keys` is the click group
    created = []

    class Store:
        def create(self, name, read, write, metrics):
            from tests.fixtures.serving import FakeKeyStore

            created.append(write)
            fake = FakeKeyStore()
            key = fake.create(name, read, write, metrics)
            return key, next(iter(fake.records.values()))

    monkeypatch.setattr("hindsight.registry_sync.load_registry", lambda *args, **kwargs: registry)
    monkeypatch.setattr(keys_cli, "_store", Store)
    result = CliRunner().invoke(main, ["keys", "create", "--name", "producer", "--write", "transactions",
                                       "--write", "user_profile"])
    assert result.exit_code == 0, result.output
    assert created == [("streams.transactions", "user_profile")]
    assert "write streams.transactions,user_profile" in result.output
    result = CliRunner().invoke(main, ["keys", "create", "--name", "p", "--write", "streams.transactoins"])
    assert result.exit_code == 2
    assert "'streams.transactoins' is not a feature view or stream source of the applied registry " \
           "(did you mean streams.transactions" in result.output


# --- HindsightClient.ingest / push ----------------------------------------------------------


@pytest.fixture
def http_client(client):
    import requests

    from tests.unit.test_serving_client import FlaskAdapter

    session = requests.Session()
    adapter = FlaskAdapter(client)
    session.mount("http://hindsight.test", adapter)
    from hindsight.client import HindsightClient

    with HindsightClient("http://hindsight.test", timeout=2, session=session) as hindsight:
        hindsight.adapter = adapter
        yield hindsight


def test_client_sends_dicts_dataframes_and_arrow_in_batches(http_client, ingestor):
    import datetime as dt

    import pandas as pd
    import pyarrow as pa

    rows = [{"transaction_id": f"t-{i}", "user_id": 12, "amount": 1.5 * i,
             "ts": dt.datetime(2026, 11, 30, 12, i)} for i in range(5)]
    report = http_client.ingest("transactions", rows, batch_size=2)
    assert report == {"source": "streams.transactions", "received": 5, "accepted": 5, "duplicates": 0}
    assert [len(batch) for _, batch in ingestor.calls] == [2, 2, 1]
    # Naive datetimes are sent as UTC, with their offset.
    assert ingestor.calls[0][1][1]["ts"] == "2026-11-30T12:01:00+00:00"
    frame = pd.DataFrame(rows[:3]).assign(amount=[1.0, float("nan"), 2.0])
    assert http_client.ingest("transactions", frame)["duplicates"] == 3
    assert ingestor.calls[-1][1][1] == {"transaction_id": "t-1", "user_id": 12, "amount": None,
                                        "ts": "2026-11-30T12:01:00+00:00"}
    table = pa.Table.from_pylist([{**rows[0], "transaction_id": "t-9"}])
    assert http_client.ingest("streams.transactions", table)["accepted"] == 1


def test_client_raises_the_servers_error_with_its_details(http_client):
    from hindsight.client import HindsightError

    with pytest.raises(HindsightError) as raised:
        http_client.ingest("transactions", [{**EVENT, "transaction_id": 5}])
    assert raised.value.status == 400 and raised.value.code == "invalid_row"
    assert raised.value.details == {"row": 0, "field": "transaction_id", "rule": "type"}
    with pytest.raises(ValueError, match="JSON has no infinities"):
        http_client.ingest("transactions", [{**EVENT, "amount": float("inf")}])
    with pytest.raises(ValueError, match="rows is empty"):
        http_client.push("user_profile", [])
    assert http_client.push("user_profile", [PUSHED]) == {"view": "user_profile", "rows": 1, "written": 1, "stale": 0, "journaled": 1,
                                      "duplicates": 0}


def test_acknowledged_writes_are_counted_by_outcome(client):
    from hindsight.serving import metrics

    def count(outcome: str) -> float:
        labels = {"target": "streams.transactions", "outcome": outcome}
        return metrics.REGISTRY.get_sample_value("hindsight_serving_written_rows_total", labels) or 0.0

    before = count("accepted"), count("duplicate")
    rows = [{**EVENT, "transaction_id": "m-1"}, {**EVENT, "transaction_id": "m-2"}]
    client.post("/v1/ingest", json={"source": "transactions", "rows": rows})
    client.post("/v1/ingest", json={"source": "transactions", "rows": rows[:1]})
    assert (count("accepted") - before[0], count("duplicate") - before[1]) == (2, 1)
    assert "hindsight_serving_write_seconds" in client.get("/metrics").get_data(as_text=True)
