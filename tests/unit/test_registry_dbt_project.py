"""Which project files make target/manifest.json stale (the `--no-parse` gate), on files with set mtimes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hindsight.core.settings import Settings
from hindsight.registry_sync import RegistryError
from hindsight.registry_sync.dbt_project import require_current_manifest, stale_files


def settings(root: Path) -> Settings:
    return Settings(root, root / "raw", str(root / "store"), root / "db.duckdb", root / "target", root / "registry",
                    root / ".tools", root / "state")


def touch(path: Path, mtime: float, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    touch(tmp_path / "dbt_project.yml", 100, 'name: p\nmodel-paths: ["features"]\ntest-paths: ["tests/dbt"]\n')
    touch(tmp_path / "features" / "a.sql", 100)
    touch(tmp_path / "features" / "a.yml", 100)
    touch(tmp_path / "macros" / "m.sql", 100)
    touch(tmp_path / "tests" / "dbt" / "t.sql", 100)
    touch(tmp_path / "models" / "ignored.sql", 500)  # not a model path of this project
    touch(tmp_path / "features" / "notes.txt", 500)  # not a file dbt reads
    touch(tmp_path / "target" / "manifest.json", 200)
    return tmp_path


def test_a_manifest_newer_than_every_project_file_is_current(project):
    assert stale_files(settings(project)) == []
    require_current_manifest(settings(project))


def test_files_edited_after_the_manifest_are_named(project):
    touch(project / "features" / "a.yml", 300)
    touch(project / "macros" / "m.sql", 300)
    touch(project / "tests" / "dbt" / "t.sql", 300)
    assert stale_files(settings(project)) == [
        project / "features" / "a.yml", project / "macros" / "m.sql", project / "tests" / "dbt" / "t.sql",
    ]
    with pytest.raises(RegistryError) as raised:
        require_current_manifest(settings(project))
    assert str(raised.value) == (
        f"{project / 'target' / 'manifest.json'} is older than 3 project file(s) changed since "
        "(features/a.yml, macros/m.sql, tests/dbt/t.sql): run `dbt parse` (or `dbt build`) first, "
        "or drop --no-parse to let hindsight parse"
    )


def test_an_edited_dbt_project_yml_counts_and_a_missing_manifest_is_named(project):
    touch(project / "dbt_project.yml", 300, 'name: p\nmodel-paths: ["features"]\n')
    assert stale_files(settings(project)) == [project / "dbt_project.yml"]
    (project / "target" / "manifest.json").unlink()
    with pytest.raises(RegistryError, match=r"no dbt manifest at .*manifest.json: run `dbt parse` \(or drop --no-parse\)"):
        require_current_manifest(settings(project))
