"""registry_sync on hand-made manifests: parsing, definition errors, plans, versions."""

from __future__ import annotations

import copy
import dataclasses
import json

import pyarrow as pa
import pytest

from hindsight.registry_sync.diff import plan
from hindsight.registry_sync.errors import DefinitionErrors, RegistryError
from hindsight.registry_sync.manifest import PARTITION_COLUMNS_KEY, registry_from_manifest
from hindsight.registry_sync.model import Feature, OnDemandFeatureView, Registry, RequestField
from hindsight.registry_sync.store import RegistryStore, same_definitions

TS = pa.timestamp("us", tz="UTC")
SCHEMAS = {
    "/store/user_stats": pa.schema([("user_id", pa.int64()), ("event_timestamp", TS), ("amount_sum_7d", pa.float64()), ("txn_count_7d", pa.int64()), ("_partition_date", pa.date32())]),
    "/store/merchant_stats": pa.schema([("merchant_id", pa.int64()), ("event_timestamp", TS), ("txn_count_7d", pa.int64()), ("_partition_date", pa.date32())]),
}


def view_node(name, keys, **config):
    return {
        "unique_id": f"model.hindsight.{name}",
        "resource_type": "model",
        "name": name,
        "alias": name,
        "original_file_path": f"models/features/{name}.sql",
        "description": f"{name} description",
        "columns": {"amount_sum_7d": {"description": "Total spent in 7 days."}},
        "depends_on": {"nodes": ["source.hindsight.raw.transactions"]},
        "config": {
            "materialized": "feature_view",
            "entities": keys,
            "timestamp_field": "event_timestamp",
            "ttl": "30d",
            "online": True,
            "location_root": "/store",
            "tags": ["fraud"],
            "meta": {"owner": "risk@example.com"},
            **config,
        },
    }


def entity_source(name, keys):
    return {
        "unique_id": f"source.hindsight.raw.{name}s",
        "original_file_path": "models/sources.yml",
        "description": "",
        "meta": {"hindsight": {"entity": {"name": name, "join_keys": keys}}},
    }


def service(name, features):
    return {"name": name, "type": "ml", "original_file_path": "models/features/services.yml", "owner": {"email": "ml@example.com"}, "meta": {"hindsight": {"features": features}}}


@pytest.fixture
def manifest():
    return {
        "metadata": {"project_name": "hindsight", "generated_at": "2026-11-26T00:00:00Z"},
        "sources": {"s1": entity_source("user", ["user_id"]), "s2": entity_source("merchant", ["merchant_id"])},
        "nodes": {
            "n1": view_node("user_stats", ["user_id"]),
            "n2": view_node("merchant_stats", ["merchant_id"], ttl="2d"),
            "n3": {"resource_type": "model", "name": "staging", "config": {"materialized": "view"}},
        },
        "exposures": {
            "e1": service("fraud", ["user_stats:*", {"feature": "merchant_stats:txn_count_7d", "alias": "merchant_txn_count_7d"}]),
            "e2": {"name": "dashboard", "type": "dashboard", "meta": {}},
        },
    }


def build(manifest, odfvs=()):
    return registry_from_manifest(manifest, read_schema=SCHEMAS.get, on_demand_views=odfvs)


def test_feature_views_entities_and_services_come_from_the_manifest(manifest):
    registry = build(manifest)
    user = registry.view("user_stats")
    assert user.entities == ("user",) and user.join_keys == ("user_id",)
    assert user.ttl_seconds == 30 * 86400 and user.online and user.delta_uri == "/store/user_stats"
    assert [f.name for f in user.features] == ["amount_sum_7d", "txn_count_7d"]
    assert user.feature("amount_sum_7d") == Feature("amount_sum_7d", "float64", "Total spent in 7 days.")
    assert user.owner == "risk@example.com" and user.upstream == ("source.hindsight.raw.transactions",)
    assert registry.view("merchant_stats").ttl_seconds == 2 * 86400
    fraud = registry.service("fraud")
    assert [str(r) for r in fraud.features] == ["user_stats:amount_sum_7d", "user_stats:txn_count_7d", "merchant_stats:txn_count_7d"]
    assert fraud.features[-1].output_name == "merchant_txn_count_7d"
    assert [s.name for s in registry.feature_services] == ["fraud"]


def test_registry_round_trips_through_json(manifest, tmp_path):
    odfv = OnDemandFeatureView("ctx", ("user_stats:amount_sum_7d",), (RequestField("amount", "float64"),), (Feature("ratio", "float64"),), "hindsight.on_demand.x:f")
    registry = build(manifest, [odfv])
    store = RegistryStore(tmp_path)
    written = store.write(registry)
    assert written.version == 1 and store.read(1) == written
    assert same_definitions(store.latest(), registry)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["exposures"]["e1"]["meta"]["hindsight"]["features"].append("user_stats:amount_sum_8d"), "fraud (models/features/services.yml): feature view user_stats has no feature amount_sum_8d (did you mean amount_sum_7d?)"),
        (lambda m: m["exposures"]["e1"]["meta"]["hindsight"]["features"].append("merchant_stats:txn_count_7d"), "user_stats:txn_count_7d and merchant_stats:txn_count_7d are both named txn_count_7d"),
        (lambda m: m["sources"]["s1"]["meta"]["hindsight"]["entity"].update(join_keys=[]), "entity user in source.hindsight.raw.users (models/sources.yml) has no join_keys"),
        (lambda m: m["nodes"]["n1"]["config"].update(ttl="a month"), "feature view user_stats (models/features/user_stats.sql): ttl cannot parse duration 'a month'"),
        (lambda m: m["nodes"]["n1"]["config"].update(entities=["account_id"]), "feature view user_stats (models/features/user_stats.sql): entity column account_id is not a join key of any declared entity"),
        (lambda m: m["nodes"]["n1"]["config"].update(entities=["account_id"]), "column account_id (from its config) is not in the Delta table"),
        (lambda m: m["exposures"]["e1"]["meta"]["hindsight"]["features"].append("users:amount"), "unknown feature view users (did you mean user_stats?)"),
        (lambda m: (m["nodes"].update(n9={"resource_type": "model", "name": "orphan", "original_file_path": "models/other/orphan.sql",
                                          "config": {"materialized": "view"}}),
                    m["exposures"]["e1"]["meta"]["hindsight"]["features"].append("orphan:amount")),
         "unknown feature view orphan: model orphan (models/other/orphan.sql) is materialized as 'view', not 'feature_view'; "
         "set materialized='feature_view' in its config(), or +materialized: feature_view for its folder"),
    ],
    ids=["unknown_feature", "collision", "entity_without_keys", "bad_ttl", "undeclared_entity", "missing_entity_column", "unknown_view",
         "model_not_a_feature_view"],
)
def test_definition_errors_name_the_model_and_file(manifest, change, message):
    change(manifest)
    with pytest.raises(DefinitionErrors) as raised:
        build(manifest)
    assert message in str(raised.value)


