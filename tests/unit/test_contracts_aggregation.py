"""Breaking-change contracts of aggregation views: the tile part columns the used features need.

Real Delta tile tables (written by the feature view writer from reference tiles), real contracts
file, the writer's gate: dropping an aggregation a service uses, or retyping its input, is refused;
dropping one nobody uses is not.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from hindsight.offline_store.contracts import UsedFeature, read_contract, contracts_path
from hindsight.offline_store.delta_writer import FeatureViewWriteError, WriteRequest, write_feature_view
from hindsight.registry_sync.contracts import view_contracts, write_registry_contracts
from hindsight.registry_sync.manifest import delta_schema, registry_from_manifest
from hindsight.registry_sync.model import Feature, OnDemandFeatureView
from tests.aggregation_oracle import reference_tiles
from tests.unit.test_registry_aggregation import CONFIG, manifest

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
EVENTS = pa.Table.from_pylist(
    [
        {"user_id": 1, "ts": T0, "amount": 10.0, "quantity": 1, "country": "DE"},
        {"user_id": 1, "ts": T0 + dt.timedelta(minutes=30), "amount": 20.0, "quantity": None, "country": "FR"},
        {"user_id": 2, "ts": T0 + dt.timedelta(hours=2), "amount": None, "quantity": 3, "country": None},
    ],
    schema=pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("amount", pa.float64()),
                      ("quantity", pa.int32()), ("country", pa.string())]),
)
ODFV = OnDemandFeatureView("ctx", ("user_txn:amount_mean_1h",), (), (Feature("ratio", "float64"),), "tests.x:f")


def tiles_of(aggregations, events=EVENTS) -> pa.Table:
    return reference_tiles(events, ["user_id"], "ts", aggregations, "1h").replace_schema_metadata(None)


def request(tmp_path) -> WriteRequest:
    return WriteRequest(model="user_txn", uri=str(tmp_path / "store" / "user_txn"), mode="full_refresh",
                        unique_key=("user_id", "ts"), timestamp_field="ts", entities=("user_id",),
                        registry=str(tmp_path / "registry"), partition_by=("_partition_date",))


@pytest.fixture
def applied(tmp_path):
    """The tile table built from CONFIG, a registry over it, and its contracts written as apply does."""
    write_feature_view(tiles_of(CONFIG["aggregations"]), request(tmp_path))
    m = manifest(location_root=str(tmp_path / "store"))
    registry = registry_from_manifest(m, read_schema=delta_schema, on_demand_views=[ODFV])
    write_registry_contracts(registry, tmp_path / "registry")
    return registry


def test_the_contract_lists_the_tile_parts_of_the_used_features(applied, tmp_path):
    contract = read_contract(contracts_path(tmp_path / "registry"), "user_txn")
    assert contract.join_keys == {"user_id": "long"}
    # fraud uses txn_count_1h (_events) and amount_sum_1d (n, sum); ctx uses amount_mean_1h (n, sum).
    both = ("feature service fraud (amount_sum_1d)", "on-demand view ctx (amount_mean_1h)")
    assert contract.features == {
        "_events": UsedFeature("long", ("feature service fraud (txn_count_1h)",)),
        "amount__n": UsedFeature("long", both),
        "amount__sum": UsedFeature("double", both),
    }
    assert view_contracts(applied, read_schema=delta_schema)["user_txn"] == contract


def test_dropping_an_aggregation_a_service_uses_is_refused(applied, tmp_path):
    without_sum = [CONFIG["aggregations"][0], {"column": "amount", "functions": ["max"]}]
    with pytest.raises(FeatureViewWriteError) as refused:
        write_feature_view(tiles_of(without_sum), request(tmp_path))
    message = str(refused.value)
    assert message.startswith(
        "feature view user_txn: refusing a breaking change: amount__n (long) is removed (used by feature service fraud "
        "(amount_sum_1d), on-demand view ctx (amount_mean_1h)); amount__sum (double) is removed (used by feature service "
        "fraud (amount_sum_1d), on-demand view ctx (amount_mean_1h)). The Delta table was not changed (version 0)."
    )


def test_retyping_a_used_input_is_refused(applied, tmp_path):
    retyped = EVENTS.set_column(2, "amount", pa.array([10, 20, None], pa.int64()))
    with pytest.raises(FeatureViewWriteError, match=r"amount__sum changes type double -> long \(used by feature service fraud"):
        write_feature_view(tiles_of(CONFIG["aggregations"], retyped), request(tmp_path))


def test_dropping_what_no_one_uses_is_allowed(applied, tmp_path):
    # Only count(*), amount's sum and mean stay: max, min, stddev, quantity and country go.
    kept = [CONFIG["aggregations"][0], {"column": "amount", "functions": ["sum", "mean"]}]
    assert write_feature_view(tiles_of(kept), request(tmp_path)).version == 1
