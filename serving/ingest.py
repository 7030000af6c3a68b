"""Blueprint `ingest`: `POST /v1/ingest` (events of a stream source) and `POST /v1/push` (rows of a
push feature view), and the background flusher each serving worker runs.

Both endpoints write through the functions the SDK and the CLI use: `streams.ingest.Ingestor`
(journal and online tiles in DynamoDB transactions) and `online_sync.push.push`. A 200 is answered
only once those return, that is once every DynamoDB write of the request has committed: an
acknowledged event or row survives a `kill -9` of the server. A client that retries a request
(after a timeout, a 503) is safe: an event id already journaled counts as a duplicate, and a pushed
row that is not newer than the online value is not written again.

Order of the checks: the body's shape (fields, types, row count: 400/413, which tell nothing about
the registry), then the key's write scope on the target (`auth.require_write`: 403, before an
unknown name is answered 404), then each row against the registry by the writer, whose
`IngestValidationError` (field, row, rule, nearest valid value) becomes a 400 naming them.

Deadline: a write runs on a per-process pool and is waited for until HINDSIGHT_SERVING_WRITE_DEADLINE_MS
(default 5 s) from the request's arrival; later is a 503 saying the request was not acknowledged
and retrying it is safe. Its DynamoDB client has that deadline as its connect and read timeout and
makes one attempt per call (`online_sync.store.deadline_config`), so a hung store frees the pool's
thread soon after too; a write still running at the deadline may complete in the background, which
the retry finds as duplicates (ingest: the journaled event ids; push: the journal entry ids, a
digest of each row, and newest-wins online).

Per process (gunicorn forks workers from a preloaded app): one DynamoDB client and one `Ingestor`
per served registry version, created on first use after the fork, and a `FlushLoop` started by
gunicorn's post_fork that moves journaled entries to the offline store (Delta) every
`streams.flush_interval` seconds, following the served registry.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from hindsight.online_sync.config import OnlineStoreUnavailable, OnlineTableMissing, is_timeout
from hindsight.online_sync.tables import needs_journal
from hindsight.registry_sync.model import Registry
from hindsight.serving import auth, jsonio, metrics
from hindsight.serving.body import OutOfRangeNumber, json_type, parse_json_body, read_body, show
from hindsight.serving.deadlines import FutureTimeout, call_by
from hindsight.serving.errors import ApiError, unknown
from hindsight.serving.server import request_arrival
from hindsight.serving.state import get_state

log = logging.getLogger(__name__)

bp = Blueprint("ingest", __name__, url_prefix="/v1")

EXTENSION = "hindsight_ingest"
#: The worker's FlushLoop (started by gunicorn's post_fork).
FLUSH_EXTENSION = "hindsight_ingest_flush"
INGEST_FIELDS = ("source", "rows")
PUSH_FIELDS = ("view", "rows")
#: What a 503 tells the client: part of the request may be written, and a retry is safe.
_RETRY = ("the request was not acknowledged (rows written before the failure are kept and count as duplicates "
          "when the request is retried, so retrying it is safe)")
#: Threads per process that run writes (as many as a worker's request threads: `serve --threads`' default).
_WRITE_THREADS = 32
#: Fields of an IngestReport the ingest endpoint answers (its timing stays in the server).
INGEST_REPORT_FIELDS = ("source", "received", "accepted", "duplicates")


class Writers:
    """How one app writes: the Ingestor and push function (real ones, or fakes from test_config).

    Args:
        ingestor_factory: registry -> an object with `ingest(source, rows)` (default: `Ingestor`).
        push_function: `online_sync.push.push`'s signature (default: it).
        deadline_s: longest a request waits for its writes, from its arrival (the write deadline).
    """

    def __init__(self, ingestor_factory: Callable[[Registry], Any] | None = None,
                 push_function: Callable[..., Any] | None = None, deadline_s: float = 5.0) -> None:
        self._ingestor_factory = ingestor_factory
        self._push_function = push_function
        self.deadline_s = deadline_s
        self._ingestors: dict[tuple[int, int], Any] = {}
        self._config: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._lock = threading.Lock()

    def store_config(self) -> Any:
        """The online store's config, read once per app from the project's settings, with the
        write deadline as its client's timeouts and one attempt per call."""
        if self._config is None:
            from hindsight.online_sync.config import OnlineStoreConfig
            from hindsight.online_sync.store import deadline_config

            self._config = deadline_config(OnlineStoreConfig.from_env(), self.deadline_s)
        return self._config

    def warm(self) -> None:
        """Create this process's write threads and, for the real writers, the write client
        (gunicorn's post_fork; no call is made). Never raises."""
        self._executor()
        if self._ingestor_factory is None or self._push_function is None:
            try:
                from hindsight.online_sync.config import shared_client

                shared_client(self.store_config())
            except Exception:  # a store that cannot be set up is reported by real writes
                log.warning("cannot create the write client yet", exc_info=True)

    def _executor(self) -> ThreadPoolExecutor:
        """This process's write threads (created after a fork)."""
        if self._pool_pid != os.getpid():
            with self._lock:
                if self._pool_pid != os.getpid():
                    self._pool = ThreadPoolExecutor(_WRITE_THREADS, thread_name_prefix="hindsight-write")
                    self._pool_pid = os.getpid()
        assert self._pool is not None
        return self._pool

    def bounded(self, started: float, write: Callable[..., Any], *args: Any) -> Any:
        """`write(*args)`, waited for until `started` plus the deadline.

        Raises:
            FutureTimeout: not done by then (not started: never runs; running: its result is dropped).
            Whatever `write` raises.
        """
        return call_by(self._executor(), started + self.deadline_s, write, *args)

    def ingestor(self, registry: Registry) -> Any:
        """This process's Ingestor for `registry` (one per registry version; after a fork, a new one)."""
        key = (os.getpid(), id(registry))
        found = self._ingestors.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._ingestors.get(key)
            if found is None:
                if self._ingestor_factory is not None:
                    found = self._ingestor_factory(registry)
                else:
                    from hindsight.online_sync.config import shared_client
                    from hindsight.streams.ingest import Ingestor

                    config = self.store_config()
                    found = Ingestor(registry, config, shared_client(config))
                # Only the current registry's Ingestor is kept (its plans follow the registry).
                self._ingestors = {key: found}
        return found

    def ingest(self, registry: Registry, source: str, rows: list[dict[str, Any]]) -> Any:
        return self.ingestor(registry).ingest(source, rows)

    def push(self, registry: Registry, view: str, rows: list[dict[str, Any]]) -> Any:
        if self._push_function is not None:
            return self._push_function(registry, None, view, rows)
        from hindsight.online_sync.config import shared_client
        from hindsight.online_sync.push import push

        config = self.store_config()
        return push(registry, config, view, rows, client=shared_client(config))


