"""`hindsight training-set --out` is checked before anything is computed: never the spine itself,
never a folder that does not exist or cannot be written."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from hindsight.cli import main


@pytest.fixture
def computed(monkeypatch):
    """Replace the computation; record whether it ran."""
    import hindsight.training_sets as training_sets

    calls = []

    def fake_training_set(spine, **kwargs):
        calls.append(spine)
        return pa.table({"user_id": [1], "x": [2.0]})

    monkeypatch.setattr(training_sets, "training_set", fake_training_set)
    return calls


@pytest.fixture
def spine(tmp_path):
    path = tmp_path / "spine.parquet"
    pq.write_table(pa.table({"user_id": [1, 2], "label": [True, False]}), path)
    return path


def run(*args: str):
    return CliRunner().invoke(main, ["training-set", "--features", "user_profile:*", *args])


def test_out_equal_to_the_spine_is_refused_before_computing(spine, computed, tmp_path):
    same = os.path.relpath(spine)  # another spelling of the same file
    result = run("--spine", str(spine), "--out", same)
    assert result.exit_code == 1
    assert f"--out {same} would overwrite the spine {spine}" in result.output
    assert computed == []
    assert pq.read_table(spine).column_names == ["user_id", "label"]


def test_out_inside_a_spine_folder_is_refused(tmp_path, computed):
    folder = tmp_path / "spine_dataset"
    folder.mkdir()
    pq.write_table(pa.table({"user_id": [1]}), folder / "part-0.parquet")
    result = run("--spine", str(folder), "--out", str(folder / "training.parquet"))
    assert result.exit_code == 1 and "would overwrite the spine" in result.output
    assert computed == []


def test_a_missing_output_folder_is_named_before_computing(spine, computed, tmp_path):
    out = tmp_path / "no" / "such" / "training.parquet"
    result = run("--spine", str(spine), "--out", str(out))
    assert result.exit_code == 1
    assert f"folder {out.parent} does not exist; create it first" in result.output
    assert "Traceback" not in result.output and computed == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_output_folder_is_named_before_computing(spine, computed, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run("--spine", str(spine), "--out", str(locked / "t.parquet"))
    assert result.exit_code == 1 and "is not writable" in result.output and computed == []


def test_a_good_out_is_written_whole(spine, computed, tmp_path, monkeypatch):
    import hindsight.training_sets as training_sets

    monkeypatch.setattr(training_sets, "read_versions", lambda table: {})
    out = tmp_path / "training.parquet"
    result = run("--spine", str(spine), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).to_pydict() == {"user_id": [1], "x": [2.0]}
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
