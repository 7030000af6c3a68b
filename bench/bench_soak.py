"""Soak the serving API: a minute at concurrency 32 on loopback, with zero errors and flat memory.

Starts DynamoDB Local in memory, syncs a few thousand users and merchants from Delta (the same
registry and data as bench/bench_serving.py), starts `hindsight serve` (gunicorn) on a free
127.0.0.1 port, warms it up, then runs --concurrency client threads, each on its own keep-alive
connection, for --seconds: 9 in 10 requests read one entity of the fraud_detection service
(3 feature views + an on-demand view), 1 in 10 a batch of 10. Every answer other than a 200 with
a well-formed body counts as an error. The resident memory (RSS) of each gunicorn worker is
sampled after the warm-up and every 5 s; it is flat when the last sample is within
--rss-tolerance of the first (or within 4 MiB, for small workers), and the workers must be the
same processes at the end (a restarted worker would hide a leak).

    .venv/bin/python bench/bench_soak.py [--seconds 60] [--concurrency 32] [--workers N] [--threads N]
                                         [--budget-ms MS]

With --budget-ms every request carries `latency_budget_ms` (and include_metadata); answers with
TIME_OUT features are counted apart, not as errors.

Prints requests, errors, requests/s, latency p50/p90/p99/max and per-worker RSS; exits 1 when
there were errors or memory grew. Everything listens on 127.0.0.1 (DynamoDB Local itself binds
every interface: it has no bind-address option).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench_serving import (  # the same registry, data and server start as the serving benchmark
    REPO,
    free_port,
    http_body,
    seeded_store,
    start_server,
    stop_server,
)

from hindsight.core.settings import Settings
from hindsight.online_sync.keys import KeyStore
from hindsight.online_sync.local import DynamoDBLocal

UTC = dt.timezone.utc
SAMPLE_EVERY_S = 5.0
RSS_SLACK_BYTES = 4 << 20


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the master's children."""
    children: list[int] = []
    for task in Path(f"/proc/{master}/task").glob("*/children"):
        children.extend(int(pid) for pid in task.read_text().split())
    return sorted(children)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def server_buckets(port: int, headers: dict[str, str]) -> dict[float, float]:
    """Answered feature requests by upper bound of the server's own latency histogram (from arrival)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics", headers=headers)
    text = conn.getresponse().read().decode()
    conn.close()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("hindsight_serving_request_seconds_bucket{"):
            labels, value = line.rsplit(" ", 1)
            bound = labels.split('le="', 1)[1].split('"', 1)[0]
            key = float("inf") if bound == "+Inf" else float(bound)
            buckets[key] = buckets.get(key, 0.0) + float(value)
    return buckets


class Load:
    """Client threads hammering POST /v1/features until `stop`, each on one keep-alive connection."""

    def __init__(self, port: int, single: list[bytes], batch: list[bytes], concurrency: int,
                 headers: dict[str, str]) -> None:
        self.port = port
        self.headers = {"Content-Type": "application/json", **headers}
        self.single = single
        self.batch = batch
        self.concurrency = concurrency
        self.latencies: list[list[float]] = [[] for _ in range(concurrency)]
        self.errors: Counter[str] = Counter()
        #: Answers with at least one TIME_OUT feature (requests with a latency budget only).
        self.timed_out = 0
        self.examples: dict[str, str] = {}
        self.lock = threading.Lock()

    def _error(self, kind: str, detail: str) -> None:
        with self.lock:
            self.errors[kind] += 1
            self.examples.setdefault(kind, detail[:300])

    def _worker(self, index: int, stop_at: float) -> None:
        rng = random.Random(index)
        times = self.latencies[index]
        conn: http.client.HTTPConnection | None = None
        while time.perf_counter() < stop_at:
            is_batch = rng.random() < 0.1
            body = rng.choice(self.batch if is_batch else self.single)
            began = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("POST", "/v1/features", body, self.headers)
                response = conn.getresponse()
                data = response.read()
                times.append(time.perf_counter() - began)
                if response.status != 200:
                    self._error(f"HTTP {response.status}", data.decode(errors="replace"))
                else:
                    answer = json.loads(data)
                    if ("results" in answer) != is_batch:
                        self._error("malformed", data.decode(errors="replace"))
                    elif b'"TIME_OUT"' in data:
                        with self.lock:
                            self.timed_out += 1
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as error:
                self._error(type(error).__name__, str(error))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def run(self, seconds: float) -> float:
        """Run for `seconds`; returns the wall time."""
        stop_at = time.perf_counter() + seconds
        threads = [threading.Thread(target=self._worker, args=(i, stop_at)) for i in range(self.concurrency)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - began


def soak(args: argparse.Namespace) -> int:
    rng = random.Random(11)
    now = dt.datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="hindsight-soak-") as tmp:
        work = Path(tmp)
        local = DynamoDBLocal(Settings.from_env(REPO).tools_dir, work / "dynamodb")
        endpoint = local.start(port=free_port(), in_memory=True)
        server = None
        try:
            registry, config = seeded_store(work, endpoint, "soak_", args.users, args.merchants, now, rng)
            # Served with API keys, as in production: every request pays the key check.
            key, _ = KeyStore(config).create("soak", read=["*"], metrics=True)
            auth = {"Authorization": f"Bearer {key}"}
            registry_file = work / "registry.json"
            registry_file.write_text(json.dumps(registry.to_dict()))
            port = free_port()
            env = {"HINDSIGHT_DYNAMODB_ENDPOINT": endpoint, "HINDSIGHT_DYNAMODB_TABLE_PREFIX": config.table_prefix,
                   "HINDSIGHT_STATE": str(work / "state")}
            server = start_server(registry_file, port, env, args.workers, args.threads, work / "serve.log")

            def entities(count: int) -> list[dict[str, int]]:
                return [{"user_id": rng.randrange(args.users), "merchant_id": rng.randrange(args.merchants)}
                        for _ in range(count)]

            def body(count: int) -> bytes:
                data = http_body(entities(count), rng)
                if not args.budget_ms:
                    return data
                return json.dumps({**json.loads(data), "latency_budget_ms": args.budget_ms,
                                   "include_metadata": True}).encode()

            single = [body(1) for _ in range(2000)]
            batch = [body(10) for _ in range(200)]
            Load(port, single, batch, args.concurrency, auth).run(args.warmup)  # connections, clients, allocator
            workers = worker_pids(server.pid)
            samples = {pid: [rss_bytes(pid)] for pid in workers}
            load = Load(port, single, batch, args.concurrency, auth)
            done = threading.Event()

            def sample() -> None:
                while not done.wait(SAMPLE_EVERY_S):
                    for pid in workers:
                        try:
                            samples[pid].append(rss_bytes(pid))
                        except FileNotFoundError:
                            samples[pid].append(-1)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            before = server_buckets(port, auth)
            wall = load.run(args.seconds)
            after = server_buckets(port, auth)
            done.set()
            sampler.join()
            for pid in workers:
                samples[pid].append(rss_bytes(pid) if Path(f"/proc/{pid}").exists() else -1)
            same_workers = worker_pids(server.pid) == workers
        finally:
            if server is not None:
                stop_server(server)
            local.stop()
    server_side = {bound: after.get(bound, 0.0) - before.get(bound, 0.0) for bound in after}
    return report(args, load, wall, samples, same_workers, server_side)


def report(args: argparse.Namespace, load: Load, wall: float, samples: dict[int, list[int]],
           same_workers: bool, server_side: dict[float, float]) -> int:
    latencies = sorted(t for per_thread in load.latencies for t in per_thread)
    count = len(latencies)
    errors = sum(load.errors.values())
    cut = statistics.quantiles(latencies, n=100, method="inclusive") if count > 1 else [0.0] * 99
    print(f"\nsoak: {wall:.1f} s at concurrency {args.concurrency} on 127.0.0.1 "
          f"({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end)")
    print(f"requests {count}   errors {errors}   {count / wall:.0f} requests/s")
    print(f"latency ms: p50 {cut[49] * 1000:.2f}   p90 {cut[89] * 1000:.2f}   p99 {cut[98] * 1000:.2f}   "
          f"max {latencies[-1] * 1000 if count else 0:.2f}")
    answered = server_side.get(float("inf"), 0.0)
    if answered:
        shares = "   ".join(f"<= {bound * 1000:g} ms {server_side[bound] / answered:.1%}"
                           for bound in (0.05, 0.1, 0.25, 0.5, 1.0) if bound in server_side)
        print(f"server-side, from arrival to answer ({answered:.0f} answered): {shares}")
    if args.budget_ms:
        over = sum(1 for t in latencies if t * 1000 > args.budget_ms)
        print(f"latency_budget_ms {args.budget_ms}: {load.timed_out} answers with TIME_OUT features, "
              f"{over} answers slower than the budget as measured by the client")
    for kind, seen in load.errors.most_common():
        print(f"  {seen} x {kind}: {load.examples[kind]}")
    flat = True
    for pid, values in samples.items():
        first, last = values[0], values[-1]
        grew = last - first
        ok = last > 0 and grew <= max(RSS_SLACK_BYTES, first * args.rss_tolerance)
        flat = flat and ok
        trail = " ".join(f"{v / 2**20:.0f}" for v in values)
        print(f"worker {pid}: RSS {first / 2**20:.1f} MiB -> {last / 2**20:.1f} MiB "
              f"({grew / max(first, 1):+.1%}) {'flat' if ok else 'GREW'}   samples MiB: {trail}")
    if not same_workers:
        print("a worker was replaced during the run (crashed or timed out)")
    verdict = errors == 0 and flat and same_workers
    print("verdict:", "ok (zero errors, memory flat)" if verdict else "FAILED")
    return 0 if verdict else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the soak")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before memory is first sampled")
    parser.add_argument("--concurrency", type=int, default=32, help="client threads, one connection each")
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--merchants", type=int, default=500)
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: hindsight serve's)")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker (default: hindsight serve's)")
    parser.add_argument("--budget-ms", type=float, default=None,
                        help="send latency_budget_ms (and include_metadata) with every request")
    parser.add_argument("--rss-tolerance", type=float, default=0.10,
                        help="largest RSS growth per worker counted as flat, as a fraction")
    sys.exit(soak(parser.parse_args()))


if __name__ == "__main__":
    main()
