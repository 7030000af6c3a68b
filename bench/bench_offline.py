"""Offline store benchmark (issues 2 and 9): full refresh vs incremental (~1.5% new events) vs a one-day backfill.

Builds the demo dbt project on `medium` demo data (~10M transactions) in a temporary folder and
times real `dbt run`s. Figures are reported as ratios to a full refresh in the same command, since
these machines are shared and noisy. The aggregation views (the models with an
`aggregation_interval`: docs/aggregation-views.md) are timed on their own: an incremental run after
~1.5% new events against a reference full refresh of the same views over the same events.
Target: that incremental run costs <= 10% of the full refresh.

    .venv/bin/python bench/bench_offline.py [--scale medium] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from _support import BenchProject, new_project

END = dt.date(2026, 11, 1)
#: Events loaded in the last 50 hours arrive after the first build: ~1.5% of the 180 days of the
#: seeded demo data (activity is uneven; the run prints the exact share).
NEW_EVENTS = dt.timedelta(hours=50)
#: The target of issue 9: an incremental run of the aggregation views after ~1.5% new events.
TARGET = 0.10


def timed_dbt(project: BenchProject, *args: str) -> tuple[float, dict[str, float]]:
    """Wall seconds of one dbt command and each model's execution time in it."""
    started = time.perf_counter()
    project.dbt(*args)
    wall = time.perf_counter() - started
    results = json.loads((project.settings.dbt_target_dir / "run_results.json").read_text())
    per_model = {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results["results"]}
    return wall, per_model


def aggregation_views(project: BenchProject) -> list[str]:
    """The project's aggregation views, read from dbt's manifest (written by the previous dbt command)."""
    manifest = json.loads((project.settings.dbt_target_dir / "manifest.json").read_text())
    return sorted(
        node["name"] for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"].get("aggregation_interval")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=["small", "medium"])
    parser.add_argument("--keep", type=Path, default=None, help="build here and keep it (default: a temp dir)")
    args = parser.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="hindsight-bench-"))
    project = new_project(root / "project")
    cutoff = dt.datetime.combine(END, dt.time(), dt.timezone.utc) - NEW_EVENTS

    started = time.perf_counter()
    first = _generate(project, args.scale, loaded_before=cutoff)
    print(f"demo data ({args.scale}): {first['transactions']:,} transactions loaded before {cutoff:%Y-%m-%d %H:%M} "
          f"in {time.perf_counter() - started:.1f}s")

    full, full_models = timed_dbt(project, "run", "--full-refresh")
    aggregations = aggregation_views(project)
    if not aggregations:
        raise SystemExit("the demo project has no aggregation view (no model sets aggregation_interval)")
    appended = _generate(project, args.scale, loaded_from=cutoff)
    new_share = appended["transactions"] / (first["transactions"] + appended["transactions"])
    print(f"then {appended['transactions']:,} new transactions ({new_share:.2%} of all) "
          f"and {appended['user_updates']:,} profile updates arrive")

    aggregation_incremental, aggregation_incremental_models = timed_dbt(project, "run", "--select", *aggregations)
    others, others_models = timed_dbt(project, "run", "--exclude", *aggregations)
    rerun, _ = timed_dbt(project, "run")
    backfill, backfill_models = timed_dbt(
        project, "run", "--vars", json.dumps({"backfill_start": "2026-09-10", "backfill_end": "2026-09-11"})
    )
    noop, _ = timed_dbt(project, "run", "--select", "merchant_profile", "--vars", json.dumps({"backfill_start": "2000-01-01", "backfill_end": "2000-01-02"}))
    # The reference: a full refresh of the aggregation views over the same events, in this command.
    aggregation_full, aggregation_full_models = timed_dbt(project, "run", "--full-refresh", "--select", *aggregations)

    print()
    print(f"{'run':<48} {'wall s':>8} {'vs full':>8}   per model (s)")
    for label, wall, models in [
        ("full refresh (all views, before the new events)", full, full_models),
        ("incremental, aggregation views (new events)", aggregation_incremental, aggregation_incremental_models),
        ("incremental, other views (new rows)", others, others_models),
        ("incremental again (no new rows)", rerun, {}),
        ("backfill of one day", backfill, backfill_models),
        ("full refresh, aggregation views (reference)", aggregation_full, aggregation_full_models),
    ]:
        detail = ", ".join(f"{k} {v:.1f}" for k, v in sorted(models.items()))
        print(f"{label:<48} {wall:>8.1f} {wall / full:>8.1%}   {detail}")
    print(f"{'dbt overhead (one trivial model)':<48} {noop:>8.1f} {noop / full:>8.1%}")

    model_full = sum(aggregation_full_models.values())
    model_incremental = sum(aggregation_incremental_models.values())
    print(f"\naggregation views ({', '.join(aggregations)}), {new_share:.2%} new events:")
    print(f"  full refresh {aggregation_full:.1f}s wall ({model_full:.1f}s in the models), "
          f"incremental {aggregation_incremental:.1f}s wall ({model_incremental:.1f}s in the models)")
    print(f"  incremental / full refresh: {aggregation_incremental / aggregation_full:.1%} wall, "
          f"{model_incremental / model_full:.1%} of model time (target <= {TARGET:.0%}; "
          f"dbt's own start-up is about {noop:.1f}s of each run)")
    print(f"kept in {root}" if args.keep else "")


def _generate(project: BenchProject, scale: str, **kwargs) -> dict[str, int]:
    from hindsight.demo_data import generate

    return generate(project.settings.raw_data_dir, scale=scale, end=END, **kwargs)


if __name__ == "__main__":
    main()
