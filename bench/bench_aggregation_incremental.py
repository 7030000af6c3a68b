"""Aggregation view: an incremental run after ~1.5% new events vs a full refresh (issue 9's 10% target).

A small project of its own (not the demo): one aggregation view over a Parquet source of
`--events` events (20,000 users, 60 days before now), then 1.5% new events in the last 12 hours.
Prints each run's model time (dbt's execution_time), whole `dbt run` wall time, and the slowest
SQL statements and plugin write of each run (from dbt's debug log).

    .venv/bin/python bench/bench_aggregation_incremental.py [--events 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
UTC = dt.timezone.utc

DBT_PROJECT = """\
name: 'txns'
version: '1.0.0'
config-version: 2
profile: 'txns'
on-run-start:
  - "{{ hindsight.register_file_sources('raw', env_var('TXNS_RAW')) }}"
vars:
  hindsight_require_descriptions: false
"""
PROFILES = """\
txns:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: data/txns.duckdb
      threads: 2
"""
SOURCES = """\
version: 2
sources:
  - name: raw
    schema: raw
    meta:
      external_location: "read_parquet('{{ env_var('TXNS_RAW') }}/{name}/*.parquet')"
    tables:
      - name: transactions
"""
VIEW = """\
{{ config(
    entities=['user_id'],
    timestamp_field='ts',{lateness}
    aggregation_interval='1h',
    windows=['1h', '1d', '7d', '30d'],
    aggregations=[
        {'column': '*', 'name': 'txn', 'functions': ['count']},
        {'column': 'amount', 'functions': ['sum', 'mean', 'max']},
        {'column': 'amount', 'functions': ['min', 'stddev'], 'windows': ['7d', '30d']},
        {'column': 'country', 'functions': ['last'], 'windows': ['30d']},
    ],
) }}
select user_id, ts, amount, country
from {{ source('raw', 'transactions') }}
where {{ hindsight.source_time_filter('ts') }}
"""
COUNTRIES = np.array(["DE", "FR", "NL", "PL", "US", "GB", "ES", "IT"])


def events(rng: np.random.Generator, n: int, start: dt.datetime, end: dt.datetime, users: int) -> pa.Table:
    span = int((end - start).total_seconds())
    seconds = np.sort(rng.integers(0, span, n))
    ts = np.datetime64(start.replace(tzinfo=None), "s") + seconds.astype("timedelta64[s]")
    return pa.table({
        "user_id": pa.array(rng.integers(1, users + 1, n), pa.int64()),
        "ts": pa.array(ts.astype("datetime64[us]"), pa.timestamp("us", "UTC")),
        "amount": pa.array(np.round(rng.gamma(2.0, 40.0, n), 2), pa.float64()),
        "country": pa.array(COUNTRIES[rng.integers(0, len(COUNTRIES), n)], pa.string()),
    })


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.raw = root / "data" / "raw"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HINDSIGHT_", "DBT_", "TXNS_"))}
        return {**env, "TXNS_RAW": str(self.raw), "HINDSIGHT_OFFLINE_STORE": str(self.root / "data" / "offline_store"),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "HINDSIGHT_TOOLS": str(REPO / ".tools")}

    def run(self, *command: str) -> None:
        result = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=self.root, env=self.env(),
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")

    def timed_run(self, label: str, *args: str) -> tuple[float, float, list[tuple[float, str]]]:
        log = self.root / "logs" / "dbt.log"
        log.unlink(missing_ok=True)
        started = time.perf_counter()
        self.run("dbt", "--log-level-file", "debug", "run", *args)
        wall = time.perf_counter() - started
        results = json.loads((self.root / "target" / "run_results.json").read_text())
        model = sum(r["execution_time"] for r in results["results"])
        log.rename(log.with_name(f"dbt-{label}.log"))
        return wall, model, slowest_statements(log.with_name(f"dbt-{label}.log").read_text())


def slowest_statements(text: str) -> list[tuple[float, str]]:
    """(seconds, first line of the SQL) of each statement dbt timed, slowest first, then the write's log line."""
    found = []
    label, pending = "", False
    for line in text.splitlines():
        if "On model." in line:
            label, pending = line.split(": ", 2)[-1].strip()[:90], "/*" in line
        elif pending and line.strip():
            label, pending = line.strip()[:90], False
        elif m := re.search(r"SQL status: .* in ([0-9.]+) seconds", line):
            found.append((float(m.group(1)), label or "(opening the first connection: plugin, delta extension)"))
    found = sorted(found, key=lambda f: -f[0])[:5]
    # The Delta write (delta_writer, in the plugin) logs no SQL status: its time is the gap before its line.
    stamps = re.findall(r"(\d\d):(\d\d):(\d\d\.\d+) \[\w+ *\] \[[^]]*\]: (.*)", text)
    for before, (h, m_, sec, message) in itertools.pairwise(stamps):
        if re.match(r"hindsight adapter: hindsight: \S+ (full_refresh|incremental|backfill):", message):
            gap = (int(h) * 3600 + int(m_) * 60 + float(sec)) - (int(before[0]) * 3600 + int(before[1]) * 60 + float(before[2]))
            found.append((gap, "Delta write: " + message.split("hindsight: ", 2)[-1][:80]))
    return found


