"""Benchmark streaming through Kinesis: event-to-readable latency at a fixed rate, and ingest throughput.

Starts DynamoDB Local (in memory) and kinesalite on free 127.0.0.1 ports, a stream source
`streams.transactions` with a 4-shard Kinesis stream, and the demo's stream feature view
`user_stream_activity` (1-minute tiles; count, sum, mean, max over 10m and 1h), then runs the
consumer of `hindsight stream run` (streams.kinesis.KinesisConsumer with the Ingestor) in process:

  latency     events put at a fixed rate (PutRecords of one event each); every 10th is a probe for
              a user of its own: the time from its PutRecords ack until `OnlineStore.read` returns
              txn_count_10m = 1 (one reader polls every pending probe every 3 ms). p50/p99 against the target p99 <= 100 ms.
              Reference, same run: raw Kinesis delivery, PutRecord ack -> a GetRecords loop at the
              consumer's poll interval returns it (no ingest).
  throughput  N events put beforehand over 4 shards; a fresh consumer group reads and ingests all of
              them: events/s. Reference, same run: the same N records read with raw GetRecords
              loops over the 4 shards in parallel (no ingest).

The consumer polls an idle shard every 20 ms here: kinesalite has no read limit. AWS allows 5
GetRecords per second per shard (poll interval 0.2 s, hindsight.yml streams.poll_interval), which
adds up to 200 ms to a real deployment's latency.

    .venv/bin/python bench/bench_stream_kinesis.py [--scale medium|small] [--rate 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hindsight.core.ports import free_port
from hindsight.core.settings import Settings
from hindsight.offline_store import tiles
from hindsight.offline_store.event_log import ensure_event_log, event_log_schema
from hindsight.online_sync import OnlineStore
from hindsight.online_sync.checkpoints import CheckpointStore
from hindsight.online_sync.config import OnlineStoreConfig, make_client
from hindsight.online_sync.local import DynamoDBLocal
from hindsight.online_sync.tables import ensure_tables
from hindsight.registry_sync.model import Aggregation, Feature, FeatureView, Registry, StreamSource
from hindsight.streams.ingest import Ingestor
from hindsight.streams.kinesalite import Kinesalite
from hindsight.streams.kinesis import (
    KinesisConfig,
    KinesisConsumer,
    create_streams,
    encode_event,
    list_shards,
    make_kinesis_client,
)
from hindsight.streams.kinesis_producer import put_events

VIEW = "user_stream_activity"
#: What dbt-duckdb compiles models/features/user_stream_activity.sql to (FeatureView.stream_sql).
STREAM_SQL = """
with transactions as (
    select user_id, ts, amount
    from "hindsight"."streams"."transactions"
    where /* hindsight:processing_range */ (1 = 1) /* hindsight:processing_range_end */
)
select user_id, ts as event_timestamp, amount from transactions
"""
SCALES = {"small": {"rate": 50.0, "seconds": 8.0, "events": 3_000, "users": 500},
          "medium": {"rate": 100.0, "seconds": 20.0, "events": 20_000, "users": 5_000}}
POLL_S = 0.02
SHARDS = 4
_REPO = Path(__file__).resolve().parents[1]


def bench_registry(root: Path, stream: str) -> Registry:
    aggregations = tuple(Aggregation(f"{name}_{label}", function, column, seconds)
                         for name, function, column in (("txn_count", "count", "*"), ("amount_sum", "sum", "amount"),
                                                        ("amount_mean", "mean", "amount"), ("amount_max", "max", "amount"))
                         for label, seconds in (("10m", 600), ("1h", 3600)))
    features = tuple(Feature(a.name, tiles.feature_dtype(a.function, None if a.column == "*" else "float64"))
                     for a in aggregations)
    source = StreamSource(
        name="streams.transactions", event_id_field="transaction_id", timestamp_field="ts", entities=("user",),
        join_keys=("user_id",), delta_uri=str(root / "event_log"), kinesis_stream=stream,
        columns=(Feature("transaction_id", "int64"), Feature("user_id", "int64"), Feature("merchant_id", "int64"),
                 Feature("amount", "float64"), Feature("country", "string"), Feature("ts", "timestamp")))
    view = FeatureView(
        name=VIEW, kind="aggregation", entities=("user",), join_keys=("user_id",), join_key_dtypes=("int64",),
        timestamp_field="event_timestamp", created_field=None, ttl_seconds=None, online=True,
        delta_uri=str(root / VIEW), features=features, partition_columns=("_partition_date",),
        aggregation_interval_seconds=60, aggregations=aggregations, stream_source=source.name,
        stream_sql=STREAM_SQL, stream_sql_dialect="duckdb")
    return Registry(project="bench", feature_views=(view,), stream_sources=(source,))


def percentiles(values: list[float]) -> tuple[float, float]:
    cut = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return cut[49], cut[98]


def event(i: int, user: int, rng: random.Random) -> dict[str, Any]:
    return {"transaction_id": i, "user_id": user, "merchant_id": rng.randint(1, 100),
            "amount": round(rng.uniform(1, 300), 2), "country": rng.choice(["DE", "FR", "ES"]),
            "ts": dt.datetime.now(dt.timezone.utc).isoformat()}


def start_consumer(registry: Registry, config: OnlineStoreConfig, kinesis: Any, root: Path, group: str,
                   ) -> tuple[KinesisConsumer, threading.Thread]:
    ingestor = Ingestor(registry, config)
    # A consumer group of its own: a table prefix of its own for the checkpoints.
    checkpoints = CheckpointStore(dataclasses.replace(config, table_prefix=f"{config.table_prefix}{group}_"))
    consumer = KinesisConsumer(registry.stream_sources, ingestor.ingest, kinesis, checkpoints,
                               rejects_dir=root / "rejected", lease_seconds=30, poll_interval=POLL_S)
    ready = threading.Event()
    thread = threading.Thread(target=consumer.run, kwargs={"ready": ready.set}, daemon=True)
    thread.start()
    ready.wait(60)
    return consumer, thread


def latency(registry: Registry, config: OnlineStoreConfig, kinesis: Any, stream: str, rate: float, seconds: float,
            users: int) -> list[float]:
    """PutRecords ack -> OnlineStore.read shows the probe user's event, in ms."""
    store = OnlineStore(registry, config)
    rng = random.Random(1)
    results: list[float] = []
    pending: dict[int, float] = {}
    lock = threading.Lock()
    done = threading.Event()

    def prober() -> None:
        # One reader for every pending probe (one BatchGetItem per round), so polling does not
        # starve the consumer of the GIL.
        while not done.is_set() or pending:
            with lock:
                waiting = dict(pending)
            if waiting:
                users = list(waiting)
                reads = store.read([{"user_id": u} for u in users], {VIEW: ["txn_count_10m"]})
                seen = time.perf_counter()
                with lock:
                    for user, read in zip(users, reads, strict=True):
                        if read[VIEW].values.get("txn_count_10m"):
                            results.append((seen - pending.pop(user)) * 1000)
                        elif seen - pending[user] > 30:
                            pending.pop(user)  # lost: counted as missing below
            time.sleep(0.003)

    reader = threading.Thread(target=prober, daemon=True)
    reader.start()
    total = int(rate * seconds)
    started = time.perf_counter()
    for i in range(total):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        is_probe = i % 10 == 0
        user = 10_000_000 + i if is_probe else rng.randint(1, users)
        record = event(1_000_000_000 + i, user, rng)
        kinesis.put_records(StreamName=stream, Records=[{"Data": encode_event(record), "PartitionKey": str(user)}])
        if is_probe:
            with lock:
                pending[user] = time.perf_counter()
    done.set()
    reader.join()
    missing = total // 10 + (1 if total % 10 else 0) - len(results)
    if missing:
        print(f"  {missing} probes never became readable within 30 s", flush=True)
    return results


