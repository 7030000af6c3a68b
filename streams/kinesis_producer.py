"""Putting events into a Kinesis stream: one JSON object per record, at a fixed rate if asked.

`put_events` is what `hindsight stream replay`, `hindsight demo-stream` and the benchmark use;
`encode_event` is the record format the consumer (streams.kinesis) decodes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hindsight.streams.kinesis import KinesisUnavailable, encode_event

#: PutRecords takes at most 500 records per call.
_PUT_BATCH = 500



@dataclass(frozen=True)
class PutReport:
    """What `put_events` sent."""

    stream: str
    records: int
    seconds: float
    shards: dict[str, int] = field(default_factory=dict)


def put_events(client: Any, stream: str, events: Iterable[dict[str, Any]], partition_key: Callable[[dict[str, Any]], str],
               *, rate: float | None = None, on_put: Callable[[dict[str, Any], float], dict[str, Any]] | None = None,
               ) -> PutReport:
    """Put events into a Kinesis stream with PutRecords, at most `rate` events per second.

    Args:
        partition_key: the record's partition key from its event (an entity key: its events stay in order).
        rate: events per second; None: as fast as PutRecords takes them.
        on_put: called with each event just before it is sent and the wall-clock time; returns the
            event to send (re-timing it to now, for a replay).

    Raises:
        KinesisUnavailable: records were still refused after retries.
    """
    started = time.monotonic()
    sent = 0
    per_shard: dict[str, int] = {}
    # At a rate, send small batches often (every 50 ms) so the events spread evenly over each second.
    batch_size = _PUT_BATCH if rate is None else max(1, min(_PUT_BATCH, int(rate * 0.05)))
    batch: list[dict[str, Any]] = []

    def send(batch: list[dict[str, Any]]) -> None:
        nonlocal sent
        if rate is not None:
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        now = time.time()
        records = [on_put(e, now) if on_put else e for e in batch]
        entries = [{"Data": encode_event(e), "PartitionKey": partition_key(e)} for e in records]
        for attempt in range(8):
            answer = client.put_records(StreamName=stream, Records=entries)
            failed = []
            for entry, result in zip(entries, answer["Records"], strict=True):
                if "ErrorCode" in result:
                    failed.append(entry)
                else:
                    per_shard[result["ShardId"]] = per_shard.get(result["ShardId"], 0) + 1
            if not failed:
                break
            entries = failed
            time.sleep(min(0.05 * 2 ** attempt, 2.0))
        else:
            raise KinesisUnavailable(f"Kinesis stream {stream}: {len(entries)} records still refused after retries")
        sent += len(batch)

    for event in events:
        batch.append(event)
        if len(batch) >= batch_size:
            send(batch)
            batch = []
    if batch:
        send(batch)
    return PutReport(stream, sent, time.monotonic() - started, per_shard)
