"""Run the serving app under gunicorn: pre-forked worker processes, app preloaded in the master.

The master loads the registry, builds the read plans and imports the on-demand code once, then
forks; each worker creates its own online-store client after the fork (a boto3 client's pooled
connections must not be shared between processes). Prometheus metrics use multiprocess mode with a
directory this module prepares before anything imports prometheus_client's value class.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import selectors
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import TConn, ThreadWorker

from hindsight.core.processes import pid_alive

if TYPE_CHECKING:
    from hindsight.core.settings import Settings
    from hindsight.registry_sync.model import Registry

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
#: Requests waiting on a sick store each hold a thread up to the store deadline; with 32 of them a
#: worker still has threads for /healthz and healthy requests while 16+ requests wait.
DEFAULT_THREADS = 32

_arrival = threading.local()


def request_arrival() -> float | None:
    """`time.perf_counter()` when the current request was ready to read, under `hindsight serve`.

    gunicorn hands a request to a thread only when one is free; deadlines count from the moment the
    request was ready (its connection accepted or readable again), so time spent queued for a thread
    counts too. None outside ArrivalThreadWorker (tests, the sync worker): use the handler's start.
    """
    return getattr(_arrival, "value", None)


class TimedConn(TConn):
    """A client connection whose blocking reads and writes give up after `client_timeout_s` seconds.

    gunicorn's gthread worker reads a request's headers and body on a blocking socket with no
    timeout: a client that announces a body and stalls holds a request thread for good, and as many
    such clients as a worker has threads freeze it (/healthz included). With the timeout, the read
    raises TimeoutError: `serving.body.read_body` answers 408 when it happens in the body, gunicorn
    closes the connection either way, and the thread is free again.
    """

    def __init__(self, cfg: Any, sock: Any, client: Any, server: Any, client_timeout_s: float | None) -> None:
        super().__init__(cfg, sock, client, server)
        self.client_timeout_s = client_timeout_s
        self.closed = False

    def init(self) -> None:
        # Called by the worker thread each time it takes the connection, right after gunicorn set the
        # socket blocking (which clears any timeout). An HTTP/2 connection idles between streams by
        # design: it keeps gunicorn's own handling.
        super().init()
        if self.client_timeout_s and not self.is_http2:
            self.sock.settimeout(self.client_timeout_s)

    def close(self, graceful: bool = False) -> None:
        """Close once (the worker thread closes a finished connection, see ArrivalThreadWorker.handle,
        then gunicorn's main thread closes it again), lingering only for a client still sending.

        gunicorn's graceful close lingers up to 2 s for the client to close, so that request bytes
        still arriving do not make the kernel reset the connection (losing the response). A client
        that has sent nothing more, nor closed, has no such bytes; it may be stalled and never close.
        Closing at once still delivers the response, and frees the thread.
        """
        if self.closed:
            return
        self.closed = True
        super().close(graceful and not self._client_quiet())

    def _client_quiet(self) -> bool:
        """Nothing (no bytes, no close) is waiting to be read from the client right now."""
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.sock, selectors.EVENT_READ)
                return not selector.select(0)
        except (OSError, ValueError):  # already closed
            return True


class _ClientTimeoutLog(logging.Filter):
    """One INFO line instead of a traceback when gunicorn closes a connection whose client stalled.

    gunicorn logs every socket error but a reset or broken pipe as "Socket error processing request"
    with its traceback; a client that stopped sending (or reading) is the client's doing, and a
    crowd of them must not flood the error log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, TimeoutError):
            record.msg = ("closed the connection of a client that sent or read nothing within the client timeout "
                          "(HINDSIGHT_SERVING_CLIENT_TIMEOUT_MS)")
            record.args, record.exc_info, record.exc_text = None, None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class ArrivalThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, noting when each request became ready, before it waited for a thread,
    and bounding how long a thread waits on a client (`TimedConn`)."""

    #: Seconds a thread waits for a client's next bytes, or for it to take the response; None waits
    #: for ever. Set in each worker after the fork from the app's ServingConfig.client_timeout_ms.
    client_timeout_s: float | None = None

    def init_process(self) -> None:
        logging.getLogger("gunicorn.error").addFilter(_ClientTimeoutLog())
        super().init_process()

    def accept(self, listener: Any) -> None:
        """gunicorn's accept (gunicorn 27.0.1, pinned), making a TimedConn instead of a TConn."""
        try:
            client_sock, client_addr = listener.accept()
            self.nr_conns += 1
            client_sock.setblocking(True)
            conn = TimedConn(self.cfg, client_sock, client_addr, listener.getsockname(), self.client_timeout_s)
            self.enqueue_req(conn)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise

    def enqueue_req(self, conn: Any) -> None:
        conn.hindsight_ready_at = time.perf_counter()
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        stamp = getattr(conn, "hindsight_ready_at", None)
        if not (conn.initialized or conn.data_ready) and not conn.wait_for_data(0):
            stamp = None  # a new connection whose request has not arrived yet: it arrives from now on
        _arrival.value = stamp
        try:
            keep = super().handle(conn)
        finally:
            _arrival.value = None
        if keep is False and isinstance(conn, TimedConn):
            # gunicorn would close it in its main thread, lingering up to 2 s for the client to close
            # first (RFC 9112 section 9.6). A stalled client never does: one after another, each would
            # stop the worker accepting and dispatching every other connection for those 2 s.
            conn.close(graceful=True)
        return keep


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
    return pid_alive(pid)