def raw_delivery(kinesis: Any, stream: str, samples: int) -> list[float]:
    """PutRecord ack -> GetRecords (polled at the consumer's interval) returns it, in ms."""
    shard = list_shards(kinesis, stream)[0]["ShardId"]
    out = []
    for i in range(samples):
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]
        kinesis.put_record(StreamName=stream, Data=b'{"reference": %d}' % i, PartitionKey="ref",
                           ExplicitHashKey="0")
        acked = time.perf_counter()
        while True:
            answer = kinesis.get_records(ShardIterator=iterator, Limit=100)
            iterator = answer["NextShardIterator"]
            if answer["Records"]:
                out.append((time.perf_counter() - acked) * 1000)
                break
            time.sleep(POLL_S)
    return out


def raw_read(kinesis: Any, stream: str, expected: int) -> float:
    """Read `expected` records from every shard in parallel with raw GetRecords; events/s."""
    counts: list[int] = []

    def read(shard: str) -> None:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        n = 0
        while True:
            answer = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            n += len(answer["Records"])
            iterator = answer["NextShardIterator"]
            if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
                break
        counts.append(n)

    started = time.perf_counter()
    threads = [threading.Thread(target=read, args=(s["ShardId"],)) for s in list_shards(kinesis, stream)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    assert sum(counts) >= expected, (sum(counts), expected)
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="medium", choices=sorted(SCALES), help="load size (small: a quick check)")
    parser.add_argument("--rate", type=float, default=None, help="events per second in the latency phase")
    parser.add_argument("--seconds", type=float, default=None, help="length of the latency phase")
    parser.add_argument("--events", type=int, default=None, help="events in the throughput phase")
    args = parser.parse_args()
    scale = SCALES[args.scale]
    rate, seconds = args.rate or scale["rate"], args.seconds or scale["seconds"]
    events, users = args.events or scale["events"], scale["users"]

    tools = Settings.load(_REPO).tools_dir
    with tempfile.TemporaryDirectory(prefix="bench-kinesis-") as temp:
        root = Path(temp)
        dynamodb = DynamoDBLocal(tools, root / "dynamodb-state")
        kinesalite = Kinesalite(tools, root / "kinesalite-state")
        endpoint = dynamodb.start(port=free_port(), in_memory=True)
        try:
            kinesis_endpoint = kinesalite.start(port=free_port())
            config = OnlineStoreConfig(endpoint_url=endpoint, region="us-east-1", table_prefix="bench_")
            kinesis = make_kinesis_client(KinesisConfig(kinesis_endpoint, "us-east-1"))
            registry = bench_registry(root, "bench-latency")
            ensure_tables(registry, config, client=make_client(config))
            ensure_event_log(registry.stream_sources[0].delta_uri, event_log_schema(registry.stream_sources[0]))
            create_streams(kinesis, registry.stream_sources, shards=SHARDS)
            print(f"Kinesis (kinesalite) -> consumer ({SHARDS} shards, poll {POLL_S * 1000:.0f} ms) -> Ingestor "
                  f"-> DynamoDB Local (in memory); view {VIEW} (8 features, 1-minute tiles)", flush=True)

            consumer, thread = start_consumer(registry, config, kinesis, root, "latency")
            create_streams(kinesis, [dataclasses.replace(registry.stream_sources[0], kinesis_stream="bench-reference")],
                           shards=1)
            reference = raw_delivery(kinesis, "bench-reference", 50)
            measured = latency(registry, config, kinesis, "bench-latency", rate, seconds, users)
            consumer.stop()
            thread.join(60)
            p50, p99 = percentiles(measured)
            r50, r99 = percentiles(reference)
            print(f"\nevent-to-readable latency at {rate:.0f} events/s for {seconds:.0f} s ({len(measured)} probes)")
            print(f"  raw Kinesis delivery (PutRecord ack -> GetRecords)  p50 {r50:7.1f} ms  p99 {r99:7.1f} ms")
            print(f"  PutRecords ack -> online read reflects it          p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
                  f"  (x{p50 / max(r50, 1e-9):.1f} / x{p99 / max(r99, 1e-9):.1f} the reference; target p99 <= 100 ms: "
                  f"{'met' if p99 <= 100 else 'NOT met'})")

            stream = "bench-throughput"
            throughput_registry = dataclasses.replace(registry, stream_sources=(
                dataclasses.replace(registry.stream_sources[0], kinesis_stream=stream),))
            create_streams(kinesis, throughput_registry.stream_sources, shards=SHARDS)
            rng = random.Random(2)
            put = put_events(kinesis, stream, (event(i, rng.randint(1, users), rng) for i in range(events)),
                             lambda e: str(e["user_id"]))
            raw_rate = raw_read(kinesis, stream, events)
            started = time.perf_counter()
            consumer, thread = start_consumer(throughput_registry, config, kinesis, root, "throughput")
            while sum(s.records for s in consumer.stats.values()) < events:
                if not thread.is_alive():
                    sys.exit(f"the consumer stopped: {consumer.errors}")
                time.sleep(0.02)
            took = time.perf_counter() - started
            consumer.stop()
            thread.join(60)
            accepted = sum(s.accepted for s in consumer.stats.values())
            print(f"\ningest throughput: {events:,} events over {SHARDS} shards ({users:,} users; put at "
                  f"{put.records / put.seconds:,.0f}/s beforehand)")
            print(f"  raw GetRecords, {SHARDS} shards in parallel          {raw_rate:10,.0f} events/s")
            print(f"  consumer + Ingestor ({accepted:,} accepted)           {events / took:10,.0f} events/s"
                  f"  ({events / took / raw_rate:.2f} x the reference)")
        finally:
            kinesalite.stop()
            dynamodb.stop()


if __name__ == "__main__":
    main()