def init_app(app: Flask, test_config: Mapping[str, Any] | None = None) -> Writers:
    """Register the writers; `test_config` may carry INGESTOR (registry -> an object with
    `ingest(source, rows)`), PUSH (a function with `online_sync.push.push`'s signature) and
    WRITE_DEADLINE_MS."""
    from hindsight.serving.config import ServingConfig

    overrides = dict(test_config or {})
    deadline_ms = ServingConfig.from_env().updated(overrides).write_deadline_ms
    writers = Writers(overrides.get("INGESTOR"), overrides.get("PUSH"), deadline_ms / 1000)
    app.extensions[EXTENSION] = writers
    app.register_blueprint(bp)
    return writers


def _writers() -> Writers:
    return current_app.extensions[EXTENSION]


# ---------------------------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------------------------


def _rows(body: dict[str, Any], target_field: str, fields: tuple[str, ...], max_rows: int) -> tuple[str, list[dict]]:
    """The target name and the rows of a write body, or a 4xx naming what is wrong."""
    extra = body.keys() - set(fields)
    if extra:
        names = ", ".join(map(repr, sorted(extra)))
        raise ApiError(400, "unknown_field", f"unknown request field(s) {names}; accepted: {', '.join(fields)}")
    missing = [name for name in fields if name not in body]
    if missing:
        raise ApiError(400, "missing_field", f"request field(s) {', '.join(map(repr, missing))} missing: "
                                             f"send {{{', '.join(repr(f) + ': ...' for f in fields)}}}")
    target = body[target_field]
    if type(target) is not str or not target:
        raise ApiError(400, "invalid_request", f"'{target_field}' must be a non-empty string, got {json_type(target)} "
                                               f"{show(target)}")
    rows = body["rows"]
    if not isinstance(rows, list):
        raise ApiError(400, "invalid_rows", f"'rows' must be a list of row objects, got {json_type(rows)}")
    if not rows:
        raise ApiError(400, "invalid_rows", "'rows' is empty: send at least one row object")
    if len(rows) > max_rows:
        raise ApiError(413, "batch_too_large", f"'rows' has {len(rows)} rows; the limit is {max_rows} per request "
                                               "(HINDSIGHT_SERVING_MAX_WRITE_ROWS): send them in several requests")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ApiError(400, "invalid_rows", f"rows[{index}] must be an object of column values, got "
                                                f"{json_type(row)} {show(row)}", {"row": index})
        for name, value in row.items():
            if isinstance(value, (dict, list)):
                raise ApiError(400, "invalid_row", f"rows[{index}].{name} must be a single value (a string, number, "
                                                   f"boolean or null), got {json_type(value)}",
                               {"row": index, "field": name, "rule": "scalar"})
            if type(value) is OutOfRangeNumber:
                raise ApiError(400, "invalid_row", f"rows[{index}].{name}: {show(value)} is out of the range of every "
                                                   "column type (int64 is at most 19 digits)",
                               {"row": index, "field": name, "rule": "range"})
    return target, rows


