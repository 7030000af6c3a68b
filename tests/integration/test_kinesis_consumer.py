"""The Kinesis consumer against real kinesalite and DynamoDB Local, with a recording ingest function.

Shards in parallel, checkpoints and resume, shard leases (two consumers never share a shard; a dead
consumer's shards move), rejected records. The real Ingestor's exactly-once is in
test_kinesis_exactly_once.py.
"""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

from hindsight.online_sync.checkpoints import CheckpointStore, shard_key
from hindsight.registry_sync.model import Feature, StreamSource
from hindsight.streams.kinesis import KinesisConsumer, create_streams, list_shards
from hindsight.streams.kinesis_producer import put_events

pytestmark = pytest.mark.integration


def make_source(stream: str) -> StreamSource:
    columns = (Feature("event_id", "int64"), Feature("user_id", "int64"), Feature("ts", "timestamp"))
    return StreamSource("streams.events", "event_id", "ts", ("user",), ("user_id",), columns, "/unused",
                        kinesis_stream=stream)


class RecordingIngest:
    """Records every call; `delay` seconds per call; refuses rows with a negative user_id (like validation)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.calls: list[tuple[str, float, float, list[int]]] = []
        self.seen: dict[int, int] = {}
        self.running = 0
        self.max_running = 0

    def __call__(self, source: str, rows: list[dict[str, Any]]) -> Any:
        from hindsight.streams.validation import IngestValidationError

        for index, row in enumerate(rows):
            if row.get("user_id", 0) < 0:
                raise _validation_error(IngestValidationError, index)
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        started = time.monotonic()
        time.sleep(self.delay)
        with self.lock:
            self.running -= 1
            ids = [r["event_id"] for r in rows]
            duplicates = sum(1 for i in ids if i in self.seen)
            for i in ids:
                self.seen[i] = self.seen.get(i, 0) + 1
            self.calls.append((threading.current_thread().name, started, time.monotonic(), ids))
        return SimpleNamespace(accepted=len(ids) - duplicates, duplicates=duplicates)


def _validation_error(cls: type, index: int) -> Exception:
    return cls("streams.events", "user_id", index, "range", "should be 0 or more")


def events(first: int, n: int, users: int = 50) -> list[dict[str, Any]]:
    return [{"event_id": i, "user_id": i % users, "ts": "2026-11-30T12:00:00+00:00"} for i in range(first, first + n)]


def by_user(event: dict[str, Any]) -> str:
    return str(event["user_id"])


def wait_until(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def setup(kinesis_client, kinesis_stream_prefix, online_config, tmp_path):
    def build(shards: int = 4) -> tuple[StreamSource, CheckpointStore]:
        source = make_source(f"{kinesis_stream_prefix}events")
        assert create_streams(kinesis_client, [source], shards=shards) == {source.kinesis_stream: "created"}
        # Idempotent: a second create leaves the stream as it is.
        assert create_streams(kinesis_client, [source], shards=1) == {source.kinesis_stream: f"exists ({shards} open shards)"}
        return source, CheckpointStore(online_config)
    return build


def consumer(source, ingest, kinesis_client, store, tmp_path, lease_seconds: float = 6.0):
    return KinesisConsumer([source], ingest, kinesis_client, store, rejects_dir=tmp_path / "rejected",
                           lease_seconds=lease_seconds, poll_interval=0.05)


def test_shards_are_read_in_parallel_and_checkpointed(setup, kinesis_client, tmp_path):
    source, store = setup(shards=4)
    report = put_events(kinesis_client, source.kinesis_stream, events(0, 200), by_user)
    assert report.records == 200 and len(report.shards) == 4
    ingest = RecordingIngest(delay=0.4)
    running = consumer(source, ingest, kinesis_client, store, tmp_path)
    thread = running.start()
    wait_until(lambda: len(ingest.seen) == 200)
    running.stop()
    thread.join(timeout=30)

    assert sorted(ingest.seen) == list(range(200)) and set(ingest.seen.values()) == {1}
    # Four shards, one thread each, their ingest calls overlapping in time.
    assert len({name for name, *_ in ingest.calls}) == 4
    assert ingest.max_running >= 3
    for shard in list_shards(kinesis_client, source.kinesis_stream):
        item = store.get(shard_key(source.name, source.kinesis_stream, shard["ShardId"]))
        assert item is not None and item.records == report.shards[shard["ShardId"]]
        assert item.owner is None  # released at stop
        assert item.sequence == running.stats[item.key].last_sequence


def test_a_restart_resumes_after_the_checkpoint(setup, kinesis_client, tmp_path):
    source, store = setup(shards=2)
    put_events(kinesis_client, source.kinesis_stream, events(0, 30), by_user)
    first = RecordingIngest()
    running = consumer(source, first, kinesis_client, store, tmp_path)
    thread = running.start()
    wait_until(lambda: len(first.seen) == 30)
    running.stop()
    thread.join(timeout=30)

    put_events(kinesis_client, source.kinesis_stream, events(30, 20), by_user)
    second = RecordingIngest()
    running = consumer(source, second, kinesis_client, store, tmp_path)
    thread = running.start()
    wait_until(lambda: len(second.seen) == 20)
    time.sleep(0.5)  # nothing older arrives late
    running.stop()
    thread.join(timeout=30)
    assert sorted(second.seen) == list(range(30, 50))


def test_two_consumers_never_own_the_same_shard(setup, kinesis_client, tmp_path):
    source, store = setup(shards=4)
    put_events(kinesis_client, source.kinesis_stream, events(0, 400), by_user)
    ingests = [RecordingIngest(delay=0.05), RecordingIngest(delay=0.05)]
    consumers = [consumer(source, ingest, kinesis_client, store, tmp_path) for ingest in ingests]
    threads = [c.start() for c in consumers]
    wait_until(lambda: sum(len(i.seen) for i in ingests) >= 400)
    owned = [set(c.stats) for c in consumers]
    for c in consumers:
        c.stop()
    for t in threads:
        t.join(timeout=30)
    assert owned[0].isdisjoint(owned[1]) and len(owned[0] | owned[1]) == 4
    seen = [i for ingest in ingests for i in ingest.seen]
    assert sorted(seen) == list(range(400))  # each event read by one consumer, once


def test_a_dead_consumers_shards_are_taken_over_when_its_lease_runs_out(setup, kinesis_client, tmp_path):
    source, store = setup(shards=1)
    store.ensure_table()
    shard = list_shards(kinesis_client, source.kinesis_stream)[0]["ShardId"]
    key = shard_key(source.name, source.kinesis_stream, shard)
    # A consumer on another host took the shard and died: its lease runs 2 more seconds.
    assert store.try_acquire(key, "elsewhere:1:dead", seconds=2.0) is not None
    put_events(kinesis_client, source.kinesis_stream, events(0, 10), by_user)
    ingest = RecordingIngest()
    running = consumer(source, ingest, kinesis_client, store, tmp_path, lease_seconds=1.5)
    started = time.monotonic()
    thread = running.start()
    time.sleep(1.0)
    assert ingest.seen == {}  # the lease still holds
    wait_until(lambda: len(ingest.seen) == 10)
    assert time.monotonic() - started >= 1.9
    assert store.get(key).owner == running.owner
    # The old holder cannot move the checkpoint any more.
    from hindsight.online_sync.checkpoints import ShardLeaseLost

    with pytest.raises(ShardLeaseLost, match="another consumer owns it"):
        store.checkpoint(key, "elsewhere:1:dead", "1", 10)
    running.stop()
    thread.join(timeout=30)


def test_bad_records_are_logged_counted_and_do_not_stop_the_shard(setup, kinesis_client, tmp_path):
    source, store = setup(shards=1)
    put_events(kinesis_client, source.kinesis_stream, events(0, 3), by_user)
    for data in (b"not json", b"[1, 2]", json.dumps({"event_id": 99, "user_id": -1, "ts": "x"}).encode()):
        kinesis_client.put_record(StreamName=source.kinesis_stream, Data=data, PartitionKey="p")
    put_events(kinesis_client, source.kinesis_stream, events(3, 3), by_user)
    ingest = RecordingIngest()
    running = consumer(source, ingest, kinesis_client, store, tmp_path)
    thread = running.start()
    wait_until(lambda: len(ingest.seen) == 6)
    running.stop()
    thread.join(timeout=30)

    assert sorted(ingest.seen) == list(range(6))
    lines = [json.loads(line) for line in (tmp_path / "rejected" / "streams.events.jsonl").read_text().splitlines()]
    assert [line["reason"].split(":")[0] for line in lines] == ["not valid JSON", "not a JSON object",
                                                                "refused by validation"]
    assert [line["data"] for line in lines[:2]] == ["not json", "[1, 2]"]
    assert all(line["shard_id"] == "shardId-000000000000" and line["sequence_number"] for line in lines)
    [item] = store.all(source.name)
    assert (item.records, item.rejected) == (9, 3)


def test_a_checkpoint_from_a_deleted_stream_of_the_same_name_restarts_at_the_oldest_record(
        setup, kinesis_client, tmp_path):
    source, store = setup(shards=1)
    store.ensure_table()
    old = kinesis_client.put_record(StreamName=source.kinesis_stream, Data=b"{}", PartitionKey="p")
    key = shard_key(source.name, source.kinesis_stream, old["ShardId"])
    assert store.try_acquire(key, "gone:1:x", 5) is not None
    store.checkpoint(key, "gone:1:x", old["SequenceNumber"], 5)
    store.release(key, "gone:1:x")
    kinesis_client.delete_stream(StreamName=source.kinesis_stream)
    wait_until(lambda: source.kinesis_stream not in kinesis_client.list_streams()["StreamNames"])
    # kinesalite's sequence numbers carry the shard's creation time in whole seconds: a stream
    # created again within the same second accepts the old one's numbers (AWS never does). The case
    # under test, a restarted kinesalite, is seconds apart.
    time.sleep(1.1)
    create_streams(kinesis_client, [source], shards=1)
    put_events(kinesis_client, source.kinesis_stream, events(0, 5), by_user)
    ingest = RecordingIngest()
    running = consumer(source, ingest, kinesis_client, store, tmp_path)
    thread = running.start()
    wait_until(lambda: len(ingest.seen) == 5)
    running.stop()
    thread.join(timeout=30)
    assert sorted(ingest.seen) == list(range(5))


def test_an_ingest_longer_than_the_lease_keeps_the_shard(setup, kinesis_client, tmp_path):
    source, store = setup(shards=1)
    put_events(kinesis_client, source.kinesis_stream, events(0, 5), by_user)
    slow, other = RecordingIngest(delay=3.0), RecordingIngest()
    first = consumer(source, slow, kinesis_client, store, tmp_path, lease_seconds=1.5)
    first_thread = first.start()
    wait_until(lambda: slow.running == 1)
    second = consumer(source, other, kinesis_client, store, tmp_path, lease_seconds=1.5)
    second_thread = second.start()
    wait_until(lambda: len(slow.seen) == 5)
    time.sleep(1.0)
    for running, thread in ((first, first_thread), (second, second_thread)):
        running.stop()
        thread.join(timeout=30)
    assert other.seen == {} and second.stats == {}  # never owned the shard the slow consumer worked on
    assert set(slow.seen.values()) == {1}


def test_a_missing_stream_says_how_to_create_it(kinesis_client, kinesis_stream_prefix, online_config, tmp_path):
    from hindsight.streams.kinesis import KinesisUnavailable

    source = make_source(f"{kinesis_stream_prefix}missing")
    running = consumer(source, RecordingIngest(), kinesis_client, CheckpointStore(online_config), tmp_path)
    with pytest.raises(KinesisUnavailable, match=rf"Kinesis stream {source.kinesis_stream} does not exist: create it "
                                                 r"with `hindsight stream create`"):
        running.run()
