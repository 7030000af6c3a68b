"""Training sets name the registry version they were planned from; a bad one is refused up front."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from hindsight.cli import main
from hindsight.registry_sync import RegistryError
from hindsight.registry_sync.model import Registry
from hindsight.registry_sync.store import RegistryStore
from hindsight.training_sets import TrainingSetError, read_registry_version, training_set
from hindsight.training_sets.api import REGISTRY_VERSION_KEY, VERSIONS_KEY, _with_registry_version

SPINE = pa.table({"user_id": [1], "event_timestamp": pa.array([0], pa.timestamp("us", tz="UTC"))})


@pytest.fixture
def applied(tmp_path, monkeypatch) -> RegistryStore:
    store = RegistryStore(tmp_path / "registry")
    store.write(Registry("p"))
    store.write(Registry("p"))
    monkeypatch.setenv("HINDSIGHT_REGISTRY", str(store.directory))
    return store


def test_the_version_is_recorded_next_to_the_delta_versions():
    table = pa.table({"x": [1]}).replace_schema_metadata({VERSIONS_KEY: b"{}"})
    stamped = _with_registry_version(table, dataclasses.replace(Registry("p"), version=4))
    assert stamped.schema.metadata == {VERSIONS_KEY: b"{}", REGISTRY_VERSION_KEY: b"4"}
    assert read_registry_version(stamped) == 4
    # A registry built from the project but never applied has no version to record.
    assert _with_registry_version(table, Registry("p")).schema.metadata == {VERSIONS_KEY: b"{}"}
    assert read_registry_version(table) is None


@pytest.mark.parametrize("version", [0, -1, True, "1"])
def test_a_registry_version_must_be_a_positive_integer(version):
    with pytest.raises(TrainingSetError, match="registry_version must be an applied registry version"):
        training_set(SPINE, features=["v:f"], registry_version=version)


def test_registry_and_a_different_registry_version_conflict():
    with pytest.raises(TrainingSetError, match=r"registry= is version 3 but registry_version=2: pass one of them"):
        training_set(SPINE, features=["v:f"], registry=dataclasses.replace(Registry("p"), version=3), registry_version=2)


def test_an_unknown_registry_version_lists_the_applied_ones(applied):
    with pytest.raises(RegistryError, match=r"registry version 5 does not exist in .* \(versions: 1, 2\)"):
        training_set(SPINE, features=["v:f"], registry_version=5)


def test_the_cli_replay_option_takes_both_versions_from_the_file(applied, tmp_path):
    spine = tmp_path / "spine.parquet"
    pq.write_table(SPINE, spine)
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"x": [1]}), plain)
    base = ["training-set", "--features", "v:f", "--spine", str(spine), "--out", str(tmp_path / "out.parquet")]

    both = CliRunner().invoke(main, [*base, "--replay", str(plain), "--registry-version", "1"])
    assert both.exit_code == 2 and "--replay takes the versions from the file" in both.output
    bare = CliRunner().invoke(main, [*base, "--replay", str(plain)])
    assert bare.exit_code == 2 and "records no versions: it was not written by hindsight training-set" in bare.output
    zero = CliRunner().invoke(main, [*base, "--registry-version", "0"])
    assert zero.exit_code == 2 and "--registry-version" in zero.output
    recorded = tmp_path / "recorded.parquet"
    pq.write_table(SPINE.replace_schema_metadata({VERSIONS_KEY: b"{}", REGISTRY_VERSION_KEY: b"9"}), recorded)
    missing = CliRunner().invoke(main, [*base, "--replay", str(recorded)])
    assert missing.exit_code == 1 and "registry version 9 does not exist" in missing.output and "(versions: 1, 2)" in missing.output
