"""Benchmark: `sync` of a generated Delta table against a raw boto3 BatchWriteItem loop.

Both write the same items (the newest row of each of 50k entities, from 200k Delta rows) with the
same thread count to the same in-memory DynamoDB Local, each into fresh tables. A warm-up write runs
first (the JVM's JIT favours whoever goes second otherwise), then the two alternate `--rounds` times;
the best round of each is compared. Target: sync >= 70% of the raw loop's items/s.

    .venv/bin/python bench/bench_sync.py [--scale medium] [--rows 200000] [--entities 50000] [--threads 4] [--push]

With --push the view has `push: true`, so sync writes it with newest-wins conditional
TransactWriteItems (`online_sync.write_rule`) while the raw loop stays BatchWriteItem.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import socket
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake

from hindsight.core.settings import Settings
from hindsight.online_sync import OnlineStoreConfig, sync
from hindsight.online_sync.batching import MAX_WRITE_BATCH, chunked, write_batch
from hindsight.online_sync.config import make_client
from hindsight.online_sync.local import DynamoDBLocal
from hindsight.online_sync.newest import NewestRows, full_source, open_delta
from hindsight.online_sync.delta_sync import items_from_batch
from hindsight.online_sync.tables import ensure_table
from hindsight.registry_sync.model import Feature, FeatureView, Registry

REPO = Path(__file__).resolve().parents[1]
#: Delta rows and entities per scale (--rows / --entities override them).
SCALES = {"small": (20_000, 5_000), "medium": (200_000, 50_000)}

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
FEATURES = {"amount_mean_7d": "float64", "txn_count_7d": "int64", "home_country": "string",
            "segment": "string", "risk_score": "float64"}


def generate_delta(path: Path, rows: int, entities: int, seed: int = 7) -> FeatureView:
    """A feature view table of `rows` rows over `entities` users, CDF on, partitioned by day."""
    rng = np.random.default_rng(seed)
    users = np.arange(rows) % entities
    event_us = (T0.timestamp() * 1e6 + rng.integers(0, 30 * 86_400, rows) * 1_000_000).astype("int64")
    ts = pa.array(event_us, pa.timestamp("us", tz="UTC"))
    table = pa.table({
        "user_id": pa.array(users, pa.int64()),
        "ts": ts,
        "created": ts,
        "_partition_date": ts.cast(pa.date32()),
        "amount_mean_7d": rng.gamma(2.0, 40.0, rows),
        "txn_count_7d": rng.integers(0, 200, rows),
        "home_country": pa.array(rng.choice(["FR", "DE", "US", "GB", "ES", "IT"], rows)),
        "segment": pa.array(rng.choice(["consumer-retail", "small-business", "enterprise"], rows)),
        "risk_score": rng.random(rows),
    })
    write_deltalake(path, table, partition_by=["_partition_date"], configuration={"delta.enableChangeDataFeed": "true"})
    return FeatureView("bench_user_features", "batch", ("user",), ("user_id",), "ts", "created", 90 * 86_400, True,
                       str(path), tuple(Feature(n, t) for n, t in FEATURES.items()))


def newest_items(view: FeatureView) -> list[dict]:
    """The exact items sync writes, built up front so the raw loop only writes."""
    with NewestRows(view) as newest:
        newest.load(full_source(open_delta(view)), from_change_feed=False)
        return [item for batch in newest.batches() for _, _, item in items_from_batch(batch, view)]


def run_sync(config: OnlineStoreConfig, registry: Registry) -> tuple[float, float, int, int]:
    """(seconds, client CPU seconds, Delta rows read, items written) of one full sync."""
    client = make_client(config)
    started, cpu = time.perf_counter(), time.process_time()
    report = sync(registry, config, progress=False, client=client).views[0]
    return time.perf_counter() - started, time.process_time() - cpu, report.rows_read, report.rows_written


def run_raw(config: OnlineStoreConfig, view: FeatureView, items: list[dict], threads: int) -> tuple[float, float, int]:
    """(seconds, client CPU seconds, items written) of a plain BatchWriteItem loop."""
    client = make_client(config)
    ensure_table(client, config, view)
    table = config.table_name(view.name)
    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        written = sum(pool.map(lambda chunk: write_batch(client, table, chunk), chunked(items, MAX_WRITE_BATCH)))
    return time.perf_counter() - started, time.process_time() - cpu, written


def fresh(config: OnlineStoreConfig) -> OnlineStoreConfig:
    return dataclasses.replace(config, table_prefix=f"b{uuid.uuid4().hex[:8]}_")


def drop_tables(config: OnlineStoreConfig) -> None:
    """Delete every table, so each round starts from the same (empty) DynamoDB Local."""
    client = make_client(config)
    for page in client.get_paginator("list_tables").paginate():
        for table in page["TableNames"]:
            client.delete_table(TableName=table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=sorted(SCALES))
    parser.add_argument("--rows", type=int, default=None, help="Delta rows (default: 200,000 at medium scale)")
    parser.add_argument("--entities", type=int, default=None, help="entities (default: 50,000 at medium scale)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--push", action="store_true",
                        help="sync a view with push: true (newest-wins conditional TransactWriteItems, `write_rule`)")
    args = parser.parse_args()
    args.rows = args.rows or SCALES[args.scale][0]
    args.entities = args.entities or SCALES[args.scale][1]

    with tempfile.TemporaryDirectory() as tmp, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        local = DynamoDBLocal(Settings.from_env(REPO).tools_dir, Path(tmp) / "state")
        endpoint = local.start(port=port, in_memory=True)
        try:
            view = generate_delta(Path(tmp) / "bench_user_features", args.rows, args.entities)
            view = dataclasses.replace(view, push=args.push)
            registry = Registry("bench", feature_views=(view,))
            items = newest_items(view)
            base = OnlineStoreConfig(endpoint_url=endpoint, region="us-east-1", write_threads=args.threads)
            print(f"{args.rows:,} Delta rows, {len(items):,} entities, {args.threads} threads, "
                  f"{'push view (conditional transactions)' if args.push else 'view without push'}, "
                  f"~{sum(len(str(i)) for i in items[:1000]) // 1000} chars per item (repr)")
            run_raw(fresh(base), view, items[:20_000], args.threads)  # JVM warm-up
            drop_tables(base)
            syncs, raws = [], []
            for round_ in range(args.rounds):
                # Alternate who goes first: DynamoDB Local drifts as its JVM warms up.
                for contender in ("sync", "raw") if round_ % 2 == 0 else ("raw", "sync"):
                    if contender == "sync":
                        seconds, cpu, read, written = run_sync(fresh(base), registry)
                        syncs.append(written / seconds)
                        print(f"round {round_ + 1}: sync {read:,} rows read, {written:,} items in {seconds:.2f} s "
                              f"= {written / seconds:,.0f} items/s ({read / seconds:,.0f} Delta rows/s); "
                              f"client CPU {cpu:.2f} s")
                    else:
                        seconds, cpu, written = run_raw(fresh(base), view, items, args.threads)
                        raws.append(written / seconds)
                        print(f"round {round_ + 1}: raw BatchWriteItem {written:,} items in {seconds:.2f} s "
                              f"= {written / seconds:,.0f} items/s; client CPU {cpu:.2f} s")
                    drop_tables(base)
            print(f"median: sync {statistics.median(syncs):,.0f} items/s, raw {statistics.median(raws):,.0f} items/s, "
                  f"ratio {statistics.median(syncs) / statistics.median(raws):.0%}")
            print(f"best: sync {max(syncs):,.0f} items/s, raw {max(raws):,.0f} items/s, "
                  f"ratio {max(syncs) / max(raws):.0%} (target >= 70%)")
        finally:
            local.stop()


if __name__ == "__main__":
    main()
