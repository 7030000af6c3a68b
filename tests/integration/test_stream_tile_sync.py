"""Sync of a stream-fed aggregation view merges with the streamed tiles instead of overwriting them.

Events are ingested (online tiles, journal) and only some of them reach the view's Delta tiles (a
dbt run that has not seen the rest yet): after `sync`, reads still equal the aggregation oracle
over every event. Also: tiles only Delta has (a backfill) are added, and a sync racing an ingest
redoes its merge on the `_hs_version` conflict instead of losing the ingested event.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from hindsight.online_sync import OnlineStore, ensure_tables, sync
from hindsight.online_sync.codec import KEY_ATTR, SYNC_WRITER, VERSION_ATTR, WRITER_ATTR
from hindsight.online_sync.tile_merge import EntityTiles, TileLayout
from hindsight.online_sync.tile_sync import merge_synced
from hindsight.streams.ingest import Ingestor
from tests.aggregation_oracle import expected_features, reference_tiles
from tests.aggregation_strategies import SCHEMA, AggregationCase, spec_for
from tests.fixtures.aggregation_online import assert_values, case_view
from tests.fixtures.stream_registry import stream_registry, stream_view

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
INTERVAL = 600  # 10m tiles; windows 1h and 1d


def base_time() -> dt.datetime:
    """An interval start a bit over an hour ago (events must not lie in the future)."""
    now = int(dt.datetime.now(UTC).timestamp())
    return dt.datetime.fromtimestamp(now // INTERVAL * INTERVAL - 7 * INTERVAL, UTC)


def events(base: dt.datetime, offsets_s: list[int], users: list[int], start: int = 0) -> list[dict]:
    return [{"transaction_id": f"e{start + i}", "user_id": u, "ts": base + dt.timedelta(seconds=s),
             "amount": float((start + i) % 7) + 0.5, "quantity": (start + i) % 3, "country": "FR" if i % 2 else "DE"}
            for i, (s, u) in enumerate(zip(offsets_s, users))]


def case_for(rows: list[dict]) -> AggregationCase:
    table = pa.Table.from_pylist([{k: r[k] for k in SCHEMA.names} for r in rows], schema=SCHEMA)
    return AggregationCase(interval="10m", windows=["1h", "1d"], aggregations=spec_for(["1h", "1d"]),
                           events=table, entities=sorted({r["user_id"] for r in rows}))


def write_tiles(view, rows: list[dict]) -> None:
    case = case_for(rows)
    tiles = reference_tiles(case.events, ["user_id"], "ts", case.aggregations, case.interval)
    write_deltalake(view.delta_uri, tiles.replace_schema_metadata(None), mode="overwrite",
                    partition_by=["_partition_date"], configuration={"delta.enableChangeDataFeed": "true"})


@pytest.fixture
def setup(tmp_path, online_config, dynamodb_client):
    name = f"stream_agg_{uuid.uuid4().hex[:6]}"
    case = case_for(events(base_time(), [0], [1]))
    view = stream_view(case_view(case, str(tmp_path / name), name=name))
    registry = stream_registry(view, delta_uri=str(tmp_path / "log"))
    ensure_tables(registry, online_config, client=dynamodb_client)
    return view, registry


def check(registry, online_config, view, every: list[dict], users: list[int], t: dt.datetime) -> None:
    names = [f.name for f in view.features]
    reads = OnlineStore(registry, online_config).read([{"user_id": u} for u in users], {view.name: names}, now=t)
    case = case_for(every)
    for user, read in zip(users, reads):
        expected = expected_features(case.events, user, t, join_keys=("user_id",), timestamp="ts",
                                     aggregations=view.aggregations, interval=INTERVAL)
        assert_values(read[view.name].values, expected, f"user {user} at {t}")


def test_sync_keeps_streamed_events_the_delta_tiles_lack(setup, online_config, dynamodb_client):
    view, registry = setup
    base = base_time()
    early = events(base, [10, 200, 700, 1300, 1900], [1, 2, 1, 2, 1])
    late = events(base, [1950, 2500, 2600, 3100], [1, 1, 2, 2], start=100)  # ingested, not yet in Delta
    ingestor = Ingestor(registry, online_config, dynamodb_client)
    assert ingestor.ingest("transactions", early + late).accepted == 9
    write_tiles(view, early)  # dbt ran over the early events only
    now = dt.datetime.now(UTC)
    report = sync(registry, online_config, progress=False, now=now)
    assert report.views[0].rows_written == 2
    check(registry, online_config, view, early + late, [1, 2], now)
    item = dynamodb_client.get_item(TableName=online_config.table_name(view.name), ConsistentRead=True,
                                    Key={KEY_ATTR: {"S": "1"}, WRITER_ATTR: {"S": SYNC_WRITER}})["Item"]
    # Ingest wrote versions 1 (one transaction), sync merged on top of it: 2.
    assert item[VERSION_ATTR] == {"N": "2"}
    # A later ingest still applies on top of the merged item, and a second sync changes nothing.
    more = events(base, [3300], [1], start=200)
    ingestor.ingest("transactions", more)
    sync(registry, online_config, progress=False, now=now, full=True)
    check(registry, online_config, view, early + late + more, [1, 2], now + dt.timedelta(seconds=1))


def test_sync_adds_tiles_only_delta_has(setup, online_config, dynamodb_client):
    """Backfilled intervals come from Delta; streamed intervals stay; Delta wins an interval it has more of."""
    view, registry = setup
    base = base_time()
    backfill = events(base, [5, 30, 650], [1, 1, 1])  # never streamed
    streamed = events(base, [1300, 1400], [1, 1], start=100)
    Ingestor(registry, online_config, dynamodb_client).ingest("transactions", streamed)
    write_tiles(view, backfill)
    now = dt.datetime.now(UTC)
    sync(registry, online_config, progress=False, now=now)
    check(registry, online_config, view, backfill + streamed, [1], now)


def test_a_sync_racing_an_ingest_merges_again(setup, online_config, dynamodb_client, monkeypatch):
    view, registry = setup
    base = base_time()
    first = events(base, [10, 700], [1, 1])
    ingestor = Ingestor(registry, online_config, dynamodb_client)
    ingestor.ingest("transactions", first)
    write_tiles(view, first)
    racing = events(base, [1500], [1], start=50)
    original = dynamodb_client.put_item
    raced = []

    def put_after_an_ingest(**kwargs):
        if not raced:  # an ingest commits between the sync's read and its write
            raced.append(ingestor.ingest("transactions", racing))
        return original(**kwargs)

    monkeypatch.setattr(dynamodb_client, "put_item", put_after_an_ingest)
    now = dt.datetime.now(UTC)
    sync(registry, online_config, progress=False, now=now, client=dynamodb_client)
    assert raced and raced[0].accepted == 1
    check(registry, online_config, view, first + racing, [1], now)


def test_merge_synced_keeps_the_tile_with_more_events_and_the_synced_one_on_a_tie(setup):
    view, _ = setup
    layout = TileLayout.for_view(view)
    synced = EntityTiles({10: {"_events": 3, "amount__n": 3}, 11: {"_events": 1, "amount__n": 1}}, 5, 0)
    online = EntityTiles({10: {"_events": 2, "amount__n": 2}, 11: {"_events": 1, "amount__n": 0},
                          12: {"_events": 4, "amount__n": 4}}, 9, 7)
    merged = merge_synced(layout, synced, online, sync_seconds=12 * INTERVAL)
    assert merged.tiles == {10: synced.tiles[10], 11: synced.tiles[11], 12: online.tiles[12]}
    assert (merged.newest_us, merged.version) == (9, 7)
    # Tiles that left the longest window (1d) of the sync time are dropped.
    later = merge_synced(layout, synced, online, sync_seconds=11 * INTERVAL + 86_400)
    assert list(later.tiles) == [12]
