"""The pipeline's figures on /metrics: freshness, materialization and sync of every feature view.

They come from `online_sync.status.collect_status` (the Delta logs and each view's sync state item),
not from requests: a view nobody asks for still shows its age. A daemon thread in the worker that
answers /metrics re-reads them every REFRESH_S seconds (the first scrape reads them at once); ages
and the sync lag are computed at scrape time from the newest snapshot, so they keep growing between
refreshes when nothing new arrives.

Gauges (label `view`; ages in seconds, times as Unix seconds):
    hindsight_feature_view_newest_event_timestamp_seconds{store="offline"|"online"}
    hindsight_feature_view_age_seconds{store="offline"|"online"}
    hindsight_feature_view_expected_freshness_seconds
    hindsight_feature_view_breaches             expectations breached now (0 is fine)
    hindsight_feature_view_delta_version
    hindsight_feature_view_last_materialization_timestamp_seconds
    hindsight_feature_view_synced_delta_version
    hindsight_feature_view_last_sync_timestamp_seconds
    hindsight_feature_view_sync_versions_behind
    hindsight_feature_view_sync_lag_seconds
Counters (from the sync state item: they survive restarts and count syncs from every machine):
    hindsight_sync_runs_total, hindsight_sync_rows_written_total, hindsight_sync_errors_total
and hindsight_pipeline_status_timestamp_seconds (when the snapshot was read),
hindsight_pipeline_status_errors_total (snapshots that failed in this process).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from hindsight.online_sync.status import StatusReport, ViewStatus, collect_status
from hindsight.registry_sync.model import Registry

log = logging.getLogger(__name__)

#: Seconds between two reads of the pipeline's state.
REFRESH_S = 30.0


def _seconds(moment: dt.datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _lag(view: ViewStatus, elapsed: float) -> float | None:
    if view.sync_lag_seconds is None:
        return None
    return view.sync_lag_seconds + (elapsed if view.versions_behind else 0.0)


#: (name, help, figure of a view at scrape time given the seconds since the snapshot).
_GAUGES: tuple[tuple[str, str, Callable[[ViewStatus, float], float | None]], ...] = (
    ("hindsight_feature_view_expected_freshness_seconds", "Expected freshness of the feature view (expected_freshness).",
     lambda v, _: v.expected_freshness_seconds),
    ("hindsight_feature_view_breaches", "Freshness and sync expectations the feature view breaches now (hindsight status).",
     lambda v, _: len(v.breaches)),
    ("hindsight_feature_view_delta_version", "Latest version of the feature view's Delta table.",
     lambda v, _: v.delta_version),
    ("hindsight_feature_view_last_materialization_timestamp_seconds", "When the feature view's last Delta commit was written.",
     lambda v, _: _seconds(v.last_materialized_at)),
    ("hindsight_feature_view_synced_delta_version", "Delta version the online store holds all rows of.",
     lambda v, _: v.synced_version),
    ("hindsight_feature_view_last_sync_timestamp_seconds", "When the last successful sync of the view ended.",
     lambda v, _: _seconds(v.last_synced_at)),
    ("hindsight_feature_view_sync_versions_behind", "Delta versions not yet synced to the online store.",
     lambda v, _: v.versions_behind),
    ("hindsight_feature_view_sync_lag_seconds", "How long the oldest Delta commit not yet synced has waited (0: in sync).",
     _lag),
)
_COUNTERS: tuple[tuple[str, str, Callable[[ViewStatus], int | None]], ...] = (
    ("hindsight_sync_runs", "Successful syncs of the view (hindsight sync), from every machine.", lambda v: v.syncs),
    ("hindsight_sync_rows_written", "Items sync wrote to the view's online table.", lambda v: v.sync_rows_written),
    ("hindsight_sync_errors", "Failed syncs of the view.", lambda v: v.sync_errors),
)


def families(report: StatusReport, now: float) -> list[Metric]:
    """The Prometheus families of one status snapshot, with ages measured at `now` (Unix seconds)."""
    elapsed = max(0.0, now - report.checked_at.timestamp())
    newest = GaugeMetricFamily("hindsight_feature_view_newest_event_timestamp_seconds",
                               "Newest event time of the feature view, per store.", labels=["view", "store"])
    age = GaugeMetricFamily("hindsight_feature_view_age_seconds",
                            "Seconds between now and the feature view's newest event time, per store.", labels=["view", "store"])
    out: list[Metric] = [newest, age]
    for view in report.views:
        for store, moment in (("offline", view.offline_newest_event), ("online", view.online_newest_event)):
            if moment is not None:
                newest.add_metric([view.view, store], moment.timestamp())
                age.add_metric([view.view, store], max(0.0, now - moment.timestamp()))
    for name, text, figure in _GAUGES:
        gauge = GaugeMetricFamily(name, text, labels=["view"])
        for view in report.views:
            value = figure(view, elapsed)
            if value is not None:
                gauge.add_metric([view.view], float(value))
        out.append(gauge)
    for name, text, count in _COUNTERS:
        counter = CounterMetricFamily(name, text, labels=["view"])
        for view in report.views:
            total = count(view)
            if total is not None:
                counter.add_metric([view.view], float(total))
        out.append(counter)
    stamp = GaugeMetricFamily("hindsight_pipeline_status_timestamp_seconds", "When the pipeline figures were last read.")
    stamp.add_metric([], report.checked_at.timestamp())
    out.append(stamp)
    return out


class PipelineMetrics:
    """The latest status snapshot of one process, refreshed by a daemon thread."""

    def __init__(self, refresh_s: float = REFRESH_S) -> None:
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._source: tuple[Registry, Any] | None = None
        self._report: StatusReport | None = None
        self._failures = 0
        self._thread: threading.Thread | None = None

    def _collect(self) -> None:
        with self._lock:
            source = self._source
        if source is None:
            return
        registry, store = source
        config, client = getattr(store, "config", None), getattr(store, "client", None)
        try:
            report = collect_status(registry, config if client is not None else None, client)
        except Exception as error:  # noqa: BLE001 - a failed read must not take /metrics down
            log.warning("reading the pipeline's status for /metrics failed: %s: %s", type(error).__name__, error)
            with self._lock:
                self._failures += 1
            return
        with self._lock:
            self._report = report

    def _run(self) -> None:
        while True:
            time.sleep(self.refresh_s)
            self._collect()

    def families(self, registry: Registry, store: Any, now: float | None = None) -> list[Metric]:
        """The pipeline's families for a scrape; reads the state now if this process has no snapshot
        of this registry yet, and starts the refresh thread on first use."""
        with self._lock:
            # A reload swaps in a new Registry object: read its views' figures now.
            changed = self._source is None or self._source[0] is not registry
            self._source = (registry, store)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="pipeline-metrics")
                self._thread.start()
        if changed or self._report is None:
            self._collect()
        with self._lock:
            report, failures = self._report, self._failures
        errors = CounterMetricFamily("hindsight_pipeline_status_errors",
                                     "Reads of the pipeline's status for /metrics that failed in this process.")
        errors.add_metric([], float(failures))
        if report is None:
            return [errors]
        return [*families(report, time.time() if now is None else now), errors]


#: One per process: gunicorn workers each keep their own (created after the fork, on first scrape).
PIPELINE = PipelineMetrics()
