"""Benchmark: the stream flusher's throughput (events/s) per commit size, against a raw Delta append.

For each commit size, the journal of an in-memory DynamoDB Local is filled with acknowledged
events (BatchWriteItem of the journal items an ingest writes), then `Flusher.flush_once` moves them
into a fresh event log, one Delta commit per batch. Printed per size: events/s end to end and the
seconds spent reading the pending index, in the Delta MERGE and marking entries flushed. The
reference is a plain `write_deltalake` append of the same rows in batches of the same size (no
dedupe, no journal): the ratio says what exactly-once costs. A last run flushes into a log that
already holds `--log-rows` events of the same day, since the MERGE reads the batch's partitions.

    .venv/bin/python bench/bench_flush.py [--scale medium|small]
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import tempfile
import time
from pathlib import Path

from deltalake import write_deltalake

from hindsight.core.settings import Settings
from hindsight.offline_store.event_log import event_log_schema
from hindsight.offline_store.event_log_writer import events_table
from hindsight.online_sync import OnlineStoreConfig
from hindsight.online_sync.batching import MAX_WRITE_BATCH, chunked, write_batch
from hindsight.online_sync.config import make_client
from hindsight.online_sync.journal import Journal, source_target
from hindsight.online_sync.local import DynamoDBLocal
from hindsight.registry_sync.model import Feature, Registry, StreamSource
from hindsight.streams import flush as flush_module
from hindsight.streams.flush import Flusher

REPO = Path(__file__).resolve().parents[1]
#: (commit size, events flushed at that size) per scale.
SCALES = {
    "small": [(100, 1_000), (1_000, 2_000)],
    "medium": [(100, 2_000), (1_000, 5_000), (10_000, 20_000)],
}
LOG_ROWS = {"small": 20_000, "medium": 200_000}
T0 = dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)
COLUMNS = {"transaction_id": "string", "user_id": "int64", "merchant_id": "int64", "amount": "float64",
           "country": "string", "ts": "timestamp"}


def make_stream(root: Path, name: str) -> StreamSource:
    return StreamSource(
        name=f"streams.{name}", event_id_field="transaction_id", timestamp_field="ts", entities=("user",),
        join_keys=("user_id",), columns=tuple(Feature(c, t) for c, t in COLUMNS.items()),
        delta_uri=str(root / name),
    )


def event(i: int) -> dict:
    return {"transaction_id": f"t{i:09d}", "user_id": i % 5_000, "merchant_id": i % 300, "amount": (i % 997) / 7,
            "country": ("FR", "DE", "US")[i % 3], "ts": (T0 + dt.timedelta(milliseconds=i)).isoformat()}


def fill_journal(journal: Journal, stream: StreamSource, ids: range) -> None:
    target = source_target(stream.name)
    items = [journal.put_request(target, event(i)["transaction_id"], event(i), 1_796_000_000_000_000 + i)["Put"]["Item"]
             for i in ids]
    for chunk in chunked(items, MAX_WRITE_BATCH):
        write_batch(journal.client, journal.table, chunk)


class Phases:
    """Seconds spent in each step of the flush, by wrapping the steps of one Flusher."""

    def __init__(self, flusher: Flusher) -> None:
        self.seconds = {"pending": 0.0, "merge": 0.0, "mark": 0.0}
        journal = flusher.journal
        journal.pending = self._timed("pending", journal.pending)
        journal.mark_flushed = self._timed("mark", journal.mark_flushed)

    def _timed(self, name, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
        return wrapper


def run_flush(config: OnlineStoreConfig, client, root: Path, size: int, events: int, log_rows: int = 0) -> dict:
    stream = make_stream(root, f"s{size}_{log_rows}")
    if log_rows:
        table = events_table(stream, [event(-1 - i) for i in range(log_rows)], [0] * log_rows)
        write_deltalake(stream.delta_uri, table, mode="append", partition_by=["_event_date"])
    flusher = Flusher(Registry("bench", stream_sources=(stream,)), config, client=client, batch_size=size)
    fill_journal(flusher.journal, stream, range(events))
    phases = Phases(flusher)
    merge_seconds = [0.0]
    original = flush_module.write_events

    def timed_write(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            merge_seconds[0] += time.perf_counter() - started

    flush_module.write_events = timed_write
    try:
        started = time.perf_counter()
        report = flusher.flush_once()
        seconds = time.perf_counter() - started
    finally:
        flush_module.write_events = original
    assert report.inserted == events, report
    phases.seconds["merge"] = merge_seconds[0]
    return {"seconds": seconds, "commits": report.commits, **phases.seconds}


def run_raw(root: Path, size: int, events: int) -> float:
    stream = make_stream(root, f"raw{size}")
    rows = [event(i) for i in range(events)]
    tables = [events_table(stream, rows[s:s + size], [0] * len(rows[s:s + size])) for s in range(0, events, size)]
    write_deltalake(stream.delta_uri, event_log_schema(stream).empty_table(), mode="append", partition_by=["_event_date"])
    started = time.perf_counter()
    for table in tables:
        write_deltalake(stream.delta_uri, table, mode="append", partition_by=["_event_date"])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium", choices=sorted(SCALES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        local = DynamoDBLocal(Settings.from_env(REPO).tools_dir, Path(tmp) / "state")
        endpoint = local.start(port=port, in_memory=True)
        try:
            config = OnlineStoreConfig(endpoint_url=endpoint, region="us-east-1", table_prefix="bench_")
            client = make_client(config)
            Journal(config, client=client).ensure_table()
            root = Path(tmp) / "logs"
            run_flush(config, client, root / "warmup", 100, 500)  # JVM and delta-rs warm-up
            print(f"{'commit size':>11} {'events':>8} {'commits':>7} {'events/s':>9} {'pending s':>9} "
                  f"{'merge s':>8} {'mark s':>7} {'raw append ev/s':>15} {'ratio':>6}")
            for size, events in SCALES[args.scale]:
                result = run_flush(config, client, root, size, events)
                raw = events / run_raw(root, size, events)
                rate = events / result["seconds"]
                print(f"{size:>11,} {events:>8,} {result['commits']:>7} {rate:>9,.0f} {result['pending']:>9.2f} "
                      f"{result['merge']:>8.2f} {result['mark']:>7.2f} {raw:>15,.0f} {rate / raw:>6.0%}")
            size, events = SCALES[args.scale][-1]
            size = min(size, 1_000)
            events = min(events, 5_000)
            log_rows = LOG_ROWS[args.scale]
            result = run_flush(config, client, root, size, events, log_rows=log_rows)
            print(f"into a log holding {log_rows:,} events of the same day: commit size {size:,}: "
                  f"{events / result['seconds']:,.0f} events/s (merge {result['merge']:.2f} s over "
                  f"{result['commits']} commits, {result['merge'] / result['commits'] * 1000:.0f} ms each)")
        finally:
            local.stop()


if __name__ == "__main__":
    main()
