"""`dbt run` of the demo's feature views on DuckDB and on Sail (Spark Connect), in one run (issue 13).

Generates the demo data (`--scale medium`: ~10M transactions) in a temporary folder, then times a
full `dbt run` of the feature views on the DuckDB target and on the spark target against a Sail
server started on a free port, each into its own offline store from the same raw data, and prints
both times and their ratio (target: Sail within 2x of DuckDB). Then it checks both builds hold the
same number of rows per view. Figures are a ratio within one run: the machines are noisy.

    .venv/bin/python bench/bench_dbt_engines.py [--scale medium] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import tempfile
import time
from pathlib import Path

from _support import BenchProject, new_project
from deltalake import DeltaTable

from hindsight.core.ports import free_port
from hindsight.offline_store.sail import SailServer

END = dt.date(2026, 11, 1)
#: The issue's target: `dbt run` on Sail at most this many times DuckDB's.
TARGET = 2.0


def timed_run(project: BenchProject) -> tuple[float, dict[str, float]]:
    """Wall seconds of `dbt run` and each model's execution time in it (hooks left out)."""
    started = time.perf_counter()
    project.dbt("run")
    wall = time.perf_counter() - started
    results = json.loads((project.settings.dbt_target_dir / "run_results.json").read_text())
    return wall, {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results["results"]
                  if r["unique_id"].startswith("model.")}


def row_counts(project: BenchProject, views: list[str]) -> dict[str, int]:
    store = project.settings.offline_store
    return {view: DeltaTable(f"{store}/{view}").to_pyarrow_dataset().count_rows() for view in views}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=["small", "medium"])
    parser.add_argument("--keep", type=Path, default=None, help="build here and keep it (default: a temp dir)")
    args = parser.parse_args()

    from hindsight.demo_data import generate

    root = args.keep or Path(tempfile.mkdtemp(prefix="hindsight-bench-engines-"))
    duckdb = new_project(root / "duckdb")
    started = time.perf_counter()
    counts = generate(duckdb.settings.raw_data_dir, scale=args.scale, end=END)
    print(f"demo data ({args.scale}): {counts['transactions']:,} transactions in {time.perf_counter() - started:.1f}s")

    duckdb_s, duckdb_models = timed_run(duckdb)

    spark = new_project(root / "spark")
    (spark.root / "data" / "raw").symlink_to(duckdb.settings.raw_data_dir, target_is_directory=True)
    sail = SailServer(root / "sail-state", working_dir=spark.root)
    remote = sail.start(port=free_port())
    try:
        spark_s, spark_models = timed_run(spark.with_target("spark", remote))
    finally:
        sail.stop()

    print(f"\n`dbt run`, full build of the feature views ({args.scale} scale)")
    print(f"{'model':<30} {'DuckDB s':>9} {'Sail s':>9} {'ratio':>7}")
    for model in sorted(duckdb_models):
        d, s = duckdb_models[model], spark_models.get(model, float("nan"))
        print(f"{model:<30} {d:>9.1f} {s:>9.1f} {s / d if d else float('nan'):>7.2f}")
    ratio = spark_s / duckdb_s
    print(f"{'dbt run (wall)':<30} {duckdb_s:>9.1f} {spark_s:>9.1f} {ratio:>7.2f}")
    print(f"Sail / DuckDB: {ratio:.2f}x (target <= {TARGET:.0f}x: {'met' if ratio <= TARGET else 'missed'})")

    views = sorted(duckdb_models)
    same = row_counts(duckdb, views) == row_counts(spark, views)
    print(f"same row count per view on both engines: {same}")
    if args.keep:
        print(f"kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
