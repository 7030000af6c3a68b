"""Benchmark the serving API against raw boto3 BatchGetItem for the same keys, in one run.

Starts DynamoDB Local in memory, writes a few thousand users and merchants to Delta tables and
syncs them with `online_sync.sync`, starts `hindsight serve` (gunicorn) on a free 127.0.0.1 port,
then, for 1 and 10 entities per request at 1 and 4 client threads, measures latency p50/p99 and
requests/s of
  raw   client.batch_get_item with exactly the keys and projections the server's store reads
        (one item per view and entity, 3 feature views), with the store's own client settings;
  http  POST /v1/features for the fraud_detection service (those 3 views + an on-demand view).
Both run from the same load generator (threads of this process). Prints a table and the ratios
against the targets: p50 overhead over raw <= 1.5 ms at 1 client; at 4 clients >= 70% of raw
requests/s and p99 <= 10 ms.

    .venv/bin/python bench/bench_serving.py [--scale medium] [--users 3000] [--requests 400] [--seconds 8] [--workers N]

Everything listens on 127.0.0.1 only (DynamoDB Local itself binds every interface: it has no
bind-address option). Each cell is bounded by --requests per thread and --seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake

from hindsight.core.ports import free_port
from hindsight.core.settings import Settings
from hindsight.online_sync import OnlineStoreConfig, ensure_tables, sync
from hindsight.online_sync.codec import KEY_ATTR, ORDER_ATTR, SYNC_WRITER, WRITER_ATTR, entity_key
from hindsight.online_sync.config import make_client
from hindsight.online_sync.keys import KeyStore
from hindsight.online_sync.local import DynamoDBLocal
from hindsight.registry_sync.model import Entity, Feature, FeatureRef, FeatureService, FeatureView, Registry

REPO = Path(__file__).resolve().parents[1]
#: Defaults per scale: users, merchants, requests per client thread per cell, seconds per cell, rounds.
SCALES = {"small": (300, 50, 50, 2.0, 1), "medium": (3000, 500, 400, 8.0, 4)}
UTC = dt.timezone.utc
P50_OVERHEAD_TARGET_MS = 1.5
THROUGHPUT_TARGET = 0.70
P99_TARGET_MS = 10.0

USER_AGGREGATES = {
    "txn_count_1d": "int64", "txn_count_7d": "int64", "amount_sum_7d": "float64", "amount_mean_30d": "float64",
    "amount_max_30d": "float64", "amount_stddev_30d": "float64", "merchant_count_distinct_30d": "int64",
    "country_last_30d": "string",
}
USER_PROFILE = {"home_country": "string", "credit_limit": "float64", "account_tier": "string", "birth_year": "int64"}
MERCHANT_RISK = {"txn_count_7d": "int64", "fraud_sum_30d": "int64", "fraud_rate_30d": "float64"}


def _view(root: Path, name: str, key: str, entity: str, ttl_days: int | None, features: dict[str, str]) -> FeatureView:
    return FeatureView(
        name=name, kind="batch", entities=(entity,), join_keys=(key,), join_key_dtypes=("int64",),
        timestamp_field="event_timestamp", created_field=None,
        ttl_seconds=None if ttl_days is None else ttl_days * 86_400, online=True, delta_uri=str(root / name),
        features=tuple(Feature(n, t) for n, t in features.items()), partition_columns=("_partition_date",),
    )


def bench_registry(root: Path) -> Registry:
    """The fraud demo's serving shape: three online views and a service with an on-demand view."""
    views = (
        _view(root, "user_transaction_aggregates", "user_id", "user", 30, USER_AGGREGATES),
        _view(root, "user_profile", "user_id", "user", None, USER_PROFILE),
        _view(root, "merchant_risk", "merchant_id", "merchant", 2, MERCHANT_RISK),
    )
    refs = [FeatureRef(v.name, f.name) for v in views for f in v.features]
    refs += [FeatureRef("transaction_context", "amount_vs_user_mean_30d"),
             FeatureRef("transaction_context", "is_foreign_country")]
    return Registry(
        project="bench",
        entities=(Entity("user", ("user_id",)), Entity("merchant", ("merchant_id",))),
        feature_views=views,
        feature_services=(FeatureService("fraud_detection", tuple(refs)),),
    )


def _value(dtype: str, rng: random.Random, name: str) -> Any:
    if dtype == "int64":
        return rng.randrange(0, 500)
    if dtype == "float64":
        return round(rng.uniform(1, 500), 2)
    return rng.choice(["FR", "DE", "ES", "IT", "NL"]) if "country" in name else rng.choice(["basic", "gold"])


