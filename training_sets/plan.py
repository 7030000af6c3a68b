"""From selected features to work: which columns to read from which Delta table, what to compute after.

On-demand views run after the join. Their feature inputs are read even when not requested (under
internal column names, dropped at the end), and their request fields come from spine columns of
the same name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from hindsight.offline_store import tiles
from hindsight.on_demand import OnDemandError, OnDemandView, from_registry
from hindsight.registry_sync.model import FeatureRef, FeatureView, OnDemandFeatureView, Registry
from hindsight.training_sets.errors import TrainingSetError, near_names
from hindsight.training_sets.selection import Selected
from hindsight.training_sets.sql_tiles import columns_needed as tile_columns_needed
from hindsight.training_sets.sql_parts import INTERNAL_PREFIX, ViewRequest


@dataclass(frozen=True)
class OnDemandStep:
    """One on-demand view to run over the joined table."""

    view: OnDemandView
    #: Bare feature-input name -> column of the joined table holding it.
    inputs: dict[str, str]
    #: Requested output -> output column name.
    outputs: dict[str, str]


@dataclass
class TrainingPlan:
    """Everything a training set reads and computes, before any engine is involved."""

    selected: list[Selected]
    #: Batch views to read, in first-use order.
    views: dict[str, FeatureView] = field(default_factory=dict)
    #: View -> [(feature, column in the joined table)].
    reads: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    on_demand: list[OnDemandStep] = field(default_factory=list)

    def view_requests(self) -> list[ViewRequest]:
        """One `ViewRequest` per view, its relation named after the view."""
        return [ViewRequest(self.views[name], name, tuple(cols)) for name, cols in self.reads.items()]

    def key_views(self) -> dict[str, list[str]]:
        """Join key -> the views keyed on it."""
        keys: dict[str, list[str]] = {}
        for view in self.views.values():
            for key in view.join_keys:
                keys.setdefault(key, []).append(view.name)
        return keys

    def request_fields(self) -> dict[str, str]:
        """Spine column -> the on-demand view that needs it."""
        return {f: step.view.name for step in self.on_demand for f in step.view.request_fields}

    def columns_needed(self, view: str) -> list[str]:
        """The Delta columns a view is read with: keys, times, features (no partition columns).

        An aggregation view's table holds tiles, not features: keys, as-of time, tile start and
        the tile parts the requested features need.
        """
        fv = self.views[view]
        if fv.is_aggregation:
            return tile_columns_needed(fv, [feature for feature, _ in self.reads[view]])
        times = [fv.timestamp_field] + ([fv.created_field] if fv.created_field else [])
        wanted = [*fv.join_keys, *times, *(feature for feature, _ in self.reads[view])]
        return list(dict.fromkeys(wanted))


def stored_type(view: FeatureView, feature: str, schema: pa.Schema) -> pa.DataType:
    """The Arrow type a feature column gets in a training set, from the view's Delta schema.

    A batch view's feature is a column of its table. An aggregation feature takes its tile part's
    type: count int64, mean and stddev float64, sum its `__sum` part's, min/max/last the input's.
    """
    if not view.is_aggregation:
        return schema.field(feature).type
    aggregation = next(a for a in view.aggregations if a.name == feature)
    if aggregation.function == "count":
        return pa.int64()
    if aggregation.function in ("mean", "stddev"):
        return pa.float64()
    part = {"sum": "sum", "min": "min", "max": "max", "last": "last"}[aggregation.function]
    return schema.field(tiles.part_column(aggregation.column, part)).type


def plan_training_set(registry: Registry, selected: Sequence[Selected]) -> TrainingPlan:
    """Work out reads and on-demand steps for the selected features.

    Raises:
        TrainingSetError: when an on-demand view cannot be imported or reads a feature that is
            not in a batch feature view.
    """
    plan = TrainingPlan(list(selected))
    by_ref = {s.ref: s.output for s in selected}
    steps: dict[str, OnDemandStep] = {}
    for item in selected:
        view = registry.view(item.view)
        if isinstance(view, FeatureView):
            _read(plan, view, item.feature, item.output)
            continue
        if view.name not in steps:
            steps[view.name] = _on_demand_step(registry, plan, view, by_ref)
        steps[view.name].outputs[item.feature] = item.output
    plan.on_demand = list(steps.values())
    return plan


def _read(plan: TrainingPlan, view: FeatureView, feature: str, column: str) -> None:
    plan.views.setdefault(view.name, view)
    reads = plan.reads.setdefault(view.name, [])
    if (feature, column) not in reads:
        reads.append((feature, column))


def _on_demand_step(
    registry: Registry, plan: TrainingPlan, entry: OnDemandFeatureView, by_ref: dict[str, str]
) -> OnDemandStep:
    try:
        view = from_registry(entry)
    except OnDemandError as error:
        raise TrainingSetError(str(error)) from error
    inputs: dict[str, str] = {}
    for bare, ref in view.input_features.items():
        parsed = FeatureRef.parse(ref)
        source_name, feature = parsed.view, parsed.feature
        source = _batch_source(registry, entry.name, source_name, feature)
        # An input also requested as a feature is read once, under its output name.
        column = by_ref.get(ref) or f"{INTERNAL_PREFIX}input__{source_name}__{feature}"
        _read(plan, source, feature, column)
        inputs[bare] = column
    return OnDemandStep(view, inputs, {})


def _batch_source(registry: Registry, on_demand: str, name: str, feature: str) -> FeatureView:
    views = {v.name: v for v in registry.feature_views}
    if name not in views:
        raise TrainingSetError(
            f"on-demand view {on_demand!r} reads {name}:{feature}, but {name!r} is not a feature view"
            f"{near_names(name, views)}"
        )
    source = views[name]
    if feature not in {f.name for f in source.features}:
        raise TrainingSetError(
            f"on-demand view {on_demand!r} reads {name}:{feature}, but view {name!r} has no such feature"
            f"{near_names(feature, (f.name for f in source.features))}"
        )
    return source
