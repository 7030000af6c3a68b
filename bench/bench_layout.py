"""Training sets against the limit (issue 13): `training_set` vs a hand-written ASOF join over one Parquet file per view.

The limit: the query a data scientist would write by hand over the fastest layout there is, the
rows of each view in ONE Parquet file (copied from the Delta tables before timing). Hindsight reads
its Delta tables as `dbt run` and `hindsight optimize` leave them. Both write the same output type,
measured twice: an Arrow table, and a pandas DataFrame (DuckDB's `.df()` for the reference,
`.to_pandas()` of the training set). The spine and features are bench/bench_training.py's (1M rows,
5 features of the demo's two as-of views), with `honor_created=False` so both sides run the same
ASOF joins. Each run is a fresh subprocess (its peak RSS is its own: resource maxrss); runs
alternate and the best of `--rounds` is reported, as ratios to the reference of the same output
type in this command. Target: <= 1.2x in time and in peak memory, for Arrow and for pandas.

    .venv/bin/python bench/bench_layout.py [--scale medium] [--project DIR | --keep DIR] [--rounds 2] [--warm]

Without --project it builds the demo project on data of that scale (`dbt run`) in a temporary
folder, or in --keep DIR; then runs `hindsight optimize` on the project, as `make demo` does. The training set reads the project's applied
registry, as in a notebook (applied here first if the project has none).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _support import BIN, BenchProject, new_project
from bench_training import FEATURES, REFERENCE_SQL, VIEWS, make_spine

END = dt.date(2026, 11, 1)
MODES = ("reference_arrow", "hindsight_arrow", "reference_pandas", "hindsight_pandas")
TARGET = 1.2


def child(mode: str, project: Path, spine: Path, parquet_dir: Path, warm: bool) -> None:
    """One measured run, in its own process: prints seconds, rows and peak RSS as JSON.

    The clock starts after the imports (a notebook has them done); it includes everything a call
    does, e.g. loading the registry and DuckDB's delta extension. pandas is among the imports:
    DuckDB's Python client imports it the first time it is handed an Arrow table (0.2 s), which the
    reference, reading only files, never does; a notebook has pandas imported anyway. With `warm`,
    the timed call is the process's second (peak memory then covers both calls).
    """
    import duckdb
    import pandas  # noqa: F401  (see above)
    from sqlglot import exp

    from hindsight.training_sets import training_set

    output = mode.split("_")[1]

    def call() -> object:
        if mode.startswith("reference"):
            connection = duckdb.connect()
            connection.execute("SET TimeZone = 'UTC'")
            for view in VIEWS:
                scan = exp.func("read_parquet", exp.Literal.string(str(parquet_dir / f"{view}.parquet")))
                connection.sql(exp.select("*").from_(scan).sql("duckdb")).create_view(view)
            connection.read_parquet(str(spine)).create("spine_table")
            relation = connection.sql(REFERENCE_SQL)
            return relation.to_arrow_table() if output == "arrow" else relation.df()
        # As a notebook calls it: the project's applied registry, read from its registry folder.
        table = training_set(str(spine), features=FEATURES, project_dir=project, honor_created=False)
        return table if output == "arrow" else table.to_pandas()

    if warm:  # a notebook's second call: the first one's set-up is done
        call()
    started = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": len(result),  # type: ignore[arg-type]
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def build(root: Path, scale: str) -> Path:
    """The demo project with its two as-of views built and optimized, in root/project."""
    from hindsight.demo_data import generate

    project = new_project(root / "project")
    started = time.perf_counter()
    generate(project.settings.raw_data_dir, scale=scale, end=END)
    # Every view: the registry, as `hindsight apply` builds it, needs each view's Delta table.
    project.dbt("run")
    print(f"built the demo project on {scale} demo data in {time.perf_counter() - started:.0f}s", flush=True)
    return project.root


def layout(project: Path) -> str:
    from deltalake import DeltaTable

    store = BenchProject(project).settings.offline_store
    return ", ".join(f"{view} {len(DeltaTable(f'{store}/{view}').file_uris())} file(s)" for view in VIEWS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=["small", "medium"])
    parser.add_argument("--project", type=Path, default=None, help="a built project of that scale")
    parser.add_argument("--keep", type=Path, default=None, help="build here and keep it (default: a temp dir)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warm", action="store_true", help="time each side's second call in its process")
    parser.add_argument("--child", default=None)
    parser.add_argument("--spine", type=Path, default=None)
    parser.add_argument("--parquet-dir", type=Path, default=None)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.project, args.spine, args.parquet_dir, args.warm)
        return
    project = args.project or build(args.keep or Path(tempfile.mkdtemp(prefix="hindsight-bench-")), args.scale)
    _apply_registry(project)
    # As `make demo` does after its builds: merge the small files incremental runs left.
    subprocess.run([str(BIN / "hindsight"), "optimize"], cwd=project, env=BenchProject(project).env(), check=True)
    work = Path(tempfile.mkdtemp(prefix="hindsight-layout-"))
    try:
        spine = work / "spine.parquet"
        spine_rows = make_spine(project, spine, args.scale)
        _one_parquet_file_per_view(project, work)
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for mode in MODES:
                output = subprocess.run(
                    [sys.executable, __file__, "--child", mode, "--project", str(project), "--spine", str(spine),
                     "--parquet-dir", str(work), *(["--warm"] if args.warm else [])], check=True, capture_output=True, text=True).stdout
                result = json.loads(output.strip().splitlines()[-1])
                if mode not in best or result["seconds"] < best[mode]["seconds"]:
                    best[mode] = result
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"spine: {spine_rows:,} rows ({args.scale} demo data); {len(FEATURES)} features; Delta layout: {layout(project)}; "
          f"best of {args.rounds}; {'second' if args.warm else 'first'} call in each process\n")
    print(f"{'run':<56} {'seconds':>8} {'vs ref':>7} {'peak MB':>8} {'vs ref':>7}")
    labels = {
        "reference_arrow": "hand-written ASOF, 1 Parquet file/view -> Arrow (ref)",
        "hindsight_arrow": "training_set -> Arrow",
        "reference_pandas": "hand-written ASOF, 1 Parquet file/view -> pandas (ref)",
        "hindsight_pandas": "training_set(...).to_pandas()",
    }
    for mode in MODES:
        r, ref = best[mode], best[mode.replace("hindsight", "reference")]
        print(f"{labels[mode]:<56} {r['seconds']:>8.2f} {r['seconds'] / ref['seconds']:>6.2f}x "
              f"{r['peak_rss_mb']:>8.0f} {r['peak_rss_mb'] / ref['peak_rss_mb']:>6.2f}x")
    print(f"\ntarget: training_set <= {TARGET}x the reference in time and peak memory, Arrow and pandas")


def _apply_registry(project: Path) -> None:
    """Apply the project's registry once (`hindsight apply`), unless one is applied already."""
    from hindsight.project import project_registry
    from hindsight.registry_sync.store import RegistryStore

    settings = BenchProject(project).settings
    store = RegistryStore(settings.registry_dir)
    if store.latest() is None:
        store.write(project_registry(settings))


def _one_parquet_file_per_view(project: Path, work: Path) -> None:
    import duckdb
    from sqlglot import exp

    from hindsight.offline_store.duckdb_delta import load_delta_extension

    connection = duckdb.connect()
    load_delta_extension(connection)
    store = BenchProject(project).settings.offline_store
    for view in VIEWS:
        scan = exp.select("*").from_(exp.func("delta_scan", exp.Literal.string(f"{store}/{view}")))
        connection.sql(scan.sql("duckdb")).write_parquet(str(work / f"{view}.parquet"))


if __name__ == "__main__":
    main()
