"""Offline store benchmark (issue 2): full refresh vs incremental (~1% new rows) vs a one-day backfill.

Builds the demo dbt project on `medium` demo data (~10M transactions) in a temporary folder and
times real `dbt run`s. Figures are reported as ratios to the full refresh in the same run, since
these machines are shared and noisy. Target: incremental <= 10% of the full refresh.

    .venv/bin/python bench/bench_offline.py [--scale medium] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.dbt_project import DbtProject, new_project

END = dt.date(2026, 11, 1)
#: ~1% of 180 days of rows arrive after the first build.
NEW_FRACTION = 0.01


def timed_dbt(project: DbtProject, *args: str) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    project.dbt(*args)
    wall = time.perf_counter() - started
    results = json.loads((project.settings.dbt_target_dir / "run_results.json").read_text())
    per_model = {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results["results"]}
    return wall, per_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=["small", "medium"])
    parser.add_argument("--keep", type=Path, default=None, help="build here and keep it (default: a temp dir)")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="hindsight-bench-"))
    project = new_project(root / "project")
    cutoff = dt.datetime.combine(END, dt.time(), dt.timezone.utc) - dt.timedelta(days=180 * NEW_FRACTION)

    started = time.perf_counter()
    first = _generate(project, args.scale, loaded_before=cutoff)
    print(f"demo data ({args.scale}): {first['transactions']:,} transactions loaded before {cutoff:%Y-%m-%d %H:%M} "
          f"in {time.perf_counter() - started:.1f}s")

    full, full_models = timed_dbt(project, "run", "--full-refresh")
    appended = _generate(project, args.scale, loaded_from=cutoff)
    print(f"then {appended['transactions']:,} new transactions "
          f"({appended['transactions'] / first['transactions']:.2%}) and {appended['user_updates']:,} profile updates arrive")
    incremental, incremental_models = timed_dbt(project, "run")
    rerun, _ = timed_dbt(project, "run")
    backfill, backfill_models = timed_dbt(
        project, "run", "--vars", json.dumps({"backfill_start": "2026-09-10", "backfill_end": "2026-09-11"})
    )
    noop, _ = timed_dbt(project, "run", "--select", "merchant_profile", "--vars", json.dumps({"backfill_start": "2000-01-01", "backfill_end": "2000-01-02"}))

    print()
    print(f"{'run':<34} {'wall s':>8} {'vs full':>8}   per model (s)")
    for label, wall, models in [
        ("full refresh", full, full_models),
        ("incremental (~1% new rows)", incremental, incremental_models),
        ("incremental again (no new rows)", rerun, {}),
        ("backfill of one day", backfill, backfill_models),
    ]:
        detail = ", ".join(f"{k} {v:.1f}" for k, v in sorted(models.items()))
        print(f"{label:<34} {wall:>8.1f} {wall / full:>8.1%}   {detail}")
    print(f"{'dbt overhead (one trivial model)':<34} {noop:>8.1f} {noop / full:>8.1%}")
    model_full = sum(full_models.values())
    model_incr = sum(incremental_models.values())
    print(f"\nincremental / full refresh: {incremental / full:.1%} wall, {model_incr / model_full:.1%} of model time "
          f"(target <= 10%)")
    print(f"kept in {root}" if args.keep else "")


def _generate(project: DbtProject, scale: str, **kwargs) -> dict[str, int]:
    from hindsight.demo_data import generate

    return generate(project.settings.raw_data_dir, scale=scale, end=END, **kwargs)


if __name__ == "__main__":
    main()
