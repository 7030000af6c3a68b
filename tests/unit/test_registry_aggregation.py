"""Aggregation feature views in the registry, from hand-made manifests and tile-table schemas."""

from __future__ import annotations

import copy

import pyarrow as pa
import pytest

from hindsight.registry_sync.errors import DefinitionErrors
from hindsight.registry_sync.manifest import registry_from_manifest
from hindsight.registry_sync.model import Aggregation, Feature
from hindsight.registry_sync.store import RegistryStore
from tests.aggregation_oracle import tile_schema

TS = pa.timestamp("us", tz="UTC")
EVENTS = pa.schema([("user_id", pa.int64()), ("ts", TS), ("amount", pa.float64()), ("quantity", pa.int32()), ("country", pa.string())])
CONFIG = {
    "aggregation_interval": "1h",
    "windows": ["1h", "1d"],
    "aggregations": [
        {"column": "*", "name": "txn", "functions": ["count"]},
        {"column": "amount", "functions": ["sum", "mean", "max"]},
        {"column": "amount", "functions": ["min", "stddev"], "windows": ["7d"]},
        {"column": "quantity", "functions": ["sum", "last"], "windows": ["1d"]},
        {"column": "country", "functions": ["last"], "windows": ["30d"]},
    ],
}
SCHEMAS = {"/store/user_txn": tile_schema(EVENTS, ["user_id"], "ts", CONFIG["aggregations"])}


def node(**config):
    return {
        "unique_id": "model.hindsight.user_txn",
        "resource_type": "model",
        "name": "user_txn",
        "alias": "user_txn",
        "original_file_path": "models/features/user_txn.sql",
        "description": "Card transactions per user.",
        "columns": {"txn_count_1h": {"description": "Transactions in the last hour."}},
        "depends_on": {"nodes": ["source.hindsight.raw.transactions"]},
        "config": {"materialized": "feature_view", "entities": ["user_id"], "timestamp_field": "ts",
                   "online": True, "location_root": "/store", **copy.deepcopy(CONFIG), **config},
    }


def manifest(**config):
    return {
        "metadata": {"project_name": "hindsight"},
        "sources": {"s1": {"unique_id": "source.hindsight.raw.users", "original_file_path": "models/sources.yml",
                           "meta": {"hindsight": {"entity": {"name": "user", "join_keys": ["user_id"]}}}}},
        "nodes": {"n1": node(**config)},
        "exposures": {"e1": {"name": "fraud", "type": "ml", "original_file_path": "models/services.yml",
                             "meta": {"hindsight": {"features": ["user_txn:txn_count_1h", "user_txn:amount_sum_1d"]}}}},
    }


def build(m, schemas=SCHEMAS):
    return registry_from_manifest(m, read_schema=schemas.get)


def test_an_aggregation_view_lists_its_aggregations_in_config_order(tmp_path):
    registry = build(manifest())
    view = registry.view("user_txn")
    assert view.kind == "aggregation" and view.is_aggregation
    assert view.aggregation_interval_seconds == 3600 and view.ttl_seconds is None
    h, d = 3600, 86400
    assert view.aggregations == (
        Aggregation("txn_count_1h", "count", "*", h), Aggregation("txn_count_1d", "count", "*", d),
        Aggregation("amount_sum_1h", "sum", "amount", h), Aggregation("amount_sum_1d", "sum", "amount", d),
        Aggregation("amount_mean_1h", "mean", "amount", h), Aggregation("amount_mean_1d", "mean", "amount", d),
        Aggregation("amount_max_1h", "max", "amount", h), Aggregation("amount_max_1d", "max", "amount", d),
        Aggregation("amount_min_7d", "min", "amount", 7 * d), Aggregation("amount_stddev_7d", "stddev", "amount", 7 * d),
        Aggregation("quantity_sum_1d", "sum", "quantity", d), Aggregation("quantity_last_1d", "last", "quantity", d),
        Aggregation("country_last_30d", "last", "country", 30 * d),
    )
    assert [f.name for f in view.features] == [a.name for a in view.aggregations]
    dtypes = {f.name: f.dtype for f in view.features}
    assert dtypes == {
        "txn_count_1h": "int64", "txn_count_1d": "int64", "amount_sum_1h": "float64", "amount_sum_1d": "float64",
        "amount_mean_1h": "float64", "amount_mean_1d": "float64", "amount_max_1h": "float64", "amount_max_1d": "float64",
        "amount_min_7d": "float64", "amount_stddev_7d": "float64",
        "quantity_sum_1d": "int64", "quantity_last_1d": "int32", "country_last_30d": "string",
    }
    assert view.feature("txn_count_1h") == Feature("txn_count_1h", "int64", "Transactions in the last hour.")
    assert [str(r) for r in registry.service("fraud").features] == ["user_txn:txn_count_1h", "user_txn:amount_sum_1d"]
    store = RegistryStore(tmp_path)
    assert store.read(store.write(registry).version).view("user_txn") == view


