"""`hindsight vacuum`: what it may delete (old versions' files past the retention, never a pinned
training set's), and its errors. Killed runs' orphans: test_killed_runs.py."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from hindsight.offline_store.vacuum import vacuum_table
from hindsight.training_sets.api import VERSIONS_KEY

pytestmark = pytest.mark.integration


def three_versions(path: Path) -> str:
    uri = str(path)
    for version in range(3):
        write_deltalake(uri, pa.table({"user_id": [version], "x": [float(version)]}), mode="overwrite")
    return uri


def age_log(uri: str, days: int) -> None:
    """Move every commit and removal `days` into the past, as if the versions were that old."""
    shift = days * 86_400_000
    for entry in sorted(Path(uri, "_delta_log").glob("*.json")):
        actions = [json.loads(line) for line in entry.read_text().splitlines()]
        for action in actions:
            for kind, field in (("remove", "deletionTimestamp"), ("commitInfo", "timestamp"), ("add", "modificationTime")):
                if kind in action and field in action[kind]:
                    action[kind][field] -= shift
        entry.write_text("\n".join(json.dumps(a) for a in actions) + "\n")


def readable(uri: str, version: int) -> bool:
    try:
        return DeltaTable(uri, version=version).to_pyarrow_table().column("user_id").to_pylist() == [version]
    except Exception:  # noqa: BLE001 - delta-rs raises a generic error for a missing data file
        return False


def test_old_versions_go_after_the_retention_but_pinned_ones_stay_readable(tmp_path):
    plain, pinned = three_versions(tmp_path / "plain"), three_versions(tmp_path / "pinned")
    for uri in (plain, pinned):
        age_log(uri, days=3)

    assert vacuum_table("v", plain, dt.timedelta(days=7)).files == ()
    report = vacuum_table("v", plain, dt.timedelta(days=1))
    assert len(report.files) == 2 and report.bytes > 0 and report.version == 2
    assert [readable(plain, v) for v in range(3)] == [False, False, True]

    kept = vacuum_table("v", pinned, dt.timedelta(days=1), keep_versions=[0])
    assert len(kept.files) == 1 and kept.kept_versions == (0,)
    assert [readable(pinned, v) for v in range(3)] == [True, False, True]


def test_a_missing_table_is_nothing_to_do_and_a_bad_pin_is_refused(tmp_path):
    assert vacuum_table("v", str(tmp_path / "none"), dt.timedelta(days=7)).version is None
    uri = three_versions(tmp_path / "t")
    with pytest.raises(ValueError, match=r"pinned version\(s\) \[7\] do not exist \(the table is at version 2\)"):
        vacuum_table("v", uri, dt.timedelta(days=7), keep_versions=[7])


def test_cli_errors_and_dry_run(demo_project, tmp_path):
    short = demo_project.run("hindsight", "vacuum", "--retention", "10m", check=False)
    assert short.returncode == 2 and "retention 10m is shorter than 1h" in short.stderr
    typo = demo_project.run("hindsight", "vacuum", "--select", "user_profil", check=False)
    assert typo.returncode == 2 and "unknown feature view 'user_profil' (did you mean 'user_profile'" in typo.stderr

    training = tmp_path / "training.parquet"
    table = pa.table({"user_id": [1]}).replace_schema_metadata({VERSIONS_KEY: json.dumps({"user_profile": 99}).encode()})
    pq.write_table(table, training)
    bad_pin = demo_project.run("hindsight", "vacuum", "--select", "user_profile", "--pinned", str(training), check=False)
    assert bad_pin.returncode == 1 and "pinned version(s) [99] do not exist" in bad_pin.stderr

    versions = {view: demo_project.version(view) for view in ("merchant_profile", "user_profile")}
    dry = demo_project.run("hindsight", "vacuum", "--dry-run")
    for view in versions:
        assert f"{view}: would remove 0 file(s), 0 B (version {versions[view]})" in dry.stdout
    assert "total: would remove 0 file(s)" in dry.stdout
    assert {view: demo_project.version(view) for view in versions} == versions
