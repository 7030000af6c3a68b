"""A `hindsight serve` running in the background: started, found and stopped through a pid file.

`make demo` ends with the service running; a second `make demo` restarts it (so it serves the
newly applied registry) instead of failing on a busy port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

READY_TIMEOUT_S = 30.0


class BackgroundServer:
    """The detached server for one host and port, with its pid and log files under `state_dir`."""

    def __init__(self, state_dir: Path, host: str, port: int):
        self.state_dir = Path(state_dir)
        self.host = host
        self.port = port
        self.pid_path = self.state_dir / f"serve-{port}.pid"
        self.log_path = self.state_dir / f"serve-{port}.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def start(self, options: list[str]) -> None:
        """Start (or restart) the server and wait until /healthz answers.

        Raises:
            RuntimeError: it exited or did not answer in time; the message points at its log.
        """
        self.stop()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "hindsight.cli", "serve", "--host", self.host, "--port", str(self.port), *options]
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        self.pid_path.write_text(str(process.pid))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with status {process.returncode}; see {self.log_path}")
            if self._answers():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer on {self.url} within {READY_TIMEOUT_S:.0f}s; see {self.log_path}")

    def stop(self) -> bool:
        """Stop the detached server if it runs; True if one was stopped."""
        pid = self.pid()
        self.pid_path.unlink(missing_ok=True)
        if pid is None:
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return True
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
        return True

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False
