"""`hindsight init` on small dbt projects in temporary folders (no dbt run: see test_new_project)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hindsight.cli import main
from hindsight.dbt_package_dir import package_dir
from hindsight.project_init import HINDSIGHT_YML, InitError, init_project

PROJECT = """\
# ours: keep me
name: shop
version: '1.0'
config-version: 2
profile: shop
dispatch:
  - macro_namespace: dbt_utils
    search_order: [spark_utils, dbt_utils]  # a shim of ours
models:
  shop:
    +persist_docs: {relation: true}
"""

PROFILES = """\
shop:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: dev.duckdb
      settings:
        memory_limit: 1GB
    spark:
      type: spark
      method: session
      host: x
      schema: shop
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "dbt_project.yml").write_text(PROJECT)
    (tmp_path / "profiles.yml").write_text(PROFILES)
    return tmp_path


def load(path: Path):
    return yaml.safe_load(path.read_text())


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_init_adds_what_is_missing_and_keeps_what_the_user_wrote(project: Path) -> None:
    result = init_project(project)
    assert len(result.changes) == 8 and result.notes == []
    dbt_project = load(project / "dbt_project.yml")
    assert dbt_project["dispatch"] == [
        {"macro_namespace": "dbt_utils", "search_order": ["spark_utils", "dbt_utils"]},
        {"macro_namespace": "dbt", "search_order": ["shop", "hindsight", "dbt"]},
    ]
    assert dbt_project["models"]["shop"] == {
        "+persist_docs": {"relation": True},
        "features": {"+materialized": "feature_view", "+on_schema_change": "fail"},
    }
    text = (project / "dbt_project.yml").read_text()
    assert text.startswith("# ours: keep me\n") and "# a shim of ours" in text
    assert (project / "models" / "features").is_dir()
    assert load(project / "packages.yml") == {"packages": [{"local": str(package_dir())}]}
    outputs = load(project / "profiles.yml")["shop"]["outputs"]
    assert outputs["dev"]["plugins"] == [{"module": "hindsight.offline_store.dbt_plugin", "alias": "hindsight"}]
    assert outputs["dev"]["settings"] == {"memory_limit": "1GB", "TimeZone": "UTC"}
    assert "plugins" not in outputs["spark"]  # Spark reads and writes Delta itself
    assert (project / "hindsight.yml").read_text() == HINDSIGHT_YML
    assert load(project / "hindsight.yml")["offline_store"] == "data/offline_store"


def test_a_second_run_changes_nothing(project: Path, monkeypatch) -> None:
    # The in-process CLI exports the project it ran for; monkeypatch takes it back after the test.
    monkeypatch.setenv("HINDSIGHT_PROJECT_DIR", str(project))
    init_project(project)
    before = files(project)
    again = CliRunner().invoke(main, ["init", "--project-dir", str(project)])
    assert again.exit_code == 0, again.output
    assert again.output == "Nothing to change: the project is already set up for Hindsight.\n"
    assert files(project) == before


def test_existing_dbt_dispatch_gets_hindsight_before_dbt(project: Path) -> None:
    text = PROJECT.replace("dispatch:\n", "dispatch:\n  - macro_namespace: dbt\n    search_order: [shop, dbt]\n")
    (project / "dbt_project.yml").write_text(text)
    result = init_project(project)
    assert any("added hindsight to the search order" in c for c in result.changes)
    assert load(project / "dbt_project.yml")["dispatch"][0]["search_order"] == ["shop", "hindsight", "dbt"]


def test_a_users_different_choice_is_left_alone_with_a_note(project: Path) -> None:
    (project / "dbt_project.yml").write_text(PROJECT + "    features:\n      +materialized: table\n")
    (project / "profiles.yml").write_text(PROFILES.replace("memory_limit: 1GB", "TimeZone: Europe/Paris"))
    result = init_project(project)
    assert load(project / "dbt_project.yml")["models"]["shop"]["features"]["+materialized"] == "table"
    assert load(project / "profiles.yml")["shop"]["outputs"]["dev"]["settings"] == {"TimeZone": "Europe/Paris"}
    assert any("sets materialized to 'table', left as is" in n for n in result.notes)
    assert any("sets TimeZone Europe/Paris, left as is" in n for n in result.notes)


def test_packages_yml_stale_path_is_updated_git_entry_left_alone(project: Path) -> None:
    stale = project / "old-venv" / "lib" / "hindsight" / "dbt_package"
    (project / "packages.yml").write_text(f"packages:\n  - package: dbt-labs/dbt_utils  # utils\n    version: 1.3.0\n  - local: {stale}\n")
    changes = init_project(project).changes
    assert any(f"now points at {package_dir()} (was {stale})" in c for c in changes)
    packages = load(project / "packages.yml")["packages"]
    assert packages == [{"package": "dbt-labs/dbt_utils", "version": "1.3.0"}, {"local": str(package_dir())}]
    assert "# utils" in (project / "packages.yml").read_text()

    git = "packages:\n  - git: https://github.com/example/hindsight.git\n    subdirectory: dbt_package\n"
    (project / "packages.yml").write_text(git)
    result = init_project(project)
    assert (project / "packages.yml").read_text() == git
    assert any("hindsight comes from https://github.com/example/hindsight.git, left as is" in n for n in result.notes)


def test_profiles_dir_follows_dbt(project: Path, tmp_path_factory, monkeypatch) -> None:
    (project / "profiles.yml").unlink()
    elsewhere = tmp_path_factory.mktemp("dbt_profiles")
    (elsewhere / "profiles.yml").write_text(PROFILES)
    monkeypatch.setenv("DBT_PROFILES_DIR", str(elsewhere))
    init_project(project)
    assert "plugins" in load(elsewhere / "profiles.yml")["shop"]["outputs"]["dev"]
    assert not (project / "profiles.yml").exists()


def test_missing_profile_is_a_note_not_a_failure(project: Path) -> None:
    (project / "profiles.yml").write_text("other:\n  outputs: {}\n")
    result = init_project(project)
    assert any("has no profile 'shop'" in n for n in result.notes)


def test_outside_a_dbt_project_it_fails_clearly(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HINDSIGHT_PROJECT_DIR", str(tmp_path))
    with pytest.raises(InitError, match=r"no dbt_project.yml in .*: run `hindsight init` inside an existing dbt project"):
        init_project(tmp_path)
    result = CliRunner().invoke(main, ["init", "--project-dir", str(tmp_path)])
    assert result.exit_code == 2 and f"Error: {tmp_path} has no dbt_project.yml" in result.output


def test_hindsights_own_project_is_refused() -> None:
    with pytest.raises(InitError, match="Hindsight's own dbt project"):
        init_project(package_dir())