#: Events before the new ones, per --scale.
SCALE_EVENTS = {"small": 200_000, "medium": 10_000_000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=sorted(SCALE_EVENTS),
                        help="events before the new ones: small 200,000 (checks the script runs), medium 10,000,000")
    parser.add_argument("--events", type=int, default=None, help="overrides the scale's event count")
    parser.add_argument("--keep", type=Path, default=None)
    parser.add_argument("--lateness", default=None, help="the view's allowed_lateness (default: the default, 3d)")
    args = parser.parse_args()
    args.events = args.events or SCALE_EVENTS[args.scale]
    root = (args.keep or Path(tempfile.mkdtemp(prefix="hindsight-aggbench-"))) / "txns"
    (root / "models" / "features").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(DBT_PROJECT)
    (root / "profiles.yml").write_text(PROFILES)
    (root / "models" / "sources.yml").write_text(SOURCES)
    lateness = "" if args.lateness is None else f"\n    allowed_lateness='{args.lateness}',"
    (root / "models" / "features" / "bench_txn.sql").write_text(VIEW.replace("{lateness}", lateness))
    project = Project(root)
    project.run("hindsight", "init")
    project.run("dbt", "deps")

    rng = np.random.default_rng(7)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    cutoff = now - dt.timedelta(hours=12)
    (project.raw / "transactions").mkdir(parents=True)
    pq.write_table(events(rng, args.events, cutoff - dt.timedelta(days=60), cutoff, 20_000), project.raw / "transactions" / "part0.parquet")
    full = project.timed_run("full", "--full-refresh")
    new = int(args.events * 0.015)
    pq.write_table(events(rng, new, cutoff, now - dt.timedelta(minutes=1), 20_000), project.raw / "transactions" / "part1.parquet")
    incremental = project.timed_run("incremental")
    noop = project.timed_run("noop")
    reference = project.timed_run("reference", "--full-refresh")

    print(f"allowed_lateness: {args.lateness or '3d (default)'}")
    print(f"{args.events:,} events, then {new:,} new ({new / (args.events + new):.2%}) in the last 12 h")
    for label, (wall, model, statements) in [("full refresh (first)", full), ("incremental", incremental),
                                             ("incremental, nothing new", noop), ("full refresh (reference)", reference)]:
        print(f"{label:<28} model {model:6.1f} s   dbt run {wall:6.1f} s")
        for seconds, sql in statements:
            print(f"    {seconds:6.2f}  {sql}")
    print(f"incremental / full refresh (reference): model {incremental[1] / reference[1]:.1%}, dbt run {incremental[0] / reference[0]:.1%}")
    print(os.popen("uptime").read().strip())


if __name__ == "__main__":
    main()
