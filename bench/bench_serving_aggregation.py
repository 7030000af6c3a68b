"""Benchmark serving an aggregation feature view against raw BatchGetItem of the same items, in one run.

Starts DynamoDB Local in memory, writes the final tiles of a month of transactions per user (1-hour
interval, ~2 transactions a day) to a Delta table, syncs them with `online_sync.sync` (one item per
user), starts `hindsight serve` (gunicorn) on a free 127.0.0.1 port, then, for 1 and 10 users per
request at 1 client thread, measures latency p50/p99 of
  raw   client.batch_get_item with exactly the key and projection the server's store reads (the
        sync slot of each user, the tile attributes the features need);
  http  POST /v1/features for the `user_aggregates` service: 15 features (count over 1h/1d/7d/30d;
        sum, mean, max over 1d/30d; min, stddev over 7d/30d; last over 30d), combined at request time.
Targets: p50 overhead over raw <= 1.5 ms for 1 entity and <= 2.5 ms for 10. Also prints the
in-process cost of combining (CombinePlan.combine) per item.

    .venv/bin/python bench/bench_serving_aggregation.py [--scale medium] [--users 3000] [--requests 400]

Everything listens on 127.0.0.1 only (DynamoDB Local itself binds every interface: it has no
bind-address option).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from bench_serving import CpuMeter, HttpCaller, compare, run_cell, start_server, stop_server  # same load generator
from deltalake import write_deltalake

from hindsight.core.ports import free_port
from hindsight.core.settings import Settings
from hindsight.offline_store import tiles
from hindsight.online_sync import OnlineStoreConfig, ensure_tables, sync
from hindsight.online_sync.codec import KEY_ATTR, SYNC_WRITER, WRITER_ATTR, entity_key
from hindsight.online_sync.combine import CombinePlan
from hindsight.online_sync.config import make_client
from hindsight.online_sync.keys import KeyStore
from hindsight.online_sync.local import DynamoDBLocal
from hindsight.online_sync.store import _plan
from hindsight.registry_sync.model import Aggregation, Entity, Feature, FeatureRef, FeatureService, FeatureView, Registry

REPO = Path(__file__).resolve().parents[1]
#: Defaults per scale: users, requests per cell, seconds per cell, rounds.
SCALES = {"small": (300, 60, 3.0, 1), "medium": (3000, 400, 10.0, 4)}
UTC = dt.timezone.utc
TARGETS_MS = {1: 1.5, 10: 2.5}
HOUR, DAY = 3600, 86_400
VIEW = "user_transaction_aggregates"
AGGREGATIONS = (
    *(Aggregation(f"txn_count_{w}", "count", "*", s) for w, s in (("1h", HOUR), ("1d", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY))),
    *(Aggregation(f"amount_{f}_{w}", f, "amount", s) for f in ("sum", "mean", "max")
      for w, s in (("1d", DAY), ("30d", 30 * DAY))),
    *(Aggregation(f"amount_{f}_{w}", f, "amount", s) for f in ("min", "stddev") for w, s in (("7d", 7 * DAY), ("30d", 30 * DAY))),
    Aggregation("country_last_30d", "last", "country", 30 * DAY),
)


def bench_registry(root: Path) -> Registry:
    inputs = {"*": None, "amount": "float64", "country": "string"}
    features = tuple(Feature(a.name, tiles.feature_dtype(a.function, inputs[a.column])) for a in AGGREGATIONS)
    view = FeatureView(
        name=VIEW, kind="aggregation", entities=("user",), join_keys=("user_id",), join_key_dtypes=("int64",),
        timestamp_field="ts", created_field=None, ttl_seconds=None, online=True, delta_uri=str(root / VIEW),
        features=features, partition_columns=("_partition_date",), aggregation_interval_seconds=HOUR,
        aggregations=AGGREGATIONS,
    )
    service = FeatureService("user_aggregates", tuple(FeatureRef(VIEW, f.name) for f in features))
    return Registry(project="bench", entities=(Entity("user", ("user_id",)),), feature_views=(view,),
                    feature_services=(service,))


def final_tiles(users: int, now: dt.datetime, rng: random.Random) -> pa.Table:
    """One row per user and hour with transactions in the last 30 days: that hour's whole tile."""
    rows = []
    start = int(now.timestamp()) - 30 * DAY
    for user in range(users):
        stamps = sorted(rng.randrange(start, int(now.timestamp())) for _ in range(rng.randrange(30, 90)))
        by_hour: dict[int, list[int]] = {}
        for s in stamps:
            by_hour.setdefault(s // HOUR, []).append(s)
        for hour, members in by_hour.items():
            amounts = [round(rng.uniform(1, 500), 2) for _ in members]
            mean = sum(amounts) / len(amounts)
            newest = dt.datetime.fromtimestamp(members[-1], UTC)
            rows.append({
                "user_id": user, "ts": newest, "_tile_start": dt.datetime.fromtimestamp(hour * HOUR, UTC),
                "_events": len(members), "amount__n": len(amounts), "amount__sum": sum(amounts),
                "amount__m2": sum((a - mean) ** 2 for a in amounts), "amount__min": min(amounts),
                "amount__max": max(amounts), "country__n": len(members),
                "country__last": rng.choice(["FR", "DE", "ES", "IT"]), "country__last_at": newest,
                "_partition_date": newest.date(),
            })
    stamp = pa.timestamp("us", tz="UTC")
    schema = pa.schema([
        ("user_id", pa.int64()), ("ts", stamp), ("_tile_start", stamp), ("_events", pa.int64()),
        ("amount__n", pa.int64()), ("amount__sum", pa.float64()), ("amount__m2", pa.float64()),
        ("amount__min", pa.float64()), ("amount__max", pa.float64()), ("country__n", pa.int64()),
        ("country__last", pa.string()), ("country__last_at", stamp), ("_partition_date", pa.date32()),
    ])
    return pa.Table.from_pylist(rows, schema=schema)


def raw_request(registry: Registry, config: OnlineStoreConfig, users: list[int]) -> dict[str, Any]:
    """BatchGetItem RequestItems for what the server reads: the sync slot of each user, same projection."""
    view = registry.feature_views[0]
    plan = _plan(view, config.table_name(VIEW), tuple(f.name for f in view.features))
    keys = list(dict.fromkeys(entity_key([u]) for u in users))
    return {plan.table: {"Keys": [{KEY_ATTR: {"S": k}, WRITER_ATTR: {"S": SYNC_WRITER}} for k in keys],
                         "ProjectionExpression": plan.projection, "ExpressionAttributeNames": plan.attribute_names}}


def combine_cost(registry: Registry, config: OnlineStoreConfig, users: int) -> tuple[float, float]:
    """(microseconds per item to combine all features, mean tiles per item) over up to 200 items."""
    view = registry.feature_views[0]
    plan = _plan(view, config.table_name(VIEW), tuple(f.name for f in view.features))
    client = make_client(config)
    items = client.batch_get_item(RequestItems=raw_request(registry, config, list(range(min(users, 100)))))
    found = items["Responses"][plan.table]
    combine: CombinePlan = plan.combine
    now_us = int(time.time() * 1_000_000)
    from hindsight.online_sync.tile_items import decode_offsets

    tiles_per_item = statistics.mean(len(decode_offsets(i["_hs_tiles"]["B"])[2]) for i in found)
    rounds = 50
    began = time.process_time()  # CPU time: steadier than wall time on a shared machine
    for _ in range(rounds):
        for item in found:
            combine.combine(item, now_us)
    return (time.process_time() - began) / (rounds * len(found)) * 1e6, tiles_per_item


def store_cpu(registry: Registry, config: OnlineStoreConfig, users: int, size: int, requests: int,
              rng: random.Random) -> tuple[float, float]:
    """CPU ms per request in this process: (raw BatchGetItem, OnlineStore.read of every feature).

    The store's own cost over the raw call (request building, parsing, combining), measured in CPU
    time of this process, which a busy machine disturbs far less than wall-clock latency.
    """
    from hindsight.online_sync import OnlineStore

    store = OnlineStore(registry, config)
    client = make_client(config)
    names = {VIEW: [f.name for f in registry.feature_views[0].features]}
    sets = [[rng.randrange(users) for _ in range(size)] for _ in range(requests)]
    raw_payloads = [raw_request(registry, config, s) for s in sets]
    rows = [[{"user_id": u} for u in s] for s in sets]
    for payload, entity_rows in zip(raw_payloads[:20], rows[:20]):  # warm both
        client.batch_get_item(RequestItems=payload)
        store.read(entity_rows, names)
    began = time.process_time()
    for payload in raw_payloads:
        client.batch_get_item(RequestItems=payload)
    raw = (time.process_time() - began) / requests * 1000
    began = time.process_time()
    for entity_rows in rows:
        store.read(entity_rows, names)
    return raw, (time.process_time() - began) / requests * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="medium", choices=sorted(SCALES),
                        help="defaults for the four options below (medium: 3000, 400, 10, 4)")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--requests", type=int, default=None, help="requests per cell")
    parser.add_argument("--seconds", type=float, default=None, help="time limit per cell")
    parser.add_argument("--rounds", type=int, default=None, help="alternations of raw and HTTP per cell")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: hindsight serve's)")
    parser.add_argument("--sizes", default="1,10", help="entities per request")
    args = parser.parse_args()
    for name, default in zip(("users", "requests", "seconds", "rounds"), SCALES[args.scale]):
        if getattr(args, name) is None:
            setattr(args, name, default)
    rng = random.Random(11)
    now = dt.datetime.now(UTC)
    results = []
    with tempfile.TemporaryDirectory(prefix="hindsight-bench-agg-") as tmp:
        work = Path(tmp)
        local = DynamoDBLocal(Settings.from_env(REPO).tools_dir, work / "dynamodb")
        endpoint = local.start(port=free_port(), in_memory=True)
        server = None
        try:
            registry = bench_registry(work / "offline")
            config = OnlineStoreConfig(endpoint_url=endpoint, table_prefix="bench_agg_", region="us-east-1")
            ensure_tables(registry, config)
            write_deltalake(registry.feature_views[0].delta_uri, final_tiles(args.users, now, rng),
                            partition_by=["_partition_date"])
            began = time.perf_counter()
            report = sync(registry, config, progress=False)
            print(f"synced {report.rows_written} items in {time.perf_counter() - began:.1f} s", file=sys.stderr)
            per_item_us, tiles_per_item = combine_cost(registry, config, args.users)
            sizes = [int(x) for x in args.sizes.split(",")]
            cpu = {size: store_cpu(registry, config, args.users, size, args.requests, rng) for size in sizes}
            registry_file = work / "registry.json"
            registry_file.write_text(json.dumps(registry.to_dict()))
            port = free_port()
            env = {"HINDSIGHT_DYNAMODB_ENDPOINT": endpoint, "HINDSIGHT_DYNAMODB_TABLE_PREFIX": config.table_prefix,
                   "HINDSIGHT_STATE": str(work / "state")}
            server = start_server(registry_file, port, env, args.workers, None, work / "serve.log")
            client = make_client(config)
            caller = HttpCaller(port, KeyStore(config).create("bench", read=["*"])[0])
            meter = CpuMeter(server.pid, local.status().pid)

            def raw(items: dict[str, Any]) -> None:
                response = client.batch_get_item(RequestItems=items)
                if response.get("UnprocessedKeys"):
                    raise RuntimeError("unprocessed keys")

            for size in sizes:
                user_sets = [[rng.randrange(args.users) for _ in range(size)] for _ in range(2000)]
                raw_payloads = [raw_request(registry, config, users) for users in user_sets]
                http_payloads = [json.dumps({"feature_service": "user_aggregates",
                                             "entities": [{"user_id": u} for u in users]}).encode()
                                 for users in user_sets]
                run_cell(raw, raw_payloads, 1, 50, 5)
                run_cell(caller, http_payloads, 1, 50, 5)
                raw_stats, http_stats = compare(raw, raw_payloads, caller, http_payloads, 1, args.requests,
                                                args.seconds, args.rounds, meter)
                results.append((size, raw_stats, http_stats))
        finally:
            if server is not None:
                stop_server(server)
            local.stop()

    print(f"\naggregation view served vs raw BatchGetItem ({os.cpu_count()} cores, 1 client thread, "
          f"{len(AGGREGATIONS)} features, {tiles_per_item:.0f} tiles per item on average)")
    header = (f"{'entities':>8} | {'raw p50':>7} {'raw p99':>7} | {'http p50':>8} {'http p99':>8} | {'p50 +ms':>7} | "
              f"{'raw cpu':>7} {'http cpu':>8} {'cpu +ms':>7}  target (p50)")
    print(header)
    print("-" * len(header))
    for size, raw_stats, http_stats in results:
        overhead = http_stats["p50_ms"] - raw_stats["p50_ms"]
        cpu_overhead = http_stats["cpu_ms"] - raw_stats["cpu_ms"]
        target = TARGETS_MS.get(size)
        verdict = "" if target is None else f"<= {target} ms: {'ok' if overhead <= target else 'MISSED'}"
        print(f"{size:>8} | {raw_stats['p50_ms']:>7.2f} {raw_stats['p99_ms']:>7.2f} | {http_stats['p50_ms']:>8.2f} "
              f"{http_stats['p99_ms']:>8.2f} | {overhead:>+7.2f} | {raw_stats['cpu_ms']:>7.2f} {http_stats['cpu_ms']:>8.2f} "
              f"{cpu_overhead:>+7.2f}  {verdict}")
    print("cpu = CPU ms per request summed over the load generator, gunicorn (http only) and DynamoDB Local: on a busy")
    print("machine wall-clock latencies swing with the neighbours while this cost stays put.")
    print(f"combining one item's {len(AGGREGATIONS)} features in-process: {per_item_us:.0f} us of CPU")
    for size, (raw_ms, store_ms) in cpu.items():
        print(f"{size:>3} entities, CPU ms per request in-process: raw BatchGetItem {raw_ms:.2f}, "
              f"OnlineStore.read {store_ms:.2f} ({store_ms - raw_ms:+.2f} for the store's plan, parsing and combining)")
    print(f"latencies in ms; raw and HTTP alternate in {args.rounds} rounds per cell; "
          f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
