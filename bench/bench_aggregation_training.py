"""Aggregation-view training-set benchmark (issue 9): tiles combined at spine time vs a hand-written query.

The demo's window features as an aggregation view (interval 1h): transactions counted, amount
summed, averaged and maxed over 1h / 1d / 7d / 30d, min and stddev over 7d / 30d, last country over
30d (21 features), for a 1M-row spine (transactions of the medium demo data). Hindsight reads the
view's tile table (one row per user and transaction time, built here from the raw transactions by
`TILES_SQL`, the layout of offline_store/tiles.py, written with deltalake and partitioned by day
like the materialization's) and combines tiles in the SQL `training_set` generates.

The reference is what a data engineer would write by hand against the raw events: join each spine
row to the user's transactions in [floor(t, 1h) + 1h - 30d, t] (an inner join in a CTE: a range
condition in a LEFT JOIN's ON makes DuckDB pick a nested-loop join), then one filtered aggregate per
feature, grouped by spine row. Both run on DuckDB in a fresh subprocess each (best of --rounds,
alternating), and their outputs are compared value by value before the ratio is printed.
Target: training_set <= 1.5x the reference's time.

    .venv/bin/python bench/bench_aggregation_training.py [--scale medium] [--raw DIR] [--rounds 2]

--raw reuses generated demo data of that scale (a folder with transactions/*.parquet).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Spine rows and the transactions skipped before them, per demo-data scale (as bench_training).
SPINE = {"small": (10_000, 1_000), "medium": (1_000_000, 500_000)}
WINDOWS = {"1h": 1, "1d": 24, "7d": 168, "30d": 720}
#: (name, function, input column, windows): the demo's user_transaction_aggregates, evaluated in time.
SPEC = [
    ("txn", "count", "*", ["1h", "1d", "7d", "30d"]),
    ("amount", "sum", "amount", ["1h", "1d", "7d", "30d"]),
    ("amount", "mean", "amount", ["1h", "1d", "7d", "30d"]),
    ("amount", "max", "amount", ["1h", "1d", "7d", "30d"]),
    ("amount", "min", "amount", ["7d", "30d"]),
    ("amount", "stddev", "amount", ["7d", "30d"]),
    ("country", "last", "country", ["30d"]),
]
FEATURES = [f"{name}_{function}_{window}" for name, function, _, windows in SPEC for window in windows]

# The tiles of offline_store/tiles.py: per user and transaction time e, the partial aggregates of the
# user's transactions in [floor(e, 1h), e]; m2 from var_samp over the prefix, as the materialization.
TILES_SQL = """
with events as (
    select user_id, ts, amount, country, time_bucket(interval 1 hour, ts) as _tile_start
    from transactions
),
prefix as (
    select user_id, ts, _tile_start,
        count(*) over w as _events,
        count(amount) over w as amount__n,
        sum(amount) over w as amount__sum,
        case when count(amount) over w > 0
             then coalesce(var_samp(amount) over w * (count(amount) over w - 1), 0) end as amount__m2,
        min(amount) over w as amount__min,
        max(amount) over w as amount__max,
        last_value(country ignore nulls) over w as country__last,
        max(case when country is not null then ts end) over w as country__last_at
    from events
    window w as (partition by user_id, _tile_start order by ts range between unbounded preceding and current row)
)
select *, cast(ts as date) as _partition_date
from prefix
qualify row_number() over (partition by user_id, ts) = 1
"""

# The hand-written reference, straight from the raw transactions.
REFERENCE_SQL = """
with spine as (
    select row_number() over () - 1 as spine_row, user_id, event_timestamp,
        time_bucket(interval 1 hour, event_timestamp) as hour_start
    from spine_table
),
pairs as (
    select s.spine_row, s.hour_start, t.ts, t.amount, t.country
    from spine s
    join transactions t
      on t.user_id = s.user_id
     and t.ts <= s.event_timestamp
     and t.ts >= s.hour_start + interval 1 hour - interval 30 days
),
features as (
    select spine_row,
        count(*) filter (where ts >= hour_start) as txn_count_1h,
        count(*) filter (where ts >= hour_start - interval 23 hours) as txn_count_1d,
        count(*) filter (where ts >= hour_start - interval 167 hours) as txn_count_7d,
        count(*) as txn_count_30d,
        sum(amount) filter (where ts >= hour_start) as amount_sum_1h,
        sum(amount) filter (where ts >= hour_start - interval 23 hours) as amount_sum_1d,
        sum(amount) filter (where ts >= hour_start - interval 167 hours) as amount_sum_7d,
        sum(amount) as amount_sum_30d,
        avg(amount) filter (where ts >= hour_start) as amount_mean_1h,
        avg(amount) filter (where ts >= hour_start - interval 23 hours) as amount_mean_1d,
        avg(amount) filter (where ts >= hour_start - interval 167 hours) as amount_mean_7d,
        avg(amount) as amount_mean_30d,
        max(amount) filter (where ts >= hour_start) as amount_max_1h,
        max(amount) filter (where ts >= hour_start - interval 23 hours) as amount_max_1d,
        max(amount) filter (where ts >= hour_start - interval 167 hours) as amount_max_7d,
        max(amount) as amount_max_30d,
        min(amount) filter (where ts >= hour_start - interval 167 hours) as amount_min_7d,
        min(amount) as amount_min_30d,
        stddev_samp(amount) filter (where ts >= hour_start - interval 167 hours) as amount_stddev_7d,
        stddev_samp(amount) as amount_stddev_30d,
        arg_max(country, ts) filter (where country is not null) as country_last_30d
    from pairs
    group by spine_row
)
select spine.user_id, spine.event_timestamp,
    coalesce(txn_count_1h, 0) as txn_count_1h, coalesce(txn_count_1d, 0) as txn_count_1d,
    coalesce(txn_count_7d, 0) as txn_count_7d, coalesce(txn_count_30d, 0) as txn_count_30d,
    columns(c -> c like 'amount_%' or c like 'country_%')
