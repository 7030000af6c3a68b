"""`kill -9` mid-way through a full refresh, a backfill and an incremental online sync: the state
stays consistent, a rerun converges, and `hindsight vacuum` removes what the killed write left."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from hindsight.online_sync import OnlineStore, sync
from hindsight.online_sync.state import read_state
from tests.fixtures.dbt_project import BIN, DbtProject
from tests.fixtures.dynamodb import make_registry, make_view, write_rows
from tests.integration.delta_compare import assert_same_rows
from tests.integration.test_online_sync import KILLED_SYNC, amounts, row

pytestmark = pytest.mark.integration

VIEW = "user_transaction_aggregates"
KEYS = ["user_id", "event_timestamp"]
#: Daily partitions: a write of many files, slow enough to be killed between its files and its commit
#: (the small demo's tiles would otherwise be monthly, written in a few files).
DAILY = json.dumps({"hindsight_month_partition_below_rows_per_day": 0})


def rebuilt_daily(project: DbtProject) -> DbtProject:
    project.dbt("run", "--select", VIEW, "--full-refresh", "--vars", DAILY)
    return project


def table_dir(project: DbtProject, view: str = VIEW) -> Path:
    return Path(project.settings.offline_store) / view


def unreferenced_files(project: DbtProject, view: str = VIEW) -> set[Path]:
    """Parquet files in the table's folder that no version of its log adds."""
    folder = table_dir(project, view)
    added = set()
    for entry in (folder / "_delta_log").glob("*.json"):
        for line in entry.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                added.add(folder / action["add"]["path"])
    return {f for f in folder.rglob("*.parquet") if f not in added}


def kill_once_files_appear(project: DbtProject, *dbt_args: str) -> None:
    """Run dbt and `kill -9` it as soon as it has written its first new Parquet file (before its commit)."""
    known = set(table_dir(project).rglob("*.parquet"))
    process = subprocess.Popen([str(BIN / "dbt"), *dbt_args], cwd=project.root, env=project.env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if any(f not in known for f in table_dir(project).rglob("*.parquet")):
                os.killpg(process.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "dbt finished before it could be killed mid-write"


def test_a_killed_full_refresh_changes_nothing_and_vacuum_removes_its_orphans(project_copy):
    rebuilt_daily(project_copy)
    before, version = project_copy.table(VIEW).to_pandas(), project_copy.version(VIEW)
    assert unreferenced_files(project_copy) == set()

    kill_once_files_appear(project_copy, "run", "--select", VIEW, "--full-refresh", "--vars", DAILY)

    assert project_copy.version(VIEW) == version
    assert_same_rows(project_copy.table(VIEW).to_pandas(), before, KEYS)
    orphans = unreferenced_files(project_copy)
    assert orphans, "the killed write should have left Parquet files behind"
    orphan_bytes = sum(f.stat().st_size for f in orphans)

    project_copy.dbt("parse")  # the vacuum command finds views through the manifest
    young = project_copy.run("hindsight", "vacuum", "--select", VIEW, "--retention", "1h")
    assert f"{VIEW}: removed 0 file(s)" in young.stdout, "files younger than the retention must stay"
    assert unreferenced_files(project_copy) == orphans

    two_hours_ago = time.time() - 2 * 3600  # as if the run was killed two hours ago
    for orphan in orphans:
        os.utime(orphan, (two_hours_ago, two_hours_ago))
    dry = project_copy.run("hindsight", "vacuum", "--select", VIEW, "--retention", "1h", "--dry-run")
    assert f"{VIEW}: would remove {len(orphans)} file(s)" in dry.stdout
    assert unreferenced_files(project_copy) == orphans
    assert project_copy.version(VIEW) == version, "a dry run commits nothing"

    done = project_copy.run("hindsight", "vacuum", "--select", VIEW, "--retention", "1h")
    assert f"{VIEW}: removed {len(orphans)} file(s)" in done.stdout
    assert f"total: removed {len(orphans)} file(s)" in done.stdout
    from hindsight.offline_store.vacuum import format_bytes

    assert format_bytes(orphan_bytes) in done.stdout
    assert unreferenced_files(project_copy) == set()
    assert_same_rows(project_copy.table(VIEW).to_pandas(), before, KEYS)
    # Delta records the vacuum in the log (no data change, so online sync has nothing to do).
    vacuumed = project_copy.version(VIEW)
    assert [c["operation"] for c in project_copy.table(VIEW).history(2)] == ["VACUUM END", "VACUUM START"]

    # The rerun converges: a full refresh as if nothing had happened.
    project_copy.dbt("run", "--select", VIEW, "--full-refresh", "--vars", DAILY)
    assert project_copy.version(VIEW) == vacuumed + 1
    assert_same_rows(project_copy.table(VIEW).to_pandas(), before, KEYS)


def test_a_killed_backfill_changes_nothing_and_the_rerun_converges(project_copy):
    backfill = json.dumps({"backfill_start": "2026-08-01", "backfill_end": "2026-10-01"})
    rebuilt_daily(project_copy)
    before, version = project_copy.table(VIEW).to_pandas(), project_copy.version(VIEW)
    transactions = project_copy.settings.raw_data_dir / "transactions"
    raw = ds.dataset(transactions, format="parquet").to_table()
    doubled = raw.set_column(raw.schema.get_field_index("amount"), "amount", pc.multiply(raw["amount"], 2.0))
    for part in transactions.glob("*.parquet"):
        part.unlink()
    pq.write_table(doubled, transactions / "part-00000.parquet")

    kill_once_files_appear(project_copy, "run", "--select", VIEW, "--vars", backfill)
    assert project_copy.version(VIEW) == version
    assert_same_rows(project_copy.table(VIEW).to_pandas(), before, KEYS)

    project_copy.dbt("run", "--select", VIEW, "--vars", backfill)
    after = project_copy.table(VIEW).to_pandas()
    start, end = pd.Timestamp("2026-08-01", tz="UTC"), pd.Timestamp("2026-10-01", tz="UTC")
    inside = lambda f: f[(f["event_timestamp"] >= start) & (f["event_timestamp"] < end)]  # noqa: E731
    outside = lambda f: f[(f["event_timestamp"] < start) | (f["event_timestamp"] >= end)]  # noqa: E731
    assert project_copy.version(VIEW) == version + 1
    assert_same_rows(outside(after), outside(before), KEYS)
    assert len(inside(after)) == len(inside(before)) > 0
    assert inside(after)["amount__sum"].sum() == pytest.approx(2 * inside(before)["amount__sum"].sum())  # the tiles' sums


def test_a_killed_incremental_sync_keeps_its_version_and_the_rerun_converges(tmp_path, online_config, dynamodb_client):
    view = make_view(tmp_path)
    registry = make_registry(view)
    users = list(range(500))
    write_rows(view, [row(u, 1, float(u)) for u in users])
    assert sync(registry, online_config, progress=False).views[0].mode == "full"
    write_rows(view, [row(u, 2, 1000.0 + u) for u in users])

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_SYNC, json.dumps(dataclasses.asdict(online_config)),
         json.dumps(registry.to_dict(), default=str)],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    table = online_config.table_name(view.name)
    assert read_state(dynamodb_client, table).delta_version == 0, "a killed sync must not advance its version"
    store = OnlineStore(registry, online_config)
    assert 0 < sum(v >= 1000 for v in amounts(store, users).values()) < len(users), "killed half-way"

    report = sync(registry, online_config, progress=False).views[0]
    assert report.to_version == 1
    assert amounts(store, users) == {u: 1000.0 + u for u in users}
    assert read_state(dynamodb_client, table).delta_version == 1
