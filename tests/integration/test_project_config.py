"""One project config from any folder: --project-dir and project_dir= against the built demo, and the
DynamoDB Local endpoint that `online up` records for the project's next commands (no export)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

import hindsight
from hindsight.cli import main
from hindsight.online_sync import OnlineStore, OnlineStoreConfig
from hindsight.serving import server
from tests.fixtures.dynamodb import make_registry, make_view, write_rows
from hindsight.core.ports import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HINDSIGHT = Path(sys.executable).parent / "hindsight"
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 10, 1, tzinfo=UTC)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Hindsight setting: only hindsight.yml speaks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HINDSIGHT_", "DBT_"))}
    return {**env, **extra}


@pytest.fixture(scope="module")
def applied(demo_project, tmp_path_factory):
    """A copy of the built demo with its registry applied (the shared demo's registry stays empty)."""
    from hindsight.project import project_registry
    from hindsight.registry_sync.store import RegistryStore

    copy = demo_project.copy(tmp_path_factory.mktemp("applied") / "project")
    return copy, RegistryStore(copy.settings.registry_dir).write(project_registry(demo_project.settings))


def test_registry_list_from_another_folder(applied, tmp_path):
    demo_project, demo_registry = applied
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = subprocess.run([str(HINDSIGHT), "registry", "list", "--project-dir", str(demo_project.root)],
                            cwd=elsewhere, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith(f"Registry version {demo_registry.version} ")
    for view in ("merchant_profile", "merchant_risk", "user_profile", "user_transaction_aggregates"):
        assert f" {view} " in listed.stdout
    # The group-level spelling and the environment variable find it too.
    group = subprocess.run([str(HINDSIGHT), "--project-dir", str(demo_project.root), "registry", "list", "--json"],
                           cwd=elsewhere, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert group.returncode == 0 and json.loads(group.stdout)["version"] == demo_registry.version
    from_env = subprocess.run([str(HINDSIGHT), "registry", "show", "user_profile"], cwd=elsewhere,
                              env=clean_env(HINDSIGHT_PROJECT_DIR=str(demo_project.root)),
                              capture_output=True, text=True, timeout=120)
    assert from_env.returncode == 0 and "kind:            batch" in from_env.stdout
    # Without either, the folder is not a project: named, with the fix.
    outside = subprocess.run([str(HINDSIGHT), "registry", "list"], cwd=elsewhere, env=clean_env(),
                             capture_output=True, text=True, timeout=120)
    assert outside.returncode == 2
    assert f"{elsewhere} has no dbt_project.yml" in outside.stderr and "--project-dir" in outside.stderr


def test_the_sdk_takes_project_dir(applied, tmp_path, monkeypatch):
    demo_project, _ = applied
    for name in [k for k in os.environ if k.startswith("HINDSIGHT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # a notebook outside the project
    spine = pa.table({"user_id": [1, 2], "event_timestamp": [dt.datetime(2026, 10, 20, tzinfo=UTC)] * 2})
    table = hindsight.training_set(spine, features=["user_profile:home_country"], project_dir=demo_project.root)
    assert table.column_names == ["user_id", "event_timestamp", "home_country"]
    assert table.num_rows == 2 and all(isinstance(v, str) for v in table.column("home_country").to_pylist())
    snapshot = hindsight.features_as_of("2026-10-20", features=["user_profile:home_country"],
                                        entities={"user_id": [1, 2]}, project_dir=demo_project.root)
    assert snapshot.column("home_country").to_pylist() == table.column("home_country").to_pylist()
    with pytest.raises(hindsight.training_sets.TrainingSetError, match=rf"{tmp_path} has no dbt_project.yml"):
        hindsight.training_set(spine, features=["user_profile:home_country"])


@pytest.fixture
def local_project(tmp_path, monkeypatch):
    """A project folder with its own table prefix, and no Hindsight variable in the environment."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "dbt_project.yml").write_text("name: p\n")
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    (root / "hindsight.yml").write_text(f"online_store:\n  table_prefix: {prefix}\n")
    for name in [k for k in os.environ if k.startswith("HINDSIGHT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HINDSIGHT_TOOLS", str(REPO / ".tools"))  # DynamoDB Local is installed there
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    monkeypatch.chdir(tmp_path)
    return root, prefix


def test_online_up_is_recorded_for_the_next_commands(local_project, tmp_path, monkeypatch):
    root, prefix = local_project
    runner = CliRunner()
    view = make_view(tmp_path / "delta", "recorded_view", {"x": "int64"})
    write_rows(view, [{"user_id": u, "ts": T0, "created": T0, "x": u * 10} for u in range(5)])
    registry = make_registry(view)
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(registry.to_dict()))
    port = free_port()
    up = runner.invoke(main, ["online", "up", "--port", str(port), "--in-memory", "--project-dir", str(root)])
    record = root / "data" / "state" / "online_endpoint"
    try:
        assert up.exit_code == 0, up.output
        assert record.read_text() == f"http://127.0.0.1:{port}\n"
        # Before any table exists, serve refuses and says to apply.
        runs: list = []
        monkeypatch.setattr(server, "run", lambda options, app: runs.append(options))
        args = ["serve", "--registry-file", str(registry_file), "--project-dir", str(root)]
        refused = runner.invoke(main, args)
        assert refused.exit_code == 1
        assert (f"cannot serve: the online store at http://127.0.0.1:{port} has no table {prefix}recorded_view for feature view "
                "recorded_view: run `hindsight apply`") in refused.output
        # No export, no variable: sync writes to the recorded DynamoDB Local.
        synced = runner.invoke(main, ["sync", "--registry", str(registry_file), "--no-progress", "--project-dir", str(root)])
        assert synced.exit_code == 0, synced.output
        config = OnlineStoreConfig(endpoint_url=f"http://127.0.0.1:{port}", table_prefix=prefix)
        read = OnlineStore(registry, config).read([{"user_id": 3}], {"recorded_view": ["x"]})[0]["recorded_view"]
        assert read.values == {"x": 30}
        # With its tables there, serve starts (gunicorn's loop replaced) on hindsight.yml's port.
        served = runner.invoke(main, args)
        assert served.exit_code == 0, served.output
        assert [(o.host, o.port) for o in runs] == [("127.0.0.1", 8080)]
    finally:
        down = runner.invoke(main, ["online", "down", "--project-dir", str(root)])
    assert down.exit_code == 0 and "stopped DynamoDB Local" in down.output
    assert not record.exists()
    assert OnlineStoreConfig.from_env().endpoint_url is None  # forgotten: back to AWS, said in the docs


def test_the_registry_compiles_stream_views_in_the_project_from_any_folder(demo_project, tmp_path, monkeypatch):
    # A stream-fed view's SQL comes from `dbt compile`, which opens the profile's DuckDB file: the
    # demo profile's relative `data/hindsight.duckdb` is the project's, not the calling folder's.
    from hindsight.core.settings import Settings
    from hindsight.project import project_registry
    from hindsight.registry_sync.dbt_project import parse_project

    project = demo_project.copy(tmp_path / "project")
    for name in [k for k in os.environ if k.startswith("HINDSIGHT_")]:
        monkeypatch.delenv(name)
    elsewhere = tmp_path / "notebook"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = Settings.load(project.root)
    parse_project(settings)
    registry = project_registry(settings)
    assert "from" in (registry.view("user_stream_activity").stream_sql or "").lower()
    assert sorted(p.name for p in elsewhere.iterdir()) == []
    # The notebook keeps running; the user's own `dbt run` must still open the project's database.
    project.dbt("run", "--select", "user_profile")
