"""Benchmark: `sync(engine="spark")` on Sail with 1 and 2 executors against the single-process sync.

The same generated Delta table as bench_sync (200k rows over 50k entities at medium scale) is
synced in full into fresh tables of one in-memory DynamoDB Local by:

- the single-process sync (`engine="duckdb"`, the reference: every ratio is against it);
- Sail in local mode, with 1 and 2 partitions: an "executor" here is one partition's
  `mapInArrow` task, a thread of the Sail server process running the Python writer;
- Sail in local-cluster mode (`SAIL_MODE=local-cluster`) with 1 and 2 workers and 2 partitions:
  workers are threads of the same Sail process that talk to its driver over RPC.

Every contender writes with `--threads` writer threads per executor. A warm-up sync runs first on
each server (Sail imports Hindsight into its Python interpreter on the first task); then the
contenders run `--rounds` times in alternating order, and the best round of each is reported.

    .venv/bin/python bench/bench_sync_spark.py [--scale small|medium] [--threads 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench_sync import SCALES, drop_tables, fresh, generate_delta

from hindsight.core.ports import free_port
from hindsight.core.settings import Settings
from hindsight.offline_store.sail import SailServer
from hindsight.online_sync import OnlineStoreConfig, sync
from hindsight.online_sync.config import make_client
from hindsight.online_sync.local import DynamoDBLocal
from hindsight.registry_sync.model import Registry

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def sail(state_dir: Path, **env: str) -> Iterator[str]:
    """A Sail server started with these SAIL_* settings; yields its Spark Connect URL."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    server = SailServer(state_dir, working_dir=REPO)
    try:
        remote = server.start(port=free_port())
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield remote
    finally:
        server.stop()


def run(config: OnlineStoreConfig, registry: Registry, **engine: object) -> tuple[float, int, int]:
    """(seconds, rows read, items written) of one full sync into fresh tables."""
    client = make_client(config)
    started = time.perf_counter()
    report = sync(registry, config, progress=False, client=client, full=True, **engine).views[0]
    return time.perf_counter() - started, report.rows_read, report.rows_written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=sorted(SCALES))
    parser.add_argument("--threads", type=int, default=4, help="writer threads per executor (and of the reference)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows, entities = SCALES[args.scale]

    with tempfile.TemporaryDirectory() as tmp:
        local = DynamoDBLocal(Settings.from_env(REPO).tools_dir, Path(tmp) / "state")
        endpoint = local.start(port=free_port(), in_memory=True)
        try:
            view = generate_delta(Path(tmp) / "bench_user_features", rows, entities)
            registry = Registry("bench", feature_views=(view,))
            base = OnlineStoreConfig(endpoint_url=endpoint, region="us-east-1", write_threads=args.threads)
            print(f"{rows:,} Delta rows, {entities:,} entities, {args.threads} writer threads per executor; "
                  f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            best: dict[str, float] = {}

            def measure(name: str, **engine: object) -> None:
                seconds, read, written = run(fresh(base), registry, **engine)
                drop_tables(base)
                assert written == entities, f"{name}: wrote {written:,} items, expected {entities:,}"
                best[name] = max(best.get(name, 0.0), written / seconds)
                print(f"  {name:<44} {read:,} rows read, {written:,} items in {seconds:6.2f} s "
                      f"= {written / seconds:8,.0f} items/s")

            measure("warm-up: single process")
            with sail(Path(tmp) / "sail-local") as remote:
                measure("warm-up: Sail local", engine="spark", spark_remote=remote, partitions=1)
                for round_ in range(args.rounds):
                    order = [None, 1, 2] if round_ % 2 == 0 else [2, 1, None]
                    for partitions in order:
                        if partitions is None:
                            measure("single process (engine duckdb)")
                        else:
                            measure(f"Sail local, {partitions} executor{'s' if partitions > 1 else ''} (partitions)",
                                    engine="spark", spark_remote=remote, partitions=partitions)
            for workers in (1, 2):
                cluster = {"SAIL_MODE": "local-cluster", "SAIL_CLUSTER__WORKER_INITIAL_COUNT": str(workers),
                           "SAIL_CLUSTER__WORKER_MAX_COUNT": str(workers),
                           # A read task per Delta file runs in one stage: slots enough for all of them.
                           "SAIL_CLUSTER__WORKER_TASK_SLOTS": "256"}
                with sail(Path(tmp) / f"sail-cluster-{workers}", **cluster) as remote:
                    name = f"Sail local-cluster, {workers} worker{'s' if workers > 1 else ''}, 2 partitions"
                    measure(f"warm-up: {name}", engine="spark", spark_remote=remote, partitions=2)
                    for _ in range(args.rounds):
                        measure(name, engine="spark", spark_remote=remote, partitions=2)
        finally:
            local.stop()

    reference = best["single process (engine duckdb)"]
    print(f"best of {args.rounds} rounds, items/s (ratio to the single-process sync); "
          f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, rate in best.items():
        if not name.startswith("warm-up"):
            print(f"  {name:<52} {rate:8,.0f}  {rate / reference:5.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
