"""Benchmark what sampling served feature vectors (for `hindsight drift`) costs a request.

Starts DynamoDB Local in memory with the serving benchmark's registry and data, then three
`hindsight serve` (gunicorn) servers side by side that differ only in serving.sample_rate:
  off    0 (nothing logged)
  1%     0.01, the default
  100%   1.0, every served entity row queued and appended to Delta
each writing its own served-features log with a 1 s flush interval, so Delta commits happen during
the load. For 1 and 10 entities per request at 1 and 4 client threads, the three alternate in short
rounds (background load hits them alike) and the table gives latency p50/p99 and requests/s, with
the p50 difference from `off`. After the servers stop (flushing their queues), each log's rows and
commits are counted against the rows served, and the dropped samples read from /metrics.

    .venv/bin/python bench/bench_sampling.py [--scale medium] [--requests 300] [--seconds 6] [--rounds 3]

Everything listens on 127.0.0.1 only (DynamoDB Local itself binds every interface: it has no
bind-address option).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench_serving import (  # the same registry, data, load generator and server start as the serving benchmark
    REPO,
    HttpCaller,
    _process_cpu,
    _process_tree,
    free_port,
    http_body,
    run_cell,
    seeded_store,
    start_server,
    stop_server,
    summarize,
)
from deltalake import DeltaTable

from hindsight.core.settings import Settings
from hindsight.online_sync.keys import KeyStore
from hindsight.online_sync.local import DynamoDBLocal
from hindsight.serving.sampling import Sampler, write_rows

#: Defaults per scale: users, merchants, requests per client thread per cell, seconds per cell, rounds.
SCALES = {"small": (300, 50, 60, 2.0, 2), "medium": (3000, 500, 300, 6.0, 3)}
MODES = {"off": 0.0, "1%": 0.01, "100%": 1.0}
UTC = dt.timezone.utc


def offer_cost(rate: float, rows: int, calls: int = 20_000) -> float:
    """Microseconds one request thread spends in `Sampler.offer` for a response of `rows` entity rows.

    The writer is a no-op: this is the request path only (the draw per row, the queue put).
    """
    sampler = Sampler("/unused", rate, queue_rows=1_000_000, writer=lambda uri, batch: None)
    entities = [{"user_id": i, "merchant_id": i} for i in range(rows)]
    results = [{"features": {"amount_mean_30d": 1.5, "home": "FR", "is_foreign_country": True}}] * rows
    began = time.perf_counter()
    for _ in range(calls):
        sampler.offer("fraud_detection", 1, entities, results)
    took = (time.perf_counter() - began) / calls * 1e6
    sampler.close()
    return took


def commit_cost(folder: Path, rows: int, commits: int = 10) -> tuple[float, float]:
    """(wall ms, CPU ms) of one writer commit of `rows` samples to a Delta table (after the first)."""
    entities = {"user_id": 1, "merchant_id": 2}
    features = {"amount_mean_30d": 1.5, "txn_count_7d": 9, "home": "FR", "is_foreign_country": True}
    batch = [("fraud_detection", time.time(), 1, entities, features)] * rows
    uri = str(folder / f"commit-{rows}")
    write_rows(uri, batch)  # creates the table
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(commits):
        write_rows(uri, batch)
    return (time.perf_counter() - wall) / commits * 1000, (time.process_time() - cpu) / commits * 1000


def server_cpu(pid: int) -> float:
    """CPU seconds used so far by a server's gunicorn processes (master and workers, writer threads included)."""
    return sum(_process_cpu(p) for p in _process_tree(pid))


