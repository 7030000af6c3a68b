"""Run every benchmark in turn (`make bench`); each prints its own figures.

    .venv/bin/python bench/run_all.py [--scale medium|small] [--only offline,sync ...]

Order: offline store (builds the demo project and keeps it), training sets (on that same
project), online sync, serving, training sets on Sail, training sets against one Parquet file per
view (after `hindsight optimize` on the offline project) and over other Delta layouts of the same
rows, the soak, training sets over an aggregation view (on the same raw data) and serving one, the
cost of sampling served features, incremental aggregation views, the flush of ingested events, ingest through the API and
Kinesis, then `dbt run` on Sail against DuckDB, then online sync on Sail executors. `--scale small` runs each on the small demo data
and short loads: a check that every benchmark works, in minutes, not a figure to quote. The first benchmark that fails stops the run
with its exit status.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hindsight.core.suggest import did_you_mean

BENCH = Path(__file__).resolve().parent
#: Benchmark name -> script, in the order they run.
SCRIPTS = {
    "offline": "bench_offline.py",
    "training": "bench_training.py",
    "sync": "bench_sync.py",
    "serving": "bench_serving.py",
    "spark_training": "bench_spark_training.py",
    "layout": "bench_layout.py",
    "layout_variants": "bench_layout_variants.py",
    "partition_grain": "bench_partition_grain.py",
    "soak": "bench_soak.py",
    "aggregation_training": "bench_aggregation_training.py",
    "serving_aggregation": "bench_serving_aggregation.py",
    "sampling": "bench_sampling.py",
    "aggregation_incremental": "bench_aggregation_incremental.py",
    "flush": "bench_flush.py",
    "ingest": "bench_ingest.py",
    "stream_kinesis": "bench_stream_kinesis.py",
    "dbt_engines": "bench_dbt_engines.py",
    "sync_spark": "bench_sync_spark.py",
}
#: Benchmarks whose load does not depend on the data's scale (a fixed number of seconds).
_UNSCALED = {"soak"}


def commands(scale: str, project_root: Path, selected: list[str]) -> list[tuple[str, list[str]]]:
    """The command line of each selected benchmark; training reuses the project offline builds.

    >>> [name for name, _ in commands("small", Path("/tmp/b"), list(SCRIPTS))]
    ['offline', 'training', 'sync', 'serving', 'spark_training', 'layout', 'layout_variants', 'partition_grain', 'soak', 'aggregation_training', 'serving_aggregation', 'sampling', 'aggregation_incremental', 'flush', 'ingest', 'stream_kinesis', 'dbt_engines', 'sync_spark']
    >>> commands("small", Path("/tmp/b"), list(SCRIPTS))[1][1][-4:]
    ['--scale', 'small', '--project', '/tmp/b/project']
    """
    extra = {"offline": ["--keep", str(project_root)]}
    if "offline" in selected or (project_root / "project").is_dir():
        extra["training"] = ["--project", str(project_root / "project")]
        extra["layout"] = extra["layout_variants"] = ["--project", str(project_root / "project")]
        # The same raw demo data, from which it builds its tile table.
        extra["aggregation_training"] = ["--raw", str(project_root / "project" / "data" / "raw")]
    return [
        (name, [sys.executable, str(BENCH / SCRIPTS[name]),
                *([] if name in _UNSCALED else ["--scale", scale]), *extra.get(name, [])])
        for name in SCRIPTS
        if name in selected
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=["small", "medium"])
    parser.add_argument("--only", default=",".join(SCRIPTS), help=f"comma-separated subset of {', '.join(SCRIPTS)}")
    parser.add_argument("--keep", type=Path, default=None, help="keep the built demo project here")
    args = parser.parse_args()
    selected = [name.strip() for name in args.only.split(",") if name.strip()]
    for name in selected:
        if name not in SCRIPTS:
            parser.error(f"--only: unknown benchmark {name!r}{did_you_mean(name, SCRIPTS, quote=True)}; "
                         f"choose from {', '.join(SCRIPTS)}")

    root = args.keep or Path(tempfile.mkdtemp(prefix="hindsight-bench-all-"))
    timings: list[tuple[str, float]] = []
    try:
        for name, command in commands(args.scale, root, selected):
            print(f"\n=== {name} ({args.scale}): {' '.join(command[1:])}", flush=True)
            started = time.perf_counter()
            status = subprocess.run(command, cwd=BENCH.parent).returncode
            timings.append((name, time.perf_counter() - started))
            if status != 0:
                print(f"\nFAILED: bench {name} exited {status} after {timings[-1][1]:.0f} s", file=sys.stderr)
                sys.exit(status)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print("\n=== all benchmarks passed: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings))


if __name__ == "__main__":
    main()