def _write_timed_out(what: str, target: str, deadline_s: float) -> ApiError:
    log.warning("%s %s: not committed within the write deadline (%.0f ms); answered 503", what, target,
                deadline_s * 1000)
    return ApiError(503, "online_store_unavailable",
                    f"the online store did not commit the write within {deadline_s * 1000:.0f} ms of the request's "
                    f"arrival (it may still complete); {_RETRY}")


def _store_failed(what: str, target: str, error: OnlineStoreUnavailable, deadline_s: float) -> ApiError:
    """The 503 of a failed write; the detail (endpoint, table names) goes to the log only."""
    if is_timeout(error):  # the client's timeout is the write deadline too and may fire first
        return _write_timed_out(what, target, deadline_s)
    log.warning("%s %s failed: %s", what, target, error)
    if isinstance(error, OnlineTableMissing):
        return ApiError(503, "online_store_unavailable", "a table of the online store is missing: run `hindsight "
                                                         f"apply` (the server log names it); {_RETRY}")
    return ApiError(503, "online_store_unavailable", f"the online store cannot be reached; {_RETRY}; "
                                                     "see the server log")


def _invalid_row(error: Exception, target_kind: str, target: str) -> ApiError:
    """A writer's refusal of a row (IngestValidationError, a push's ValueError) as a 400."""
    details = {name: getattr(error, attr) for name, attr in (("row", "index"), ("field", "field"), ("rule", "rule"),
                                                           ("nearest", "nearest"))
               if getattr(error, attr, None) is not None}
    message = str(error)
    if target not in message:  # the writers' messages mostly name it already
        message = f"{target_kind} {target!r}: {message}"
    return ApiError(400, "invalid_row", message, details or None)


def _source_name(registry: Registry, name: str) -> str | None:
    """The stream source's full name ("streams.transactions") for `name`, or None if unknown."""
    try:
        return registry.stream_source(name).name
    except KeyError:
        return None


def _unknown_source(registry: Registry, name: str) -> ApiError:
    """404 naming the close sources, or 400 when a bare table name fits several sources."""
    sources = registry.stream_sources
    same_table = sorted(s.name for s in sources if s.table_name == name)
    if len(same_table) > 1:
        return ApiError(400, "ambiguous_stream_source", f"stream source {name!r} is ambiguous: name one of "
                                                        f"{', '.join(map(repr, same_table))}", {"suggestions": same_table})
    return unknown("stream source", name, [s.name for s in sources], "unknown_stream_source")


# ---------------------------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------------------------


