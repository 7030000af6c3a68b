"""The online store's CLI: `online up|down|status`, `sync`, `push`, `check-parity` (click's CliRunner)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from hindsight.cli import main
from hindsight.online_sync import OnlineStore, ensure_tables
from tests.fixtures.dynamodb import make_registry, make_view, write_rows
from hindsight.core.ports import free_port

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def cli_env(online_config, tmp_path):
    view = make_view(tmp_path, "cli_view", {"x": "int64"}, push=True)
    write_rows(view, [{"user_id": u, "ts": T0, "created": T0, "x": u} for u in range(20)])
    registry = make_registry(view)
    ensure_tables(registry, online_config)  # what `hindsight apply` does: the view's table and the journal's
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(registry.to_dict()))
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": online_config.endpoint_url,
           "HINDSIGHT_DYNAMODB_TABLE_PREFIX": online_config.table_prefix}
    return registry, registry_file, env


def test_sync_push_and_check_parity(cli_env, online_config):
    registry, registry_file, env = cli_env
    runner = CliRunner()
    synced = runner.invoke(main, ["sync", "--registry", str(registry_file), "--no-progress"], env=env)
    assert synced.exit_code == 0, synced.output
    assert "cli_view" in synced.output and "full" in synced.output

    parity = runner.invoke(main, ["check-parity", "--sample", "5", "--registry", str(registry_file), "--seed", "1"], env=env)
    assert parity.exit_code == 0, parity.output
    assert "checked cli_view: 5; 0 mismatches" in parity.output

    later = (T0 + dt.timedelta(hours=1)).isoformat()
    rows = "\n".join(json.dumps({"user_id": u, "ts": later, "x": 100 + u}) for u in (1, 2))
    pushed = runner.invoke(main, ["push", "cli_view", "--registry", str(registry_file)], input=rows, env=env)
    assert pushed.exit_code == 0, pushed.output
    assert "2 rows, 2 written" in pushed.output
    read = OnlineStore(registry, online_config).read([{"user_id": 1}], {"cli_view": ["x"]})[0]["cli_view"]
    assert read.values == {"x": 101}

    # Pushed values newer than Delta are not mismatches; a Delta row the online store lacks is.
    write_rows(registry.feature_views[0], [{"user_id": 3, "ts": T0 + dt.timedelta(hours=2), "created": T0, "x": -3}])
    parity = runner.invoke(main, ["check-parity", "--sample", "50", "--registry", str(registry_file)], env=env)
    assert parity.exit_code == 1
    assert "MISMATCH cli_view {'user_id': 3}: online older" in parity.output
    assert "2 online values newer than Delta" in parity.output


def test_user_errors_are_one_clear_line(cli_env):
    _, registry_file, env = cli_env
    runner = CliRunner()
    unknown = runner.invoke(main, ["sync", "--select", "nope", "--registry", str(registry_file)], env=env)
    assert unknown.exit_code == 1 and "no feature view named 'nope'" in unknown.output
    assert "Traceback" not in unknown.output
    bad_row = runner.invoke(main, ["push", "cli_view", "--registry", str(registry_file)], input='{"user_id": 1}', env=env)
    assert bad_row.exit_code == 1 and "lacks columns ['ts', 'x']" in bad_row.output
    not_json = runner.invoke(main, ["push", "cli_view", "--registry", str(registry_file)], input="{oops", env=env)
    assert not_json.exit_code == 1 and "not JSON" in not_json.output
    down_env = {**env, "HINDSIGHT_DYNAMODB_ENDPOINT": "http://127.0.0.1:9"}
    unreachable = runner.invoke(main, ["sync", "--registry", str(registry_file)], env=down_env)
    assert unreachable.exit_code == 1 and "unreachable" in unreachable.output


def test_online_up_status_down_are_safe_to_repeat(tmp_path):
    runner = CliRunner()
    port = free_port()
    env = {"HINDSIGHT_STATE": str(tmp_path / "state")}
    first = runner.invoke(main, ["online", "up", "--port", str(port), "--in-memory"], env=env)
    try:
        assert first.exit_code == 0, first.output
        assert f"DynamoDB Local answers at http://127.0.0.1:{port}; recorded in" in first.output
        assert (tmp_path / "state" / "online_endpoint").read_text() == f"http://127.0.0.1:{port}\n"
        again = runner.invoke(main, ["online", "up", "--port", str(port), "--in-memory"], env=env)
        assert again.exit_code == 0 and f"http://127.0.0.1:{port}" in again.output
        status = runner.invoke(main, ["online", "status"], env=env)
        assert status.exit_code == 0 and "answers" in status.output and "in memory" in status.output
    finally:
        assert "stopped" in runner.invoke(main, ["online", "down"], env=env).output
    assert not (tmp_path / "state" / "online_endpoint").exists()
    assert "was not running" in runner.invoke(main, ["online", "down"], env=env).output
    status = runner.invoke(main, ["online", "status"], env=env)
    assert status.exit_code == 1 and "not running" in status.output
