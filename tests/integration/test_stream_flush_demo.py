"""The whole loop on the demo project: ingest -> online tiles; flush -> the event log; dbt build of
user_stream_activity over it; sync. Online values equal the aggregation oracle over every event at
each step: after a sync that runs before dbt saw the latest events, and after dbt caught up.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from hindsight.offline_store.event_log import event_log_schema
from hindsight.online_sync import OnlineStore, ensure_tables, sync
from hindsight.project import project_registry
from hindsight.streams.flush import Flusher
from hindsight.streams.ingest import Ingestor
from tests.aggregation_oracle import expected_features
from tests.fixtures.aggregation_online import assert_values
from tests.fixtures.dbt_project import DbtProject

pytestmark = pytest.mark.integration

VIEW = "user_stream_activity"
UTC = dt.timezone.utc


def transactions(now: dt.datetime, start: int, minutes_ago: list[float], users: list[int]) -> list[dict]:
    return [{"transaction_id": start + i, "user_id": u, "merchant_id": 7, "amount": float(start + i) / 4,
             "country": "FR", "ts": now - dt.timedelta(minutes=m)} for i, (m, u) in enumerate(zip(minutes_ago, users))]


def check_online(registry, online_config, rows: list[dict], users: list[int], now: dt.datetime) -> None:
    view = next(v for v in registry.feature_views if v.name == VIEW)
    events = pa.table({"user_id": [r["user_id"] for r in rows], "event_timestamp": [r["ts"] for r in rows],
                       "amount": [r["amount"] for r in rows]})
    names = [f.name for f in view.features]
    reads = OnlineStore(registry, online_config).read([{"user_id": u} for u in users], {VIEW: names}, now=now)
    for user, read in zip(users, reads):
        expected = expected_features(events, user, now, join_keys=("user_id",), timestamp="event_timestamp",
                                     aggregations=view.aggregations, interval=view.aggregation_interval_seconds)
        assert_values(read[VIEW].values, expected, f"user {user} at {now}")


def test_ingest_flush_build_sync_keeps_online_equal_to_the_offline_definition(project_copy: DbtProject, online_config):
    project_copy.dbt("parse")  # the copy has no target/ of its own
    registry = project_registry(project_copy.settings)
    stream = registry.stream_source("transactions")
    ensure_tables(registry, online_config)
    ingestor = Ingestor(registry, online_config)
    flusher = Flusher(registry, online_config, client=ingestor.client)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    first = transactions(now, 1, [50, 30, 9.5, 3, 1, 0.5], [1, 1, 1, 2, 1, 2])
    assert ingestor.ingest("transactions", first).accepted == 6
    assert flusher.flush_once().inserted == 6
    log = DeltaTable(stream.delta_uri)
    assert pa.schema(log.schema().to_arrow()).equals(event_log_schema(stream))
    project_copy.dbt("build", "--select", VIEW)

    # More events arrive after dbt ran: online has them, the Delta tiles do not.
    later = transactions(now, 100, [0.4, 0.2], [1, 1])
    ingestor.ingest("transactions", later)
    sync(registry, online_config, select=[VIEW], progress=False, now=now)
    check_online(registry, online_config, first + later, [1, 2], now)

    # The flusher and dbt catch up: Delta's tiles now hold every event, and a sync keeps them.
    assert flusher.flush_once().inserted == 2
    project_copy.dbt("build", "--select", VIEW)
    sync(registry, online_config, select=[VIEW], progress=False, now=now)
    check_online(registry, online_config, first + later, [1, 2], now)
    ids = DeltaTable(stream.delta_uri).to_pyarrow_table(columns=["transaction_id"]).column(0).to_pylist()
    assert sorted(ids) == [1, 2, 3, 4, 5, 6, 100, 101]
    # `hindsight vacuum` covers the event log (the flusher's compactions leave replaced files).
    vacuumed = project_copy.run("hindsight", "vacuum", "--select", "streams.transactions", "--dry-run")
    version = DeltaTable(stream.delta_uri).version()
    assert f"streams.transactions: would remove 0 file(s), 0 B (version {version})" in vacuumed.stdout