@bp.post("/ingest")
def ingest() -> Response:
    """Events of a stream source: into the online tiles of its views and its journal, exactly once."""
    started = request_arrival() or time.perf_counter()
    state = get_state()
    data = read_body(request.environ, request.content_length, state.config.max_body_bytes)
    body = parse_json_body(data, request.mimetype)
    name, rows = _rows(body, "source", INGEST_FIELDS, state.config.max_write_rows)
    source = _source_name(state.registry, name)
    # Checked before an unknown name is answered: a key learns nothing about sources it may not write.
    auth.require_write(source or name)
    if source is None:
        raise _unknown_source(state.registry, name)
    from hindsight.streams.ingest import IngestConflict

    writers = _writers()
    try:
        report = writers.bounded(started, writers.ingest, state.registry, source, rows)
    except FutureTimeout:
        raise _write_timed_out("ingest into", source, writers.deadline_s) from None
    except IngestConflict as error:
        raise ApiError(503, "write_conflict", f"{error}; {_RETRY}") from None
    except OnlineStoreUnavailable as error:
        raise _store_failed("ingest into", source, error, writers.deadline_s) from None
    except ValueError as error:  # IngestValidationError and the store's ValidationException
        raise _invalid_row(error, "stream source", source) from None
    _poke_flusher()
    metrics.observe_write("ingest", source, time.perf_counter() - started,
                          {"accepted": report.accepted, "duplicate": report.duplicates})
    return jsonio.response({field: getattr(report, field) for field in INGEST_REPORT_FIELDS})


@bp.post("/push")
def push() -> Response:
    """Rows of a push feature view: online (newest event wins) and journaled for its Delta table."""
    started = request_arrival() or time.perf_counter()
    state = get_state()
    data = read_body(request.environ, request.content_length, state.config.max_body_bytes)
    body = parse_json_body(data, request.mimetype)
    view, rows = _rows(body, "view", PUSH_FIELDS, state.config.max_write_rows)
    auth.require_write(view)
    if view not in {v.name for v in state.registry.feature_views}:
        # The nearest valid names are the views that take pushes.
        pushable = [v.name for v in state.registry.feature_views if v.push]
        raise unknown("feature view", view, pushable, "unknown_feature_view")
    from hindsight.online_sync.push import PushConflict, PushRefused

    writers = _writers()
    try:
        report = writers.bounded(started, writers.push, state.registry, view, rows)
    except FutureTimeout:
        raise _write_timed_out("push to", view, writers.deadline_s) from None
    except PushConflict as error:
        raise ApiError(503, "write_conflict", f"{error}; {_RETRY}") from None
    except OnlineStoreUnavailable as error:
        raise _store_failed("push to", view, error, writers.deadline_s) from None
    except PushRefused as error:  # a view without push: true, or an aggregation view
        raise ApiError(400, "push_refused", str(error)) from None
    except ValueError as error:  # a malformed row, an event in the future
        raise _invalid_row(error, "feature view", view) from None
    _poke_flusher()
    answer = push_report(report)
    metrics.observe_write("push", view, time.perf_counter() - started,
                          {"accepted": answer.get("journaled", 0), "duplicate": answer.get("duplicates", 0),
                           "stale": answer.get("stale", 0)})
    return jsonio.response(answer)


def _poke_flusher() -> None:
    loop = current_app.extensions.get(FLUSH_EXTENSION)
    if loop is not None:
        loop.poke()


def push_report(report: Any) -> dict[str, Any]:
    """A PushReport as the push endpoint answers it: every field but its timing."""
    return {field.name: getattr(report, field.name) for field in dataclasses.fields(report) if field.name != "seconds"}


# ---------------------------------------------------------------------------------------------
# The background flusher of a serving worker
# ---------------------------------------------------------------------------------------------


