"""The validation log and the publish gate, on hand-made records (no Great Expectations, no Delta)."""

from __future__ import annotations

import dataclasses
import json

from hindsight.quality.gate import Refusal, check_publish
from hindsight.quality.records import ExpectationResult, ValidationLog, ValidationRecord, fingerprint
from hindsight.registry_sync.model import Expectation, Feature, FeatureView

EXPECTATIONS = (Expectation("expect_column_values_to_be_between", {"column": "amount", "min_value": 0}),)
VIEW = FeatureView("spend", "batch", ("user",), ("user_id",), "ts", None, None, True, "/x",
                   (Feature("amount", "float64"),), expectations=EXPECTATIONS)


def record(version: int, passed: bool, *, table_id: str = "t1", view: FeatureView = VIEW, warning: bool = False) -> ValidationRecord:
    result = ExpectationResult(
        "expect_column_values_to_be_between", {"column": "amount", "min_value": 0}, passed,
        "warning" if warning else "critical", element_count=10, unexpected_count=0 if passed else 2,
        unexpected_percent=0.0 if passed else 20.0, partial_unexpected_list=[] if passed else [-1.0, -3.5, -1.0],
    )
    return ValidationRecord(
        view=view.name, delta_version=version, table_id=table_id, scope="changes", from_version=version, rows=10,
        passed=passed or warning, expectations=fingerprint(view.expectations), results=(result,),
        validated_at="2026-11-30T12:00:00+00:00", registry_version=3,
    )


def test_records_round_trip_one_json_line_each(tmp_path):
    log = ValidationLog.in_registry(tmp_path)
    first, second = record(0, True), record(1, False)
    log.append(first)
    log.append(second)
    assert list(log.records()) == [first, second]
    lines = (tmp_path / "validations.jsonl").read_text().splitlines()
    assert json.loads(lines[1])["results"][0]["partial_unexpected_list"] == [-1.0, -3.5, -1.0]
    assert list(log.records("other_view")) == []


def test_newest_passed_counts_the_newest_record_of_each_version_of_this_table_and_these_expectations(tmp_path):
    log = ValidationLog(tmp_path / "v.jsonl")
    for r in (record(0, True), record(1, True), record(1, False), record(2, False), record(5, True, table_id="recreated")):
        log.append(r)
    assert log.newest_passed(VIEW, "t1").delta_version == 0  # version 1 was validated again and failed
    assert log.newest_passed(VIEW, "t1", below=0) is None
    assert log.status(VIEW, "t1", 2).passed is False
    assert log.newest_passed(VIEW, "recreated").delta_version == 5
    stricter = dataclasses.replace(VIEW, expectations=(*EXPECTATIONS, Expectation("expect_column_values_to_not_be_null", {"column": "amount"})))
    assert log.newest_passed(stricter, "t1") is None and log.status(stricter, "t1", 0) is None


def test_the_gate_passes_views_without_expectations_and_refuses_unvalidated_or_failed_versions(tmp_path):
    log = ValidationLog(tmp_path / "v.jsonl")
    assert check_publish(dataclasses.replace(VIEW, expectations=()), "t1", 7, log) is None
    never = check_publish(VIEW, "t1", 0, log)
    assert str(never) == (
        "feature view spend: Delta version 0 was never validated with the view's current expectations; run "
        "`hindsight validate --select spend` first (or publish it unvalidated with `hindsight sync --force`)"
    )
    log.append(record(0, False))
    failed = check_publish(VIEW, "t1", 0, log)
    assert isinstance(failed, Refusal) and failed.reason == "failed"
    assert str(failed) == (
        "feature view spend: Delta version 0 failed validation (1 of 1 expectations failed on 10 rows added by version 0, "
        "validated 2026-11-30T12:00:00+00:00):\n"
        "  - expect_column_values_to_be_between(column=amount, min_value=0): 2 of 10 rows unexpected, e.g. [-1.0, -3.5]\n"
        "  fix: fix the data and rebuild (`dbt build --select spend`), then `hindsight validate --select spend` (add "
        "--all-rows if the rebuild replaced the bad rows); or publish it anyway with `hindsight sync --force`"
    )
    log.append(record(0, True))
    assert check_publish(VIEW, "t1", 0, log) is None
    log.append(record(1, False, warning=True))  # a failed warning is recorded but does not block
    assert check_publish(VIEW, "t1", 1, log) is None


def test_a_line_cut_short_is_ignored(tmp_path, caplog):
    log = ValidationLog(tmp_path / "v.jsonl")
    log.append(record(0, True))
    with log.path.open("a") as out:
        out.write('{"view": "spend", "delta_version": 1, "pas')
    assert [r.delta_version for r in log.records()] == [0]
    assert "line 2 is incomplete" in caplog.text


def test_a_compaction_or_vacuum_after_validation_keeps_the_validated_rows_publishable(tmp_path):
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from hindsight.offline_store.tables import same_rows_versions

    uri = str(tmp_path / "view")
    for value in range(3):
        write_deltalake(uri, pa.table({"a": [value]}), mode="append")
    DeltaTable(uri).optimize.compact()  # version 3
    DeltaTable(uri).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)  # 4, 5
    write_deltalake(uri, pa.table({"a": [9]}), mode="append")  # version 6 adds a row
    table = DeltaTable(uri)
    assert same_rows_versions(table, 5) == [5, 4, 3, 2]
    assert same_rows_versions(table, 6) == [6]
    assert same_rows_versions(table, 1) == [1]

    log = ValidationLog(tmp_path / "v.jsonl")
    log.append(record(2, True))
    assert check_publish(VIEW, "t1", 5, log, same_rows_versions(table, 5)) is None
    refused = check_publish(VIEW, "t1", 6, log, same_rows_versions(table, 6))
    assert refused is not None and refused.version == 6 and refused.reason == "never_validated"
    log.append(record(5, False))  # a validation of the compacted version itself decides over the older one
    refused = check_publish(VIEW, "t1", 5, log, same_rows_versions(table, 5))
    assert refused is not None and refused.reason == "failed"


def test_the_last_materialization_skips_compaction_and_vacuum_commits(tmp_path):
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from hindsight.offline_store.freshness import last_commit

    uri = str(tmp_path / "view")
    for value in range(2):
        write_deltalake(uri, pa.table({"a": [value]}), mode="append")
    DeltaTable(uri).optimize.compact()
    DeltaTable(uri).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    commit = last_commit(DeltaTable(uri))
    assert (commit.version, commit.operation) == (1, "WRITE")