def test_a_sum_alone_takes_its_dtype_from_the_sum_part():
    spec = [{"column": "quantity", "functions": ["sum", "mean"]}]
    schemas = {"/store/user_txn": tile_schema(EVENTS, ["user_id"], "ts", spec)}
    m = manifest(aggregations=spec, windows=["1h"])
    m["exposures"] = {}
    view = build(m, schemas).view("user_txn")
    assert [(f.name, f.dtype) for f in view.features] == [("quantity_sum_1h", "int64"), ("quantity_mean_1h", "float64")]


def errors(m, schemas=SCHEMAS) -> list[str]:
    with pytest.raises(DefinitionErrors) as raised:
        build(m, schemas)
    return raised.value.problems


WHERE = "feature view user_txn (models/features/user_txn.sql)"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"aggregation_interval": None}, f"{WHERE}: config 'aggregations' needs 'aggregation_interval' (e.g. aggregation_interval='1h'): together they declare an aggregation view"),
        ({"created_field": "loaded_at"}, f"{WHERE}: created_field is not supported on aggregation views yet: an event counts from its event time; remove created_field"),
        ({"ttl": "30d"}, f"{WHERE}: ttl does not apply to aggregation views: each window bounds its events; remove ttl"),
        ({"aggregation_interval": "hourly"}, f"{WHERE}: aggregation_interval: cannot parse duration 'hourly'"),
        ({"aggregations": []}, f"{WHERE}: aggregations must be a non-empty list"),
        ({"aggregations": [{"column": "merchant_id", "functions": ["count_distinct"]}]},
         f"{WHERE}: aggregations[1]: count_distinct has no exact tile form; use window_aggregates(evaluate='event') for it; "
         "aggregation views support count, sum, mean, min, max, stddev, last"),
        ({"aggregations": [{"column": "amount", "functions": ["sums"]}]},
         f"{WHERE}: aggregations[1]: unknown function 'sums' (did you mean sum?); aggregation views support count, sum"),
        ({"aggregations": [{"column": "*", "functions": ["sum"]}]}, f"{WHERE}: aggregations[1]: column '*' only supports count (got sum)"),
        ({"aggregations": [{"column": "amount", "functions": ["sum"], "window": ["1d"]}]},
         f"{WHERE}: aggregations[1]: unknown key 'window' (did you mean windows?); accepted: column, functions, name, windows"),
        ({"aggregations": [{"functions": ["sum"]}]}, f"{WHERE}: aggregations[1]: 'column' is required"),
        ({"windows": ["90m"]}, f"{WHERE}: windows: window '90m' is not a positive multiple of aggregation_interval '1h'; the nearest valid window is '2h'"),
        ({"windows": ["30m"]}, "window '30m' is not a positive multiple of aggregation_interval '1h'; the nearest valid window is '1h'"),
        ({"aggregation_interval": "2h", "windows": ["1d", "3h"]},
         "window '3h' is not a positive multiple of aggregation_interval '2h'; the nearest valid window is '4h'"),
        ({"windows": None}, f"{WHERE}: aggregations[1]: no windows: set 'windows' on it or the view's windows config"),
        ({"aggregations": [{"column": "amount", "functions": ["sum"]}, {"column": "amount", "functions": ["sum", "max"]}]},
         f"{WHERE}: feature amount_sum_1h is declared twice in aggregations; give one a 'name'"),
    ],
    ids=["no_interval", "created_field", "ttl", "interval", "empty", "count_distinct", "unknown_function", "star", "unknown_key",
         "no_column", "window_multiple", "window_short", "window_half", "no_windows", "duplicate"],
)
def test_definition_errors_name_the_view_the_rule_and_the_fix(config, message):
    problems = errors(manifest(**config))
    assert any(message in p for p in problems), problems
    # Said once, and the service that uses the view does not add "unknown feature view".
    assert len([p for p in problems if message in p]) == 1 and not any("feature service" in p for p in problems), problems


