"""kinesalite, a Kinesis API emulator, installed from npm into the tools folder and run in the background.

`hindsight stream up|down|status|install` drive it, as `hindsight online ...` drives DynamoDB Local
(online_sync.local): the same background-process helper (pid file, log, readiness wait), the same
npm install, the same recorded endpoint (`state_dir/kinesis_endpoint`, read by streams.kinesis when
hindsight.yml's streams.kinesis_endpoint is null).

kinesalite's own CLI listens on every interface; `kinesalite_server.js` beside this module starts it
through its Node API bound to 127.0.0.1 only. Streams live in memory (lost at `down`) unless
`start(persist=True)`, which keeps them in LevelDB under `state_dir/kinesis/`.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from hindsight.core.npm import NpmInstallError, npm_install
from hindsight.core.processes import BackgroundProcess, ProcessStartError, RecordedEndpoint, read_recorded_endpoint

log = logging.getLogger(__name__)

NPM_PACKAGE = "kinesalite"
NPM_VERSION = "3.3.3"
#: The file in the state folder that holds the endpoint `start` started (one line, a URL).
ENDPOINT_RECORD = "kinesis_endpoint"
_PROCESS_NAME = "kinesalite"
_LAUNCHER = Path(__file__).with_name("kinesalite_server.js")
_MARKER = _LAUNCHER.name.encode()
_READY_TIMEOUT_S = 30.0
_HOST = "127.0.0.1"


class KinesaliteError(RuntimeError):
    """kinesalite could not be installed, started or stopped."""


@dataclass(frozen=True)
class KinesaliteStatus:
    """Whether the background kinesalite runs and answers."""

    running: bool
    answering: bool
    pid: int | None
    endpoint: str | None
    persistent: bool | None


def recorded_endpoint(state_dir: Path | str) -> RecordedEndpoint | None:
    """The Kinesis endpoint recorded in `state_dir`, or None if nothing is recorded."""
    return read_recorded_endpoint(BackgroundProcess(_PROCESS_NAME, state_dir, marker=_MARKER), ENDPOINT_RECORD)


def answers(endpoint: str, timeout_s: float = 1.0) -> bool:
    """Whether a Kinesis endpoint answers ListStreams."""
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="hindsight", aws_secret_access_key="hindsight",
        config=Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1}),
    )
    try:
        client.list_streams(Limit=1)
        return True
    except Exception:  # noqa: BLE001 - not answering, for whatever reason
        return False


class Kinesalite:
    """Install, start, stop and inspect one background kinesalite."""

    def __init__(self, tools_dir: Path | str, state_dir: Path | str) -> None:
        self.install_dir = Path(tools_dir) / "kinesalite"
        self.state_dir = Path(state_dir)
        self.process = BackgroundProcess(_PROCESS_NAME, self.state_dir, marker=_MARKER)
        self.log_file = self.process.log_file
        self.data_dir = self.state_dir / "kinesis"
        self.endpoint_record = self.state_dir / ENDPOINT_RECORD

    def module(self) -> Path | None:
        """The installed kinesalite package folder, or None."""
        folder = self.install_dir / "node_modules" / NPM_PACKAGE
        return folder if (folder / "index.js").is_file() else None

    def install(self) -> Path:
        """Install kinesalite with npm unless it is there; returns its folder. Idempotent.

        Raises:
            KinesaliteError: npm is missing or the install failed.
        """
        found = self.module()
        if found:
            return found
        log.info("installing %s@%s into %s", NPM_PACKAGE, NPM_VERSION, self.install_dir)
        try:
            return npm_install(self.install_dir, NPM_PACKAGE, NPM_VERSION)
        except NpmInstallError as error:
            raise KinesaliteError(str(error)) from None

    def status(self) -> KinesaliteStatus:
        """Whether it runs (pid alive) and answers ListStreams."""
        info = self.process.info()
        if info is None:
            return KinesaliteStatus(False, False, None, None, None)
        endpoint = info["endpoint"]
        return KinesaliteStatus(True, answers(endpoint), int(info["pid"]), endpoint, bool(info.get("persistent")))

    def start(self, port: int = 4567, persist: bool = False) -> str:
        """Start kinesalite on 127.0.0.1 unless it runs; returns its endpoint (recorded).

        Args:
            port: the TCP port on 127.0.0.1.
            persist: keep streams in LevelDB under `state_dir/kinesis/` (default: in memory).

        Raises:
            KinesaliteError: Node is missing, the port answers already, or it did not start in time.
        """
        current = self.status()
        endpoint = f"http://{_HOST}:{port}"
        if current.running:
            if current.endpoint != endpoint:
                log.warning("kinesalite already runs at %s (pid %s); not starting another", current.endpoint, current.pid)
            endpoint = current.endpoint or endpoint
            self._record(endpoint)
            return endpoint
        node = shutil.which("node")
        if not node:
            raise KinesaliteError("kinesalite needs Node 20+: apt-get install nodejs npm")
        if answers(endpoint, timeout_s=0.5):
            raise KinesaliteError(f"port {port} already answers as a Kinesis endpoint not started here; pick another --port")
        module = self.install()
        command = [node, str(_LAUNCHER), str(module), _HOST, str(port)]
        if persist:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            command.append(str(self.data_dir))
        try:
            self.process.start(command, lambda: answers(endpoint, timeout_s=0.5),
                               record={"endpoint": endpoint, "persistent": persist}, timeout_s=_READY_TIMEOUT_S)
        except ProcessStartError as error:
            raise KinesaliteError(f"kinesalite did not start at {endpoint}: {error}") from None
        self._record(endpoint)
        return endpoint

    def stop(self) -> bool:
        """Stop it if it runs and forget its recorded endpoint; returns whether it was running."""
        self.endpoint_record.unlink(missing_ok=True)
        return self.process.stop()

    def _record(self, endpoint: str) -> None:
        # Written to a temporary file and renamed: a command starting meanwhile reads all or nothing.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        temporary = self.endpoint_record.with_suffix(".tmp")
        temporary.write_text(endpoint + "\n")
        temporary.replace(self.endpoint_record)
