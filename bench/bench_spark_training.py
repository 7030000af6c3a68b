"""Training sets on Sail vs DuckDB (issue 5): the same point-in-time join over the same Delta tables.

Builds the demo dbt project on `medium` demo data (~10M transactions) with DuckDB in a temporary
folder, starts Sail on a free port, and times `training_sets.training_set` for a spine of sampled
transactions with engine="duckdb" and engine="spark" (Spark Connect to Sail), best of `--repeat`
runs each, in the same process on the same tables. Checks both return the same rows. With
`--spark-build`, also times `dbt run` of the feature views on the spark target (into a second
offline store) against the DuckDB build. Figures are ratios within one run: the machines are noisy.

    .venv/bin/python bench/bench_spark_training.py [--scale medium] [--spine-rows 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from _support import BenchProject, new_project

from hindsight.core.ports import free_port
from hindsight.offline_store.sail import SailServer
from hindsight.project import project_registry
from hindsight.training_sets import training_set

END = dt.date(2026, 11, 1)
#: Four views, no two with a feature of the same name (merchant_risk's counts are left out).
FEATURES = [
    "user_transaction_aggregates:*",
    "merchant_risk:fraud_mean_7d",
    "merchant_risk:fraud_mean_30d",
    "user_profile:*",
    "merchant_profile:category",
]


def spine(project: BenchProject, rows: int) -> pa.Table:
    """`rows` transactions sampled without replacement: keys, event time and the label."""
    transactions = ds.dataset(project.settings.raw_data_dir / "transactions", format="parquet").to_table(
        columns=["user_id", "merchant_id", "ts", "is_fraud"]
    )
    rows = min(rows, transactions.num_rows)
    picked = pc.sort_indices(pc.random(transactions.num_rows))[:rows]
    sample = transactions.take(picked)
    return sample.rename_columns(["user_id", "merchant_id", "event_timestamp", "is_fraud"])


def best_of(repeat: int, run) -> tuple[float, pa.Table]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), result


def same_rows(a: pa.Table, b: pa.Table) -> bool:
    """Equal after sorting on every key column, floats within 1e-9 relative."""
    if a.schema != b.schema or a.num_rows != b.num_rows:
        return False
    keys = [(c, "ascending") for c in ("user_id", "merchant_id", "event_timestamp")]
    a, b = a.sort_by(keys), b.sort_by(keys)
    for name in a.column_names:
        x, y = a[name], b[name]
        if pa.types.is_floating(x.type):
            close = pc.less_equal(pc.abs(pc.subtract(x, y)), pc.multiply(pc.max_element_wise(pc.abs(x), pc.abs(y)), 1e-9))
            if not pc.all(pc.or_kleene(close, pc.and_(pc.is_null(x), pc.is_null(y)))).as_py():
                return False
        elif not x.equals(y):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=["small", "medium"])
    parser.add_argument("--spine-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="runs per engine; the best counts")
    parser.add_argument("--spark-build", action="store_true", help="also time dbt run on the spark target")
    parser.add_argument("--keep", type=Path, default=None, help="build here and keep it (default: a temp dir)")
    args = parser.parse_args()

    from hindsight.demo_data import generate

    root = args.keep or Path(tempfile.mkdtemp(prefix="hindsight-bench-spark-"))
    project = new_project(root / "project")
    started = time.perf_counter()
    counts = generate(project.settings.raw_data_dir, scale=args.scale, end=END)
    print(f"demo data ({args.scale}): {counts['transactions']:,} transactions in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    project.dbt("run")
    duckdb_build = time.perf_counter() - started
    print(f"dbt run on DuckDB: {duckdb_build:.1f}s")

    registry = project_registry(project.settings)
    rows = spine(project, args.spine_rows)
    sail = SailServer(root / "sail-state", working_dir=project.root)
    remote = sail.start(port=free_port())
    try:
        spark_build = _spark_build(project, remote, root) if args.spark_build else None
        duckdb_s, on_duckdb = best_of(args.repeat, lambda: training_set(rows, features=FEATURES, registry=registry))
        spark_s, on_spark = best_of(args.repeat, lambda: training_set(
            rows, features=FEATURES, registry=registry, engine="spark", spark_remote=remote))
    finally:
        sail.stop()

    print(f"\ntraining set: {rows.num_rows:,} spine rows x {len(on_duckdb.column_names) - rows.num_columns} features "
          f"from 4 views (best of {args.repeat})")
    print(f"{'engine':<22} {'seconds':>8} {'vs DuckDB':>10}")
    print(f"{'DuckDB (in process)':<22} {duckdb_s:>8.2f} {1:>10.2f}")
    print(f"{'Sail (Spark Connect)':<22} {spark_s:>8.2f} {spark_s / duckdb_s:>10.2f}")
    print(f"same rows on both engines: {same_rows(on_duckdb, on_spark)}")
    if spark_build is not None:
        print(f"\ndbt run of the feature views: DuckDB {duckdb_build:.1f}s, Sail {spark_build:.1f}s "
              f"({spark_build / duckdb_build:.2f}x)")
    if args.keep:
        print(f"kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


def _spark_build(project: BenchProject, remote: str, root: Path) -> float:
    """Time `dbt run` on the spark target in a copy of the project (its own offline store)."""
    copy = new_project(root / "spark-project").with_target("spark", remote)
    (copy.root / "data" / "raw").symlink_to(project.settings.raw_data_dir, target_is_directory=True)
    started = time.perf_counter()
    copy.dbt("run")
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