def write_delta(view: FeatureView, count: int, now: dt.datetime, rng: random.Random) -> None:
    rows = []
    for i in range(count):
        stamp = now - dt.timedelta(minutes=rng.randrange(1, 600))
        row = {view.join_keys[0]: i, "event_timestamp": stamp, "_partition_date": stamp.date()}
        row.update({f.name: _value(f.dtype, rng, f.name) for f in view.features})
        rows.append(row)
    types = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string()}
    schema = pa.schema(
        [pa.field(view.join_keys[0], pa.int64()), pa.field("event_timestamp", pa.timestamp("us", tz="UTC")),
         pa.field("_partition_date", pa.date32())]
        + [pa.field(f.name, types[f.dtype]) for f in view.features]
    )
    write_deltalake(view.delta_uri, pa.Table.from_pylist(rows, schema=schema), partition_by=["_partition_date"])


# -- the two clients ------------------------------------------------------------------------------


def raw_request(registry: Registry, config: OnlineStoreConfig, entities: list[dict[str, int]]) -> dict[str, Any]:
    """BatchGetItem RequestItems for what the server reads: one item of each view per entity."""
    items: dict[str, Any] = {}
    for view in registry.feature_views:
        names = {f"#a{i}": n for i, n in enumerate((KEY_ATTR, ORDER_ATTR, *(f.name for f in view.features)))}
        keys = list(dict.fromkeys(entity_key([e[view.join_keys[0]]]) for e in entities))
        items[config.table_name(view.name)] = {
            "Keys": [{KEY_ATTR: {"S": k}, WRITER_ATTR: {"S": SYNC_WRITER}} for k in keys],
            "ProjectionExpression": ", ".join(names),
            "ExpressionAttributeNames": names,
        }
    return items


def http_body(entities: list[dict[str, int]], rng: random.Random) -> bytes:
    context = {"amount": round(rng.uniform(1, 900), 2), "country": rng.choice(["FR", "DE", "US"])}
    body = {"feature_service": "fraud_detection", "entities": entities[0] if len(entities) == 1 else entities,
            "request_context": context}
    return json.dumps(body).encode()


class HttpCaller:
    """One keep-alive connection per thread (reopened when the server closes it)."""

    def __init__(self, port: int, api_key: str) -> None:
        self.port = port
        self.local = threading.local()
        # Measured with API keys on, as deployments run: each request's key is checked.
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}

    def __call__(self, body: bytes) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("POST", "/v1/features", body, self.headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:300]!r}")
        if response.will_close:
            conn.close()


# -- load generation ------------------------------------------------------------------------------


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a live process has used, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_tree(pid: int) -> list[int]:
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            pids.extend(_process_tree(int(child)))
    return pids


class CpuMeter:
    """CPU seconds used by the load generator, the serving processes and DynamoDB Local."""

    def __init__(self, server_pid: int, dynamodb_pid: int) -> None:
        self.server_pid = server_pid
        self.dynamodb_pid = dynamodb_pid

    def snapshot(self) -> dict[str, float]:
        return {
            "client": time.process_time(),
            "server": sum(_process_cpu(p) for p in _process_tree(self.server_pid)),
            "dynamodb": _process_cpu(self.dynamodb_pid),
        }


