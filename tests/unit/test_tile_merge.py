"""Updating aggregation items event by event (online_sync.tile_merge) against the brute-force oracle:
events merged in any order and any batches, through the item encoding each time, read back by
serving's combine."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hindsight.online_sync.codec import VERSION_ATTR, to_micros
from hindsight.online_sync.combine import CombinePlan
from hindsight.online_sync.tile_merge import TileLayout, add_events, decode_item, encode_item, event_tile, merge_tiles
from hindsight.registry_sync.model import Aggregation, Feature, FeatureView
from tests.aggregation_oracle import expected_features, micros, reference_tiles
from tests.aggregation_strategies import AggregationCase, aggregation_cases
from tests.fixtures.aggregation_online import assert_values, case_view
from tests.fixtures.stream_registry import STREAM


def stream_fed(case: AggregationCase):
    return dataclasses.replace(case_view(case, "/unused"), stream_source=STREAM)


def ingest(view, layout, items: dict, rows: list[dict]) -> None:
    """What one ingest does to the items of the entities in `rows` (no DynamoDB)."""
    per_entity: dict[str, list] = {}
    for row in rows:
        per_entity.setdefault(str(row["user_id"]), []).append((to_micros(row["ts"]), row))
    for key, events in per_entity.items():
        entity = decode_item(layout, items.get(key))
        item = encode_item(view, layout, key, add_events(layout, entity, events))
        if item is not None:
            items[key] = item


@st.composite
def cases_in_batches(draw):
    case = draw(aggregation_cases())
    rows = case.events.to_pylist()
    order = draw(st.permutations(range(len(rows))))
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(rows) - 1)), max_size=4)))
    shuffled = [rows[i] for i in order]
    bounds = [0, *cuts, len(rows)]
    return case, [shuffled[a:b] for a, b in itertools.pairwise(bounds) if shuffled[a:b]]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=cases_in_batches())
def test_events_in_any_order_and_batches_read_back_as_the_oracle(drawn) -> None:
    case, batches = drawn
    view = stream_fed(case)
    layout = TileLayout.for_view(view)
    items: dict = {}
    for batch in batches:
        ingest(view, layout, items, batch)
    assert all(int(item[VERSION_ATTR]["N"]) <= len(batches) for item in items.values())
    plan = CombinePlan.build(view, tuple(f.name for f in view.features))
    last = max(case.events["ts"].to_pylist())
    for t in [t for t in case.query_times if t >= last]:
        for user in case.entities:
            expected = expected_features(case.events, user, t, **case.oracle_args)
            item = items.get(str(user))
            combined = None if item is None else plan.combine(item, micros(t))
            values = plan.empty_values() if combined is None else combined[0]
            assert_values(values, expected, f"user {user} at {t}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=aggregation_cases())
def test_merged_tiles_equal_the_reference_tiles(case) -> None:
    # Each interval's tile, built by merging one-event tiles in reverse time order, equals the final
    # (greatest as-of) reference tile of that interval, last_at included.
    view = stream_fed(case)
    layout = TileLayout.for_view(view)
    reference = reference_tiles(case.events, ["user_id"], "ts", case.aggregations, case.interval)
    finals: dict[tuple, dict] = {}
    for row in reference.to_pylist():
        finals[(row["user_id"], row["_tile_start"])] = row  # rows are in time order: the last one wins
    interval = case.interval_seconds * 1_000_000
    for (user, start), final in finals.items():
        events = [r for r in case.events.to_pylist()
                  if r["user_id"] == user and to_micros(r["ts"]) // interval == to_micros(start) // interval]
        tile: dict = {}
        for r in sorted(events, key=lambda r: r["ts"], reverse=True):
            tile = merge_tiles(layout, tile, event_tile(layout, r, to_micros(r["ts"])))
        for column in layout.columns:
            for part, attr in column.parts:
                want = final.get(attr)
                got = tile.get(attr, 0 if part == "n" else None)
                if part == "last_at":
                    want = None if want is None else to_micros(want)
                if part == "last" and want is not None:
                    tied = {r[column.name] for r in events if r["ts"] == max(e["ts"] for e in events if e[column.name] is not None)
                            and r[column.name] is not None}
                    assert got in tied, (user, start, attr, got, tied)
                    continue
                if isinstance(want, float) and got is not None:
                    assert abs(got - want) <= 1e-6 + 1e-9 * abs(want), (user, start, attr, got, want)
                else:
                    assert got == want, (user, start, attr, got, want)


def test_a_late_event_inside_an_interval_keeps_the_newer_last_value() -> None:
    aggregations = (Aggregation("country_last_1h", "last", "country", 3600),
                    Aggregation("amount_max_1h", "max", "amount", 3600))
    view = FeatureView("txn", "aggregation", ("user",), ("user_id",), "ts", None, None, True, "/unused",
                       (Feature("country_last_1h", "string"), Feature("amount_max_1h", "float64")),
                       aggregation_interval_seconds=3600, aggregations=aggregations, stream_source=STREAM)
    layout = TileLayout.for_view(view)
    base = dt.datetime(2026, 1, 5, 10, tzinfo=dt.timezone.utc)
    items: dict = {}
    ingest(view, layout, items, [{"user_id": 1, "ts": base + dt.timedelta(minutes=30), "country": "FR", "amount": 1.0}])
    ingest(view, layout, items, [{"user_id": 1, "ts": base + dt.timedelta(minutes=10), "country": "DE", "amount": 5.0}])
    assert items["1"]["country__last_at"]  # stream-fed views keep last_at online
    values, newest = CombinePlan.build(view, ("country_last_1h", "amount_max_1h")).combine(
        items["1"], micros(base + dt.timedelta(minutes=45)))
    assert values == {"country_last_1h": "FR", "amount_max_1h": 5.0}
    assert newest == base + dt.timedelta(minutes=30)
    assert items["1"][VERSION_ATTR] == {"N": "2"}
