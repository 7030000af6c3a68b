"""Run the serving app under gunicorn: pre-forked worker processes, app preloaded in the master.

The master loads the registry, builds the read plans and imports the on-demand code once, then
forks; each worker creates its own online-store client after the fork (a boto3 client's pooled
connections must not be shared between processes). Prometheus metrics use multiprocess mode with a
directory this module prepares before anything imports prometheus_client's value class.
"""

from __future__ import annotations

import atexit
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def default_workers() -> int:
    """Worker processes for this machine: one per core, at least 2, at most 8.

    Each worker runs DEFAULT_THREADS threads, so requests waiting on DynamoDB overlap inside a
    process; one process per core lets Python use every core despite the GIL. Measured with
    bench/bench_serving.py on 2 cores: 2 workers x 4 threads served 1.3-2x the requests/s of
    4 single-threaded sync workers (which also close every connection).

    >>> 2 <= default_workers() <= 8
    True
    """
    return max(2, min(8, os.cpu_count() or 1))


#: Threads per worker (gunicorn's gthread worker, which also keeps client connections alive).
DEFAULT_THREADS = 4


@dataclass(frozen=True)
class ServerOptions:
    """How `hindsight serve` runs gunicorn."""

    #: Interface to bind; 127.0.0.1 keeps the API on this machine.
    host: str = "127.0.0.1"
    port: int = 8080
    #: Worker processes (see default_workers).
    workers: int = 2
    #: Threads per worker; more than 1 uses gunicorn's gthread worker (keep-alive), 1 the sync worker.
    threads: int = DEFAULT_THREADS
    #: Seconds a worker may spend on one request before gunicorn restarts it.
    timeout: int = 30
    #: Write an access log line per request to stderr (costs throughput).
    access_log: bool = False
    log_level: str = "info"


#: Name prefix of the metrics folder each server creates (followed by its pid).
_METRICS_DIR_PREFIX = "hindsight-serve-"


def _creator_pid(directory: Path) -> int | None:
    pid = directory.name[len(_METRICS_DIR_PREFIX):].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return True  # not a name we gave: leave it alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_metrics_dir(directory: Path, creator: int | None = None) -> None:
    """Remove prometheus_client's `*.db` files from a server's metrics folder, then the folder if empty."""
    if creator is not None and os.getpid() != creator:
        return
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:
        pass  # something else is in it: not ours to delete


def prepare_metrics_dir(state_dir: Path, port: int) -> Path:
    """Create this server's own, empty metrics folder and point PROMETHEUS_MULTIPROC_DIR at it.

    prometheus_client needs a folder no earlier server wrote to: stale files would be merged into
    this one's metrics. The folder is a fresh `hindsight-serve-<pid>-*` inside PROMETHEUS_MULTIPROC_DIR
    when that is set, else inside `<state>/serving-metrics-<port>`. Only folders a server created are
    ever removed: its own at exit, and those of servers no longer running (their `.db` files only),
    so files a user keeps in PROMETHEUS_MULTIPROC_DIR are never touched.
    """
    parent = Path(os.environ.get(MULTIPROC_ENV) or state_dir / f"serving-metrics-{port}")
    parent.mkdir(parents=True, exist_ok=True)
    for leftover in parent.glob(f"{_METRICS_DIR_PREFIX}*"):
        if leftover.is_dir() and not _pid_alive(_creator_pid(leftover)):
            _remove_metrics_dir(leftover)
    directory = Path(tempfile.mkdtemp(prefix=f"{_METRICS_DIR_PREFIX}{os.getpid()}-", dir=parent))
    os.environ[MULTIPROC_ENV] = str(directory)
    # Forked workers inherit this handler and exit through sys.exit too: only the creator removes.
    atexit.register(_remove_metrics_dir, directory, os.getpid())
    return directory


def _gunicorn_settings(options: ServerOptions) -> dict[str, Any]:
    from hindsight.serving import metrics, state

    def post_fork(server: Any, worker: Any) -> None:
        # Create this worker's store client now, not on its first request.
        state.warm(worker.app.wsgi())

    def child_exit(server: Any, worker: Any) -> None:
        metrics.mark_process_dead(worker.pid)

    settings: dict[str, Any] = {
        "bind": f"{options.host}:{options.port}",
        "workers": options.workers,
        "worker_class": "gthread" if options.threads > 1 else "sync",
        "threads": options.threads,
        "timeout": options.timeout,
        "keepalive": 5,
        "preload_app": True,
        "accesslog": "-" if options.access_log else None,
        "errorlog": "-",
        "loglevel": options.log_level,
        "proc_name": "hindsight-serve",
        # Several servers (tests, benchmarks) may run at once: no shared ~/.gunicorn control socket.
        "control_socket_disable": True,
        "post_fork": post_fork,
        "child_exit": child_exit,
    }
    if Path("/dev/shm").is_dir():
        # Worker heartbeats on tmpfs: a slow disk must not make gunicorn think workers hang.
        settings["worker_tmp_dir"] = "/dev/shm"
    return settings


class ServingApplication(BaseApplication):
    """gunicorn's application interface around an already created Flask app."""

    def __init__(self, app: Any, settings: dict[str, Any]) -> None:
        self.application = app
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.settings.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def run(options: ServerOptions, app: Any) -> None:
    """Serve `app` with gunicorn until interrupted (blocks)."""
    ServingApplication(app, _gunicorn_settings(options)).run()
