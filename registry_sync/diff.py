"""What `hindsight plan` shows: the changes between the applied registry and the project now.

A change is breaking when it can break a consumer that already reads the registry: a feature's
type changes, a view's join keys change, or a feature (or view) that a feature service still
uses disappears.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from hindsight.core.durations import format_duration
from hindsight.registry_sync.model import FeatureRef, FeatureService, FeatureView, OnDemandFeatureView, Registry

View = FeatureView | OnDemandFeatureView


@dataclass(frozen=True)
class Change:
    """One line of a plan."""

    #: added | removed | changed
    action: str
    #: entity | feature_view | on_demand_view | feature | feature_service | stream_source | stream_column
    kind: str
    name: str
    detail: str = ""
    breaking: bool = False

    def __str__(self) -> str:
        sign = {"added": "+", "removed": "-", "changed": "~"}[self.action]
        flag = "  [BREAKING]" if self.breaking else ""
        return f"{sign} {self.kind} {self.name}{': ' + self.detail if self.detail else ''}{flag}"


@dataclass(frozen=True)
class Plan:
    """All changes, in a stable order."""

    changes: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def breaking(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.breaking)

    def to_dict(self) -> dict[str, Any]:
        return {
            "changes": [c.__dict__ for c in self.changes],
            "breaking": len(self.breaking),
        }


def plan(old: Registry | None, new: Registry) -> Plan:
    """Compare the applied registry (None: nothing applied yet) with the new one."""
    old = old or Registry(project=new.project)
    changes: list[Change] = []
    changes += _entity_changes(old, new)
    changes += _view_changes(old, new)
    changes += _service_changes(old, new)
    changes += _stream_changes(old, new)
    return Plan(tuple(changes))


def _entity_changes(old: Registry, new: Registry) -> list[Change]:
    before = {e.name: e for e in old.entities}
    after = {e.name: e for e in new.entities}
    changes = [Change("added", "entity", n) for n in sorted(after.keys() - before.keys())]
    changes += [Change("removed", "entity", n) for n in sorted(before.keys() - after.keys())]
    for name in sorted(before.keys() & after.keys()):
        if before[name].join_keys != after[name].join_keys:
            detail = f"join keys {list(before[name].join_keys)} -> {list(after[name].join_keys)}"
            changes.append(Change("changed", "entity", name, detail, breaking=True))
    return changes


def _views(registry: Registry) -> dict[str, View]:
    views: list[View] = [*registry.feature_views, *registry.on_demand_views]
    return {v.name: v for v in views}


def _used_features(registry: Registry) -> dict[tuple[str, str], list[str]]:
    used: dict[tuple[str, str], list[str]] = {}
    for service in registry.feature_services:
        for ref in service.features:
            used.setdefault((ref.view, ref.feature), []).append(f"feature service {service.name}")
    for odfv in registry.on_demand_views:
        for text in odfv.feature_inputs:
            parsed = FeatureRef.parse(text)
            used.setdefault((parsed.view, parsed.feature), []).append(f"on-demand view {odfv.name}")
    return used


def _view_changes(old: Registry, new: Registry) -> list[Change]:
    before, after = _views(old), _views(new)
    # Usage in the applied registry counts: a model deployed against `fraud` still expects a
    # feature that `view:*` silently stopped listing.
    used = _used_features(old)
    for key, users in _used_features(new).items():
        used[key] = sorted({*used.get(key, []), *users})
    changes = [Change("added", _kind(after[n]), n, _summary(after[n])) for n in sorted(after.keys() - before.keys())]
    for name in sorted(before.keys() - after.keys()):
        users = sorted({s for (view, _), ss in used.items() if view == name for s in ss})
        detail = f"still used by {', '.join(users)}" if users else ""
        changes.append(Change("removed", _kind(before[name]), name, detail, breaking=bool(users)))
    for name in sorted(before.keys() & after.keys()):
        changes += _one_view_changes(before[name], after[name], used)
    return changes


def _one_view_changes(old: View, new: View, used: dict[tuple[str, str], list[str]]) -> list[Change]:
    changes = []
    kind = _kind(new)
    if isinstance(old, FeatureView) and isinstance(new, FeatureView):
        if old.join_keys != new.join_keys:
            changes.append(Change("changed", kind, new.name, f"join keys {list(old.join_keys)} -> {list(new.join_keys)}", breaking=True))
        for attribute in ("timestamp_field", "created_field", "ttl_seconds", "online", "delta_uri", "kind",
                          "expected_freshness_seconds", "stream_source", "push", "push_partial"):
            if getattr(old, attribute) != getattr(new, attribute):
                changes.append(Change("changed", kind, new.name, f"{attribute} {getattr(old, attribute)!r} -> {getattr(new, attribute)!r}"))
        if old.is_aggregation and new.is_aggregation and old.aggregation_interval_seconds != new.aggregation_interval_seconds:
            # The rebuilt tiles align to the new interval: whoever reads them with the applied one combines them wrongly.
            users = sorted({u for (view, _), us in used.items() if view == new.name for u in us})
            detail = f"aggregation_interval {_duration(old.aggregation_interval_seconds)} -> {_duration(new.aggregation_interval_seconds)}"
            changes.append(Change("changed", kind, new.name, detail + (f"; used by {', '.join(users)}" if users else ""),
                                  breaking=bool(users)))
        if old.stream_sql != new.stream_sql and old.stream_source and new.stream_source:
            changes.append(Change("changed", kind, new.name, "stream_sql (the SQL run over each batch of events)"))
        if old.expectations != new.expectations:
            # Versions validated with the old expectations must be validated again before sync.
            changes.append(Change("changed", kind, new.name, f"expectations: {len(old.expectations)} -> {len(new.expectations)} "
                                  "(validate again before sync)"))
    before = {f.name: f for f in old.features}
    after = {f.name: f for f in new.features}
    for name in sorted(after.keys() - before.keys()):
        changes.append(Change("added", "feature", f"{new.name}:{name}", after[name].dtype))
    for name in sorted(before.keys() - after.keys()):
        users = used.get((new.name, name), [])
        detail = f"still used by {', '.join(users)}" if users else ""
        changes.append(Change("removed", "feature", f"{new.name}:{name}", detail, breaking=bool(users)))
    for name in sorted(before.keys() & after.keys()):
        if before[name].dtype != after[name].dtype:
            changes.append(Change("changed", "feature", f"{new.name}:{name}",
                                  f"type {before[name].dtype} -> {after[name].dtype}", breaking=True))
        elif _aggregation(old, name) != _aggregation(new, name):
            changes.append(Change("changed", "feature", f"{new.name}:{name}",
                                  f"aggregates {_aggregation(old, name)} -> {_aggregation(new, name)}"))
        elif before[name].description != after[name].description:
            changes.append(Change("changed", "feature", f"{new.name}:{name}", "description"))
    return changes


def _duration(seconds: int | None) -> str:
    return format_duration(dt.timedelta(seconds=seconds or 0))


def _aggregation(view: View, feature: str) -> str:
    """What a feature aggregates, e.g. "sum(amount) over 7d"; "(no aggregation)" for a batch or on-demand feature."""
    for a in view.aggregations if isinstance(view, FeatureView) else ():
        if a.name == feature:
            return f"{a.function}({a.column}) over {_duration(a.window_seconds)}"
    return "(no aggregation)"


def _service_changes(old: Registry, new: Registry) -> list[Change]:
    before: dict[str, FeatureService] = {s.name: s for s in old.feature_services}
    after: dict[str, FeatureService] = {s.name: s for s in new.feature_services}
    changes = [Change("added", "feature_service", n, f"{len(after[n].features)} features") for n in sorted(after.keys() - before.keys())]
    changes += [Change("removed", "feature_service", n) for n in sorted(before.keys() - after.keys())]
    for name in sorted(before.keys() & after.keys()):
        gone = [str(r) for r in before[name].features if r not in after[name].features]
        came = [str(r) for r in after[name].features if r not in before[name].features]
        if gone or came:
            detail = "; ".join(p for p in (f"+{', +'.join(came)}" if came else "", f"-{', -'.join(gone)}" if gone else "") if p)
            changes.append(Change("changed", "feature_service", name, detail))
    return changes


def _stream_changes(old: Registry, new: Registry) -> list[Change]:
    """Stream sources added, removed, or with another event id, time, entities, log, Kinesis stream or columns."""
    before = {s.name: s for s in old.stream_sources}
    after = {s.name: s for s in new.stream_sources}
    changes = [Change("added", "stream_source", n, f"{len(after[n].columns)} columns") for n in sorted(after.keys() - before.keys())]
    changes += [Change("removed", "stream_source", n) for n in sorted(before.keys() - after.keys())]
    for name in sorted(before.keys() & after.keys()):
        a, b = before[name], after[name]
        for attribute in ("event_id_field", "timestamp_field", "entities", "delta_uri", "kinesis_stream"):
            was_value, now_value = getattr(a, attribute), getattr(b, attribute)
            if was_value != now_value:
                changes.append(Change("changed", "stream_source", name, f"{attribute} {was_value!r} -> {now_value!r}"))
        was = {c.name: c.dtype for c in a.columns}
        now = {c.name: c.dtype for c in b.columns}
        changes += [Change("added", "stream_column", f"{name}:{c}", now[c]) for c in now if c not in was]
        changes += [Change("removed", "stream_column", f"{name}:{c}") for c in was if c not in now]
        changes += [Change("changed", "stream_column", f"{name}:{c}", f"type {was[c]} -> {now[c]}")
                    for c in now if c in was and was[c] != now[c]]
    return changes


def _kind(view: View) -> str:
    return "on_demand_view" if isinstance(view, OnDemandFeatureView) else "feature_view"


def _summary(view: View) -> str:
    return f"{len(view.features)} features"
