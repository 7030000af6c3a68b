"""The flusher: moves acknowledged events and pushed rows from the journal into Delta, in micro-batches.

Ingest and push acknowledge a row once it is in the journal (`online_sync.journal`, DynamoDB),
marked pending. The flusher makes those rows durable offline: per journal target
("source:<stream source>" or "view:<push view>") it

1. takes the target's flush lease (`online_sync.state.Lease`, kept in the journal table), so one
   flusher at a time writes a target, whichever process or machine it runs in;
2. reads up to `batch_size` pending entries (each of the journal's pending shards its share);
3. writes them as ONE Delta commit: a stream source's event log by an insert-only MERGE on the
   event id (`offline_store.event_log_writer`); a push view's table through
   `offline_store.pushed_rows.append_pushed_rows`, which dedupes on join keys, event time and content
   (its own MERGE, one commit per batch);
4. marks them flushed; and repeats until the target has nothing pending.

A flusher killed between 3 and 4 leaves the entries pending: the next flush writes them again and
the MERGE (or the push dedupe) inserts nothing twice. Entries are never marked flushed before their
commit, so an acknowledged row is never lost either.

`Flusher.start()` runs `flush_once` in a background thread every `interval_s` (the serving app and
the Kinesis consumer do); `stop()` ends it after one last flush. `hindsight stream flush` runs one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from hindsight.core.object_store import delta_storage_options
from hindsight.core.suggest import did_you_mean
from hindsight.offline_store.event_log import INGESTED_AT
from hindsight.offline_store.event_log_writer import events_table, write_events
from hindsight.offline_store.pushed_rows import PushedRowsError, append_pushed_rows
from hindsight.online_sync.codec import KEY_ATTR
from hindsight.online_sync.config import OnlineStoreConfig, shared_client
from hindsight.online_sync.journal import Journal, JournalEntry, source_target, view_target
from hindsight.online_sync.state import Lease, LeaseLost, SyncInProgress
from hindsight.registry_sync.model import FeatureView, Registry

log = logging.getLogger(__name__)

SOURCE_PREFIX = source_target("")
VIEW_PREFIX = view_target("")
#: Entries per Delta commit: a commit of a few MB, where delta-rs's MERGE cost per commit is amortised
#: (bench/bench_flush.py: ~0.1 s for 10,000 events).
DEFAULT_BATCH_SIZE = 10_000


def lease_key(target: str) -> dict[str, Any]:
    """The journal-table item holding a target's flush lease (no journal entry key starts with "_").

    >>> lease_key("source:streams.transactions")
    {'_hs_key': {'S': '_flush_lease#source:streams.transactions'}}
    """
    return {KEY_ATTR: {"S": f"_flush_lease#{target}"}}


@dataclass(frozen=True)
class TargetFlush:
    """What flushing one journal target did."""

    target: str
    #: Pending entries read and written (an entry written again after a crash counts again).
    entries: int = 0
    #: Rows the Delta commits inserted (entries minus those already there).
    inserted: int = 0
    #: Delta commits made (one per batch that inserted anything).
    commits: int = 0
    #: The Delta table's version after the flush (None: nothing written).
    version: int | None = None
    seconds: float = 0.0
    #: Another flusher held the target's lease: nothing was done here.
    busy: bool = False

    @property
    def already_present(self) -> int:
        return self.entries - self.inserted


@dataclass(frozen=True)
class FlushReport:
    """What one `flush_once` did, per target."""

    targets: tuple[TargetFlush, ...] = ()

    @property
    def entries(self) -> int:
        return sum(t.entries for t in self.targets)

    @property
    def inserted(self) -> int:
        return sum(t.inserted for t in self.targets)

    @property
    def commits(self) -> int:
        return sum(t.commits for t in self.targets)

    def __str__(self) -> str:
        lines = [f"{'target':<40} {'entries':>9} {'inserted':>9} {'commits':>8} {'version':>8} {'s':>7}"]
        for t in self.targets:
            if t.busy:
                lines.append(f"{t.target:<40} busy: another flusher holds its lease")
                continue
            version = "" if t.version is None else str(t.version)
            lines.append(f"{t.target:<40} {t.entries:>9,} {t.inserted:>9,} {t.commits:>8} {version:>8} {t.seconds:>7.2f}")
        return "\n".join(lines)


class Flusher:
    """Flushes the journal's pending entries into Delta: once (`flush_once`) or in the background.

    Args:
        registry: the stream sources and push views whose journal targets to flush.
        config: the online store holding the journal.
        client: a boto3 DynamoDB client to reuse.
        batch_size: entries per Delta commit.
        storage_options: deltalake storage options for event logs on an object store.
    """

    def __init__(self, registry: Registry, config: OnlineStoreConfig, *, client: Any = None,
                 batch_size: int = DEFAULT_BATCH_SIZE, storage_options: dict[str, str] | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.registry = registry
        self.config = config
        self.client = client or shared_client(config)
        self.journal = Journal(config, client=self.client)
        self.batch_size = batch_size
        self.storage_options = storage_options
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._journal_ready = False
        #: The last error the background thread met (it logs it and retries), or None.
        self.last_error: BaseException | None = None
        #: Reports of the background thread's flushes that wrote something, newest last (bounded).
        self.history: list[FlushReport] = []

    # -- targets -----------------------------------------------------------------------------

    def targets(self) -> list[str]:
        """Every journal target of the registry: its stream sources, then its push views."""
        return [source_target(s.name) for s in self.registry.stream_sources] + [
            view_target(v.name) for v in self.registry.feature_views if v.push]

    def resolve(self, source: str | None = None, view: str | None = None) -> list[str]:
        """The targets a command names: a stream source (full or table name) and/or a push view.

        Raises:
            KeyError: an unknown source or view, naming the nearest.
        """
        chosen = []
        if source is not None:
            chosen.append(source_target(self.registry.stream_source(source).name))
        if view is not None:
            chosen.append(view_target(self._push_view(view).name))
        return chosen or self.targets()

    def _push_view(self, name: str) -> FeatureView:
        """The registry's push view `name`.

        Raises:
            KeyError: no such view, or it takes no pushed rows; naming the push views.
        """
        views = {v.name: v for v in self.registry.feature_views}
        pushed = [v.name for v in views.values() if v.push]
        if name in views and views[name].push:
            return views[name]
        if name in views:
            raise KeyError(f"feature view {name!r} takes no pushed rows (config push: true); push views: "
                           f"{', '.join(pushed) or 'none'}")
        raise KeyError(f"no feature view {name!r}{did_you_mean(name, pushed)}; push views: {', '.join(pushed) or 'none'}")

    # -- one flush -----------------------------------------------------------------------------

    def flush_once(self, target: str | Sequence[str] | None = None) -> FlushReport:
        """Flush everything pending now, for one target, several, or all of the registry's.

        Returns:
            Per target: entries written, rows inserted, commits, the Delta version; `busy` when
            another flusher held the target's lease.

        Raises:
            LeaseLost: the lease was lost before a commit (nothing of that batch was written).
        """
        targets = self.targets() if target is None else [target] if isinstance(target, str) else list(target)
        if targets and not self._journal_ready:
            self.journal.ensure_table()
            self._journal_ready = True
        return FlushReport(tuple(self._flush_target(t) for t in targets))

    def _flush_target(self, target: str) -> TargetFlush:
        started = time.perf_counter()
        write = self._writer(target)
        # Looked at before the lease: an idle target (most of a background flusher's rounds) costs
        # one read of the pending index, no lease writes.
        if not self.journal.pending(target, 1):
            return TargetFlush(target, seconds=time.perf_counter() - started)
        lease = Lease(self.client, self.journal.table, self.config.lease_seconds, key=lease_key(target),
                      what=f"flush of {target}")
        try:
            lease.acquire()
        except SyncInProgress:
            return TargetFlush(target, busy=True, seconds=time.perf_counter() - started)
        entries = inserted = commits = 0
        version: int | None = None
        done: set[str] = set()
        try:
            batch = self.journal.pending(target, self.batch_size)
            while batch:
                if lease.lost:
                    raise LeaseLost(f"{target}: the flush lease was lost; the batch was not written")
                added, committed, version = write(batch)
                self.journal.mark_flushed(batch)
                done.update(e.key for e in batch)
                entries += len(batch)
                inserted += added
                commits += committed
                # The pending index may lag a mark_flushed just made: skip what this call wrote.
                batch = [e for e in self.journal.pending(target, self.batch_size) if e.key not in done]
        finally:
            lease.release()
        report = TargetFlush(target, entries, inserted, commits, version, time.perf_counter() - started)
        if entries:
            log.info("%s: flushed %d entries (%d new) in %d commit(s), %.2f s", target, entries, inserted, commits,
                     report.seconds)
        return report

    def _options(self, uri: str) -> dict[str, str] | None:
        """The storage options given, else those of the project's object store for an s3:// table."""
        return self.storage_options if self.storage_options is not None else delta_storage_options(uri)

    def _writer(self, target: str) -> Any:
        """The function writing one batch of `target`'s entries: (rows inserted, commits, version)."""
        if target.startswith(SOURCE_PREFIX):
            stream = self.registry.stream_source(target.removeprefix(SOURCE_PREFIX))

            def write_source(batch: list[JournalEntry]) -> tuple[int, int, int | None]:
                table = events_table(stream, [e.row for e in batch], [e.seq_us for e in batch])
                result = write_events(stream, table, storage_options=self._options(stream.delta_uri),
                                      metadata={"hindsight.target": target, "hindsight.entries": len(batch)})
                return result.inserted, int(result.committed), result.version

            return write_source
        if target.startswith(VIEW_PREFIX):
            view = self._push_view(target.removeprefix(VIEW_PREFIX))

            def write_view(batch: list[JournalEntry]) -> tuple[int, int, int | None]:
                # JSON values as they are: append_pushed_rows casts them to the table's types. The
                # columns are every row's keys (from_pylist would take the first row's only).
                columns = list(dict.fromkeys(k for e in batch for k in e.row))
                table = pa.table({c: _journal_column(view.name, c, [e.row.get(c) for e in batch])
                                  for c in columns}).append_column(
                    INGESTED_AT, pa.array([e.ingested_at for e in batch], pa.timestamp("us", tz="UTC")))
                added = append_pushed_rows(view, table, storage_options=self._options(view.delta_uri))
                return added, int(added > 0), None

            return write_view
        raise ValueError(f"journal target {target!r}: expected {SOURCE_PREFIX}<stream source> or {VIEW_PREFIX}<view>")

    # -- in the background ---------------------------------------------------------------------

    def start(self, interval_s: float = 1.0) -> None:
        """Flush every `interval_s` seconds in a daemon thread until `stop()`."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the flusher is already running")
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True, name="hindsight-flusher")
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                report = self.flush_once()
            except Exception as err:  # noqa: BLE001 - the thread logs, keeps the error and retries
                self.last_error = err
                log.warning("stream flush failed (retrying in %.1f s): %s", interval_s, err)
                continue
            self.last_error = None
            if report.entries:
                self.history = [*self.history[-99:], report]

    def stop(self, timeout: float | None = 60.0) -> FlushReport:
        """Stop the background thread, then flush what is still pending; returns that last flush."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        return self.flush_once()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Flusher:
        return self

    def __exit__(self, *_: Any) -> None:
        if self.running:
            self.stop()


__all__ = ["DEFAULT_BATCH_SIZE", "FlushReport", "Flusher", "TargetFlush", "lease_key"]


def _journal_column(view: str, name: str, values: list[Any]) -> pa.Array:
    """One column of journaled pushed rows, or a PushedRowsError naming it (never a bare Arrow error).

    Pushes check their values' types before they are journaled, so only entries written before that
    check (or by hand) can hold values of several types in one column.
    """
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        kinds = sorted({type(v).__name__ for v in values if v is not None})
        raise PushedRowsError(
            f"journaled rows pushed to {view!r}: column {name!r} holds values of several types ({', '.join(kinds)}), "
            f"which its Delta table cannot take: {err}"
        ) from None