class FlushLoop:
    """Runs `streams.flush.Flusher.flush_once` every `interval_s` in a daemon thread, over the
    registry the worker currently serves (a newly applied registry gets a new Flusher).

    Several workers (and servers, and `hindsight stream run`) may run one each: the Flusher takes
    a lease per target, so one flushes a target at a time and the others skip it.

    A flush reads every target's journal shards, dozens of DynamoDB queries: an idle worker does
    not pay that every second. It flushes on a tick after this worker acknowledged a write (`poke`)
    or after a flush that found entries, and otherwise every `idle_ticks` ticks (and on its first
    tick), which picks up entries another process journaled and never flushed (killed).
    """

    def __init__(self, registry_source: Callable[[], Registry], interval_s: float,
                 flusher_factory: Callable[[Registry], Any] | None = None, idle_ticks: int = 30) -> None:
        self._registry_source = registry_source
        self.interval_s = interval_s
        self.idle_ticks = idle_ticks
        self._factory = flusher_factory or _default_flusher
        self._wrote = threading.Event()
        self._idle = idle_ticks  # the first tick flushes
        self._flusher: Any = None
        self._registry: Registry | None = None
        #: Whether a Flusher was ever created here (it runs delta-rs in this process).
        self.ran = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hindsight-flush", daemon=True)
            self._thread.start()

    def _current(self) -> Any:
        registry = self._registry_source()
        if registry is not self._registry:
            self._registry = registry
            self._flusher = self._factory(registry) if needs_journal(registry) else None
            self.ran = self.ran or self._flusher is not None
        return self._flusher

    def poke(self) -> None:
        """This worker acknowledged a write: flush on the next tick."""
        self._wrote.set()

    def flush_once(self) -> Any:
        flusher = self._current()
        return None if flusher is None else flusher.flush_once()

    def tick(self) -> Any:
        """One tick of the thread: flush if there is reason to (see the class docstring); its report or None."""
        self._idle += 1
        if not self._wrote.is_set() and self._idle < self.idle_ticks:
            return None
        self._wrote.clear()
        report = self.flush_once()
        # Entries found: more may be coming (a batch limit, other writers); look again next tick.
        self._idle = 0 if getattr(report, "entries", 0) == 0 else self.idle_ticks
        return report

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
                failing = False
            except OnlineStoreUnavailable as error:
                # The store is down: said once until it recovers, not once a second.
                if not failing:
                    log.warning("background flush: %s; the journaled entries stay pending and are retried", error)
                failing = True
            except Exception:  # a failed flush is retried next tick; the entries stay journaled
                log.exception("background flush failed; the journaled entries stay pending and are retried")

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread and flush what is pending once more."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        try:
            self.flush_once()
        except Exception:  # it stays journaled: the next flusher writes it
            log.exception("final flush failed; the journaled entries stay pending")


def _default_flusher(registry: Registry) -> Any:
    from hindsight.online_sync.config import OnlineStoreConfig, shared_client
    from hindsight.streams.flush import Flusher

    config = OnlineStoreConfig.from_env()
    return Flusher(registry, config, client=shared_client(config))


def flush_interval_s() -> float:
    """Seconds between background flushes: hindsight.yml `streams: flush_interval:` or 1 s."""
    from hindsight.core.durations import parse_duration
    from hindsight.core.settings import Settings

    streams = getattr(Settings.from_env(), "streams", None)
    value = getattr(streams, "flush_interval", None)
    if value is None:
        return 1.0
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return parse_duration(str(value)).total_seconds()
    except (TypeError, ValueError):
        return float(value)


def start_flusher(app: Flask) -> FlushLoop | None:
    """Start this worker's background flusher (gunicorn's post_fork); None when disabled
    (HINDSIGHT_SERVING_FLUSH=off)."""
    if os.environ.get("HINDSIGHT_SERVING_FLUSH", "on").strip().lower() in ("off", "0", "false", "no"):
        return None
    from hindsight.serving.state import get_runtime

    runtime = get_runtime(app)
    try:
        interval = flush_interval_s()
    except ValueError as error:  # a worker must boot: hindsight.yml's error is said, the default used
        log.warning("streams.flush_interval: %s; flushing every second", error)
        interval = 1.0
    loop = FlushLoop(lambda: runtime.state.registry, interval)
    app.extensions[FLUSH_EXTENSION] = loop
    loop.start()
    return loop


def stop_flusher(app: Flask) -> bool:
    """Stop this worker's flusher, flushing what is pending (gunicorn's worker_exit).

    Returns:
        True if it ever flushed (delta-rs ran in this process: see server.worker_exit).
    """
    loop = app.extensions.get(FLUSH_EXTENSION)
    if loop is None:
        return False
    loop.stop()
    return loop.ran
