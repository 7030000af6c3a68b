"""The data quality gate on real Delta tables and DynamoDB Local: `hindsight validate` records each
expectation's outcome per view and Delta version, `hindsight sync` refuses a version that failed or
was never validated (unless --force), and training sets can read validated versions only."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake

from hindsight.cli import main
from hindsight.online_sync import OnlineStore
from hindsight.quality import ValidationLog
from hindsight.registry_sync.model import Expectation
from hindsight.registry_sync.store import RegistryStore
from hindsight.training_sets import TrainingSetError, read_versions, training_set
from tests.fixtures.dynamodb import delta_schema, make_registry, make_view, write_rows

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)
EXPECTATIONS = (
    Expectation("expect_column_values_to_not_be_null", {"column": "user_id"}),
    Expectation("expect_column_values_to_be_between", {"column": "amount", "min_value": 0, "max_value": 100}),
    Expectation("expect_column_values_to_be_in_set", {"column": "country", "value_set": ["FR", "DE"], "severity": "warning"}),
)


def row(user: int, hour: int, amount: float, country: str = "FR") -> dict:
    at = T0 + dt.timedelta(hours=hour)
    return {"user_id": user, "ts": at, "created": at, "amount": amount, "count": 1, "country": country}


@pytest.fixture
def project(tmp_path, online_config):
    """A checked view (expectations) and an unchecked one, their registry applied in a registry folder of this test's own."""
    checked = dataclasses.replace(make_view(tmp_path, "user_stats"), expectations=EXPECTATIONS)
    unchecked = make_view(tmp_path, "user_clicks", {"clicks": "int64"})
    write_rows(checked, [row(u, 0, 10.0 * u) for u in range(1, 5)])
    write_rows(unchecked, [{"user_id": 1, "ts": T0, "created": T0, "clicks": 3}])
    registry = RegistryStore(tmp_path / "registry").write(make_registry(checked, unchecked))
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": online_config.endpoint_url,
           "HINDSIGHT_DYNAMODB_TABLE_PREFIX": online_config.table_prefix,
           "HINDSIGHT_REGISTRY": str(tmp_path / "registry")}
    return registry, env, ValidationLog(tmp_path / "registry" / "validations.jsonl")


def run(*args: str, env: dict) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args], env=env)
    return result.exit_code, result.output


def amount_online(registry, online_config, user: int) -> float | None:
    return OnlineStore(registry, online_config).read([{"user_id": user}], {"user_stats": ["amount"]})[0]["user_stats"].values["amount"]


def test_sync_refuses_unvalidated_and_failed_versions_until_fixed_or_forced(project, online_config):
    registry, env, log = project
    view = registry.view("user_stats")

    code, out = run("sync", "--no-progress", env=env)
    assert code == 1
    assert ("Error: not published:\nfeature view user_stats: Delta version 0 was never validated with the view's current "
            "expectations; run `hindsight validate --select user_stats` first (or publish it unvalidated with "
            "`hindsight sync --force`)") in out
    # The view without expectations synced all the same.
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:3]}
    assert lines == {"user_stats": "refused", "user_clicks": "full"}

    code, out = run("validate", env=env)
    assert code == 0, out
    assert "user_stats" in out and "all 4 rows" in out and "passed" in out and "3/3" in out
    (first,) = log.records()
    assert (first.view, first.delta_version, first.scope, first.from_version, first.rows, first.passed) == ("user_stats", 0, "all_rows", None, 4, True)
    assert first.registry_version == 1
    assert [(r.type, r.success, r.element_count, r.unexpected_count) for r in first.results] == [
        ("expect_column_values_to_not_be_null", True, 4, 0),
        ("expect_column_values_to_be_between", True, 4, 0),
        ("expect_column_values_to_be_in_set", True, 4, 0),
    ]
    code, out = run("sync", "--no-progress", env=env)
    assert code == 0, out
    assert amount_online(registry, online_config, 2) == 20.0

    # Version 1 adds a negative amount and a country outside the set (a warning: recorded, not blocking).
    write_rows(view, [row(2, 1, -5.0), row(3, 1, 30.0, country="ES")])
    code, out = run("validate", "--select", "user_stats", env=env)
    assert code == 1
    assert "user_stats                           1  2 rows added by version 1" in out and "FAILED" in out and "1/3" in out
    assert "  - expect_column_values_to_be_between(column=amount, max_value=100, min_value=0): 1 of 2 rows unexpected, e.g. [-5.0]" in out
    assert ("  - expect_column_values_to_be_in_set(column=country, severity=warning, value_set=['FR', 'DE']): 1 of 2 rows "
            "unexpected, e.g. ['ES'] [warning: recorded, does not block]") in out
    failed = list(log.records())[-1]
    assert (failed.delta_version, failed.scope, failed.from_version, failed.rows, failed.passed) == (1, "changes", 1, 2, False)
    between = failed.results[1]
    assert (between.success, between.unexpected_count, between.partial_unexpected_list, between.severity) == (False, 1, [-5.0], "critical")

    code, out = run("sync", "--no-progress", env=env)
    assert code == 1
    refusal = out[out.index("Error: not published:"):]
    assert refusal.startswith(
        "Error: not published:\nfeature view user_stats: Delta version 1 failed validation (1 of 3 expectations failed on "
        "2 rows added by version 1, validated "
    )
    assert "\n  - expect_column_values_to_be_between(column=amount, max_value=100, min_value=0): 1 of 2 rows unexpected, e.g. [-5.0]\n" in refusal
    assert "expect_column_values_to_be_in_set" not in refusal  # a warning does not block
    assert refusal.rstrip().endswith(
        "  fix: fix the data and rebuild (`dbt build --select user_stats`), then `hindsight validate --select user_stats` "
        "(add --all-rows if the rebuild replaced the bad rows); or publish it anyway with `hindsight sync --force`"
    )
    assert amount_online(registry, online_config, 2) == 20.0  # nothing of version 1 went online

    code, out = run("sync", "--no-progress", "--force", env=env)
    assert code == 0, out
    assert "incremental" in out
    assert amount_online(registry, online_config, 2) == -5.0