from spine left join features using (spine_row)
order by spine.spine_row
"""


def child(mode: str, work: Path) -> None:
    """One measured run, in its own process: writes its result, prints seconds and rows as JSON."""
    import duckdb

    started = time.perf_counter()
    if mode == "reference":
        connection = duckdb.connect()
        connection.execute("SET TimeZone = 'UTC'")
        connection.read_parquet(str(work / "raw" / "transactions" / "*.parquet")).create_view("transactions")
        # A table, not a registered Arrow object (DuckDB estimates those at ~1 row).
        connection.read_parquet(str(work / "spine.parquet")).create("spine_table")
        result = connection.sql(REFERENCE_SQL).to_arrow_table()
    else:
        from hindsight.training_sets import training_set

        result = training_set(str(work / "spine.parquet"), features=[f"txns:{f}" for f in FEATURES],
                              registry=registry(work))
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import pyarrow.parquet as pq

    pq.write_table(result, work / f"result_{mode}.parquet")
    print(json.dumps({"seconds": seconds, "rows": result.num_rows, "peak_rss_mb": peak_mb}))


def registry(work: Path):
    """The aggregation view over the bench's tile table (the demo's models are batch views)."""
    from hindsight.core.durations import parse_duration
    from hindsight.offline_store import tiles
    from hindsight.registry_sync.model import Aggregation, Entity, Feature, FeatureView, Registry

    inputs = {"*": None, "amount": "float64", "country": "string"}
    aggregations = tuple(
        Aggregation(tiles.feature_name(name, function, window), function, column,
                    int(parse_duration(window).total_seconds()))
        for name, function, column, windows in SPEC for window in windows
    )
    view = FeatureView(
        "txns", "aggregation", ("user",), ("user_id",), "ts", None, None, False, str(work / "tiles"),
        tuple(Feature(a.name, tiles.feature_dtype(a.function, inputs[a.column])) for a in aggregations),
        aggregation_interval_seconds=3600, aggregations=aggregations,
    )
    return Registry("bench", entities=(Entity("user", ("user_id",)),), feature_views=(view,))


def measure(mode: str, work: Path) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", mode, "--work", str(work)],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def prepare(work: Path, raw: Path, scale: str) -> tuple[int, int, float]:
    """Link the raw data, build the tile table and the spine; returns (spine rows, tile rows, seconds)."""
    import duckdb
    from deltalake import write_deltalake

    (work / "raw").symlink_to(raw.resolve())
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    transactions = connection.read_parquet(str(raw / "transactions" / "*.parquet"))
    transactions.create_view("transactions")
    started = time.perf_counter()
    tiles = connection.sql(TILES_SQL).order("user_id, ts").to_arrow_table()
    write_deltalake(work / "tiles", tiles, partition_by=["_partition_date"])
    built = time.perf_counter() - started
    rows, offset = SPINE[scale]
    spine = transactions.order("transaction_id").limit(rows, offset=offset)
    spine.select("user_id, ts as event_timestamp, is_fraud").write_parquet(str(work / "spine.parquet"))
    return int(connection.read_parquet(str(work / "spine.parquet")).count("*").fetchone()[0]), tiles.num_rows, built


def compare(work: Path) -> dict[str, int]:
    """Rows where the two results differ, per feature (floats within 1e-9 relative, stddev 1e-6)."""
    import duckdb

    connection = duckdb.connect()
    for mode in ("reference", "hindsight"):
        query = f"select row_number() over () as r, * from read_parquet('{work}/result_{mode}.parquet')"
        connection.sql(query).create(mode)
    differ = {}
    for name in FEATURES:
        tolerance = 1e-6 if "_stddev_" in name else 1e-9
        if "_count_" in name or "country" in name:
            same = f"a.{name} is not distinct from b.{name}"
        else:
            same = (f"(a.{name} is null and b.{name} is null) or "
                    f"abs(a.{name} - b.{name}) <= {tolerance} * greatest(abs(b.{name}), 1e-3)")
        found = connection.sql(f"select count(*) from reference a join hindsight b using (r) where not ({same})")
        differ[name] = int(found.fetchone()[0])
    return differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=sorted(SPINE))
    parser.add_argument("--raw", type=Path, default=None, help="generated demo data of this scale (default: generate)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", default=None)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.work)
        return
    work = Path(tempfile.mkdtemp(prefix="hindsight-aggbench-"))
    try:
        raw = args.raw
        if raw is None:
            from hindsight.demo_data import generate

            raw = work / "generated"
            generate(raw, scale=args.scale)
        spine_rows, tile_rows, built = prepare(work, raw, args.scale)
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for mode in ("reference", "hindsight"):
                result = measure(mode, work)
                if mode not in best or result["seconds"] < best[mode]["seconds"]:
                    best[mode] = result
        differ = compare(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reference = best["reference"]["seconds"]
    print(f"spine: {spine_rows:,} rows ({args.scale} demo data); {len(FEATURES)} aggregation features over "
          f"1h/1d/7d/30d; tile table {tile_rows:,} rows (built in {built:.1f} s)\n")
    print(f"{'run':<52} {'seconds':>8} {'vs ref':>7} {'peak RSS MB':>12}")
    labels = {"reference": "hand-written DuckDB over raw events (reference)",
              "hindsight": "training_set over the aggregation view's tiles"}
    for mode, label in labels.items():
        r = best[mode]
        print(f"{label:<52} {r['seconds']:>8.2f} {r['seconds'] / reference:>6.2f}x {r['peak_rss_mb']:>12.0f}")
    mismatched = {name: n for name, n in differ.items() if n}
    print(f"\nvalues: {'all equal' if not mismatched else f'DIFFER {mismatched}'} ({len(FEATURES)} features x "
          f"{spine_rows:,} rows)")
    print("target: training_set <= 1.5x the reference")
    if mismatched:
        sys.exit(1)


if __name__ == "__main__":
    main()
