"""Feature contracts and the breaking-change gate of the Delta writer (real local Delta tables)."""

from __future__ import annotations

import dataclasses
import json

import pyarrow as pa
import pytest

from hindsight.offline_store.contracts import (
    UsedFeature,
    ViewContract,
    breaches,
    contracts_path,
    read_contract,
    write_contracts,
)
from hindsight.offline_store.delta_writer import FeatureViewWriteError, WriteRequest, write_feature_view
from hindsight.registry_sync.contracts import view_contracts
from hindsight.registry_sync.errors import DefinitionErrors
from hindsight.registry_sync.manifest import registry_from_manifest
from tests.unit.test_registry import SCHEMAS, manifest  # noqa: F401  (the manifest fixture)

CONTRACT = ViewContract(
    join_keys={"user_id": "long"},
    features={
        "amount": UsedFeature("double", ("feature service fraud",)),
        "tier": UsedFeature("string", ("feature service fraud", "feature service spend")),
    },
)


def rows(**columns) -> pa.Table:
    base = {
        "user_id": pa.array([1, 2], pa.int64()),
        "event_timestamp": pa.array([1_700_000_000_000_000, 1_700_000_100_000_000], pa.timestamp("us", tz="UTC")),
        "amount": pa.array([1.5, 2.5], pa.float64()),
        "tier": pa.array(["gold", "standard"], pa.string()),
    }
    base.update(columns)
    return pa.table({k: v for k, v in base.items() if v is not None})


def request(tmp_path, mode="full_refresh", **extra) -> WriteRequest:
    return WriteRequest(
        model="user_stats",
        uri=str(tmp_path / "user_stats"),
        mode=mode,
        unique_key=("user_id", "event_timestamp"),
        timestamp_field="event_timestamp",
        entities=("user_id",),
        registry=str(tmp_path / "registry"),
        **extra,
    )


def test_breaches_name_the_column_the_change_and_its_users():
    schema = rows(amount=pa.array(["1.5", "2.5"]), tier=None).schema
    found = [str(b) for b in breaches(CONTRACT, schema, ("user_id",))]
    assert found == [
        "amount changes type double -> string (used by feature service fraud)",
        "tier (string) is removed (used by feature service fraud, feature service spend)",
    ]
    assert [str(b) for b in breaches(CONTRACT, rows().schema, ("user_id", "merchant_id"))] == [
        "join keys change ['user_id'] -> ['user_id', 'merchant_id'] (used by feature service fraud, feature service spend)"
    ]


def test_arrow_spellings_of_one_delta_type_are_not_a_change():
    schema = rows(tier=pa.array(["a", "b"], pa.large_string())).schema
    assert breaches(CONTRACT, schema, ("user_id",)) == []


def test_contracts_round_trip_and_unknown_views_have_none(tmp_path):
    write_contracts(tmp_path, {"user_stats": CONTRACT}, registry_version=4)
    records = [json.loads(line) for line in contracts_path(tmp_path).read_text().splitlines()]
    assert records[0] == {"format": 1, "registry_version": 4, "view": "user_stats", "column": "user_id", "role": "key", "type": "long", "used_by": []}
    assert len(records) == 3
    assert read_contract(contracts_path(tmp_path), "user_stats") == CONTRACT
    assert read_contract(contracts_path(tmp_path), "other_view") is None
    assert read_contract(tmp_path / "missing.json", "user_stats") is None
    contracts_path(tmp_path).write_text('{"format": 99, "view": "user_stats"}\n')
    with pytest.raises(ValueError, match="this Hindsight reads format 1; rerun `hindsight apply`"):
        read_contract(contracts_path(tmp_path), "user_stats")


def test_the_gate_refuses_before_any_commit_and_the_var_lets_it_through(tmp_path):
    write_feature_view(rows(), request(tmp_path))
    write_contracts(tmp_path / "registry", {"user_stats": CONTRACT}, registry_version=1)
    retyped = rows(amount=pa.array(["1.5", "2.5"]))

    with pytest.raises(FeatureViewWriteError) as refused:
        write_feature_view(retyped, request(tmp_path))
    assert str(refused.value) == (
        "feature view user_stats: refusing a breaking change: amount changes type double -> string "
        "(used by feature service fraud). The Delta table was not changed (version 0). To make the change "
        "anyway: dbt run --select user_stats --full-refresh --vars '{\"hindsight_allow_breaking\": true}', "
        "then `hindsight apply --allow-breaking` so the services' contracts follow."
    )
    from deltalake import DeltaTable

    assert DeltaTable(str(tmp_path / "user_stats")).version() == 0

    result = write_feature_view(retyped, request(tmp_path, allow_breaking=True))
    assert result.version == 1
    assert result.allowed_breaches == ("amount changes type double -> string (used by feature service fraud)",)
    # The table already carries the allowed change: later runs that keep it are not refused.
    assert write_feature_view(retyped, request(tmp_path)).version == 2


