"""Which Delta layout reads fastest: the same ASOF training query over each layout of the same rows.

The measurement behind `hindsight optimize` and the default layout of feature view tables
(docs/_incoming/delta-layout.md). Copies the demo's two as-of views (user_profile,
merchant_profile) of a built project into each layout below, then runs bench/bench_training.py's
hand-written ASOF query over each, every run in a fresh process (its own peak RSS), best of
`--rounds`, as a ratio to the same query over one Parquet file per view in the same command:

- today:      the table as dbt wrote it (daily `_partition_date` partitions), `delta_scan`
- compact:    a copy compacted with `optimize.compact` (target 256 MB; works within partitions)
- zorder:     a copy z-ordered by the entity key (`optimize.z_order`; rewrites across partitions)
- month:      the rows rewritten partitioned by month
- none:       the rows rewritten unpartitioned (one file per view at this size)
- files:      today's table read as `read_parquet([...])` over the snapshot's file list
- none_files: the unpartitioned copy read as `read_parquet([...])`

    .venv/bin/python bench/bench_layout_variants.py --project DIR [--scale medium] [--rounds 2]

--project reuses a built demo project of that scale (bench/bench_layout.py --keep DIR leaves one in
DIR/project); without it, one is built in a temporary folder.
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

from _support import BenchProject
from bench_training import REFERENCE_SQL, VIEWS, make_spine

ENTITY = {"user_profile": "user_id", "merchant_profile": "merchant_id"}
LAYOUTS = ("parquet", "today", "compact", "zorder", "month", "none", "files", "none_files")
TARGET_SIZE = 256 * 1024 * 1024


def build_layouts(project: Path, work: Path) -> dict[str, dict[str, str]]:
    """{layout: {view: location}}: Delta folders, or a Parquet file for "parquet"."""
    import duckdb
    import pyarrow.compute as pc
    from deltalake import DeltaTable, write_deltalake

    store = BenchProject(project).settings.offline_store
    out: dict[str, dict[str, str]] = {name: {} for name in LAYOUTS}
    for view in VIEWS:
        source = f"{store}/{view}"
        table = DeltaTable(source)
        # The rows without the table's own partition columns (from its Delta metadata).
        data = table.to_pyarrow_table().drop_columns(table.metadata().partition_columns)
        out["today"][view] = out["files"][view] = source
        parquet = work / f"{view}.parquet"
        connection = duckdb.connect()
        connection.from_arrow(data).write_parquet(str(parquet))
        out["parquet"][view] = str(parquet)
        for layout in ("compact", "zorder"):
            copy = work / layout / view
            shutil.copytree(source, copy)
            copied = DeltaTable(str(copy))
            if layout == "compact":
                copied.optimize.compact(target_size=TARGET_SIZE)
            else:
                copied.optimize.z_order([ENTITY[view]], target_size=TARGET_SIZE)
            out[layout][view] = str(copy)
        month = data.append_column("_partition_month", pc.strftime(data["event_timestamp"], format="%Y-%m"))
        write_deltalake(str(work / "month" / view), month, partition_by=["_partition_month"])
        out["month"][view] = str(work / "month" / view)
        write_deltalake(str(work / "none" / view), data)
        out["none"][view] = out["none_files"][view] = str(work / "none" / view)
    return out


def describe(location: str) -> str:
    from deltalake import DeltaTable

    if location.endswith(".parquet"):
        return "1 file"
    files = DeltaTable(location).file_uris()
    return f"{len(files)} files"


def child(layout: str, locations: dict[str, str], spine: Path) -> None:
    """One measured run, in its own process: prints seconds, rows and peak RSS as JSON."""
    import duckdb
    from deltalake import DeltaTable
    from sqlglot import exp

    from hindsight.offline_store.duckdb_delta import load_delta_extension

    started = time.perf_counter()
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    load_delta_extension(connection)
    for view, location in locations.items():
        if layout == "parquet":
            source = exp.func("read_parquet", exp.Literal.string(location))
        elif layout in ("files", "none_files"):
            files = exp.Array(expressions=[exp.Literal.string(f) for f in DeltaTable(location).file_uris()])
            source = exp.func("read_parquet", files)
        else:
            source = exp.func("delta_scan", exp.Literal.string(location))
        connection.sql(exp.select("*").from_(source).sql("duckdb")).create_view(view)
    connection.read_parquet(str(spine)).create("spine_table")
    rows = connection.sql(REFERENCE_SQL).to_arrow_table().num_rows
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": rows,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=["small", "medium"])
    parser.add_argument("--project", type=Path, default=None, help="a built demo project of that scale")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", default=None)
    parser.add_argument("--locations", default=None)
    parser.add_argument("--spine", type=Path, default=None)
    args = parser.parse_args()
    if args.child:
        child(args.child, json.loads(args.locations), args.spine)
        return
    if args.project is None:
        from bench_layout import build

        args.project = build(Path(tempfile.mkdtemp(prefix="hindsight-bench-")), args.scale)
    work = Path(tempfile.mkdtemp(prefix="hindsight-layouts-"))
    try:
        layouts = build_layouts(args.project, work)
        spine = work / "spine.parquet"
        spine_rows = make_spine(args.project, spine, args.scale)
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for layout in LAYOUTS:
                output = subprocess.run(
                    [sys.executable, __file__, "--child", layout, "--locations", json.dumps(layouts[layout]),
                     "--spine", str(spine)], check=True, capture_output=True, text=True).stdout
                result = json.loads(output.strip().splitlines()[-1])
                if layout not in best or result["seconds"] < best[layout]["seconds"]:
                    best[layout] = result
        reference = best["parquet"]
        print(f"spine: {spine_rows:,} rows ({args.scale}); ASOF over {', '.join(VIEWS)}; best of {args.rounds}\n")
        print(f"{'layout':<12} {'files (per view)':<22} {'seconds':>8} {'vs 1 file':>9} {'peak MB':>8} {'vs 1 file':>9}")
        for layout in LAYOUTS:
            r = best[layout]
            files = ", ".join(describe(layouts[layout][v]) for v in VIEWS)
            print(f"{layout:<12} {files:<22} {r['seconds']:>8.2f} {r['seconds'] / reference['seconds']:>8.2f}x "
                  f"{r['peak_rss_mb']:>8.0f} {r['peak_rss_mb'] / reference['peak_rss_mb']:>8.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