def run_cell(call: Callable[[Any], None], payloads: list[Any], threads: int, per_thread: int,
             max_seconds: float, offset: int = 0) -> tuple[list[float], float]:
    """Run `call` over payloads from `threads` threads; (latencies in seconds, wall seconds)."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    deadline = time.perf_counter() + max_seconds
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        own = latencies[index]
        for i in range(per_thread):
            payload = payloads[(offset + index * per_thread + i) % len(payloads)]
            began = time.perf_counter()
            try:
                call(payload)
            except BaseException as error:  # noqa: BLE001 - reported after the run
                errors.append(error)
                return
            own.append(time.perf_counter() - began)
            if began > deadline:
                return

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} request(s) failed; first: {errors[0]!r}")
    return [x for own in latencies for x in own], wall


def summarize(latencies: list[float], wall: float) -> dict[str, float]:
    flat = sorted(latencies)
    return {
        "count": len(flat),
        "p50_ms": statistics.median(flat) * 1000,
        "p99_ms": flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000,
        "rps": len(flat) / wall,
    }


def compare(raw: Callable[[Any], None], raw_payloads: list[Any], http: Callable[[Any], None],
            http_payloads: list[Any], clients: int, per_thread: int, max_seconds: float,
            rounds: int, meter: CpuMeter) -> tuple[dict[str, float], dict[str, float]]:
    """Alternate raw and HTTP in short rounds, so background load drifts hit both alike.

    Besides latency and throughput, each side gets its CPU milliseconds per request (load
    generator + serving processes + DynamoDB Local): on a busy machine that cost stays put while
    wall-clock numbers swing with the neighbours.
    """
    parts = ("client", "server", "dynamodb")
    totals: dict[str, dict[str, Any]] = {
        n: {"latencies": [], "wall": 0.0, **dict.fromkeys(parts, 0.0)} for n in ("raw", "http")
    }
    chunk = max(1, per_thread // rounds)
    for r in range(rounds):
        for name, call, payloads in (("raw", raw, raw_payloads), ("http", http, http_payloads)):
            before = meter.snapshot()
            latencies, wall = run_cell(call, payloads, clients, chunk, max_seconds / rounds, offset=r * clients * chunk)
            after = meter.snapshot()
            total = totals[name]
            total["latencies"] += latencies
            total["wall"] += wall
            for part in parts:
                total[part] += after[part] - before[part]
    stats = {}
    for name, total in totals.items():
        stats[name] = summarize(total["latencies"], total["wall"])
        for part in parts:
            stats[name][f"{part}_cpu_ms"] = total[part] / stats[name]["count"] * 1000
        stats[name]["cpu_ms"] = sum(stats[name][f"{part}_cpu_ms"] for part in parts)
    return stats["raw"], stats["http"]


# -- processes ------------------------------------------------------------------------------------


def seeded_store(work: Path, endpoint: str, prefix: str, users: int, merchants: int, now: dt.datetime,
                 rng: random.Random) -> tuple[Registry, OnlineStoreConfig]:
    """The bench registry's Delta tables written under `work` and synced to the store at `endpoint`."""
    registry = bench_registry(work / "offline")
    config = OnlineStoreConfig(endpoint_url=endpoint, table_prefix=prefix, region="us-east-1")
    ensure_tables(registry, config)
    for view in registry.feature_views:
        write_delta(view, merchants if view.join_keys == ("merchant_id",) else users, now, rng)
    report = sync(registry, config, progress=False)
    print(f"synced {report.rows_written} items", file=sys.stderr)
    return registry, config


def start_server(registry_file: Path, port: int, env: dict[str, str], workers: int | None, threads: int | None,
                 log_path: Path) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "hindsight"), "serve", "--port", str(port),
               "--registry-file", str(registry_file)]
    if workers:
        command += ["--workers", str(workers)]
    if threads:
        command += ["--threads", str(threads)]
    with open(log_path, "wb") as log_stream:
        # Served-feature samples (serving.sample_rate, 1% by default) beside the log, not in the repo's data/.
        env = {"HINDSIGHT_SERVING_SAMPLE_LOG": str(log_path.parent / f"served-{port}"), **env}
        process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **env}, stdout=log_stream,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"hindsight serve exited:\n{log_path.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"hindsight serve did not become ready:\n{log_path.read_text()[-3000:]}")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="medium", choices=sorted(SCALES),
                        help="defaults for the five options below (medium: 3000, 500, 400, 8, 4)")
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--merchants", type=int, default=None)
    parser.add_argument("--requests", type=int, default=None, help="requests per client thread per cell")
    parser.add_argument("--seconds", type=float, default=None, help="time limit per cell")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: hindsight serve's)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per gunicorn worker (default: hindsight serve's)")
    parser.add_argument("--clients", default="1,4", help="client thread counts")
    parser.add_argument("--sizes", default="1,10", help="entities per request")
    parser.add_argument("--rounds", type=int, default=None, help="alternations of raw and HTTP per cell")
    args = parser.parse_args()
    for name, default in zip(("users", "merchants", "requests", "seconds", "rounds"), SCALES[args.scale]):
        if getattr(args, name) is None:
            setattr(args, name, default)
    rng = random.Random(7)
    now = dt.datetime.now(UTC)

    with tempfile.TemporaryDirectory(prefix="hindsight-bench-") as tmp:
        work = Path(tmp)
        local = DynamoDBLocal(Settings.from_env(REPO).tools_dir, work / "dynamodb")
        endpoint = local.start(port=free_port(), in_memory=True)
        server = None
        try:
            setup_began = time.perf_counter()
            registry, config = seeded_store(work, endpoint, "bench_", args.users, args.merchants, now, rng)
            print(f"set up in {time.perf_counter() - setup_began:.1f} s", file=sys.stderr)
            registry_file = work / "registry.json"
            registry_file.write_text(json.dumps(registry.to_dict()))
            port = free_port()
            env = {"HINDSIGHT_DYNAMODB_ENDPOINT": endpoint, "HINDSIGHT_DYNAMODB_TABLE_PREFIX": config.table_prefix,
                   "HINDSIGHT_STATE": str(work / "state")}
            began = time.perf_counter()
            server = start_server(registry_file, port, env, args.workers, args.threads, work / "serve.log")
            print(f"hindsight serve ready in {time.perf_counter() - began:.2f} s", file=sys.stderr)
            client = make_client(config)
            caller = HttpCaller(port, KeyStore(config).create("bench", read=["*"])[0])
            meter = CpuMeter(server.pid, local.status().pid)

            def raw(items: dict[str, Any]) -> None:
                response = client.batch_get_item(RequestItems=items)
                if response.get("UnprocessedKeys"):
                    raise RuntimeError("unprocessed keys")

            results = []
            for size in (int(s) for s in args.sizes.split(",")):
                entity_sets = [
                    [{"user_id": rng.randrange(args.users), "merchant_id": rng.randrange(args.merchants)}
                     for _ in range(size)]
                    for _ in range(2000)
                ]
                raw_payloads = [raw_request(registry, config, e) for e in entity_sets]
                http_payloads = [http_body(e, rng) for e in entity_sets]
                # Warm both paths (connections, JIT of DynamoDB Local, worker clients).
                run_cell(raw, raw_payloads, 2, 50, 5)
                run_cell(caller, http_payloads, 2, 50, 5)
                for clients in (int(c) for c in args.clients.split(",")):
                    raw_stats, http_stats = compare(raw, raw_payloads, caller, http_payloads, clients,
                                                    args.requests, args.seconds, args.rounds, meter)
                    results.append((size, clients, raw_stats, http_stats))
        finally:
            if server is not None:
                stop_server(server)
            local.stop()

    print_table(results, args)