def test_the_gate_catches_a_removed_feature_on_an_incremental_run_and_lets_unused_columns_go(tmp_path):
    write_feature_view(rows(extra=pa.array([1, 2])), request(tmp_path))
    write_contracts(tmp_path / "registry", {"user_stats": CONTRACT}, registry_version=1)
    with pytest.raises(FeatureViewWriteError, match=r"tier \(string\) is removed \(used by feature service fraud, feature service spend\)"):
        write_feature_view(rows(tier=None, extra=pa.array([1, 2])), request(tmp_path, mode="incremental"))
    # `extra` is no service's feature: dropping it on a full refresh is not breaking.
    assert write_feature_view(rows(), request(tmp_path)).version == 1


def test_apply_records_the_used_features_with_their_delta_types(manifest):  # noqa: F811
    registry = registry_from_manifest(manifest, read_schema=SCHEMAS.get)
    contracts = view_contracts(registry, read_schema=SCHEMAS.get)
    assert set(contracts) == {"user_stats", "merchant_stats"}
    user = contracts["user_stats"]
    assert user.join_keys == {"user_id": "long"}
    assert user.features == {
        "amount_sum_7d": UsedFeature("double", ("feature service fraud",)),
        "txn_count_7d": UsedFeature("long", ("feature service fraud",)),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda e: e["meta"]["hindsight"].update(featurs=e["meta"]["hindsight"].pop("features")),
            "feature service fraud (models/features/services.yml): unknown key 'featurs' in meta.hindsight (did you mean features?)",
        ),
        (
            lambda e: e["meta"]["hindsight"]["features"].append({"feature": "user_stats:txn_count_7d", "alais": "n"}),
            "feature service fraud (models/features/services.yml): unknown key 'alais' in the features entry",
        ),
        (
            lambda e: e.update(type="dashboard"),
            "feature service fraud (models/features/services.yml): meta.hindsight declares a feature service, but the exposure's type is 'dashboard'",
        ),
    ],
    ids=["unknown_service_key", "unknown_feature_entry_key", "not_ml"],
)
def test_feature_service_definitions_with_unknown_keys_fail(manifest, change, message):  # noqa: F811
    change(manifest["exposures"]["e1"])
    with pytest.raises(DefinitionErrors) as raised:
        registry_from_manifest(manifest, read_schema=SCHEMAS.get)
    assert message in str(raised.value)
    assert len(raised.value.problems) == 1, raised.value.problems
    if "alais" in message:
        assert "(did you mean alias?)" in str(raised.value)


def test_a_backfill_that_adds_a_column_counts_the_rows_outside_its_range(tmp_path):
    day = 86_400_000_000
    times = pa.array([0, day, 2 * day, 3 * day], pa.timestamp("us", tz="UTC"))
    base = pa.table({"user_id": pa.array([1, 1, 1, 2], pa.int64()), "event_timestamp": times})
    plain = WriteRequest(
        model="user_stats", uri=str(tmp_path / "user_stats"), mode="full_refresh",
        unique_key=("user_id", "event_timestamp"), timestamp_field="event_timestamp",
        on_schema_change="append_new_columns",
    )
    write_feature_view(base, plain)
    widened = base.slice(1, 1).append_column("score", pa.array([0.5]))
    backfill = dataclasses.replace(plain, mode="backfill", range_start="1970-01-02", range_end="1970-01-03")
    result = write_feature_view(widened, backfill)
    assert result.notices == (
        "user_stats: new column(s) score are NULL in 3 historical rows (event times 1970-01-01 00:00:00 to "
        "1970-01-04 00:00:00); fill them with: dbt run --select user_stats --vars "
        "'{\"backfill_start\": \"1970-01-01\", \"backfill_end\": \"1970-01-05\"}'",
    )
