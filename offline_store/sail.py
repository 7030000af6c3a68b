"""Sail: a Spark Connect server (Rust, with native Delta Lake) run in the background for the spark target.

JVM Spark here has no Delta (its jars come only from Maven), so local Spark runs are Sail's:
`sail spark server --ip 127.0.0.1 --port N -C <project dir>` opens in ~0.1 s. The working
directory is the project, so relative paths in the profile (HINDSIGHT_OFFLINE_STORE,
HINDSIGHT_RAW_DATA) mean on the server what they mean to dbt. The pid file and the log live under
`state_dir` (`hindsight.core.processes.BackgroundProcess`). Sail keeps its catalog per Spark
Connect session and in memory: it is gone after a restart, which the `feature_view`
materialization copes with (it re-registers Delta tables).

Never release (`SparkSession.stop()`) a session whose id is pinned in the URL: Sail then refuses
that id until it restarts. The URL printed here has no session id; the spark profile adds one.

`open_session` is the one way Hindsight's Python opens a Spark Connect session (training sets, sync
on executors), on Sail or any Spark Connect server: its own session, UTC, refused at once when the
URL is malformed or nothing listens.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hindsight.core.processes import BackgroundProcess, ProcessStartError

#: Sail's own default port.
DEFAULT_PORT = 50051
#: The environment variable holding the Spark Connect URL that training sets and sync use.
SPARK_REMOTE_ENV = "HINDSIGHT_SPARK_REMOTE"
#: Spark Connect's own default port (a URL without one means it).
SPARK_CONNECT_DEFAULT_PORT = 15002
_PROBE_TIMEOUT_S = 3.0
_READY_TIMEOUT_S = 20.0
_PORT_CLOSE_TIMEOUT_S = 10.0


class SailError(RuntimeError):
    """Sail could not be found, started or stopped."""


@dataclass(frozen=True)
class SailStatus:
    """Whether the background Sail runs and accepts connections."""

    running: bool
    answering: bool
    pid: int | None
    remote: str | None


def remote_url(port: int, host: str = "127.0.0.1") -> str:
    """The Spark Connect URL of a server (HINDSIGHT_SPARK_REMOTE), without a session id.

    >>> remote_url(50051)
    'sc://127.0.0.1:50051'
    """
    return f"sc://{host}:{port}"


def own_session_url(remote: str) -> str:
    """The URL without a pinned `session_id`, so the engine gets (and may release) a session of its own.

    Releasing a session whose id is pinned makes Sail refuse that id until it restarts, and dbt's
    profile pins one (see the module docstring).

    >>> own_session_url("sc://127.0.0.1:50051/;session_id=0f6e;user_id=me")
    'sc://127.0.0.1:50051/;user_id=me'
    """
    kept = [part for part in remote.split(";") if not part.startswith("session_id=")]
    return ";".join(kept)


class SparkConnectError(ConnectionError):
    """pyspark is missing, or no Spark Connect server answers at the URL."""


def connect_address(remote: str) -> tuple[str, int]:
    """The host and port of a Spark Connect URL (`sc://host[:port][/;param=value...]`).

    >>> connect_address("sc://127.0.0.1:50051/;session_id=0f6e"), connect_address("sc://spark.internal")
    (('127.0.0.1', 50051), ('spark.internal', 15002))
    >>> connect_address("http://x:1")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    SparkConnectError: not a Spark Connect URL: 'http://x:1' (expected sc://host:port, e.g. sc://127.0.0.1:50051)
    """
    parsed = urllib.parse.urlsplit(remote.split(";", 1)[0])
    example = f"expected sc://host:port, e.g. {remote_url(DEFAULT_PORT)}"
    if parsed.scheme != "sc" or not parsed.hostname:
        raise SparkConnectError(f"not a Spark Connect URL: {remote!r} ({example})")
    try:
        port = parsed.port
    except ValueError:
        port = 0
    if port is not None and not 0 < port < 65536:
        raise SparkConnectError(f"not a Spark Connect URL: {remote!r}: the port must be a number from 1 to 65535 ({example})")
    return parsed.hostname, port or SPARK_CONNECT_DEFAULT_PORT


def open_session(remote: str) -> Any:
    """A Spark Connect session of its own (see `own_session_url`), its session time zone UTC.

    The caller stops it when done.

    Raises:
        SparkConnectError: pyspark[connect] is not installed, or nothing answers at `remote`.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise SparkConnectError("engine='spark' needs pyspark[connect]: install Hindsight's `spark` extra") from error
    host, port = connect_address(remote)
    # pyspark retries an unreachable server for minutes: a wrong URL should fail at once.
    if not answers(port, host, timeout_s=_PROBE_TIMEOUT_S):
        raise SparkConnectError(
            f"cannot reach Spark Connect at {remote!r}: nothing accepts connections on {host}:{port}"
            " (start a local server with `hindsight spark up`, or check the URL)"
        )
    session = SparkSession.builder.remote(own_session_url(remote)).create()
    try:
        session.conf.set("spark.sql.session.timeZone", "UTC")
    except Exception as error:  # grpc and pyspark raise their own classes for an unreachable server
        session.stop()
        raise SparkConnectError(f"cannot reach Spark Connect at {remote!r}: {error}") from error
    return session


def answers(port: int, host: str = "127.0.0.1", timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def sail_executable() -> Path:
    """The `sail` command of this environment (pysail), else the one on PATH.

    Raises:
        SailError: pysail is not installed.
    """
    beside = Path(sys.executable).parent / "sail"
    if beside.exists():
        return beside
    found = shutil.which("sail")
    if not found:
        raise SailError("Sail is not installed: install Hindsight's spark extra (pysail==0.7.2)")
    return Path(found)


def _describe_env(env: Mapping[str, str]) -> str:
    """Object-store settings for a message (they hold no credentials)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(env.items())) or "none: a local offline store"


class SailServer:
    """Start, stop and inspect one background Sail server."""

    def __init__(self, state_dir: Path | str, working_dir: Path | str | None = None) -> None:
        self.process = BackgroundProcess("sail", state_dir, marker=b"sail")
        self.working_dir = Path(working_dir or Path.cwd()).resolve()

    @property
    def log_file(self) -> Path:
        return self.process.log_file

    def status(self) -> SailStatus:
        """Whether it runs (pid alive) and accepts connections on its port."""
        info = self.process.info()
        if info is None:
            return SailStatus(False, False, None, None)
        port = int(info["port"])
        return SailStatus(True, answers(port), int(info["pid"]), remote_url(port))

    def start(self, port: int = DEFAULT_PORT, env: Mapping[str, str] | None = None) -> str:
        """Start Sail in the background unless it runs; returns its Spark Connect URL.

        `env` is added to this process's environment for Sail: the S3 settings of an offline
        store on S3 (`hindsight.core.object_store.S3Config.delta_options`: Sail reads object
        stores through the same Rust crate as delta-rs, configured by the same variables).

        Raises:
            SailError: pysail is missing, the port is taken, or Sail did not listen in time.
        """
        current = self.status()
        if current.running:
            recorded = (self.process.info() or {}).get("object_store", {})
            if recorded != dict(env or {}):
                raise SailError(
                    f"Sail already runs (pid {current.pid}) with other object-store settings than this project's "
                    f"offline store needs ({_describe_env(recorded)}; wanted: {_describe_env(env or {})}): "
                    "run `hindsight spark down`, then `hindsight spark up`"
                )
            return str(current.remote)
        if answers(port):
            raise SailError(f"port {port} is already in use by a server not started here; pick another --port")
        command = [str(sail_executable()), "spark", "server", "--ip", "127.0.0.1", "--port", str(port),
                   "-C", str(self.working_dir)]
        try:
            self.process.start(command, lambda: answers(port, timeout_s=0.2), record={"port": port, "object_store": dict(env or {})},
                               env={**os.environ, **env} if env else None, timeout_s=_READY_TIMEOUT_S)
        except ProcessStartError as error:
            raise SailError(f"Sail did not start on port {port}: {error}") from error
        return remote_url(port)

    def stop(self) -> bool:
        """Stop it if it runs; returns whether it was running. Its catalog is lost.

        Returns once the port is closed too, so a caller may start another server on it at once.
        """
        info = self.process.info()
        stopped = self.process.stop()
        if info is not None:
            deadline = time.monotonic() + _PORT_CLOSE_TIMEOUT_S
            while answers(int(info["port"]), timeout_s=0.2) and time.monotonic() < deadline:
                time.sleep(0.05)
        return stopped
