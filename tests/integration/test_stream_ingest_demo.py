"""Ingest into the demo project's real registry: `streams.transactions` and the stream-fed view
`user_stream_activity`, whose SQL is the compiled dbt model (`stream_sql`), updated online per
event and read through serving's OnlineStore equal to the brute-force oracle."""

from __future__ import annotations

import datetime as dt

import pytest

from hindsight.online_sync import OnlineStore, ensure_tables
from hindsight.registry_sync.model import FeatureView
from hindsight.streams.ingest import Ingestor
from tests.aggregation_oracle import expected_features
from tests.fixtures.aggregation_online import assert_values

pytestmark = pytest.mark.integration

VIEW = "user_stream_activity"


def test_demo_stream_view_is_updated_per_event_through_its_compiled_sql(demo_registry, online_config):
    view = demo_registry.view(VIEW)
    assert isinstance(view, FeatureView) and view.stream_source == "streams.transactions" and view.stream_sql
    tables = ensure_tables(demo_registry, online_config)
    assert tables[online_config.table_name("_hs_journal")] == "created"
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    minute = dt.timedelta(minutes=1)
    rows = [
        {"transaction_id": i, "user_id": u, "merchant_id": m, "amount": a, "country": "FR", "ts": now - k * minute}
        for i, (u, m, a, k) in enumerate([(1, 10, 5.0, 50), (1, 11, 7.5, 9), (1, 10, 2.5, 3), (1, 12, 10.0, 3),
                                          (2, 10, 100.0, 30), (2, 10, 1.0, 2), (3, 13, 42.0, 1), (3, 13, 8.0, 59)])
    ]
    ingestor = Ingestor(demo_registry, online_config)
    # two calls, out of order, the second redelivering two events of the first
    first = ingestor.ingest("transactions", rows[4:])
    second = ingestor.ingest("streams.transactions", rows[:4] + rows[4:6])
    assert (first.accepted, second.accepted, second.duplicates) == (4, 4, 2)
    store = OnlineStore(demo_registry, online_config)
    names = [f.name for f in view.features]
    events = [{"user_id": r["user_id"], "event_timestamp": r["ts"], "amount": r["amount"]} for r in rows]
    for t in (now, now + 5 * minute, now + 30 * minute):
        reads = store.read([{"user_id": u} for u in (1, 2, 3, 4)], {VIEW: names}, now=t)
        for user, read in zip((1, 2, 3, 4), reads):
            expected = expected_features(events, user, t, join_keys=("user_id",), timestamp="event_timestamp",
                                         aggregations=view.aggregations, interval=view.aggregation_interval_seconds)
            assert_values(read[VIEW].values, expected, f"user {user} at {t}")
    assert reads[0][VIEW].values["txn_count_1h"] >= 3  # user 1: 3 events in the last hour at t + 30m
