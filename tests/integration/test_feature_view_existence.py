"""On DuckDB the Delta table, not DuckDB's view over it, decides whether a feature view exists.

Real dbt runs on copies of the built demo. Each case is one where DuckDB's catalog and the offline
store part: a project's own model that was a table before it became a feature view, a Delta table
deleted by hand, a new DuckDB file. The run must build or keep the table, never read a table that
is not there nor rebuild one that is.
"""

from __future__ import annotations

import shutil

import duckdb
import pytest

from hindsight.offline_store.duckdb_delta import load_delta_extension
from tests.fixtures.dbt_project import DbtProject, described_features

pytestmark = pytest.mark.integration

SPEND = """\
{{{{ config({materialized}entities=['user_id'], timestamp_field='event_timestamp') }}}}
select user_id, ts as event_timestamp, amount from {{{{ source('raw', 'transactions') }}}}
"""


def relation_type(project: DbtProject, name: str) -> str | None:
    with duckdb.connect(str(project.settings.duckdb_path), read_only=True) as connection:
        found = connection.execute("select table_type from information_schema.tables where table_name = ?", [name]).fetchone()
    return None if found is None else found[0]


def test_a_model_that_was_a_table_becomes_a_feature_view(project_copy):
    project_copy.add_model("user_spend", SPEND.format(materialized="materialized='table', "),
                           described_features("user_spend", ["amount"]))
    project_copy.dbt("run", "--select", "user_spend")
    assert relation_type(project_copy, "user_spend") == "BASE TABLE"

    project_copy.add_model("user_spend", SPEND.format(materialized=""))
    project_copy.dbt("run", "--select", "user_spend")

    assert relation_type(project_copy, "user_spend") == "VIEW"
    table = project_copy.table("user_spend")
    assert table.history(1)[0]["operationParameters"]["mode"] == "Overwrite"
    with duckdb.connect(str(project_copy.settings.duckdb_path), read_only=True) as connection:
        load_delta_extension(connection)
        assert connection.execute("select count(*) from user_spend").fetchone()[0] == table.to_pyarrow_table().num_rows > 0


def test_a_deleted_delta_table_is_built_again(project_copy):
    before = project_copy.table("user_profile").to_pyarrow_table().num_rows
    shutil.rmtree(f"{project_copy.settings.offline_store}/user_profile")

    project_copy.dbt("run", "--select", "user_profile")

    assert project_copy.table("user_profile").to_pyarrow_table().num_rows == before


def test_a_new_duckdb_file_leaves_the_delta_table_as_it_is(project_copy):
    version = project_copy.version("user_profile")
    project_copy.settings.duckdb_path.unlink()

    result = project_copy.dbt("run", "--select", "user_profile")

    assert "user_profile incremental: 0 rows" in result.stdout, result.stdout[-3000:]
    assert project_copy.version("user_profile") == version
    assert relation_type(project_copy, "user_profile") == "VIEW"


def test_dbt_in_a_folder_delta_rs_cannot_open_says_why_without_a_traceback(demo_project, tmp_path):
    project = demo_project.copy(tmp_path / "fraud [copy]")

    result = project.dbt("run", "--select", "user_profile", check=False)

    assert result.returncode != 0
    assert (f"hindsight: offline_store: the path {project.root}/data/offline_store contains '[' and ']'"
            in result.stdout), result.stdout[-3000:]
    assert "Traceback" not in result.stdout + result.stderr


def test_a_feature_view_outside_models_features_needs_no_on_schema_change(project_copy):
    """Outside models/features (no folder defaults), dbt fills on_schema_change with its own 'ignore':
    that is not the user's choice, and the view builds with the documented default, fail."""
    folder = project_copy.root / "models" / "marts"
    folder.mkdir(parents=True)
    (folder / "user_spend.sql").write_text(SPEND.format(materialized="materialized='feature_view', "))
    (folder / "user_spend.yml").write_text(described_features("user_spend", ["amount"]))
    project_copy.dbt("run", "--select", "user_spend")
    assert project_copy.table("user_spend").to_pyarrow_table().num_rows > 0

    (folder / "user_spend.sql").write_text(
        SPEND.format(materialized="materialized='feature_view', on_schema_change='ignore', "))
    refused = project_copy.dbt("run", "--select", "user_spend", check=False)
    assert refused.returncode == 1
    assert "on_schema_change 'ignore' is not supported by feature views; use one of: fail, append_new_columns" in refused.stdout
