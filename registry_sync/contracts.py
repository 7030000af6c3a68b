"""On apply: record what the applied feature services use, for the materialization's breaking-change gate.

Reads the applied `Registry` and the Delta tables' schemas; writes `<registry>/contracts.jsonl`
through `offline_store.contracts`, which owns the format (see there). A view no service or
on-demand view uses has no contract, so it can change freely.

An aggregation view's Delta table holds tiles, not features: its contract lists the tile part
columns the used features are computed from (`offline_store.tiles.parts_needed`), with their Delta
types, each used by "<consumer> (<features>)". So a build that drops an aggregation a service
uses, or retypes its input column, removes or retypes a contracted column and is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from hindsight.offline_store import tiles
from hindsight.offline_store.contracts import UsedFeature, ViewContract, delta_type_names, write_contracts
from hindsight.registry_sync.manifest import delta_schema
from hindsight.registry_sync.model import FeatureView, Registry

SchemaReader = Callable[[str], "pa.Schema | None"]


def view_contracts(registry: Registry, read_schema: SchemaReader = delta_schema) -> dict[str, ViewContract]:
    """Per feature view that something uses: its join keys and the used features, with Delta types."""
    users: dict[tuple[str, str], set[str]] = {}
    for service in registry.feature_services:
        for ref in service.features:
            users.setdefault((ref.view, ref.feature), set()).add(f"feature service {service.name}")
    for odfv in registry.on_demand_views:
        for text in odfv.feature_inputs:
            input_view, _, feature = text.partition(":")
            users.setdefault((input_view, feature), set()).add(f"on-demand view {odfv.name}")
    contracts: dict[str, ViewContract] = {}
    for view in registry.feature_views:
        used = {feature: sorted(who) for (name, feature), who in users.items() if name == view.name}
        if not used:
            continue
        schema = read_schema(view.delta_uri)
        types = delta_type_names(schema) if schema is not None else {}
        declared = {f.name: f.dtype for f in view.features}
        if view.is_aggregation:
            features = _tile_parts(view, used, types)
        else:
            features = {
                feature: UsedFeature(dtype=types.get(feature, declared.get(feature, "")), used_by=tuple(who))
                for feature, who in sorted(used.items())
            }
        contracts[view.name] = ViewContract(join_keys={key: types.get(key, "") for key in view.join_keys}, features=features)
    return contracts


def _tile_parts(view: FeatureView, used: dict[str, list[str]], types: dict[str, str]) -> dict[str, UsedFeature]:
    """The tile columns the used features of an aggregation view need, each with who needs it for what."""
    by_name = {a.name: a for a in view.aggregations}
    needs: dict[str, dict[str, list[str]]] = {}  # part column -> consumer -> features
    for feature, who in sorted(used.items()):
        aggregation = by_name.get(feature)
        if aggregation is None:  # not in this version of the view: the plan already refused it
            continue
        for part in tiles.parts_needed(aggregation.column, [aggregation.function]):
            for consumer in who:
                needs.setdefault(part, {}).setdefault(consumer, []).append(feature)
    return {
        part: UsedFeature(
            dtype=types.get(part, ""),
            used_by=tuple(f"{consumer} ({', '.join(features)})" for consumer, features in sorted(consumers.items())),
        )
        for part, consumers in sorted(needs.items())
    }


def write_registry_contracts(registry: Registry, registry_dir: Path | str, read_schema: SchemaReader = delta_schema) -> Path | str:
    """Write the contracts of the applied `registry` beside its versions; returns the file."""
    return write_contracts(registry_dir, view_contracts(registry, read_schema), registry.version)
