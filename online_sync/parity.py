"""`check_parity`: do the online values equal the newest Delta rows? Samples entities and compares.

Aggregation views: do the online items give the values that items rebuilt from the tiles now give?
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field
from typing import Any

from hindsight.core.instants import utc_instant
from hindsight.online_sync.combine import CombinePlan
from hindsight.online_sync.config import OnlineStoreConfig
from hindsight.online_sync.newest import NewestRows, full_source, open_delta
from hindsight.online_sync.store import NOT_FOUND, OnlineStore
from hindsight.online_sync.tables import online_views
from hindsight.online_sync.tile_items import items_from_lists
from hindsight.online_sync.tile_sync import TileLists, window_source
from hindsight.registry_sync.model import FeatureView, Registry


@dataclass(frozen=True)
class Mismatch:
    """One entity whose online value differs from Delta's newest row."""

    view: str
    entity: dict[str, Any]
    #: "missing online", "online older", or "value differs: <feature>".
    problem: str
    delta_value: Any = None
    online_value: Any = None

    def __str__(self) -> str:
        return f"{self.view} {self.entity}: {self.problem} (delta={self.delta_value!r}, online={self.online_value!r})"


@dataclass(frozen=True)
class ParityReport:
    """Entities compared and what differed."""

    checked: dict[str, int] = field(default_factory=dict)
    mismatches: tuple[Mismatch, ...] = ()
    #: Entities whose online value is newer than Delta's (pushed, not yet in Delta): not mismatches.
    online_newer: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatches


def same_value(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN and datetimes compare as instants.

    >>> same_value(float("nan"), float("nan")), same_value(1.0, 1.5)
    (True, False)
    """
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return (a if a.tzinfo else a.replace(tzinfo=dt.timezone.utc)) == (b if b.tzinfo else b.replace(tzinfo=dt.timezone.utc))
    return a == b


def sample_newest(view: FeatureView, sample: int, seed: int | None = None) -> list[dict[str, Any]]:
    """Up to `sample` of the view's newest rows per entity, chosen uniformly (reservoir sampling)."""
    rng = random.Random(seed)
    chosen: list[dict[str, Any]] = []
    seen = 0
    with NewestRows(view) as newest:
        newest.load(full_source(open_delta(view)), from_change_feed=False)
        for batch in newest.batches():
            for row in batch.to_pylist():
                seen += 1
                if len(chosen) < sample:
                    chosen.append(row)
                elif (slot := rng.randrange(seen)) < sample:
                    chosen[slot] = row
    return chosen


def _compare(view: FeatureView, row: dict[str, Any], read: Any, now: dt.datetime) -> tuple[Mismatch | None, bool]:
    entity = {k: row[k] for k in view.join_keys}
    delta_time = utc_instant(row[view.timestamp_field])
    if read.status == NOT_FOUND:
        # Past its ttl, the item is DynamoDB's to delete (TTL sweeps run lazily): absent is right.
        if view.ttl is not None and now - delta_time > view.ttl:
            return None, False
        return Mismatch(view.name, entity, "missing online"), False
    if read.event_timestamp > delta_time:
        return None, True
    if read.event_timestamp < delta_time:
        return Mismatch(view.name, entity, "online older", delta_time, read.event_timestamp), False
    for feature in view.features:
        if not same_value(row[feature.name], read.values[feature.name]):
            return Mismatch(view.name, entity, f"value differs: {feature.name}", row[feature.name],
                            read.values[feature.name]), False
    return None, False


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isfinite(a) and math.isfinite(b):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return same_value(a, b)


def sample_items(view: FeatureView, sample: int, now: dt.datetime,
                 seed: int | None = None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Up to `sample` (entity, item) pairs of an aggregation view, as a sync at `now` would write them."""
    rng = random.Random(seed)
    chosen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    seen = 0
    with TileLists(view) as lists:
        lists.load(window_source(open_delta(view).table.to_pyarrow_dataset(), view, now))
        for batch in lists.batches():
            for key_values, _, item in items_from_lists(batch, view, int(now.timestamp())):
                seen += 1
                entry = (dict(zip(view.join_keys, key_values)), item)
                if len(chosen) < sample:
                    chosen.append(entry)
                elif (slot := rng.randrange(seen)) < sample:
                    chosen[slot] = entry
    return chosen


def _aggregation_parity(store: OnlineStore, view: FeatureView, sample: int, now: dt.datetime,
                        seed: int | None) -> tuple[int, list[Mismatch]]:
    """Compare the values serving computes at `now` from the online items and from fresh items."""
    names = [f.name for f in view.features]
    plan = CombinePlan.build(view, tuple(names))
    now_us = int(now.timestamp() * 1_000_000)
    entries = sample_items(view, sample, now, seed)
    reads = store._read([entity for entity, _ in entries], {view.name: names}, now, enforce_ttl=False)
    mismatches = []
    for (entity, item), read in zip(entries, reads):
        expected = plan.combine(item, now_us)
        assert expected is not None  # sample_items keeps items with a tile in the window at `now`
        values, newest = expected
        online = read[view.name]
        if online.status == NOT_FOUND:
            mismatches.append(Mismatch(view.name, entity, "missing online", newest))
        elif online.event_timestamp != newest:
            older = online.event_timestamp is None or online.event_timestamp < newest
            problem = "online older" if older else "online newer than Delta"
            mismatches.append(Mismatch(view.name, entity, problem, newest, online.event_timestamp))
        else:
            differs = next((n for n in names if not _close(values[n], online.values[n])), None)
            if differs is not None:
                mismatches.append(Mismatch(view.name, entity, f"value differs: {differs}", values[differs],
                                           online.values[differs]))
    return len(entries), mismatches


def check_parity(
    registry: Registry,
    config: OnlineStoreConfig | None = None,
    sample: int = 100,
    select: list[str] | None = None,
    *,
    seed: int | None = None,
    client: Any = None,
) -> ParityReport:
    """Compare `sample` random entities per online view between Delta and the online store.

    ttl is not applied: an expired value still present online is compared, and one that DynamoDB's
    TTL already deleted is not a mismatch. An online value newer than Delta's (pushed) is counted
    in `online_newer`, not as a mismatch. An aggregation view is compared by the values serving
    would answer now, from its online items and from the items a sync would write now.

    Raises:
        OnlineStoreUnavailable: DynamoDB cannot be reached.
    """
    store = OnlineStore(registry, config, client)
    checked: dict[str, int] = {}
    mismatches: list[Mismatch] = []
    newer = 0
    now = dt.datetime.now(dt.timezone.utc)
    for view in online_views(registry, select):
        if view.is_aggregation:
            checked[view.name], found = _aggregation_parity(store, view, sample, now, seed)
            mismatches.extend(found)
            continue
        rows = sample_newest(view, sample, seed)
        reads = store._read(rows, {view.name: [f.name for f in view.features]}, None, enforce_ttl=False)
        for row, read in zip(rows, reads):
            mismatch, is_newer = _compare(view, row, read[view.name], now)
            newer += is_newer
            if mismatch:
                mismatches.append(mismatch)
        checked[view.name] = len(rows)
    return ParityReport(checked, tuple(mismatches), newer)
