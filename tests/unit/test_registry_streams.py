"""Stream sources and push config in the registry, from hand-made manifests (registry_sync/streams.py)."""

from __future__ import annotations

import copy
import json

import pyarrow as pa
import pytest

from hindsight.offline_store.event_log import EVENT_DATE, INGESTED_AT, event_log_schema
from hindsight.registry_sync.errors import DefinitionErrors
from hindsight.registry_sync.manifest import registry_from_manifest
from hindsight.registry_sync.model import Feature, FeatureView, Registry, StreamSource
from hindsight.registry_sync.store import RegistryStore
from tests.aggregation_oracle import tile_schema

TS = pa.timestamp("us", tz="UTC")
EVENTS = pa.schema([("user_id", pa.int64()), ("ts", TS), ("amount", pa.float64())])
AGGREGATIONS = [{"column": "*", "name": "txn", "functions": ["count"]}, {"column": "amount", "functions": ["sum"]}]
SCHEMAS = {
    "/store/user_stream": tile_schema(EVENTS, ["user_id"], "ts", AGGREGATIONS),
    "/store/user_profile": pa.schema([("user_id", pa.int64()), ("ts", TS), ("tier", pa.string())]),
}
COMPILED = "select user_id, ts, amount from \"db\".\"streams\".\"transactions\" where /* hindsight:processing_range */ (1 = 1) /* hindsight:processing_range_end */"
STREAM_ID = "source.shop.streams.transactions"


def stream_node(**stream):
    declared = {"event_id": "transaction_id", "timestamp_field": "ts", "entities": ["user", "merchant"], **stream}
    return {
        "unique_id": STREAM_ID,
        "resource_type": "source",
        "source_name": "streams",
        "name": "transactions",
        "original_file_path": "models/streams.yml",
        "description": " Card transactions as they happen. ",
        "config": {"enabled": True},
        "meta": {"hindsight": {"stream": {k: v for k, v in declared.items() if v is not None}}},
        "columns": {
            "transaction_id": {"name": "transaction_id", "data_type": "string", "description": "Unique id."},
            "user_id": {"name": "user_id", "data_type": "int64", "description": "The card holder."},
            "merchant_id": {"name": "merchant_id", "data_type": "int64"},
            "amount": {"name": "amount", "data_type": "float64"},
            "ts": {"name": "ts", "data_type": "TIMESTAMP", "description": "Event time."},
        },
    }


def entity(name, key):
    return {"unique_id": f"source.shop.raw.{name}s", "original_file_path": "models/sources.yml",
            "meta": {"hindsight": {"entity": {"name": name, "join_keys": [key]}}}}


def view_node(name="user_stream", upstream=(STREAM_ID,), compiled=COMPILED, **config):
    aggregation = {"aggregation_interval": "1m", "windows": ["10m"], "aggregations": copy.deepcopy(AGGREGATIONS)}
    node = {
        "unique_id": f"model.shop.{name}",
        "resource_type": "model",
        "name": name,
        "alias": name,
        "original_file_path": f"models/features/{name}.sql",
        "description": "",
        "columns": {},
        "depends_on": {"nodes": list(upstream)},
        "config": {"materialized": "feature_view", "entities": ["user_id"], "timestamp_field": "ts",
                   "online": True, "location_root": "/store", **aggregation, **config},
    }
    if compiled is not None:
        node["compiled_code"] = compiled
    return node


def manifest(*nodes, stream=None, adapter="duckdb"):
    sources = {"u": entity("user", "user_id"), "m": entity("merchant", "merchant_id"),
               "s": stream if stream is not None else stream_node()}
    return {
        "metadata": {"project_name": "shop", "adapter_type": adapter},
        "sources": sources,
        "nodes": {n["unique_id"]: n for n in (nodes or (view_node(),))},
    }


def build(m, **kwargs):
    return registry_from_manifest(m, read_schema=SCHEMAS.get, offline_store="data/offline_store", **kwargs)


def problems(m, **kwargs) -> str:
    with pytest.raises(DefinitionErrors) as raised:
        build(m, **kwargs)
    return str(raised.value)


