"""Kinesis -> the real Ingestor -> DynamoDB Local and the Delta event log, exactly once under redelivery.

A consumer is killed with SIGKILL right after an ingest returned and before its checkpoint; the
replacement takes its shards over at once (the holder's pid is gone from this host), reads that
batch again, and the Ingestor counts it as duplicates: the online tiles equal the aggregation
oracle over the events put (each once), and the flushed event log holds each event once.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from hindsight.online_sync import OnlineStore
from hindsight.online_sync.checkpoints import CheckpointStore
from hindsight.streams.flush import Flusher
from hindsight.streams.ingest import Ingestor
from hindsight.streams.kinesis import KinesisConsumer, create_streams
from hindsight.streams.kinesis_producer import put_events
from tests.aggregation_oracle import expected_features
from tests.fixtures.aggregation_online import assert_values
from tests.fixtures.kinesis import build, demo_events

pytestmark = pytest.mark.integration

_REPO = Path(__file__).resolve().parents[2]
KILLED = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    from hindsight.online_sync.checkpoints import CheckpointStore
    from hindsight.online_sync.config import OnlineStoreConfig
    from hindsight.registry_sync.model import Registry
    from hindsight.streams.ingest import Ingestor
    from hindsight.streams.kinesis import KinesisConfig, KinesisConsumer, make_kinesis_client

    registry_file, endpoint, prefix, kinesis, marker = sys.argv[1:]
    registry = Registry.from_dict(json.loads(Path(registry_file).read_text()))
    config = OnlineStoreConfig(endpoint_url=endpoint, table_prefix=prefix, region="us-east-1")
    ingestor = Ingestor(registry, config)

    def ingest_then_die(source, rows):
        report = ingestor.ingest(source, rows)
        Path(marker).write_text(json.dumps({"accepted": report.accepted, "rows": len(rows)}))
        os.kill(os.getpid(), signal.SIGKILL)  # acknowledged, not checkpointed

    consumer = KinesisConsumer(registry.stream_sources, ingest_then_die,
                               make_kinesis_client(KinesisConfig(kinesis, "us-east-1")), CheckpointStore(config),
                               rejects_dir=Path(marker).parent / "rejected", lease_seconds=60, poll_interval=0.05,
                               batch_limit=50)
    consumer.run()
""")


def test_a_consumer_killed_before_its_checkpoint_counts_nothing_twice(
        tmp_path, online_config, kinesis_client, kinesis_endpoint, kinesis_stream_prefix):
    registry, source, view = build(tmp_path, online_config, f"{kinesis_stream_prefix}transactions")
    create_streams(kinesis_client, [source], shards=2)
    now = dt.datetime.now(dt.timezone.utc)
    events = demo_events(300, users=8, now=now)
    put_events(kinesis_client, source.kinesis_stream, events, lambda e: str(e["user_id"]))

    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(registry.to_dict()))
    marker = tmp_path / "killed.json"
    killed = subprocess.run([sys.executable, "-c", KILLED, str(registry_file), online_config.endpoint_url,
                             online_config.table_prefix, kinesis_endpoint, str(marker)],
                            cwd=_REPO, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-3000:]
    first = json.loads(marker.read_text())
    assert first["accepted"] > 0

    checkpoints = CheckpointStore(online_config)
    # Nothing was checkpointed: the replacement reads every record again, the first batch included.
    assert all(c.records == 0 for c in checkpoints.all(source.name))
    ingestor = Ingestor(registry, online_config)
    replacement = KinesisConsumer([source], ingestor.ingest, kinesis_client, checkpoints,
                                  rejects_dir=tmp_path / "rejected", lease_seconds=60, poll_interval=0.05,
                                  batch_limit=50)
    thread = replacement.start()
    deadline = time.monotonic() + 120
    while sum(s.records for s in replacement.stats.values()) < 300:
        assert time.monotonic() < deadline and thread.is_alive(), replacement.errors
        time.sleep(0.1)
    replacement.stop()
    thread.join(timeout=60)

    stats = list(replacement.stats.values())
    assert len(stats) == 2  # it took over both shards of the dead consumer at once
    # Every record read again; those the killed consumer ingested (its other shard's worker may have
    # ingested a batch too before the kill) are duplicates.
    assert sum(s.accepted + s.duplicates for s in stats) == 300
    assert sum(s.duplicates for s in stats) >= first["accepted"]
    assert sum(c.records for c in checkpoints.all(source.name)) == 300

    # Online: every event counted once, as the oracle says.
    store = OnlineStore(registry, online_config)
    users = sorted({e["user_id"] for e in events})
    names = [f.name for f in view.features]
    read_at = dt.datetime.now(dt.timezone.utc)
    rows = [{**e, "ts": dt.datetime.fromisoformat(e["ts"])} for e in events]
    for user, read in zip(users, store.read([{"user_id": u} for u in users], {view.name: names}, now=read_at),
                          strict=True):
        expected = expected_features(rows, user, read_at, join_keys=("user_id",), timestamp="ts",
                                     aggregations=view.aggregations, interval=view.aggregation_interval_seconds)
        assert_values(read[view.name].values, expected, f"user {user}")
    assert sum(read[view.name].values["txn_count_1h"]
               for read in store.read([{"user_id": u} for u in users], {view.name: ["txn_count_1h"]}, now=read_at)) == 300

    # Offline: the flushed event log holds each event once.
    Flusher(registry, online_config).flush_once()
    log = DeltaTable(source.delta_uri).to_pyarrow_table(columns=["transaction_id"])
    assert log.num_rows == 300
    assert pc.count_distinct(log["transaction_id"]).as_py() == 300
