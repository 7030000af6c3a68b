"""Which DynamoDB the commands use: hindsight.yml, the environment, the recorded DynamoDB Local; and
which credentials the client gets (dummy ones only for an emulator on this machine)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hindsight.cli import main
from hindsight.core.settings import Settings
from hindsight.online_sync.config import OnlineStoreConfig, OnlineStoreUnavailable, make_client
from hindsight.serving import server
from hindsight.core.ports import free_port


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "dbt_project.yml").write_text("name: p\n")
    return root


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """No credentials anywhere boto3 looks, and no instance-metadata probe."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "HINDSIGHT_DYNAMODB_ENDPOINT", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def credentials(client):
    found = client._request_signer._credentials
    return None if found is None else found.get_frozen_credentials().access_key


def test_dummy_credentials_only_for_a_loopback_emulator(no_aws):
    local = make_client(OnlineStoreConfig(endpoint_url="http://127.0.0.1:8000"))
    assert credentials(local) == "hindsight" and local.meta.region_name == "us-east-1"
    assert credentials(make_client(OnlineStoreConfig(endpoint_url="http://localhost:8000"))) == "hindsight"
    # A remote endpoint (VPC endpoint, proxy) with nothing configured statically: boto3's own chain,
    # which on EC2 finds the instance role. Dummy keys here were the bug.
    remote = make_client(OnlineStoreConfig(endpoint_url="https://vpce-1.dynamodb.eu-west-1.vpce.amazonaws.com",
                                           region="eu-west-1"))
    assert credentials(remote) is None
    assert credentials(make_client(OnlineStoreConfig(endpoint_url="http://10.1.2.3:8000", region="eu-west-1"))) is None


def test_configured_credentials_are_never_replaced(no_aws, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    assert credentials(make_client(OnlineStoreConfig(endpoint_url="http://127.0.0.1:8000"))) == "AKIAREALKEY"


def test_aws_without_a_region_says_where_to_set_one(no_aws, monkeypatch):
    with pytest.raises(OnlineStoreUnavailable, match=r"AWS DynamoDB .*set online_store.region in hindsight.yml"):
        make_client(OnlineStoreConfig())
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert make_client(OnlineStoreConfig()).meta.region_name == "us-west-2"
    monkeypatch.setenv("AWS_REGION", "eu-west-3")  # honoured first, as by the AWS CLI
    assert make_client(OnlineStoreConfig()).meta.region_name == "eu-west-3"
    assert make_client(OnlineStoreConfig(region="ap-south-1")).meta.region_name == "ap-south-1"


def record(state, endpoint="http://127.0.0.1:8000"):
    state.mkdir(parents=True, exist_ok=True)
    (state / "online_endpoint").write_text(endpoint + "\n")


def test_a_recorded_endpoint_whose_process_is_gone_is_refused(project, no_aws):
    record(project / "data" / "state")
    with pytest.raises(OnlineStoreUnavailable) as raised:
        OnlineStoreConfig.from_settings(Settings.load(project, environ={}))
    message = str(raised.value)
    assert f"{project / 'data' / 'state' / 'online_endpoint'} (http://127.0.0.1:8000) is not running" in message
    assert "`hindsight online up`" in message and "`hindsight online down`" in message
    # The environment and hindsight.yml win over the record, so they are not refused.
    env = {"HINDSIGHT_DYNAMODB_ENDPOINT": "http://127.0.0.1:8001"}
    assert OnlineStoreConfig.from_settings(Settings.load(project, environ=env)).endpoint_url == "http://127.0.0.1:8001"
    (project / "hindsight.yml").write_text("online_store:\n  endpoint: http://127.0.0.1:8002\n")
    assert OnlineStoreConfig.from_settings(Settings.load(project, environ={})).endpoint_url == "http://127.0.0.1:8002"


def test_a_recorded_endpoint_whose_process_runs_is_used(project, no_aws):
    state = project / "data" / "state"
    record(state, "http://127.0.0.1:8123")
    # A stand-in whose command line carries DynamoDB Local's marker, as the real process's does.
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "DynamoDBLocal.jar"])
    try:
        deadline = time.monotonic() + 10  # until it has exec'd (a fresh fork still shows our command line)
        while b"DynamoDBLocal.jar" not in Path(f"/proc/{stand_in.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        (state / "dynamodb-local.json").write_text(json.dumps({"pid": stand_in.pid, "endpoint": "http://127.0.0.1:8123"}))
        config = OnlineStoreConfig.from_settings(Settings.load(project, environ={}))
        assert config.endpoint_url == "http://127.0.0.1:8123"
        assert OnlineStoreConfig.from_settings(Settings.load(project, environ={})).region is None
    finally:
        stand_in.kill()
        stand_in.wait()


def test_commands_refuse_a_stale_record_with_the_fix(project, no_aws, serving_registry, tmp_path, monkeypatch):
    record(project / "data" / "state")
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(serving_registry.to_dict()))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sync", "--registry", str(registry_file), "--project-dir", str(project)])
    assert result.exit_code == 1 and "is not running: start it again with `hindsight online up`" in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def no_gunicorn(monkeypatch, tmp_path):
    runs = []
    monkeypatch.setattr(server, "run", lambda options, app: runs.append(options))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    return runs


def test_serve_refuses_to_start_without_an_answering_store(project, no_aws, no_gunicorn, serving_registry, tmp_path):
    port = free_port()  # nothing listens there
    (project / "hindsight.yml").write_text(f"online_store:\n  endpoint: http://127.0.0.1:{port}\n")
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(serving_registry.to_dict()))
    result = CliRunner().invoke(main, ["serve", "--registry-file", str(registry_file), "--project-dir", str(project)])
    assert result.exit_code == 1, result.output
    assert f"the online store at http://127.0.0.1:{port} does not answer" in result.output
    assert "`hindsight online up`" in result.output and "hindsight.yml" in result.output
    assert no_gunicorn == []
    unchecked = CliRunner().invoke(main, ["serve", "--registry-file", str(registry_file), "--project-dir",
                                          str(project), "--no-store-check"])
    assert unchecked.exit_code == 0, unchecked.output
    assert [o.port for o in no_gunicorn] == [8080]


def test_serve_refuses_a_stale_record(project, no_aws, no_gunicorn, serving_registry, tmp_path):
    record(project / "data" / "state")
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps(serving_registry.to_dict()))
    result = CliRunner().invoke(main, ["serve", "--registry-file", str(registry_file), "--project-dir", str(project)])
    assert result.exit_code == 1 and "cannot serve: the DynamoDB Local recorded in" in result.output
    assert no_gunicorn == []