def test_a_stream_source_and_the_view_it_feeds():
    registry = build(manifest(), project_dir=None)
    (stream,) = registry.stream_sources
    assert stream.name == "streams.transactions"
    assert (stream.event_id_field, stream.timestamp_field) == ("transaction_id", "ts")
    assert stream.entities == ("user", "merchant")
    assert stream.join_keys == ("user_id", "merchant_id")
    assert [(c.name, c.dtype) for c in stream.columns] == [
        ("transaction_id", "string"), ("user_id", "int64"), ("merchant_id", "int64"), ("amount", "float64"), ("ts", "timestamp")]
    assert stream.columns[0].description == "Unique id."
    assert stream.delta_uri.endswith("/data/offline_store/_streams/streams/transactions")
    assert stream.delta_uri.startswith("/")
    assert stream.kinesis_stream is None
    assert stream.description == "Card transactions as they happen."
    assert (stream.unique_id, stream.original_file_path) == (STREAM_ID, "models/streams.yml")
    view = registry.view("user_stream")
    assert isinstance(view, FeatureView)
    assert (view.stream_source, view.stream_sql, view.stream_sql_dialect) == ("streams.transactions", COMPILED, "duckdb")
    assert (view.push, view.push_partial) == (False, False)


def test_optional_keys_kinesis_stream_and_location(tmp_path):
    m = manifest(stream=stream_node(kinesis_stream="shop-transactions", location="s3://logs/tx"), adapter="spark")
    registry = build(m, project_dir=tmp_path)
    assert registry.stream_sources[0].kinesis_stream == "shop-transactions"
    assert registry.stream_sources[0].delta_uri == "s3://logs/tx"
    assert registry.view("user_stream").stream_sql_dialect == "spark"


def test_the_event_log_resolves_against_the_project_folder(tmp_path):
    registry = build(manifest(), project_dir=tmp_path)
    assert registry.stream_sources[0].delta_uri == str(tmp_path / "data/offline_store/_streams/streams/transactions")


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        ({"event_id": None}, "stream source streams.transactions (models/streams.yml): meta.hindsight.stream needs event_id: "
                             "the name of a column, e.g. event_id: transaction_id (columns: transaction_id, user_id, merchant_id, amount, ts)"),
        ({"timestamp_field": None}, "meta.hindsight.stream needs timestamp_field: the name of a column, e.g. timestamp_field: ts"),
        ({"event_id": "transaction"}, "event_id 'transaction' is not a declared column (did you mean transaction_id?); "
                                      "columns: transaction_id, user_id, merchant_id, amount, ts"),
        ({"timestamp_field": "tss"}, "timestamp_field 'tss' is not a declared column (did you mean ts?)"),
        ({"timestamp_field": "amount"}, "timestamp_field 'amount' has data_type float64; it must be one of timestamp"),
        ({"event_id": "amount"}, "event_id 'amount' has data_type float64; it must be one of string, int32, int64"),
        ({"entities": None}, "meta.hindsight.stream needs entities: a list of entity names (known: merchant, user)"),
        ({"entities": ["usr"]}, "entity 'usr' is not declared (did you mean user?); known: merchant, user"),
        ({"kinesis_stream": ""}, "kinesis_stream must be a non-empty string, got ''"),
        ({"event_idd": "x"}, "unknown key 'event_idd' in meta.hindsight.stream (did you mean event_id?); "
                             "accepted: event_id, timestamp_field, entities, kinesis_stream, location"),
    ],
    ids=["no-event-id", "no-timestamp", "unknown-event-id", "unknown-timestamp", "timestamp-type", "event-id-type",
         "no-entities", "unknown-entity", "empty-kinesis", "unknown-key"],
)
def test_invalid_declarations_name_the_file_field_rule_and_nearest_value(stream, message):
    assert message in problems(manifest(stream=stream_node(**stream)))


def test_a_join_key_must_be_a_declared_column():
    node = stream_node()
    del node["columns"]["merchant_id"]
    assert "join key 'merchant_id' of entity merchant is not a declared column" in problems(manifest(stream=node))


def test_every_column_needs_a_registry_data_type():
    node = stream_node()
    node["columns"]["amount"]["data_type"] = "double"
    del node["columns"]["merchant_id"]["data_type"]
    text = problems(manifest(stream=node))
    assert ("column 'amount' has data_type 'double' (did you mean float64?); accepted: bool, int32, int64, float32, float64, "
            "string, date, timestamp, decimal") in text
    assert "column 'merchant_id' needs a data_type, one of bool, int32" in text


def test_a_refused_column_type_is_still_a_declared_column():
    node = stream_node()
    node["columns"]["user_id"]["data_type"] = "integr"
    text = problems(manifest(stream=node))
    assert "column 'user_id' has data_type 'integr' (did you mean int32?)" in text
    assert "join key 'user_id'" not in text


def test_a_stream_without_columns_is_refused():
    node = stream_node()
    node["columns"] = {}
    assert "a stream source declares every column of its events, each with a data_type" in problems(manifest(stream=node))


