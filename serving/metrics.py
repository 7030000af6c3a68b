"""Prometheus metrics of the serving API: latency, store reads, errors, read statuses per view, and
the pipeline's freshness and sync figures (`serving.pipeline_metrics`, read from the Delta logs and
the sync state, not from requests).

Under gunicorn every worker is its own process, so the metrics use prometheus_client's
multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` is set (`hindsight serve` sets it up before this
module is imported): each worker writes its samples to files there and `/metrics` merges them.
See https://prometheus.github.io/client_python/multiprocess/.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess, values
from prometheus_client.core import Metric

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# prometheus_client picks its value class when it is first imported; if something imported it
# before the serve command set the directory, pick again so the metrics below use the files.
if os.environ.get(MULTIPROC_ENV) and values.ValueClass.__name__ != "MmapedValue":
    values.ValueClass = values.get_value_class()

#: Latencies of an online read: sub-millisecond to a few seconds.
_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REGISTRY = CollectorRegistry(auto_describe=False)

REQUEST_SECONDS = Histogram(
    "hindsight_serving_request_seconds",
    "Time to answer a feature request, by feature service (_features for ad-hoc feature lists) and form.",
    ["service", "form"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)
STORE_READ_SECONDS = Histogram(
    "hindsight_serving_store_read_seconds",
    "Time spent reading the online store for one request.",
    buckets=_BUCKETS,
    registry=REGISTRY,
)
ERRORS = Counter(
    "hindsight_serving_errors",
    "Error responses, by error code.",
    ["code"],
    registry=REGISTRY,
)
VIEW_READS = Counter(
    "hindsight_serving_view_reads",
    "Feature view reads (one per entity row and view), by status: PRESENT, NOT_FOUND, EXPIRED, TIME_OUT.",
    ["view", "status"],
    registry=REGISTRY,
)
REGISTRY_VERSION_NAME = "hindsight_serving_registry_version"
#: Created on first use, in workers only: an unlabelled metric writes its 0 into the creating
#: process's file at once, and gunicorn's master (alive, never serving) would pin the minimum at 0.
_registry_version: Gauge | None = None
RELOAD_FAILURES = Counter(
    "hindsight_serving_registry_reload_failures",
    "Applied registry versions a worker could not load (it kept serving the version it had).",
    registry=REGISTRY,
)
SAMPLES_WRITTEN = Counter(
    "hindsight_serving_samples_written",
    "Served feature vectors appended to the served-features log (serving.sample_rate).",
    registry=REGISTRY,
)
SAMPLES_DROPPED = Counter(
    "hindsight_serving_samples_dropped",
    "Sampled feature vectors not logged: queue_full (the writer fell behind; the request was not "
    "slowed), write_failed (the Delta append failed), shutdown (still queued when the worker stopped).",
    ["reason"],
    registry=REGISTRY,
)

WRITTEN_ROWS = Counter(
    "hindsight_serving_written_rows",
    "Rows of POST /v1/ingest and POST /v1/push, by target (stream source or feature view) and outcome: "
    "accepted (new and durable), duplicate (seen before: counted once), stale (a push not newer online).",
    ["target", "outcome"],
    registry=REGISTRY,
)
WRITE_SECONDS = Histogram(
    "hindsight_serving_write_seconds",
    "Time to answer a POST /v1/ingest or POST /v1/push that was acknowledged, by endpoint.",
    ["endpoint"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)


def observe_write(endpoint: str, target: str, seconds: float, outcomes: dict[str, int]) -> None:
    """One acknowledged write request: its latency and its rows per outcome."""
    WRITE_SECONDS.labels(endpoint).observe(seconds)
    for outcome, rows in outcomes.items():
        if rows:
            WRITTEN_ROWS.labels(target, outcome).inc(rows)


def observe_request(service: str, form: str, seconds: float) -> None:
    REQUEST_SECONDS.labels(service, form).observe(seconds)


def set_registry_version(version: int | None) -> None:
    """Report the registry version this process serves (the gauge is the lowest across live workers)."""
    global _registry_version
    if version is None:
        return
    if _registry_version is None:
        _registry_version = Gauge(
            REGISTRY_VERSION_NAME,
            "Registry version served; with several workers, the lowest any live worker serves.",
            multiprocess_mode="livemin",
            registry=REGISTRY,
        )
    _registry_version.set(version)


def count_reload_failure() -> None:
    RELOAD_FAILURES.inc()


def count_samples_written(rows: int) -> None:
    SAMPLES_WRITTEN.inc(rows)


def count_sample_dropped(reason: str, rows: int = 1) -> None:
    SAMPLES_DROPPED.labels(reason).inc(rows)


def observe_store_read(seconds: float) -> None:
    STORE_READ_SECONDS.observe(seconds)


def count_error(code: str) -> None:
    ERRORS.labels(code).inc()


def count_view_reads(counts: dict[tuple[str, str], int]) -> None:
    """Add one request's reads per (view, status)."""
    for (view, status), count in counts.items():
        VIEW_READS.labels(view, status).inc(count)


class _Families:
    """A fixed list of metric families, in the shape `generate_latest` collects from."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def _source() -> CollectorRegistry:
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return REGISTRY
    merged = CollectorRegistry(auto_describe=False)
    multiprocess.MultiProcessCollector(merged, path=directory)
    return merged


def render(extra: Iterable[Metric] = ()) -> tuple[bytes, str]:
    """The Prometheus text exposition of every metric, merged across worker processes, and `extra`
    families (the pipeline's, computed by the worker that answers).

    Returns:
        The body and its content type.
    """
    families = [*_source().collect(), *extra]
    return generate_latest(_Families(families)), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (gunicorn's child_exit hook calls this)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