def _remove_metrics_dir(directory: Path, creator: int | None = None) -> None:
    """Remove prometheus_client's `*.db` files from a server's metrics folder, then the folder if empty."""
    if creator is not None and os.getpid() != creator:
        return
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # something else is in it: not ours to delete
        directory.rmdir()


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


#: Seconds the start-up check waits for the online store (one attempt, no retries).
STORE_CHECK_TIMEOUT_S = 2.0


def check_online_store(registry: Registry, settings: Settings) -> None:
    """Refuse to serve without a usable online store: DescribeTable on each online view's table.

    One cheap call per table (ListTables when no view is online), one attempt, a short timeout.

    Raises:
        hindsight.serving.state.ServingSetupError: naming the endpoint, what failed and the fix.
    """
    from dataclasses import replace

    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from hindsight.online_sync.config import OnlineStoreConfig, OnlineStoreUnavailable, make_client
    from hindsight.serving.state import ServingSetupError

    start_store = ("start DynamoDB Local with `hindsight online up`, or name the store in hindsight.yml "
                   "(online_store.endpoint, or HINDSIGHT_DYNAMODB_ENDPOINT)")
    try:
        config = OnlineStoreConfig.from_settings(settings)
        where = config.describe()
        client = make_client(replace(config, connect_timeout_s=STORE_CHECK_TIMEOUT_S,
                                     read_timeout_s=STORE_CHECK_TIMEOUT_S, max_attempts=1))
        tables = {config.table_name(v.name): v.name for v in registry.feature_views if v.online}
        if not tables:
            client.list_tables(Limit=1)
        for table, view in tables.items():
            try:
                client.describe_table(TableName=table)
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
                raise ServingSetupError(
                    f"cannot serve: the online store at {where} has no table {table} for feature view {view}: "
                    "run `hindsight apply` (it creates the online tables), then `hindsight sync`"
                ) from None
    except OnlineStoreUnavailable as error:
        raise ServingSetupError(f"cannot serve: {error}") from None
    except NoCredentialsError:
        raise ServingSetupError(
            f"cannot serve: no AWS credentials for the online store at {where}: configure them (AWS_PROFILE, "
            f"~/.aws/credentials, an instance role), or {start_store}"
        ) from None
    except ClientError as error:
        detail = f"{error.response['Error']['Code']}: {error.response['Error'].get('Message', '')}"
        raise ServingSetupError(f"cannot serve: the online store at {where} refused a DescribeTable ({detail})") from None
    except BotoCoreError as error:
        raise ServingSetupError(f"cannot serve: the online store at {where} does not answer ({error}): {start_store}") from None


def _gunicorn_settings(options: ServerOptions) -> dict[str, Any]:
    from hindsight.serving import ingest, metrics, sampling, state

    def post_fork(server: Any, worker: Any) -> None:
        # Create this worker's store client and make its first calls now, not on its first
        # requests: building a boto3 client and each operation's first call cost ~0.1 s of CPU
        # (seconds on a busy machine) with the GIL held, stalling every thread of the worker.
        app = worker.app.wsgi()
        if isinstance(worker, ArrivalThreadWorker):
            worker.client_timeout_s = state.get_runtime(app).state.config.client_timeout_ms / 1000
        state.warm(app)
        store_warm = getattr(state.get_runtime(app).state.store, "warm", None)
        if store_warm is not None:
            store_warm()
        # Journaled events and pushed rows reach Delta from here (one commit per batch, leased per
        # target, so the workers never write the same entries twice).
        ingest.start_flusher(app)

    def child_exit(server: Any, worker: Any) -> None:
        metrics.mark_process_dead(worker.pid)

    def worker_exit(server: Any, worker: Any) -> None:
        # In the worker, after its last request: flush the journal, commit the served-feature samples still queued.
        flushed = ingest.stop_flusher(worker.app.wsgi())
        sampler = sampling.get_sampler(worker.app.wsgi())
        if (sampler is not None and sampler.close()) or flushed:
            # This worker ran delta-rs and Arrow from a thread after gunicorn's fork; the interpreter's
            # normal teardown then hung in native code (no Python frame left) until gunicorn killed
            # the worker at its 30 s graceful timeout. The samples are committed and nothing else is
            # left to do in this process: flush the logs and leave.
            import logging
            import sys

            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

    settings: dict[str, Any] = {
        "bind": f"{options.host}:{options.port}",
        "workers": options.workers,
        "worker_class": ArrivalThreadWorker if options.threads > 1 else "sync",
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
        "worker_exit": worker_exit,
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