def test_system_column_names_are_refused():
    node = stream_node()
    node["columns"][INGESTED_AT] = {"name": INGESTED_AT, "data_type": "timestamp"}
    assert f"column '{INGESTED_AT}' is a name the event log adds itself" in problems(manifest(stream=node))


def test_a_disabled_source_is_no_stream():
    node = stream_node()
    node["config"]["enabled"] = False
    registry = build(manifest(view_node(upstream=("source.shop.raw.transactions",)), stream=node))
    assert registry.stream_sources == ()
    assert registry.view("user_stream").stream_source is None


def test_one_kinesis_stream_feeds_one_source():
    second = stream_node(kinesis_stream="k")
    second = {**second, "unique_id": "source.shop.streams.clicks", "name": "clicks"}
    m = manifest(stream=stream_node(kinesis_stream="k"))
    m["sources"]["s2"] = second
    text = problems(m)
    assert "stream source streams.transactions (models/streams.yml): kinesis_stream 'k' is already the stream of streams.clicks" in text


def test_an_aggregation_view_reads_at_most_one_stream_source():
    m = manifest(view_node(upstream=(STREAM_ID, "source.shop.streams.clicks")))
    m["sources"]["s2"] = {**stream_node(), "unique_id": "source.shop.streams.clicks", "name": "clicks"}
    assert ("feature view user_stream (models/features/user_stream.sql): reads 2 stream sources (streams.transactions, "
            "streams.clicks); an aggregation view reads at most one stream source") in problems(m)


def test_a_stream_fed_view_reads_only_its_stream():
    m = manifest(view_node(upstream=(STREAM_ID, "model.shop.user_profile")))
    assert "reads the stream source streams.transactions and also model.shop.user_profile" in problems(m)


def test_a_batch_view_over_a_stream_is_no_stream_view():
    batch = view_node(name="user_profile", aggregation_interval=None, windows=None, aggregations=None)
    registry = build(manifest(batch))
    view = registry.view("user_profile")
    assert view.kind == "batch" and view.stream_source is None and view.stream_sql is None


def test_stream_sql_is_compiled_when_the_manifest_has_none():
    asked = []

    def compile_models(unique_ids):
        asked.append(unique_ids)
        return dict.fromkeys(unique_ids, "select 1")

    registry = build(manifest(view_node(compiled=None)), compile_models=compile_models)
    assert asked == [["model.shop.user_stream"]]
    assert registry.view("user_stream").stream_sql == "select 1"
    # With the compiled SQL in the manifest, nothing is compiled.
    build(manifest(), compile_models=compile_models)
    assert len(asked) == 1


def test_a_stream_view_without_compiled_sql_is_refused():
    assert ("feature view user_stream (models/features/user_stream.sql): no compiled SQL for this stream-fed view; "
            "run `dbt compile --select user_stream` (or `dbt build`) first") in problems(manifest(view_node(compiled=None)))


def batch_view(**config):
    return view_node(name="user_profile", upstream=("source.shop.raw.users",), aggregation_interval=None, windows=None,
                     aggregations=None, **config)


def test_push_config_on_a_batch_view():
    registry = build(manifest(batch_view(push=True, push_partial=True)))
    view = registry.view("user_profile")
    assert (view.push, view.push_partial) == (True, True)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (view_node(push=True), "feature view user_stream (models/features/user_stream.sql): config push=true is not accepted on "
                               "an aggregation view"),
        (batch_view(push="yes"), "config 'push' must be true or false, got 'yes'"),
        (batch_view(push_partial=True), "config push_partial=true needs push=true"),
    ],
    ids=["aggregation", "not-bool", "partial-without-push"],
)
def test_invalid_push_config(node, message):
    assert message in problems(manifest(node))


def test_json_round_trip_keeps_streams_and_view_fields(tmp_path):
    registry = build(manifest(view_node(), batch_view(push=True)), project_dir=tmp_path)
    stored = RegistryStore(tmp_path / "registry").write(registry)
    loaded = RegistryStore(tmp_path / "registry").read(stored.version)
    assert loaded == stored
    assert loaded.stream_sources[0].columns[0] == Feature("transaction_id", "string", "Unique id.")
    assert loaded.view("user_profile").push is True


def test_an_old_registry_without_stream_fields_loads():
    registry = build(manifest(view_node(), batch_view()))
    data = json.loads(json.dumps(registry.to_dict()))
    del data["stream_sources"]
    for view in data["feature_views"]:
        for key in ("stream_source", "stream_sql", "stream_sql_dialect", "push", "push_partial"):
            del view[key]
    old = Registry.from_dict(data)
    assert old.stream_sources == ()
    assert old.view("user_stream").stream_source is None and old.view("user_profile").push is False


