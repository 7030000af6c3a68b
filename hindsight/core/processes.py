"""Background helper processes Hindsight starts for development: DynamoDB Local, Sail, the API.

Each runs detached in its own session, with a JSON pid file (pid plus whatever the owner records,
e.g. its endpoint) and a log file under the state folder. Starting waits until the owner's
readiness check passes; stopping sends SIGTERM to the process group, then SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ProcessStartError(RuntimeError):
    """The process exited or did not become ready; the message carries its log's tail."""


class BackgroundProcess:
    """One named background process and its pid and log files under `state_dir`."""

    def __init__(self, name: str, state_dir: Path | str, marker: bytes | None = None):
        """`marker`: bytes its command line contains, so a recycled pid is not taken for it."""
        self.name = name
        self.state_dir = Path(state_dir)
        self.pid_file = self.state_dir / f"{name}.json"
        self.log_file = self.state_dir / f"{name}.log"
        self.marker = marker

    def info(self) -> dict[str, Any] | None:
        """What the pid file records, if its process is alive; else None."""
        try:
            info = json.loads(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return info if self._alive(int(info["pid"])) else None

    def start(
        self,
        command: Sequence[str],
        ready: Callable[[], bool],
        *,
        record: dict[str, Any] | None = None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        timeout_s: float = 60.0,
    ) -> int:
        """Start `command` detached and wait until `ready()`; returns its pid.

        Raises:
            ProcessStartError: it exited or was not ready within `timeout_s` (it is stopped then).
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            process = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       cwd=cwd, env=env, start_new_session=True)
        self.pid_file.write_text(json.dumps({"pid": process.pid, **(record or {})}))
        deadline = time.monotonic() + timeout_s
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                status = "exited" if process.poll() is not None else f"was not ready within {timeout_s:.0f}s"
                self.stop()
                raise ProcessStartError(f"{self.name} {status}; log {self.log_file}:\n{self.log_tail()}")
            time.sleep(0.1)
        return process.pid

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop it if it runs; returns whether it was running."""
        info = self.info()
        self.pid_file.unlink(missing_ok=True)
        if info is None:
            return False
        pid = int(info["pid"])
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._alive(pid) or _reaped(pid):
                return True
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
        return True

    def log_tail(self, characters: int = 1500) -> str:
        return self.log_file.read_text(errors="replace")[-characters:] if self.log_file.exists() else ""

    def _alive(self, pid: int) -> bool:
        if not pid_alive(pid):
            return False
        cmdline = Path(f"/proc/{pid}/cmdline")
        if self.marker is None or not cmdline.exists():
            return True
        return self.marker in cmdline.read_bytes()


@dataclass(frozen=True)
class RecordedEndpoint:
    """An endpoint a `... up` command recorded in the state folder, and whether its process still runs."""

    endpoint: str
    alive: bool
    path: Path


def read_recorded_endpoint(process: BackgroundProcess, record: str) -> RecordedEndpoint | None:
    """The endpoint recorded in `process.state_dir / record`, or None if nothing is recorded.

    `alive`: the recorded process runs and its pid file names the same endpoint (a stale record
    left by a killed process reads as not alive).
    """
    path = process.state_dir / record
    try:
        endpoint = path.read_text().strip()
    except FileNotFoundError:
        return None
    info = process.info()
    return RecordedEndpoint(endpoint, info is not None and info.get("endpoint") == endpoint, path)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reaped(pid: int) -> bool:
    """Reap our own child if it exited (a zombie still answers kill(pid, 0))."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == pid
    except ChildProcessError:
        return False
