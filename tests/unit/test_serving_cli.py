"""`hindsight serve`: options, environment, set-up errors, the metrics directory."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hindsight.cli import main
from hindsight.serving import metrics, server

# Imported before any test sets PROMETHEUS_MULTIPROC_DIR, so this process keeps in-memory metrics.
assert metrics.REGISTRY is not None


@pytest.fixture
def captured_run(monkeypatch, tmp_path):
    """Replace gunicorn's run loop; keep what serve would have run."""
    runs = []
    monkeypatch.setattr(server, "run", lambda options, app: runs.append((options, app)))
    # The start-up store check has its own tests (test_serve_store_check.py).
    monkeypatch.setattr(server, "check_online_store", lambda registry, settings: None)
    # serve sets these in its own process; keep them from leaking into other tests.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    monkeypatch.setenv("HINDSIGHT_STATE", str(tmp_path / "state"))
    return runs


@pytest.fixture
def registry_file(tmp_path, serving_registry):
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(serving_registry.to_dict()))
    return path


def test_serve_defaults_and_port_from_environment(captured_run, registry_file, monkeypatch):
    monkeypatch.setenv("HINDSIGHT_PORT", "9123")
    result = CliRunner().invoke(main, ["serve", "--registry-file", str(registry_file)])
    assert result.exit_code == 0, result.output
    (options, app), = captured_run
    assert (options.host, options.port, options.threads) == ("127.0.0.1", 9123, server.DEFAULT_THREADS)
    assert options.workers == server.default_workers()
    # The app was built (registry loaded, services planned) before gunicorn forks.
    assert sorted(app.extensions["hindsight_serving"].state.plans) == ["fraud_detection", "merchant_catalog", "user_basics"]
    assert "serving on http://127.0.0.1:9123" in result.output


def test_serve_options(captured_run, registry_file):
    args = ["serve", "--registry-file", str(registry_file), "--host", "0.0.0.0", "--port", "8099",
            "--workers", "3", "--threads", "1"]
    assert CliRunner().invoke(main, args).exit_code == 0
    options = captured_run[0][0]
    assert (options.host, options.port, options.workers, options.threads) == ("0.0.0.0", 8099, 3, 1)
    settings = server._gunicorn_settings(options)
    assert settings["bind"] == "0.0.0.0:8099" and settings["worker_class"] == "sync"
    default = server._gunicorn_settings(server.ServerOptions())
    assert (default["worker_class"], default["threads"]) == (server.ArrivalThreadWorker, 32)
    assert settings["preload_app"] is True and settings["control_socket_disable"] is True


def test_serve_without_a_registry_is_a_clear_error(captured_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HINDSIGHT_REGISTRY", str(tmp_path / "empty-registry"))
    monkeypatch.delenv("HINDSIGHT_SERVING_REGISTRY", raising=False)
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 1
    assert "cannot load the registry" in result.output and "hindsight apply" in result.output
    assert "Traceback" not in result.output
    assert captured_run == []


def test_serve_with_an_unreadable_registry_file(captured_run, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(main, ["serve", "--registry-file", str(bad)])
    assert result.exit_code == 1 and f"{bad} is not a registry: not JSON" in result.output


def test_bad_port_is_rejected(captured_run):
    result = CliRunner().invoke(main, ["serve", "--port", "70000"])
    assert result.exit_code == 2 and "70000" in result.output


def test_metrics_dir_is_new_and_exported_and_stale_server_dirs_go(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # empty = unset; restored after the test
    parent = tmp_path / "serving-metrics-8080"
    # A server that was killed (no such pid) left its folder behind.
    stale = parent / "hindsight-serve-999999999-abc"
    stale.mkdir(parents=True)
    (stale / "counter_123.db").write_bytes(b"old")
    directory = server.prepare_metrics_dir(tmp_path, 8080)
    assert directory.parent == parent and list(directory.iterdir()) == []
    assert not stale.exists()
    import os

    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(directory)
    (directory / "counter_1.db").write_bytes(b"x")
    server._remove_metrics_dir(directory, os.getpid())
    assert not directory.exists()


def test_serve_never_deletes_a_users_files_in_the_metrics_dir(tmp_path, monkeypatch):
    """PROMETHEUS_MULTIPROC_DIR named a folder holding a user's files: they all survive."""
    users = tmp_path / "metrics"
    (users / "nested").mkdir(parents=True)
    (users / "notes.txt").write_text("mine")
    (users / "nested" / "data.db").write_text("mine too")
    (users / "other_app_1.db").write_text("another app's metrics")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(users))
    directory = server.prepare_metrics_dir(tmp_path / "state", 8080)
    assert directory.parent == users and directory.name.startswith("hindsight-serve-")
    import os

    server._remove_metrics_dir(directory, os.getpid())
    assert sorted(str(p.relative_to(users)) for p in users.rglob("*")) == [
        "nested", "nested/data.db", "notes.txt", "other_app_1.db"]
    assert (users / "notes.txt").read_text() == "mine"