def test_a_table_without_a_needed_tile_column_asks_for_a_rebuild():
    old = {"/store/user_txn": tile_schema(EVENTS, ["user_id"], "ts", CONFIG["aggregations"][:1])}  # before amount's aggregations
    problems = errors(manifest(), old)
    assert f"{WHERE}: the Delta table lacks the tile column amount__sum (needed by amount_sum_1h, amount_sum_1d, amount_mean_1h, amount_mean_1d, amount_stddev_7d): its aggregations changed since the last build; rebuild it: `dbt build --select user_txn --full-refresh`" in problems
    assert any("lacks the tile column quantity__last (needed by quantity_last_1d)" in p for p in problems)
    batch = {"/store/user_txn": pa.schema([("user_id", pa.int64()), ("ts", TS), ("amount", pa.float64())])}
    assert errors(manifest(), batch) == [
        f"{WHERE}: the Delta table has no _tile_start column, so it does not hold tiles (it was built before "
        "aggregation_interval was set); rebuild it: `dbt build --select user_txn --full-refresh`"
    ]


def test_a_view_without_aggregation_interval_stays_a_batch_view():
    m = manifest()
    for key in CONFIG:
        m["nodes"]["n1"]["config"].pop(key)
    m["exposures"] = {}
    view = build(m, {"/store/user_txn": EVENTS}).view("user_txn")
    assert view.kind == "batch" and not view.is_aggregation and view.aggregations == ()
    assert [f.name for f in view.features] == ["amount", "quantity", "country"]


def test_plan_shows_a_changed_interval_and_what_a_feature_aggregates():
    """A new interval is breaking while something uses the view: its tiles no longer match the applied interval."""
    from hindsight.registry_sync.diff import plan

    before = build(manifest())
    spec = copy.deepcopy(CONFIG["aggregations"])
    spec[2] = {"column": "amount", "functions": ["min"], "windows": ["7d"]}
    spec.append({"column": "quantity", "name": "amount", "functions": ["stddev"], "windows": ["7d"]})
    schemas = {"/store/user_txn": tile_schema(EVENTS, ["user_id"], "ts", spec)}
    after = build(manifest(aggregation_interval="30m", aggregations=spec), schemas)
    assert [str(c) for c in plan(before, after).changes] == [
        "~ feature_view user_txn: aggregation_interval 1h -> 30m; used by feature service fraud  [BREAKING]",
        "~ feature user_txn:amount_stddev_7d: aggregates stddev(amount) over 1w -> stddev(quantity) over 1w",
    ]
    spec[4] = {"column": "quantity", "name": "country", "functions": ["last"], "windows": ["30d"]}  # same name, int32
    schemas = {"/store/user_txn": tile_schema(EVENTS, ["user_id"], "ts", spec)}
    assert [str(c) for c in plan(before, build(manifest(aggregations=spec), schemas)).changes] == [
        "~ feature user_txn:amount_stddev_7d: aggregates stddev(amount) over 1w -> stddev(quantity) over 1w",
        "~ feature user_txn:country_last_30d: type string -> int32  [BREAKING]",
    ]
    old, new = manifest(aggregation_interval="30m"), manifest()
    old["exposures"] = new["exposures"] = {}
    assert [str(c) for c in plan(build(old), build(new)).changes] == ["~ feature_view user_txn: aggregation_interval 30m -> 1h"]
