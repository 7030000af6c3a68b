"""Sail's lifecycle: offline_store.sail and `hindsight spark up|status|down`, on real Sail processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hindsight.offline_store.sail import SailError, SailServer, answers
from hindsight.core.ports import free_port

pytestmark = pytest.mark.integration

HINDSIGHT = Path(sys.executable).parent / "hindsight"


def test_start_is_idempotent_status_tells_and_stop_frees_the_port(tmp_path):
    server = SailServer(tmp_path / "state", working_dir=tmp_path)
    port = free_port()
    assert server.status().running is False
    try:
        remote = server.start(port=port)
        assert remote == f"sc://127.0.0.1:{port}"
        status = server.status()
        assert (status.running, status.answering, status.remote) == (True, True, remote)
        assert server.start(port=port) == remote, "a second start returns the running server"
        assert (tmp_path / "state" / "sail.log").exists()

        other = SailServer(tmp_path / "other-state", working_dir=tmp_path)
        with pytest.raises(SailError, match=f"port {port} is already in use"):
            other.start(port=port)
    finally:
        assert server.stop() is True
    assert server.status().running is False and not answers(port)
    assert server.stop() is False


def run_cli(*args: str, state: Path) -> subprocess.CompletedProcess:
    (state.parent / "dbt_project.yml").touch()  # every command runs in a dbt project
    env = {**os.environ, "HINDSIGHT_STATE": str(state), "HINDSIGHT_PROJECT_DIR": str(state.parent)}
    return subprocess.run([str(HINDSIGHT), "spark", *args], env=env, capture_output=True, text=True, timeout=60)


def test_the_cli_prints_the_export_and_reports_status(tmp_path):
    state, port = tmp_path / "state", free_port()
    assert run_cli("status", state=state).returncode == 1
    try:
        up = run_cli("up", "--port", str(port), state=state)
        assert up.returncode == 0, up.stderr
        # stdout is only the export, so `eval "$(hindsight spark up)"` works.
        assert up.stdout == f"export HINDSIGHT_SPARK_REMOTE=sc://127.0.0.1:{port}\n"
        status = run_cli("status", state=state)
        assert status.returncode == 0 and f"sc://127.0.0.1:{port}: answers" in status.stdout
    finally:
        down = run_cli("down", state=state)
    assert down.stdout.strip() == "stopped Sail"
    assert run_cli("down", state=state).stdout.strip() == "Sail was not running"
    assert not answers(port)


def test_a_taken_port_is_a_clear_error(tmp_path):
    server = SailServer(tmp_path / "first", working_dir=tmp_path)
    port = free_port()
    server.start(port=port)
    try:
        result = run_cli("up", "--port", str(port), state=tmp_path / "second")
    finally:
        server.stop()
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr and "Traceback" not in result.stderr


def test_a_running_sail_without_the_offline_stores_s3_settings_is_refused(tmp_path):
    """Sail reads S3 settings once, at start: one started for a local store cannot reach the bucket."""
    server = SailServer(tmp_path / "state", working_dir=tmp_path)
    port = free_port()
    s3 = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "eu-west-3"}
    server.start(port=port)
    try:
        with pytest.raises(SailError, match=r"other object-store settings.*hindsight spark down`, then"):
            server.start(port=port, env=s3)
    finally:
        server.stop()
    remote = server.start(port=port, env=s3)
    try:
        assert server.start(port=port, env=dict(s3)) == remote  # the same settings: the running server
    finally:
        server.stop()
