"""Local folders a Delta table cannot live in are refused by name, before dbt or delta-rs start.

The rule (hindsight.core.delta_paths) is checked against the real libraries: for each character, a
table in a folder named with it is written and read by delta-rs and read by DuckDB's delta_scan,
and the rule must refuse exactly the characters where one of them fails.
"""

from __future__ import annotations

import datetime as dt
import string

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake

from hindsight.cli import main
from hindsight.core.config import ConfigError
from hindsight.core.delta_paths import UNSUPPORTED, delta_path_problem
from hindsight.core.settings import Settings
from hindsight.offline_store.delta_writer import FeatureViewWriteError, WriteRequest, write_feature_view
from hindsight.offline_store.duckdb_delta import load_delta_extension

#: Every printable ASCII punctuation character but the path separator, and a non-ASCII letter.
CHARACTERS = sorted(set(string.punctuation + " é") - {"/"})


def _opens(location: str) -> bool:
    """Whether delta-rs writes and reads a table at `location` and DuckDB's delta_scan reads it."""
    table = pa.table({"a": [1, 2]})
    try:
        write_deltalake(location, table, mode="overwrite")
        if DeltaTable(location).to_pyarrow_table() != table:
            return False
        connection = duckdb.connect()
        load_delta_extension(connection)
        return connection.execute("select count(*) from delta_scan(?)", [location]).fetchone() == (2,)
    except BaseException as error:  # delta-rs panics (pyo3 PanicException is a BaseException)
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return False


@pytest.mark.parametrize("character", CHARACTERS)
def test_the_rule_refuses_exactly_the_characters_delta_rs_or_duckdb_cannot_open(tmp_path, character):
    location = str(tmp_path / f"a{character}1" / "view")

    assert (delta_path_problem(location, "offline_store") is None) == _opens(location), (
        f"{character!r}: the rule and the libraries disagree; update UNSUPPORTED in hindsight/core/delta_paths.py"
    )


@pytest.mark.parametrize("location", ["s3://bucket/a[1]/view", "s3a://bucket/100%/view", "gs://b/x|y"])
def test_object_store_keys_may_hold_any_character(location):
    assert delta_path_problem(location, "offline_store") is None


def test_the_message_names_the_setting_the_characters_and_a_path_that_works():
    problem = delta_path_problem("file:///home/me/fraud [copy]/100%/store", "offline_store", "hindsight.yml")

    assert problem == (
        "offline_store: the path /home/me/fraud [copy]/100%/store contains '[' and ']' and '%'; a local Delta "
        "table's path may not contain any of [ ] ^ | \\ % (delta-rs and DuckDB read it as a URL). Move the "
        "project to a folder without them, or set offline_store in hindsight.yml to such a path, "
        "e.g. /home/me/fraud _copy_/100_/store"
    )
    assert delta_path_problem(problem.rsplit("e.g. ", 1)[1], "offline_store") is None
    assert set(UNSUPPORTED) <= set(CHARACTERS)


def _project(root):
    root.mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: p\n")
    return root


def test_settings_refuse_a_project_in_such_a_folder(tmp_path):
    root = _project(tmp_path / "fraud [copy]")

    with pytest.raises(ConfigError, match=r"^offline_store: the path .*fraud \[copy\]/data/offline_store contains"):
        Settings.load(root, environ={})
    with pytest.raises(ConfigError, match=r"^serving\.sample_log: .* or set serving\.sample_log in hindsight\.yml "
                                          r"\(or HINDSIGHT_SERVING_SAMPLE_LOG\)"):
        Settings.load(root, environ={"HINDSIGHT_OFFLINE_STORE": str(tmp_path / "store")})
    settings = Settings.load(root, environ={"HINDSIGHT_OFFLINE_STORE": str(tmp_path / "store"),
                                            "HINDSIGHT_SERVING_SAMPLE_LOG": "s3://bucket/served[1]"})
    assert settings.offline_store == str(tmp_path / "store")


def test_the_cli_says_so_with_exit_2_and_no_traceback(tmp_path, monkeypatch):
    root = _project(tmp_path / "x|y")
    monkeypatch.delenv("HINDSIGHT_OFFLINE_STORE", raising=False)
    monkeypatch.delenv("HINDSIGHT_PROJECT_DIR", raising=False)

    result = CliRunner().invoke(main, ["status", "--project-dir", str(root)])

    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: offline_store: the path {root}/data/offline_store contains '|'")
    assert "Traceback" not in result.output


def test_the_writer_refuses_a_models_own_location_in_such_a_folder(tmp_path):
    location = tmp_path / "views^old" / "user_stats"
    request = WriteRequest(model="user_stats", uri=str(location), mode="full_refresh",
                           unique_key=("user_id", "event_timestamp"), timestamp_field="event_timestamp")
    rows = pa.table({"user_id": [1], "event_timestamp": pa.array([dt.datetime(2026, 11, 2)], pa.timestamp("us", "UTC"))})

    with pytest.raises(FeatureViewWriteError, match=r"^user_stats's location: the path .*views\^old/user_stats "
                                                    r"contains '\^'.*or set user_stats's location in its config"):
        write_feature_view(rows, request)
    assert not location.parent.exists()
