"""hindsight.yml: defaults, environment overrides, paths against the project, named errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hindsight.cli import main
from hindsight.core.config import ConfigError, ProjectNotFound, find_project_dir
from hindsight.core.settings import Settings


def project(root: Path, config: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dbt_project.yml").write_text("name: p\n")
    if config is not None:
        (root / "hindsight.yml").write_text(config)
    return root


def test_a_missing_file_means_every_default(tmp_path):
    settings = Settings.load(project(tmp_path), environ={})
    assert settings.config_file is None
    assert settings.offline_store == str(tmp_path / "data" / "offline_store")
    assert (settings.registry_dir, settings.state_dir, settings.on_demand_dir) == (
        tmp_path / "data" / "registry", tmp_path / "data" / "state", tmp_path / "on_demand")
    online, serving = settings.online_store, settings.serving
    assert (online.endpoint, online.region, online.table_prefix) == (None, None, "hindsight_")
    assert (serving.host, serving.port, serving.workers) == ("127.0.0.1", 8080, None)


def test_relative_paths_resolve_against_the_project_not_the_working_directory(tmp_path, monkeypatch):
    root = project(tmp_path / "p", "registry: reg\nstate: /abs/state\noffline_store: s3://bucket/store\n"
                                   "on_demand: code/odfv\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings.load(root, environ={})
    assert settings.registry_dir == root / "reg"
    assert settings.state_dir == Path("/abs/state")
    assert settings.offline_store == "s3://bucket/store"
    assert settings.on_demand_dir == root / "code" / "odfv"
    assert settings.config_file == root / "hindsight.yml"


def test_a_section_with_every_key_commented_out_means_its_defaults(tmp_path):
    settings = Settings.load(project(tmp_path, "serving:\n  # port: 9000\nonline_store:\n"), environ={})
    assert (settings.serving.port, settings.online_store.table_prefix) == (8080, "hindsight_")


def test_the_environment_overrides_the_file_key_by_key(tmp_path):
    root = project(tmp_path, "registry: reg\nserving:\n  host: 0.0.0.0\n  port: 9000\n"
                             "online_store:\n  endpoint: http://127.0.0.1:8000\n  table_prefix: dev_\n")
    env = {"HINDSIGHT_PORT": "9100", "HINDSIGHT_REGISTRY": "other", "HINDSIGHT_DYNAMODB_TABLE_PREFIX": "",
           "HINDSIGHT_DYNAMODB_ENDPOINT": "http://127.0.0.1:8001", "HINDSIGHT_WORKERS": "3"}
    settings = Settings.load(root, environ=env)
    assert (settings.serving.host, settings.serving.port, settings.serving.workers) == ("0.0.0.0", 9100, 3)
    assert settings.registry_dir == root / "other"  # relative to the project, like the file's paths
    assert settings.online_store.endpoint == "http://127.0.0.1:8001"
    assert settings.online_store.table_prefix == "dev_"  # an empty variable counts as unset


def test_the_project_is_the_nearest_folder_with_a_dbt_project(tmp_path, monkeypatch):
    root = project(tmp_path / "p")
    (root / "notebooks" / "deep").mkdir(parents=True)
    monkeypatch.chdir(root / "notebooks" / "deep")
    assert find_project_dir(environ={}) == root
    assert find_project_dir(environ={"HINDSIGHT_PROJECT_DIR": str(tmp_path)}) == tmp_path
    assert find_project_dir(tmp_path / "x", environ={"HINDSIGHT_PROJECT_DIR": str(root)}) == tmp_path / "x"
    with pytest.raises(ProjectNotFound, match=rf"{tmp_path} has no dbt_project.yml: .* --project-dir"):
        Settings.load(tmp_path, environ={}, require=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("onlin_store: {}\n", "unknown key 'onlin_store' in {file} (did you mean online_store"),
        ("online_store:\n  endpont: http://x\n",
         "unknown key 'online_store.endpont' in {file} (did you mean online_store.endpoint?)"),
        ("port: 9000\n", "unknown key 'port' in {file} (did you mean serving.port?)"),
        ("zzz: 1\n", "unknown key 'zzz' in {file} (valid keys here: offline_store, registry, state, on_demand, "
                     "online_store, serving, streams, s3, optimize)"),
        ("serving:\n  port: '80'\n", "'serving.port' in {file} should be a valid integer, got '80'"),
        ("serving:\n  port: 70000\n", "'serving.port' in {file} should be less than or equal to 65535, got 70000"),
        ("serving:\n  workers: true\n", "'serving.workers' in {file} should be a valid integer, got True"),
        ("registry: 5\n", "'registry' in {file} should be a valid string, got 5"),
        ("online_store: 3\n", "'online_store' in {file} should be a mapping of keys (endpoint, region, table_prefix)"),
        ("online_store:\n  endpoint: localhost:8000\n",
         "'online_store.endpoint' in {file} should be an http:// or https:// URL"),
        ("- a\n", "{file} should be a mapping of keys (offline_store, registry"),
        ("serving: [\n", "{file} is not valid YAML"),
    ],
)
def test_bad_files_name_the_key_the_file_and_the_fix(tmp_path, text, message):
    root = project(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        Settings.load(root, environ={})
    assert message.format(file=root / "hindsight.yml") in str(raised.value)


def test_a_bad_environment_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match=r"HINDSIGHT_PORT='eighty' \('serving.port'\) should be a valid integer"):
        Settings.load(project(tmp_path), environ={"HINDSIGHT_PORT": "eighty"})


def test_every_error_is_reported_at_once(tmp_path):
    root = project(tmp_path, "registri: r\nserving:\n  prot: 1\n  workers: 0\n")
    with pytest.raises(ConfigError) as raised:
        Settings.load(root, environ={})
    lines = sorted(str(raised.value).splitlines())
    assert len(lines) == 3
    assert lines[0].startswith("'serving.workers'") and "greater than or equal to 1" in lines[0]
    assert "'registri'" in lines[1] and "(did you mean registry?)" in lines[1]
    assert "'serving.prot'" in lines[2] and "(did you mean serving.port?)" in lines[2]


def test_the_cli_refuses_a_typo_with_exit_2(tmp_path, monkeypatch):
    root = project(tmp_path / "p", "serving:\n  prot: 9000\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["registry", "list", "--project-dir", str(root)])
    assert result.exit_code == 2
    assert result.output.strip() == (f"Error: unknown key 'serving.prot' in {root / 'hindsight.yml'} "
                                     "(did you mean serving.port?)")


def test_the_cli_outside_a_dbt_project_names_the_folder_and_the_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HINDSIGHT_PROJECT_DIR", raising=False)
    result = CliRunner().invoke(main, ["registry", "list"])
    assert result.exit_code == 2
    assert f"{tmp_path} has no dbt_project.yml" in result.output and "--project-dir" in result.output
    missing = CliRunner().invoke(main, ["plan", "--project-dir", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and f"{tmp_path / 'nope'} does not exist" in missing.output
    # Help works anywhere.
    assert CliRunner().invoke(main, ["registry", "--help"]).exit_code == 0
    assert "--project-dir" in CliRunner().invoke(main, ["registry", "list", "--help"]).output


def test_every_command_takes_project_dir():
    def leaves(command, path=()):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from leaves(sub, (*path, name))
        else:
            yield path, command

    found = dict(leaves(main))
    assert len(found) > 10
    missing = [" ".join(path) for path, command in found.items()
               if not any(p.name == "project_dir" for p in command.params)]
    assert missing == []


def test_config_shows_each_value_and_where_it_came_from(tmp_path, monkeypatch):
    root = project(tmp_path / "p", "registry: reg\nserving:\n  port: 9000\n")
    monkeypatch.setenv("HINDSIGHT_PORT", "9100")
    for name in ("HINDSIGHT_DYNAMODB_ENDPOINT", "HINDSIGHT_REGISTRY", "HINDSIGHT_STATE", "HINDSIGHT_HOST"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["config", "--project-dir", str(root)])
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert f"registry {root / 'reg'} (hindsight.yml)" in lines
    assert "serving.port 9100 (env HINDSIGHT_PORT)" in lines
    assert "serving.host 127.0.0.1 (default)" in lines
    assert "online_store.endpoint null (default: AWS through boto3's chain)" in lines
    # A DynamoDB Local recorded by `online up` and since gone: said, exit 1.
    (root / "data" / "state").mkdir(parents=True)
    (root / "data" / "state" / "online_endpoint").write_text("http://127.0.0.1:8000\n")
    stale = CliRunner().invoke(main, ["config", "--project-dir", str(root)])
    assert stale.exit_code == 1 and "is not running" in stale.output


def test_a_binary_file_is_named_not_a_traceback(tmp_path):
    root = project(tmp_path)
    (root / "hindsight.yml").write_bytes(b"\x00\xf0\x9f garbage \xff")
    with pytest.raises(ConfigError, match=r"hindsight.yml is not UTF-8 text \(byte \d+"):
        Settings.load(root, environ={})