def print_table(results: list[tuple[int, int, dict[str, float], dict[str, float]]], args: argparse.Namespace) -> None:
    workers = args.workers or "default"
    threads = args.threads or "default"
    print(f"\nserving vs raw BatchGetItem ({os.cpu_count()} cores, gunicorn workers={workers}, threads={threads})")
    header = (f"{'entities':>8} {'clients':>7} | {'raw p50':>7} {'raw p99':>7} {'raw rps':>7} {'raw cpu':>7} | "
              f"{'http p50':>8} {'http p99':>8} {'http rps':>8} {'http cpu':>8} | {'p50 +ms':>7} {'rps x':>5} "
              f"{'cpu x':>5}  target")
    print(header)
    print("-" * len(header))
    for size, clients, raw, over_http in results:
        overhead = over_http["p50_ms"] - raw["p50_ms"]
        ratio = over_http["rps"] / raw["rps"]
        if clients == 1:
            verdict = f"p50 +{P50_OVERHEAD_TARGET_MS} ms: {'ok' if overhead <= P50_OVERHEAD_TARGET_MS else 'MISSED'}"
        else:
            met = ratio >= THROUGHPUT_TARGET and over_http["p99_ms"] <= P99_TARGET_MS
            verdict = f"rps >= {THROUGHPUT_TARGET:.0%} of raw, p99 <= {P99_TARGET_MS:.0f} ms: {'ok' if met else 'MISSED'}"
        print(f"{size:>8} {clients:>7} | {raw['p50_ms']:>7.2f} {raw['p99_ms']:>7.2f} {raw['rps']:>7.0f} "
              f"{raw['cpu_ms']:>7.2f} | {over_http['p50_ms']:>8.2f} {over_http['p99_ms']:>8.2f} {over_http['rps']:>8.0f} "
              f"{over_http['cpu_ms']:>8.2f} | {overhead:>+7.2f} {ratio:>5.2f} {raw['cpu_ms'] / over_http['cpu_ms']:>5.2f}  {verdict}")
    print(f"\n{'entities':>8} {'clients':>7} | CPU ms per request: load generator / gunicorn / DynamoDB Local")
    for size, clients, raw, over_http in results:
        print(f"{size:>8} {clients:>7} | raw  {raw['client_cpu_ms']:.2f} / {raw['server_cpu_ms']:.2f} / "
              f"{raw['dynamodb_cpu_ms']:.2f}   http {over_http['client_cpu_ms']:.2f} / {over_http['server_cpu_ms']:.2f} / "
              f"{over_http['dynamodb_cpu_ms']:.2f}")
    print("latencies in ms; rps = requests/s over the cell's wall time; cpu = CPU ms per request summed over the load")
    print("generator, the gunicorn processes (http only) and DynamoDB Local; 'cpu x' = raw cpu / http cpu, the")
    print(f"throughput ratio a CPU-bound box converges to. Raw and HTTP alternate in {args.rounds} rounds per cell.")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (other processes on the box skew wall-clock numbers)")


if __name__ == "__main__":
    main()