def dropped_samples(port: int, api_key: str) -> float:
    """hindsight_serving_samples_dropped_total summed over reasons, from a server's /metrics."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {api_key}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("hindsight_serving_samples_dropped_total"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="medium", choices=sorted(SCALES),
                        help="defaults for the five options below (medium: 3000, 500, 300, 6, 3)")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--merchants", type=int, default=None)
    parser.add_argument("--requests", type=int, default=None, help="requests per client thread per cell and mode")
    parser.add_argument("--seconds", type=float, default=None, help="time limit per cell and mode")
    parser.add_argument("--rounds", type=int, default=None, help="alternations of the three servers per cell")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers per server (default: hindsight serve's)")
    parser.add_argument("--clients", default="1,4", help="client thread counts")
    parser.add_argument("--sizes", default="1,10", help="entities per request")
    args = parser.parse_args()
    for name, default in zip(("users", "merchants", "requests", "seconds", "rounds"), SCALES[args.scale]):
        if getattr(args, name) is None:
            setattr(args, name, default)
    rng = random.Random(11)
    now = dt.datetime.now(UTC)
    print("request thread's cost of Sampler.offer (no server, no-op writer), microseconds per response:")
    for rows in (1, 10):
        costs = "  ".join(f"{mode} {offer_cost(rate, rows):.2f}" for mode, rate in MODES.items())
        print(f"  {rows:>2} entity row(s): {costs}")

    with tempfile.TemporaryDirectory(prefix="hindsight-bench-sampling-") as tmp:
        work = Path(tmp)
        print("one commit of the writer thread (JSON, Arrow, a Delta append), in this process:")
        for rows in (10, 1000, 5000):
            wall_ms, cpu_ms = commit_cost(work, rows)
            print(f"  {rows:>5} rows: {wall_ms:.1f} ms wall, {cpu_ms:.1f} ms CPU")
        local = DynamoDBLocal(Settings.from_env(REPO).tools_dir, work / "dynamodb")
        endpoint = local.start(port=free_port(), in_memory=True)
        servers: dict[str, tuple] = {}  # mode -> (process, port, caller, log folder)
        served_rows = dict.fromkeys(MODES, 0)
        results = []
        drops: dict[str, float] = {}
        try:
            registry, config = seeded_store(work, endpoint, "sample_", args.users, args.merchants, now, rng)
            registry_file = work / "registry.json"
            registry_file.write_text(json.dumps(registry.to_dict()))
            api_key = KeyStore(config).create("bench", read=["*"], metrics=True)[0]
            for mode, rate in MODES.items():
                port = free_port()
                env = {"HINDSIGHT_DYNAMODB_ENDPOINT": endpoint, "HINDSIGHT_DYNAMODB_TABLE_PREFIX": config.table_prefix,
                       "HINDSIGHT_STATE": str(work / f"state-{port}"), "HINDSIGHT_SERVING_SAMPLE_RATE": str(rate),
                       "HINDSIGHT_SERVING_SAMPLE_LOG": str(work / f"log-{port}"),
                       "HINDSIGHT_SERVING_SAMPLE_FLUSH_MS": "1000",
                       # Three servers share the cores: a slow read is a figure here, not a 503.
                       "HINDSIGHT_SERVING_STORE_DEADLINE_MS": "5000"}
                process = start_server(registry_file, port, env, args.workers, None, work / f"serve-{port}.log")
                servers[mode] = (process, port, HttpCaller(port, api_key), work / f"log-{port}")
            for size in (int(s) for s in args.sizes.split(",")):
                entity_sets = [
                    [{"user_id": rng.randrange(args.users), "merchant_id": rng.randrange(args.merchants)}
                     for _ in range(size)]
                    for _ in range(2000)
                ]
                payloads = [http_body(e, rng) for e in entity_sets]
                for mode, (_, _, caller, _) in servers.items():
                    # Warm: connections, worker clients, the first commit. Its rows may be sampled too.
                    served_rows[mode] += len(run_cell(caller, payloads, 2, 40, 5)[0]) * size
                # Let the warm-up's samples reach Delta: a worker's first commit (delta-rs starting its
                # runtime, two workers racing to create the table) is a one-off, not a per-request cost.
                time.sleep(2.0)
                for clients in (int(c) for c in args.clients.split(",")):
                    cells = {mode: ([], 0.0) for mode in MODES}
                    cpu = dict.fromkeys(MODES, 0.0)
                    chunk = max(1, args.requests // args.rounds)
                    for r in range(args.rounds):
                        for mode, (process, _, caller, _) in servers.items():
                            before = server_cpu(process.pid)
                            latencies, wall = run_cell(caller, payloads, clients, chunk, args.seconds / args.rounds,
                                                       offset=r * clients * chunk)
                            cpu[mode] += server_cpu(process.pid) - before
                            cells[mode] = (cells[mode][0] + latencies, cells[mode][1] + wall)
                            served_rows[mode] += len(latencies) * size
                    stats = {m: summarize(*cells[m]) for m in MODES}
                    for mode in MODES:
                        stats[mode]["cpu_ms"] = cpu[mode] / stats[mode]["count"] * 1000
                    results.append((size, clients, stats))
            for mode, (_, port, _, _) in servers.items():
                drops[mode] = dropped_samples(port, api_key)
        finally:
            for process, _, _, _ in servers.values():
                stop_server(process)
            local.stop()
        logs = {}
        for mode, (_, _, _, log) in servers.items():
            if (log / "_delta_log").is_dir():
                table = DeltaTable(str(log))
                logs[mode] = (table.to_pyarrow_table(columns=["service"]).num_rows, table.version() + 1)
            else:
                logs[mode] = (0, 0)
        print_table(results, served_rows, logs, drops, args)


def print_table(results: list, served_rows: dict[str, int], logs: dict[str, tuple[int, int]], drops: dict[str, float],
                args: argparse.Namespace) -> None:
    print(f"\nsampling served feature vectors: request cost ({os.cpu_count()} cores, gunicorn workers="
          f"{args.workers or 'default'}, flush every 1 s)")
    header = (f"{'entities':>8} {'clients':>7} | {'mode':>5} {'p50 ms':>7} {'p99 ms':>7} {'rps':>6} {'cpu ms':>6} | "
              f"{'p50 vs off':>10} {'rps vs off':>10} {'cpu vs off':>10}")
    print(header)
    print("-" * len(header))
    for size, clients, stats in results:
        off = stats["off"]
        for mode, s in stats.items():
            delta = "" if mode == "off" else f"{s['p50_ms'] - off['p50_ms']:+.2f} ms"
            ratio = "" if mode == "off" else f"{s['rps'] / off['rps']:.2f}x"
            cpu = "" if mode == "off" else f"{s['cpu_ms'] - off['cpu_ms']:+.2f} ms"
            print(f"{size:>8} {clients:>7} | {mode:>5} {s['p50_ms']:>7.2f} {s['p99_ms']:>7.2f} {s['rps']:>6.0f} "
                  f"{s['cpu_ms']:>6.2f} | {delta:>10} {ratio:>10} {cpu:>10}")
    print(f"\n{'mode':>5} | {'rows served':>11} {'rows logged':>11} {'expected':>9} {'commits':>7} {'dropped':>7}")
    for mode, rate in MODES.items():
        rows, commits = logs[mode]
        print(f"{mode:>5} | {served_rows[mode]:>11} {rows:>11} {served_rows[mode] * rate:>9.0f} {commits:>7} "
              f"{drops[mode]:>7.0f}")
    print("cpu ms = CPU milliseconds of the server's gunicorn processes per request (the writer thread's JSON,")
    print("Arrow and Delta work included): on a busy machine it stays put while wall-clock figures swing.")
    print("rows logged at 1% vary around the expected count (each served row is drawn independently); at 100% every")
    print(f"served row is logged unless dropped. Three servers alternate in {args.rounds} rounds per cell.")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other processes on the box skew wall-clock numbers)")


if __name__ == "__main__":
    sys.exit(main())
