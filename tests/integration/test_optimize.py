"""`hindsight optimize`: fewer files, the same rows in every version, and nothing done where nothing pays."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from deltalake import DeltaTable, write_deltalake

from hindsight.core.config import OptimizeSection
from hindsight.offline_store.optimize import coarser_partition_hint, optimize_table

pytestmark = pytest.mark.integration


def rows(table: DeltaTable, keys: list[str]) -> pa.Table:
    data = table.to_pyarrow_table()
    return data.select(sorted(data.column_names)).sort_by([(k, "ascending") for k in keys])


def small_appends(uri: str, days: int, writes: int) -> pa.Table:
    """`writes` appends, each adding one row to each of `days` daily partitions: days x writes small files."""
    batches = []
    for write in range(writes):
        day = [dt.date(2026, 10, 1) + dt.timedelta(days=d) for d in range(days)]
        batch = pa.table({
            "user_id": [write * days + d for d in range(days)],
            "x": [float(write)] * days,
            "_partition_date": day,
        })
        write_deltalake(uri, batch, mode="append", partition_by=["_partition_date"])
        batches.append(batch)
    return pa.concat_tables(batches)


def test_compaction_merges_small_files_per_partition_and_keeps_every_version(tmp_path):
    uri = str(tmp_path / "v")
    written = small_appends(uri, days=3, writes=4)
    versions = {v: rows(DeltaTable(uri, version=v), ["user_id"]) for v in range(4)}

    report = optimize_table("v", uri, ["user_id"], OptimizeSection(z_order=False))

    assert report.rewritten and (report.version_before, report.version_after) == (3, 4)
    assert (report.before.files, report.after.files) == (12, 3)  # one file per daily partition
    assert report.before.partitions_to_rewrite == 3 and report.after.partitions_to_rewrite == 0
    table = DeltaTable(uri)
    assert rows(table, ["user_id"]).equals(rows(DeltaTable(uri, version=3), ["user_id"]))
    assert table.to_pyarrow_table().num_rows == written.num_rows == 12
    assert table.history(1)[0]["operation"] == "OPTIMIZE"
    for version, before in versions.items():  # older snapshots read exactly as before
        assert rows(DeltaTable(uri, version=version), ["user_id"]).equals(before)


def test_many_tiny_partitions_get_a_hint_with_the_monthly_count(tmp_path):
    uri = str(tmp_path / "v")
    small_appends(uri, days=1100, writes=1)  # 2026-10-01 .. 2029-10-04: 37 months, one row a day

    report = optimize_table("v", uri, ["user_id"], OptimizeSection())

    assert not report.rewritten and (report.after.partitions, report.after.months) == (1100, 37)
    assert coarser_partition_hint(report.after).startswith("1,100 partitions of ")
    # Partitioned by the derived daily column: a full refresh chooses months for rows this sparse.
    assert "by month they would be 37. `dbt run --full-refresh` the view" in coarser_partition_hint(report.after)
    own = str(tmp_path / "own")
    write_deltalake(own, DeltaTable(uri).to_pyarrow_table().rename_columns({"_partition_date": "day"}),
                    partition_by=["day"])
    assert "by month they would be 37. Set a coarser partition_by" in coarser_partition_hint(
        optimize_table("own", own, ["user_id"]).after)
    fewer = str(tmp_path / "fewer")
    small_appends(fewer, days=900, writes=1)
    assert coarser_partition_hint(optimize_table("fewer", fewer, ["user_id"]).after) is None


def test_no_small_files_means_no_new_version(tmp_path):
    uri = str(tmp_path / "v")
    small_appends(uri, days=5, writes=1)  # one file per partition: nothing to merge

    report = optimize_table("v", uri, ["user_id"])

    assert not report.rewritten and report.version_after == 0 == DeltaTable(uri).version()
    assert report.before.files == report.after.files == 5
    assert optimize_table("v", str(tmp_path / "none"), ["user_id"]).before is None


def test_min_small_files_and_z_order(tmp_path):
    uri = str(tmp_path / "v")
    small_appends(uri, days=2, writes=2)
    assert not optimize_table("v", uri, ["user_id"], OptimizeSection(min_small_files=3)).rewritten

    report = optimize_table("v", uri, ["user_id"], OptimizeSection(z_order=True))

    assert report.rewritten and report.z_order_by == ("user_id",) and report.after.files == 2
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 4


def test_cli_optimize_keeps_training_sets_identical(project_copy):
    """After an incremental run and pushes add small files, optimize merges them and every
    version's training set stays the same (older versions still read their own files)."""
    from hindsight.training_sets import training_set

    project = project_copy
    project.generate(loaded_from=dt.datetime(2026, 10, 30, tzinfo=dt.timezone.utc))
    project.dbt("run", "--select", "user_profile", "merchant_profile")
    spine = pa.table({
        "user_id": pa.array(range(1, 200), pa.int64()),
        "merchant_id": pa.array([m % 50 + 1 for m in range(1, 200)], pa.int64()),
        "event_timestamp": pa.array([dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)] * 199, pa.timestamp("us", "UTC")),
    })
    features = ["user_profile:*", "merchant_profile:*"]
    from hindsight.project import project_registry

    registry = project_registry(project.settings)
    before_versions = {v: project.version(v) for v in ("user_profile", "merchant_profile", "merchant_risk")}
    sets = {
        version: training_set(spine, features=features, registry=registry, versions={"user_profile": version})
        for version in range(before_versions["user_profile"] + 1)
    }
    files_before = len(project.table("user_profile").file_uris())

    result = project.run("hindsight", "optimize", "--select", "user_profile", "--select", "merchant_profile")

    assert "user_profile: " in result.stdout and "file(s)" in result.stdout, result.stdout
    assert project.version("merchant_risk") == before_versions["merchant_risk"]  # not selected: untouched
    assert project.version("user_profile") == before_versions["user_profile"] + 1
    assert len(project.table("user_profile").file_uris()) < files_before
    for version, expected in sets.items():
        again = training_set(spine, features=features, registry=registry, versions={"user_profile": version})
        assert again.equals(expected), version
    latest = training_set(spine, features=features, registry=registry)
    assert latest.drop_columns([]).equals(sets[before_versions["user_profile"]])

    second = project.run("hindsight", "optimize", "--select", "user_profile")
    assert "user_profile: nothing to do" in second.stdout
    assert project.version("user_profile") == before_versions["user_profile"] + 1

    typo = project.run("hindsight", "optimize", "--select", "user_profil", check=False)
    assert typo.returncode == 2 and "unknown feature view 'user_profil' (did you mean 'user_profile'" in typo.stderr


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    writes=st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=4), min_size=1, max_size=5),
    min_small_files=st.integers(2, 4),
    z_order=st.booleans(),
)
def test_optimize_never_changes_a_row_of_any_version(tmp_path_factory, writes, min_small_files, z_order):
    """Random appends (each a list of day offsets) then optimize: every version reads the same rows,
    no partition is left with `min_small_files` small files, and a second optimize does nothing."""
    uri = str(tmp_path_factory.mktemp("prop") / "v")
    next_id = 0
    for days in writes:
        ids = list(range(next_id, next_id + len(days)))
        next_id += len(days)
        write_deltalake(uri, pa.table({
            "user_id": ids,
            "x": [float(i) / 3 for i in ids],
            "_partition_date": [dt.date(2026, 10, 1) + dt.timedelta(days=d) for d in days],
        }), mode="append", partition_by=["_partition_date"])
    last = len(writes) - 1
    before = {v: rows(DeltaTable(uri, version=v), ["user_id"]) for v in range(last + 1)}
    config = OptimizeSection(min_small_files=min_small_files, z_order=z_order)

    report = optimize_table("v", uri, ["user_id"], config)

    assert report.after.partitions_to_rewrite == 0
    assert report.rewritten == (report.before.partitions_to_rewrite > 0)
    assert rows(DeltaTable(uri), ["user_id"]).equals(before[last])
    for version, expected in before.items():
        assert rows(DeltaTable(uri, version=version), ["user_id"]).equals(expected)
    assert not optimize_table("v", uri, ["user_id"], config).rewritten
