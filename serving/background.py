"""A `hindsight serve` running in the background (hindsight.core.processes), found and stopped by port.

`make demo` ends with the service running; a second `make demo` restarts it (so it serves the
newly applied registry) instead of failing on a busy port.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from hindsight.core.processes import BackgroundProcess, ProcessStartError

READY_TIMEOUT_S = 30.0


class BackgroundServer:
    """The detached server for one host and port."""

    def __init__(self, state_dir: Path, host: str, port: int):
        self.host = host
        self.port = port
        self.process = BackgroundProcess(f"serve-{port}", state_dir, marker=b"serve")
        self.log_path = self.process.log_file

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def pid(self) -> int | None:
        info = self.process.info()
        return None if info is None else int(info["pid"])

    def start(self, options: list[str]) -> None:
        """Start (or restart) the server and wait until /healthz answers.

        Raises:
            RuntimeError: it exited or did not answer in time; the message carries its log.
        """
        self.stop()
        command = [sys.executable, "-m", "hindsight.cli", "serve", "--host", self.host, "--port", str(self.port), *options]
        try:
            self.process.start(command, self._answers, record={"url": self.url}, timeout_s=READY_TIMEOUT_S)
        except ProcessStartError as error:
            raise RuntimeError(str(error)) from None

    def stop(self) -> bool:
        """Stop the detached server if it runs; True if one was stopped."""
        return self.process.stop()

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False