def test_a_backfill_that_replaces_bad_rows_passes_and_unlocks_sync(project, online_config):
    registry, env, log = project
    view = registry.view("user_stats")
    assert run("validate", env=env)[0] == 0
    write_rows(view, [row(2, 1, -5.0)])
    assert run("validate", env=env)[0] == 1
    # The fix replaces hour 1 in one commit (as a dbt backfill does): the changes since the version
    # that passed are the corrected row only, the deleted bad row no longer counts.
    fixed = [row(2, 1, 5.0)]
    table = pa.Table.from_pylist([{**r, "_partition_date": r["ts"].date()} for r in fixed], schema=delta_schema(view))
    write_deltalake(view.delta_uri, table, mode="overwrite", predicate="ts >= '2024-03-01T01:00:00Z'")
    assert DeltaTable(view.delta_uri).version() == 2
    code, out = run("validate", env=env)
    assert code == 0, out
    record = list(log.records())[-1]
    assert (record.delta_version, record.scope, record.from_version, record.rows, record.passed) == (2, "changes", 1, 1, True)
    code, out = run("sync", "--no-progress", env=env)
    assert code == 0, out
    assert amount_online(registry, online_config, 2) == 5.0


def test_training_sets_read_the_newest_validated_version(project, tmp_path):
    registry, env, _ = project
    view = registry.view("user_stats")
    spine = pa.table({"user_id": [2], "event_timestamp": [T0 + dt.timedelta(hours=5)]})
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    (project_dir / "dbt_project.yml").write_text("name: p\n")
    (project_dir / "hindsight.yml").write_text(f"registry: {tmp_path / 'registry'}\n")

    def build(**kwargs):
        return training_set(spine, features=["user_stats:amount", "user_clicks:clicks"], registry=registry,
                            project_dir=project_dir, **kwargs)

    with pytest.raises(TrainingSetError, match=r"view 'user_stats': no Delta version has passed validation with its current "
                       r"expectations; run `hindsight validate --select user_stats`"):
        build(validated_only=True)
    assert run("validate", env=env)[0] == 0          # version 0 passes
    write_rows(view, [row(2, 1, -5.0)])               # version 1 fails
    assert run("validate", env=env)[0] == 1
    write_rows(registry.view("user_clicks"), [{"user_id": 2, "ts": T0, "created": T0, "clicks": 7}])

    validated = build(validated_only=True)
    assert read_versions(validated) == {"user_clicks": 1, "user_stats": 0}  # no expectations: newest
    assert validated.column("amount").to_pylist() == [20.0]
    latest = build()
    assert read_versions(latest) == {"user_clicks": 1, "user_stats": 1}
    assert latest.column("amount").to_pylist() == [-5.0]
    with pytest.raises(TrainingSetError, match=r"view 'user_stats': versions= pins Delta version 1, which failed validation"):
        build(validated_only=True, versions={"user_stats": 1})

    # The CLI's flag: the same pins, recorded in the file it writes.
    pq.write_table(spine, tmp_path / "spine.parquet")
    code, out = run("training-set", "--features", "user_stats:amount,user_clicks:clicks", "--spine", str(tmp_path / "spine.parquet"),
                    "--out", str(tmp_path / "validated.parquet"), "--validated-only", env=env)
    assert code == 0, out
    assert 'Delta versions {"user_clicks": 1, "user_stats": 0}' in out


def test_the_record_is_one_json_line_per_validation(project):
    registry, env, log = project
    assert run("validate", env=env)[0] == 0
    assert run("validate", "--all-rows", env=env)[0] == 0
    lines = log.path.read_text().splitlines()
    assert len(lines) == 2
    second = json.loads(lines[1])
    assert (second["view"], second["delta_version"], second["scope"], second["rows"], second["passed"]) == ("user_stats", 0, "all_rows", 4, True)
    assert second["results"][1]["kwargs"] == {"column": "amount", "max_value": 100, "min_value": 0}
    assert second["table_id"] == DeltaTable(registry.view("user_stats").delta_uri).metadata().id
    # A record cut short by a crash is ignored, never read as a result.
    with log.path.open("a") as out:
        out.write('{"view": "user_stats", "delta_vers')
    assert len(list(log.records())) == 2


def test_validate_names_unknown_views_and_views_without_expectations(project):
    _, env, _ = project
    code, out = run("validate", "--select", "user_stat", env=env)
    assert code == 1 and "--select user_stat: not a feature view (did you mean user_stats, user_clicks?)" in out
    code, out = run("validate", "--select", "user_clicks", env=env)
    assert code == 1 and ("feature view user_clicks declares no expectations (config.meta.hindsight.expectations in its .yml); "
                          "views that do: user_stats") in out
