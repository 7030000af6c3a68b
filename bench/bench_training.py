"""Training-set benchmark (issue 3): `hindsight.training_set` vs a hand-written DuckDB ASOF JOIN.

A 1M-row spine (transactions of the medium demo data, with their labels) gets features from the
demo's two as-of views: user_profile (~0.4M rows, with a created time) and merchant_profile. The
reference is the query a data scientist would write by hand: two ASOF LEFT JOINs over the same
Delta tables. Each run is a fresh subprocess (so its peak RSS is its own); runs alternate and the
best of each is reported, as a ratio to the reference in the same command. Target: training_set
<= 1.5x the reference's time. The demo's window features are aggregation views, whose values are
combined from tiles rather than looked up as of a time: bench/bench_aggregation_training.py
measures those against a hand-written query.

    .venv/bin/python bench/bench_training.py [--scale medium] [--project DIR] [--rounds 2]

--project reuses a built project of that scale (bench/bench_offline.py --keep DIR leaves one in
DIR/project). --scale small takes a 10,000-row spine from the small demo data (a quick check).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _support import REPO, BenchProject

#: Spine rows and the transactions skipped before them, per demo-data scale.
SPINE = {"small": (10_000, 1_000), "medium": (1_000_000, 500_000)}
FEATURES = [
    "user_profile:account_tier",
    "user_profile:credit_limit",
    "user_profile:home_country",
    "merchant_profile:category",
    "merchant_profile:country",
]
VIEWS = ("user_profile", "merchant_profile")

# The hand-written reference: plain DuckDB over the same Delta tables (registered by name).
REFERENCE_SQL = """
with spine as (select *, row_number() over () as spine_row from spine_table)
select spine.user_id, spine.merchant_id, spine.event_timestamp, spine.is_fraud,
    p.account_tier, p.credit_limit, p.home_country, m.category, m.country
from spine
asof left join (select user_id, event_timestamp, account_tier, credit_limit, home_country from user_profile) as p
    on spine.user_id = p.user_id and spine.event_timestamp >= p.event_timestamp
asof left join (select merchant_id, event_timestamp, category, country from merchant_profile) as m
    on spine.merchant_id = m.merchant_id and spine.event_timestamp >= m.event_timestamp
order by spine.spine_row
"""


def child(mode: str, project: Path, spine: Path) -> None:
    """One measured run, in its own process: prints seconds and rows as JSON."""
    import duckdb
    from sqlglot import exp

    settings = BenchProject(project).settings
    started = time.perf_counter()
    if mode == "reference":
        from hindsight.offline_store.duckdb_delta import load_delta_extension

        connection = duckdb.connect()
        connection.execute("SET TimeZone = 'UTC'")
        load_delta_extension(connection)
        for view in VIEWS:
            scan = exp.select("*").from_(exp.func("delta_scan", exp.Literal.string(f"{settings.offline_store}/{view}")))
            connection.sql(scan.sql(dialect="duckdb")).create_view(view)
        # A table, not a registered Arrow object: DuckDB estimates those at ~1 row and plans the
        # ASOF join as a nested loop.
        connection.read_parquet(str(spine)).create("spine_table")
        rows = connection.sql(REFERENCE_SQL).to_arrow_table().num_rows
    else:
        from hindsight.project import project_registry
        from hindsight.training_sets import training_set

        registry = project_registry(settings)
        rows = training_set(str(spine), features=FEATURES, registry=registry, honor_created=mode == "hindsight").num_rows
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_mb": peak_mb}))


def measure(mode: str, project: Path, spine: Path) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", mode, "--project", str(project), "--spine", str(spine)],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def make_spine(project: Path, path: Path, scale: str) -> int:
    import duckdb

    raw = BenchProject(project).settings.raw_data_dir / "transactions"
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    relation = connection.read_parquet(str(raw / "*.parquet"))
    rows, offset = SPINE[scale]
    sample = relation.order("transaction_id").limit(rows, offset=offset)
    sample.select("user_id, merchant_id, ts as event_timestamp, is_fraud").write_parquet(str(path))
    return int(connection.read_parquet(str(path)).count("*").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=sorted(SPINE))
    parser.add_argument("--project", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", default=None)
    parser.add_argument("--spine", type=Path, default=None)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.project, args.spine)
        return
    project = args.project or _build_project(args.scale)
    spine = Path(tempfile.mkdtemp(prefix="hindsight-spine-")) / "spine.parquet"
    spine_rows = make_spine(project, spine, args.scale)
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for mode in ("reference", "hindsight_asof", "hindsight"):
            result = measure(mode, project, spine)
            if mode not in best or result["seconds"] < best[mode]["seconds"]:
                best[mode] = result
    reference = best["reference"]["seconds"]
    print(f"spine: {spine_rows:,} rows ({args.scale} demo data); {len(FEATURES)} features from {len(VIEWS)} views\n")
    print(f"{'run':<48} {'seconds':>8} {'vs ref':>7} {'peak RSS MB':>12}")
    labels = {
        "reference": "hand-written DuckDB ASOF JOIN (reference)",
        "hindsight_asof": "training_set(honor_created=False): all ASOF",
        "hindsight": "training_set (created time honoured)",
    }
    for mode, label in labels.items():
        r = best[mode]
        print(f"{label:<48} {r['seconds']:>8.2f} {r['seconds'] / reference:>6.2f}x {r['peak_rss_mb']:>12.0f}")
    print("\ntarget: training_set <= 1.5x the reference")


def _build_project(scale: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix="hindsight-bench-"))
    subprocess.run([sys.executable, str(REPO / "bench" / "bench_offline.py"), "--scale", scale, "--keep", str(root)],
                   check=True)
    return root / "project"


if __name__ == "__main__":
    main()
