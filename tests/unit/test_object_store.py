"""hindsight.yml's `s3:` section and the one S3Config that boto3, delta-rs and DuckDB are set up from."""

from __future__ import annotations

from pathlib import Path

import pytest

from hindsight.core.config import ConfigError, load_config
from hindsight.core.object_store import S3Config, delta_storage_options, is_s3, split_s3
from hindsight.core.settings import Settings
from hindsight.offline_store.duckdb_delta import _create_secret


def project(tmp_path: Path, text: str) -> Path:
    (tmp_path / "dbt_project.yml").write_text("name: p\n")
    (tmp_path / "hindsight.yml").write_text(text)
    return tmp_path


def test_s3_locations_and_endpoint_from_hindsight_yml(tmp_path):
    root = project(tmp_path, "offline_store: s3://team/prod/offline\nregistry: s3://team/prod/registry/\n"
                             "s3:\n  endpoint_url: http://127.0.0.1:9000\n  region: eu-west-1\n")
    settings = Settings.load(root, environ={})
    assert settings.offline_store == "s3://team/prod/offline"
    assert settings.registry_dir == "s3://team/prod/registry/"
    assert S3Config.from_settings(settings, environ={}) == S3Config("http://127.0.0.1:9000", "eu-west-1")


def test_environment_overrides_and_aws_fallbacks(tmp_path):
    root = project(tmp_path, "offline_store: s3://team/offline\n")
    settings = Settings.load(root, environ={"HINDSIGHT_S3_ENDPOINT_URL": "https://minio.internal:9000"})
    assert settings.s3.endpoint_url == "https://minio.internal:9000"
    plain = Settings.load(root, environ={})
    # AWS's own variables, the S3-specific one first, when hindsight.yml names no endpoint.
    both = {"AWS_ENDPOINT_URL_S3": "http://s3.local:1", "AWS_ENDPOINT_URL": "http://all.local:2", "AWS_REGION": "ap-south-1"}
    assert S3Config.from_settings(plain, environ=both) == S3Config("http://s3.local:1", "ap-south-1")
    assert S3Config.from_settings(plain, environ={"AWS_ENDPOINT_URL": "http://all.local:2"}).endpoint_url == "http://all.local:2"
    assert S3Config.from_settings(plain, environ={}).endpoint_url is None


def test_a_bad_endpoint_or_a_state_uri_is_a_clear_error(tmp_path):
    root = project(tmp_path, "s3:\n  endpoint_url: 127.0.0.1:9000\n")
    with pytest.raises(ConfigError, match=r"'s3.endpoint_url' in .*hindsight.yml should be an http:// or https:// URL"):
        load_config(root, environ={})
    root = project(tmp_path, "state: s3://team/state\n")
    with pytest.raises(ConfigError, match="'state' .* should be a local folder .*not a URI: 's3://team/state'"):
        load_config(root, environ={})
    with pytest.raises(ConfigError, match=r"unknown key 's3.endpoint' .*did you mean s3.endpoint_url"):
        load_config(project(tmp_path, "s3:\n  endpoint: http://x\n"), environ={})


def test_delta_options_for_an_s3_compatible_store_and_for_aws():
    assert S3Config("http://127.0.0.1:9000", "us-east-1").delta_options() == {
        "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_ALLOW_HTTP": "true",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
    }
    # AWS itself: only the region; credentials stay with delta-rs's chain, never in options.
    assert S3Config(None, "eu-west-1").delta_options() == {"AWS_REGION": "eu-west-1"}
    assert delta_storage_options("/local/table") is None


def test_duckdb_secret_carries_the_credentials_boto3_resolves(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr'et")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    secret = S3Config("http://127.0.0.1:9000", "us-east-1").duckdb_secret()
    assert secret == {"KEY_ID": "AKIDEXAMPLE", "SECRET": "s3cr'et", "REGION": "us-east-1", "SESSION_TOKEN": "token",
                      "ENDPOINT": "127.0.0.1:9000", "USE_SSL": False, "URL_STYLE": "path"}
    statement = _create_secret(secret)
    assert "SECRET 's3cr''et'" in statement and "USE_SSL FALSE" in statement


def test_no_credentials_is_named(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(RuntimeError, match="no AWS credentials for S3: set AWS_ACCESS_KEY_ID"):
        S3Config(None, "us-east-1").duckdb_secret()


def test_uris():
    assert is_s3("s3a://b/x") and not is_s3("gs://b/x") and not is_s3(Path("/s3://x"))
    assert split_s3("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError, match="not an s3:// URI: 'gs://b/x'"):
        split_s3("gs://b/x")
