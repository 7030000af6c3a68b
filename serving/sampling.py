"""The served-features log: a sample of the feature vectors the API answered, appended to Delta.

Owns which rows are sampled (each entity row of an answered `POST /v1/features`, independently,
with probability `sample_rate`), the bounded queue between request threads and the writer, and the
writer thread that appends batches to one Delta table, one commit per batch. `hindsight drift`
reads the table back (`hindsight.drift.served`, by LOG_SCHEMA).

A request thread only ever calls `Queue.put_nowait`: when the queue is full the sample is dropped
and counted (`hindsight_serving_samples_dropped_total{reason="queue_full"}`), never waited for, so
a slow or stalled writer (a sick disk, S3 down) cannot slow or fail a request. Each gunicorn worker
has its own queue and writer thread, started on its first sample (after the fork); several workers
append to the one table, and delta-rs resolves their concurrent commits (a blind append conflicts
with nothing: the loser retries at the next version; only two first writes creating the table race,
and `write_rows` retries that). Rows still queued are written when the worker exits (`close`,
called from gunicorn's worker_exit hook and at interpreter exit).

Writes the Delta table at `sample_log`, partitioned by service and request date.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import logging
import os
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from hindsight.serving import jsonio, metrics

log = logging.getLogger(__name__)

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

#: `service` of rows answered for an ad-hoc feature list (the latency histogram's label too).
AD_HOC = "_features"

#: The log's columns. `entities` and `features` are JSON objects (join key -> value, response
#: column -> value): services differ in their features, and one table serves them all.
LOG_SCHEMA = pa.schema([
    pa.field("service", pa.string(), nullable=False),
    pa.field("request_time", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("request_date", pa.date32(), nullable=False),
    pa.field("registry_version", pa.int64()),
    pa.field("entities", pa.string(), nullable=False),
    pa.field("features", pa.string(), nullable=False),
])
PARTITION_BY = ("service", "request_date")

#: One queued sample: (service, unix time, registry version, entity row, response features).
Sample = tuple[str, float, int | None, dict[str, Any], dict[str, Any]]

_STOP = object()


#: Attempts of one batch's append: two workers creating the table at once make one of them fail
#: once ("metadata changed since last commit"); once it exists, delta-rs retries appends itself.
WRITE_ATTEMPTS = 3


def write_rows(uri: str, rows: Sequence[Sample]) -> None:
    """Append samples to the log in one Delta commit, creating the table on the first write.

    Raises:
        deltalake errors, OSError: the append failed WRITE_ATTEMPTS times.
    """
    from deltalake import write_deltalake

    from hindsight.core.object_store import delta_storage_options

    table = to_table(rows)
    options = delta_storage_options(uri)  # a log on S3 (serving.sample_log) that servers share
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            write_deltalake(uri, table, mode="append", partition_by=list(PARTITION_BY), storage_options=options)
            return
        except Exception:  # delta-rs raises its own types (CommitFailedError, DeltaError, ...)
            if attempt == WRITE_ATTEMPTS:
                raise
            time.sleep(0.05 * attempt)


def check_location(uri: str) -> None:
    """Fail at start-up, not in every worker's log, when a local log folder cannot be written.

    Does not touch delta-rs: its runtime does not survive a fork, and gunicorn forks the workers
    from the process that calls this (https://github.com/tokio-rs/tokio/issues/4301). A URI
    (s3://...) is checked by the first append.

    Raises:
        ValueError: naming the folder and the setting.
    """
    if _URI.match(uri):
        return
    folder = Path(uri)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create the served-features log folder {folder} (serving.sample_log): "
                         f"{error.strerror}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"the served-features log folder {folder} is not writable (serving.sample_log); "
                         "set another folder or serving.sample_rate: 0")


def to_table(rows: Sequence[Sample]) -> pa.Table:
    """Samples as an Arrow table of LOG_SCHEMA (JSON encoding happens here, off the request path).

    >>> t = to_table([("s", 0.0, 3, {"user_id": 12}, {"x": 1.5})])
    >>> t.column("features").to_pylist(), t.column("request_date").to_pylist()
    (['{"x":1.5}'], [datetime.date(1970, 1, 1)])
    """
    times = [dt.datetime.fromtimestamp(r[1], dt.timezone.utc) for r in rows]
    return pa.Table.from_pydict({
        "service": [r[0] for r in rows],
        "request_time": times,
        "request_date": [t.date() for t in times],
        "registry_version": [r[2] for r in rows],
        "entities": [jsonio.dumps(r[3]) for r in rows],
        "features": [jsonio.dumps(r[4]) for r in rows],
    }, schema=LOG_SCHEMA)


class Sampler:
    """Samples served rows into a bounded queue; a per-process thread writes them in batches.

    Args:
        uri: the Delta table (a path or a URI delta-rs writes).
        rate: probability that one served entity row is logged, 0 to 1.
        queue_rows: most samples waiting in this process; more are dropped and counted.
        batch_rows: most rows per Delta commit.
        flush_s: longest a sample waits for its batch to fill before the batch is written.
        writer: `write(uri, rows)`; the Delta append by default (tests pass a slow one).
        draw: returns a float in [0, 1); `random.random` by default.
    """

    def __init__(self, uri: str, rate: float, queue_rows: int = 10_000, batch_rows: int = 5_000,
                 flush_s: float = 5.0, writer: Callable[[str, Sequence[Sample]], None] = write_rows,
                 draw: Callable[[], float] = random.random) -> None:
        if not 0 <= rate <= 1:
            raise ValueError(f"sample rate must be between 0 and 1, got {rate}")
        self.uri = uri
        self.rate = rate
        self.queue_rows = queue_rows
        self.batch_rows = batch_rows
        self.flush_s = flush_s
        self.writer = writer
        self._draw = draw
        self._pid = 0
        self._queue: queue.Queue[Any] = queue.Queue(queue_rows)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    # -- request threads -------------------------------------------------------------------------

    def offer(self, service: str, registry_version: int | None, entity_rows: Sequence[dict[str, Any]],
              results: Sequence[dict[str, Any]]) -> int:
        """Sample each answered row with probability `rate`; never blocks. Returns the rows queued."""
        rate, draw = self.rate, self._draw
        queued = 0
        now = 0.0
        for entities, result in zip(entity_rows, results):
            if draw() >= rate:
                continue
            if not queued:
                now = time.time()
                if self._pid != os.getpid():
                    self._start()
            try:
                self._queue.put_nowait((service, now, registry_version, entities, result["features"]))
                queued += 1
            except queue.Full:
                metrics.count_sample_dropped("queue_full")
        return queued

    # -- the writer --------------------------------------------------------------------------------

    def _start(self) -> None:
        """Start this process's writer (after a fork, a new queue and thread: the parent's are not ours)."""
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue(self.queue_rows)
            self._closed = False
            self._thread = threading.Thread(target=self._run, name="hindsight-sample-writer", daemon=True)
            self._thread.start()
            self._pid = os.getpid()
            atexit.register(self.close)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            deadline = time.monotonic() + self.flush_s
            while len(batch) < self.batch_rows:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[Sample]) -> None:
        try:
            self.writer(self.uri, batch)
        except Exception:  # a log write must never take the worker down: count, log, go on
            log.exception("could not append %d served-feature samples to %s; dropped", len(batch), self.uri)
            metrics.count_sample_dropped("write_failed", len(batch))
        else:
            metrics.count_samples_written(len(batch))

    def close(self, timeout_s: float = 10.0) -> bool:
        """Write what is queued and stop this process's writer, waiting at most `timeout_s`.

        Samples still queued after that (a stalled writer) are counted as dropped ("shutdown").

        Returns:
            True when this process had a writer running (it wrote, or tried to write, to the log).
        """
        thread = self._thread
        if self._closed or thread is None or self._pid != os.getpid():
            return False
        self._closed = True
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(queue.Full):  # the writer is stalled: the join below gives up in time
            self._queue.put(_STOP, timeout=timeout_s)
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            left = self._queue.qsize()
            log.warning("served-feature log writer did not finish within %.0f s; %d samples dropped", timeout_s, left)
            if left:
                metrics.count_sample_dropped("shutdown", left)
        return True


EXTENSION = "hindsight_sampler"


def init_app(app: Any, uri: str | None, rate: float, queue_rows: int, batch_rows: int, flush_s: float) -> Sampler | None:
    """Attach a Sampler to `app` when sampling is on (`uri` set and `rate` above 0).

    Raises:
        ValueError: the rate is out of range, or the log's local folder cannot be written.
    """
    if not uri or rate <= 0:
        return None
    sampler = Sampler(uri, rate, queue_rows=queue_rows, batch_rows=batch_rows, flush_s=flush_s)
    check_location(uri)
    # Imported now, in the process gunicorn forks from (an import is fork-safe; delta-rs's runtime
    # starts on the first write, in the worker): a worker's first batch must not import it, which
    # holds the GIL and stalled requests by up to a second on a busy machine.
    import deltalake.writer  # noqa: F401
    app.extensions[EXTENSION] = sampler
    return sampler


def get_sampler(app: Any) -> Sampler | None:
    """The app's sampler, or None when sampling is off."""
    return app.extensions.get(EXTENSION)
