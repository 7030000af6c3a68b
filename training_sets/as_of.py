"""The pieces `features_as_of` adds to a training set: the instant, the entity list, request checks.

`features_as_of` is a training set whose spine is every entity (or the ones asked for) at one
instant, so it shares the point-in-time semantics exactly, ttl and created times included.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from sqlglot import exp

from hindsight.core.instants import utc_instant
from hindsight.registry_sync.model import OnDemandFeatureView, Registry
from hindsight.training_sets.errors import TrainingSetError
from hindsight.training_sets.plan import TrainingPlan
from hindsight.training_sets.selection import Selected
from hindsight.training_sets.sql_parts import column, known_at, table

#: The spine's event-time column while it exists; dropped from the result.
EVENT_COLUMN = "_hindsight_as_of"


def instant(when: dt.datetime | dt.date | str) -> dt.datetime:
    """`when` as an aware UTC datetime (naive = UTC, a date = its midnight UTC, ISO text parsed).

    >>> instant("2026-03-01")
    datetime.datetime(2026, 3, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if isinstance(when, str):
        try:
            when = dt.datetime.fromisoformat(when)
        except ValueError as error:
            raise TrainingSetError(f"cannot read {when!r} as an ISO date or time") from error
    if isinstance(when, dt.date):
        return utc_instant(when)
    raise TrainingSetError(f"features_as_of needs a datetime, date or ISO string, got {type(when).__name__}")


def without_request_fields(registry: Registry, selected: list[Selected]) -> list[Selected]:
    """Drop features of on-demand views that need request fields: an error if asked for by name."""
    needs_request = {
        v.name for v in registry.on_demand_views if isinstance(v, OnDemandFeatureView) and v.request_fields
    }
    named = sorted({s.ref for s in selected if s.view in needs_request and s.explicit})
    if named:
        raise TrainingSetError(
            f"{', '.join(named)}: on-demand view(s) that need request fields cannot be computed without a "
            "request; use training_set with a spine holding those fields"
        )
    skipped = sorted({s.view for s in selected if s.view in needs_request})
    if skipped:
        warnings.warn(f"features_as_of skips on-demand view(s) {skipped}: they need request fields", stacklevel=3)
    kept = [s for s in selected if s.view not in needs_request]
    if not kept:
        raise TrainingSetError("nothing left to compute: every requested feature needs request fields")
    return kept


def shared_join_keys(plan: TrainingPlan) -> tuple[str, ...]:
    """The join keys every view shares; features_as_of joins views of one entity set only."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for view in plan.views.values():
        groups.setdefault(tuple(sorted(view.join_keys)), []).append(view.name)
    if len(groups) != 1:
        described = "; ".join(f"{', '.join(keys)}: {', '.join(views)}" for keys, views in groups.items())
        raise TrainingSetError(
            f"features_as_of joins views keyed on the same entities, got several key sets ({described}); "
            "call it once per key set"
        )
    return next(iter(plan.views.values())).join_keys


def known_entities_query(
    plan: TrainingPlan, keys: tuple[str, ...], when: dt.datetime, honor_created: bool
) -> exp.Select:
    """Every key combination with a row visible at `when` in any of the plan's views, sorted."""
    moment = exp.cast(
        exp.Literal.string(when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")),
        exp.DataType.build("timestamptz"),
    )
    branches = [
        exp.select(*(column(k) for k in keys))
        .from_(table(name))
        .where(exp.LTE(this=known_at(view, honor_created), expression=moment.copy()))
        for name, view in plan.views.items()
    ]
    entities = branches[0]
    for branch in branches[1:]:
        entities = exp.union(entities, branch, distinct=True)
    if len(branches) == 1:
        entities = entities.distinct()
    return (
        exp.select(*(column(k) for k in keys))
        .from_(entities.subquery("entities"))
        .order_by(*(exp.Ordered(this=column(k), nulls_first=False) for k in keys))
    )


def entity_table(entities: Any, keys: tuple[str, ...]) -> pa.Table:
    """The caller's entities as an Arrow table of exactly the key columns."""
    if isinstance(entities, Mapping):
        try:
            entities = pa.table({k: list(v) for k, v in entities.items()})
        except (pa.ArrowException, TypeError, ValueError) as error:
            raise TrainingSetError(f"entities: cannot build a table from the mapping: {error}") from error
    elif not isinstance(entities, pa.Table) and hasattr(entities, "iloc"):
        entities = pa.Table.from_pandas(entities, preserve_index=False)
    if not isinstance(entities, pa.Table):
        raise TrainingSetError("entities must be a {join key: values} mapping, a DataFrame or an Arrow table")
    missing = [k for k in keys if k not in entities.column_names]
    if missing:
        raise TrainingSetError(f"entities lack join key column(s) {missing}; they have {entities.column_names}")
    return entities.select(list(keys))