def test_missing_delta_table_says_to_build_it(manifest):
    with pytest.raises(DefinitionErrors, match="no Delta table at /store/user_stats; run `dbt build --select user_stats` first"):
        registry_from_manifest(manifest, read_schema=lambda uri: None)


def _partitioned(schema: pa.Schema, columns: list[str]) -> pa.Schema:
    return schema.with_metadata({PARTITION_COLUMNS_KEY: json.dumps(columns).encode()})


@pytest.mark.parametrize(("partition_by", "table_partitioned_by", "refused"), [
    (None, ["_partition_date"], False),
    ("txn_count_7d", ["txn_count_7d"], False),
    (["txn_count_7d"], ["_partition_date"], True),  # partition_by set after the first build
    (None, ["txn_count_7d"], True),  # partition_by removed
    (None, [], True),
])
def test_a_table_partitioned_otherwise_than_its_config_is_refused_with_the_fix(manifest, partition_by, table_partitioned_by, refused):
    if partition_by is not None:
        manifest["nodes"]["n1"]["config"]["partition_by"] = partition_by
    schemas = {**SCHEMAS, "/store/user_stats": _partitioned(SCHEMAS["/store/user_stats"], table_partitioned_by)}
    if not refused:
        registry_from_manifest(manifest, read_schema=schemas.get)
        return
    with pytest.raises(DefinitionErrors) as raised:
        registry_from_manifest(manifest, read_schema=schemas.get)
    assert (f"feature view user_stats (models/features/user_stats.sql): its Delta table is partitioned by "
            f"{table_partitioned_by or 'nothing'}") in str(raised.value)
    assert "run `dbt run --full-refresh --select user_stats`, or set partition_by back" in str(raised.value)


def test_on_demand_inputs_must_exist(manifest):
    odfv = OnDemandFeatureView("ctx", ("user_stats:nope",), (), (Feature("x", "float64"),), "m:f")
    with pytest.raises(DefinitionErrors, match="on-demand view ctx .* input user_stats:nope"):
        build(manifest, [odfv])


def test_plan_flags_type_changes_removed_used_features_and_key_changes(manifest):
    old = build(manifest)
    assert plan(None, old).changes and not plan(None, old).breaking
    assert plan(old, old).changes == ()

    schemas = dict(SCHEMAS)
    schemas["/store/user_stats"] = pa.schema([("user_id", pa.int64()), ("event_timestamp", TS), ("amount_sum_7d", pa.string()), ("new_feature", pa.int64())])
    new = registry_from_manifest(copy.deepcopy(manifest), read_schema=schemas.get)
    result = plan(old, new)
    text = [str(c) for c in result.changes]
    assert "~ feature user_stats:amount_sum_7d: type float64 -> string  [BREAKING]" in text
    assert "- feature user_stats:txn_count_7d: still used by feature service fraud  [BREAKING]" in text
    assert "+ feature user_stats:new_feature: int64" in text
    assert "~ feature_service fraud: +user_stats:new_feature; -user_stats:txn_count_7d" in text

    rekeyed = dataclasses.replace(old, feature_views=tuple(dataclasses.replace(v, join_keys=("account_id",)) if v.name == "user_stats" else v for v in old.feature_views))
    assert any(c.breaking and "join keys" in c.detail for c in plan(old, rekeyed).changes)


def test_store_reads_every_past_version(tmp_path, manifest):
    store = RegistryStore(tmp_path / "registry")
    first = store.write(build(manifest))
    second = store.write(dataclasses.replace(build(manifest), project="renamed"))
    assert store.versions() == [1, 2]
    assert store.read(1) == first and store.latest() == second
    with pytest.raises(RegistryError, match="registry version 9 does not exist"):
        store.read(9)


def test_empty_registry_plan_lists_everything_as_added():
    registry = Registry(project="p")
    assert plan(None, registry).changes == ()


@pytest.mark.parametrize(("content", "problem"), [
    (b'{"not": "a registry"}', "is not a registry (no 'project')"),
    (b"\xff\xfe garbage", "is not a registry: not JSON"),
    (b"[1, 2]", "is not a registry"),
])
def test_a_registry_file_that_is_not_one_is_named(tmp_path, content, problem):
    from hindsight.registry_sync.errors import RegistryError
    from hindsight.registry_sync.store import read_registry_file

    path = tmp_path / "registry.json"
    path.write_bytes(content)
    with pytest.raises(RegistryError) as raised:
        read_registry_file(path)
    assert str(raised.value).startswith(f"{path} {problem}")