def test_stream_source_lookup_by_full_or_table_name():
    registry = build(manifest())
    assert registry.stream_source("streams.transactions") is registry.stream_sources[0]
    assert registry.stream_source("transactions") is registry.stream_sources[0]
    with pytest.raises(KeyError, match=r"no stream source 'transaction' \(did you mean transactions, streams.transactions\?\); "
                                       r"known: streams.transactions"):
        registry.stream_source("transaction")


def test_a_table_name_two_sources_share_is_ambiguous():
    one = StreamSource("a.events", "id", "ts", (), (), (), "/a")
    two = StreamSource("b.events", "id", "ts", (), (), (), "/b")
    with pytest.raises(KeyError, match="stream source 'events' is ambiguous: name one of a.events, b.events"):
        Registry(project="p", stream_sources=(one, two)).stream_source("events")


def test_event_log_schema_from_a_stream_source():
    stream = build(manifest()).stream_sources[0]
    schema = event_log_schema(stream)
    assert schema.names == ["transaction_id", "user_id", "merchant_id", "amount", "ts", INGESTED_AT, EVENT_DATE]
    assert schema.field("ts").type == TS and schema.field(INGESTED_AT).type == TS
    assert schema.field(EVENT_DATE).type == pa.date32() and schema.field("user_id").type == pa.int64()


def test_the_catalog_shows_stream_sources_and_the_views_they_feed():
    from hindsight.registry_sync.catalog import enrich_docs

    registry = build(manifest())
    docs_manifest = {
        "metadata": {"project_name": "shop"},
        "nodes": {"model.shop.user_stream": {"name": "user_stream", "resource_type": "model", "description": "Live.",
                                             "columns": {}, "depends_on": {"nodes": [STREAM_ID]}}},
        "sources": {STREAM_ID: {"name": "transactions", "description": "Card transactions as they happen."}},
        "exposures": {}, "docs": {}, "parent_map": {}, "child_map": {},
    }
    docs_catalog = {"nodes": {}, "sources": {STREAM_ID: {"metadata": {"type": "VIEW"}, "columns": {}}}}
    docs, site_catalog = enrich_docs(docs_manifest, docs_catalog, registry)
    card = docs["sources"][STREAM_ID]["description"]
    assert "| **Event id** | `transaction_id` (a redelivered event is counted once) |" in card
    assert "| **Event time** | `ts` |" in card
    assert "| **Entities** | user (`user_id`), merchant (`merchant_id`) |" in card
    assert f"| **Event log** | `{registry.stream_sources[0].delta_uri}` (Delta) |" in card
    assert "| **Kinesis stream** | none (ingest API only) |" in card
    assert "| **Feeds** | [user_stream](#!/model/model.shop.user_stream) |" in card
    assert card.endswith("Card transactions as they happen.")
    assert site_catalog["sources"][STREAM_ID]["metadata"]["type"] == "stream source (Delta event log)"
    view_card = docs["nodes"]["model.shop.user_stream"]["description"]
    assert f"| **Stream source** | [streams.transactions](#!/source/{STREAM_ID}) (online tiles updated" in view_card
    front = docs["docs"]["doc.dbt.__overview__"]["block_contents"]
    assert "## Stream sources (1)" in front
    assert (f"| [streams.transactions](#!/source/{STREAM_ID}) | `transaction_id` | `ts` | user, merchant | "
            "[user_stream](#!/model/model.shop.user_stream) |  |") in front


def test_plan_lists_stream_source_and_stream_view_changes():
    import dataclasses

    from hindsight.registry_sync.diff import plan

    before = build(manifest(view_node(), batch_view()))
    assert "+ stream_source streams.transactions: 5 columns" in [str(c) for c in plan(None, before).changes]
    node = stream_node(kinesis_stream="k")
    node["columns"]["country"] = {"name": "country", "data_type": "string"}
    node["columns"]["amount"]["data_type"] = "decimal"
    after = build(manifest(view_node(compiled=COMPILED + " and 2 = 2"), batch_view(push=True), stream=node))
    changes = [str(c) for c in plan(before, after).changes]
    assert "~ stream_source streams.transactions: kinesis_stream None -> 'k'" in changes
    assert "+ stream_column streams.transactions:country: string" in changes
    assert "~ stream_column streams.transactions:amount: type float64 -> decimal" in changes
    assert "~ feature_view user_stream: stream_sql (the SQL run over each batch of events)" in changes
    assert "~ feature_view user_profile: push False -> True" in changes
    assert plan(after, dataclasses.replace(after)).changes == ()
