"""What the derived partition's grain costs `dbt run`: daily everywhere vs the grain each view's rows choose.

A full build chooses `_partition_month` for views with fewer than 10,000 rows a day
(macros/materializations/feature_view/derived_partition.sql); at medium scale that is
`user_profile` and `merchant_profile`, while the event-heavy aggregation views stay daily. Monthly
files read faster (bench/bench_layout.py); this bench checks what they cost the writes. The same
demo project is built twice on the same medium data, loaded up to one day before its end:
`--vars '{"hindsight_month_partition_below_rows_per_day": 0}'` (every view daily) and the default.
Then the last day's transactions and user updates arrive, and each project runs:

- an incremental `dbt run` (the new rows MERGE into the newest partitions),
- a rerun with nothing new (the diff reads the newest partitions and commits nothing),
- a backfill of the last 3 days (a replace of the range),

printing dbt's model time (execution_time) per view and run, the ratio chosen/daily, and the
files each table has. Runs alternate between the two projects; the best of `--rounds` is kept.

    .venv/bin/python bench/bench_partition_grain.py [--scale medium] [--rounds 2] [--keep DIR]
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

END = dt.date(2026, 11, 1)
CUT = dt.datetime(2026, 10, 31, tzinfo=dt.timezone.utc)
DAILY = json.dumps({"hindsight_month_partition_below_rows_per_day": 0})
BACKFILL = {"backfill_start": "2026-10-29", "backfill_end": "2026-11-01"}
VIEWS = ("user_profile", "merchant_profile", "merchant_risk", "user_transaction_aggregates")


def build(root: Path, scale: str, daily: bool) -> BenchProject:
    """The demo project on data loaded before CUT, every view built in full."""
    from hindsight.demo_data import generate

    project = new_project(root)
    generate(project.settings.raw_data_dir, scale=scale, end=END, loaded_before=CUT)
    project.dbt("run", *(["--vars", DAILY] if daily else []))
    return project


def model_seconds(project: BenchProject) -> dict[str, float]:
    """dbt's execution_time per feature view of the last run."""
    results = json.loads((project.settings.dbt_target_dir / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results if r["unique_id"].split(".")[-1] in VIEWS}


def files(project: BenchProject) -> dict[str, tuple[str, int]]:
    from deltalake import DeltaTable

    store = project.settings.offline_store
    out = {}
    for view in VIEWS:
        table = DeltaTable(f"{store}/{view}")
        out[view] = (",".join(table.metadata().partition_columns), len(table.file_uris()))
    return out


def runs(project: BenchProject, scale: str) -> dict[str, dict[str, float]]:
    """The three runs after the new day arrives, on a copy of the built project."""
    from hindsight.demo_data import generate

    # Only a full build reads the threshold: these runs keep each table's grain.
    timed: dict[str, dict[str, float]] = {}
    generate(project.settings.raw_data_dir, scale=scale, end=END, loaded_from=CUT)
    project.dbt("run")
    timed["incremental, +1 day"] = model_seconds(project)
    project.dbt("run")
    timed["rerun, nothing new"] = model_seconds(project)
    project.dbt("run", "--vars", json.dumps(BACKFILL))
    timed["backfill, last 3 days"] = model_seconds(project)
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=["small", "medium"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="build here and keep it (default: a temp dir)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="hindsight-grain-"))
    try:
        started = time.perf_counter()
        built = {"daily": build(root / "daily", args.scale, True), "chosen": build(root / "chosen", args.scale, False)}
        print(f"built both projects on {args.scale} demo data (loaded before {CUT:%Y-%m-%d}) in "
              f"{time.perf_counter() - started:.0f}s", flush=True)
        best: dict[str, dict[str, dict[str, float]]] = {}
        layouts: dict[str, dict[str, tuple[str, int]]] = {}
        for round_ in range(args.rounds):
            for name, project in built.items():
                copy = project.root.parent / f"{name}-round{round_}"
                shutil.copytree(project.root, copy, symlinks=True)
                run_copy = BenchProject(copy)
                timed = runs(run_copy, args.scale)
                layouts[name] = files(run_copy)
                for run, seconds in timed.items():
                    for view, value in seconds.items():
                        kept = best.setdefault(name, {}).setdefault(run, {})
                        kept[view] = min(value, kept.get(view, value))
                shutil.rmtree(copy, ignore_errors=True)
        print(f"\nmodel seconds (dbt's execution_time), best of {args.rounds}; chosen = the grain each view's rows choose\n")
        print(f"{'run':<24} {'view':<30} {'daily':>8} {'chosen':>8} {'ratio':>7}")
        for run in best["daily"]:
            for view in VIEWS:
                d, c = best["daily"][run][view], best["chosen"][run][view]
                print(f"{run:<24} {view:<30} {d:>8.2f} {c:>8.2f} {c / d:>6.2f}x")
        print("\nlayout after the runs (partition column, files):")
        for view in VIEWS:
            print(f"  {view:<30} daily: {layouts['daily'][view]}   chosen: {layouts['chosen'][view]}")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
