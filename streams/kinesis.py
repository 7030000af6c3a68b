"""Stream sources fed from Amazon Kinesis: the client, stream creation, the record format, the consumer.

`KinesisConsumer` reads every shard of the Kinesis stream of each stream source in parallel (one
thread per shard it owns). Per shard it holds a lease in the checkpoint table (online_sync.checkpoints,
conditional writes: two consumers never own a shard at once; a dead consumer's shards move to a live
one when its lease runs out, or at once when it died on the same host). For each GetRecords batch it
decodes the records (one JSON object = one event each), hands them to `ingest(source, rows)` (the
Ingestor: online tiles and journal, durable and exactly once per event id) and only then moves the
shard's checkpoint. A restart resumes AFTER_SEQUENCE_NUMBER the checkpoint; records ingested but not
yet checkpointed when a consumer died are read again, and the Ingestor counts them as duplicates.

A record that is not a JSON object, or that the Ingestor's validation refuses, is rejected: logged
with its shard and sequence number, counted in the shard's `rejected` total, and appended (the raw
data, the shard, the sequence number and the reason) to `<state>/streams/rejected/<source>.jsonl`
before the checkpoint moves past it. It never stops the shard.

Reads the registry's stream sources and hindsight.yml's `streams:`; writes Kinesis streams
(`create_streams`; putting events is streams.kinesis_producer), the checkpoint table and, through
the Ingestor, the online store.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hindsight.core.settings import Settings
from hindsight.online_sync.checkpoints import CheckpointStore, ShardLeaseLost, new_owner, shard_key
from hindsight.online_sync.config import OnlineStoreConfig, client_arguments
from hindsight.registry_sync.model import StreamSource

log = logging.getLogger(__name__)

#: Records per GetRecords call (Kinesis allows up to 10,000; 1,000 keeps one ingest call small).
BATCH_LIMIT = 1000
_ACTIVE_TIMEOUT_S = 60.0
_RETRYABLE = ("ProvisionedThroughputExceededException", "LimitExceededException", "InternalFailure",
              "ServiceUnavailable", "ThrottlingException")


class KinesisUnavailable(RuntimeError):
    """The Kinesis endpoint cannot be used (a recorded kinesalite is gone, no region, ...)."""


@dataclass(frozen=True)
class KinesisConfig:
    """Which Kinesis the stream commands talk to."""

    #: Endpoint override (kinesalite); None: AWS through boto3's chain.
    endpoint_url: str | None = None
    #: AWS region; None: boto3's chain (AWS_REGION, ~/.aws/config).
    region: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KinesisConfig:
        """streams.kinesis_endpoint (or HINDSIGHT_KINESIS_ENDPOINT), else the kinesalite `stream up`
        recorded while it runs, else AWS.

        Raises:
            KinesisUnavailable: the recorded kinesalite is not running any more.
        """
        from hindsight.streams.kinesalite import recorded_endpoint

        endpoint = settings.streams.kinesis_endpoint
        if endpoint is None and (record := recorded_endpoint(settings.state_dir)) is not None:
            if not record.alive:
                raise KinesisUnavailable(
                    f"the kinesalite recorded in {record.path} ({record.endpoint}) is not running: start it again "
                    "with `hindsight stream up`, or forget it with `hindsight stream down` (Kinesis is then AWS "
                    "unless hindsight.yml's streams.kinesis_endpoint or HINDSIGHT_KINESIS_ENDPOINT names one)")
            endpoint = record.endpoint
        return cls(endpoint_url=endpoint, region=settings.streams.region)

    def describe(self) -> str:
        """Where this config points, for messages.

        >>> KinesisConfig("http://127.0.0.1:4567").describe(), KinesisConfig(region="eu-west-1").describe()
        ('http://127.0.0.1:4567', 'AWS Kinesis (eu-west-1)')
        """
        return self.endpoint_url or f"AWS Kinesis ({self.region or 'region from boto3'})"


def make_kinesis_client(config: KinesisConfig, *, max_pool_connections: int = 32) -> Any:
    """A boto3 Kinesis client; endpoint, region and emulator credentials follow the DynamoDB client's rules."""
    import boto3
    from botocore.config import Config

    # The same rules as the online store's client: dummy credentials only for a loopback emulator.
    arguments = client_arguments(OnlineStoreConfig(endpoint_url=config.endpoint_url, region=config.region),
                                 os.environ, boto3.session.Session().region_name)
    try:
        return boto3.session.Session().client(
            "kinesis", config=Config(connect_timeout=2, read_timeout=10, max_pool_connections=max_pool_connections,
                                     retries={"max_attempts": 3, "mode": "standard"}, tcp_keepalive=True),
            **arguments)
    except BotoCoreError as err:
        raise KinesisUnavailable(f"cannot create a Kinesis client for {config.describe()}: {err} (set streams.region "
                                 "in hindsight.yml or AWS_REGION; for local development run `hindsight stream up`)"
                                 ) from None


def kinesis_stream_name(source: StreamSource) -> str:
    """The Kinesis stream a source reads (its `kinesis_stream` meta).

    Raises:
        ValueError: the source declares none (it takes events from the ingest API only).
    """
    if not source.kinesis_stream:
        raise ValueError(f"stream source {source.name} has no Kinesis stream: add meta.hindsight.stream."
                         f"kinesis_stream to its table in {source.original_file_path or 'its sources .yml'}")
    return source.kinesis_stream


def kinesis_sources(registry: Any, names: Sequence[str] = ()) -> list[StreamSource]:
    """The named stream sources (each must declare a Kinesis stream), or every one that declares one.

    Raises:
        KeyError: an unknown source (Registry.stream_source names the known ones).
        ValueError: a named source without a Kinesis stream, or none at all.
    """
    if names:
        chosen = [registry.stream_source(n) for n in names]
        for source in chosen:
            kinesis_stream_name(source)
        return chosen
    chosen = [s for s in registry.stream_sources if s.kinesis_stream]
    if not chosen:
        known = ", ".join(s.name for s in registry.stream_sources) or "none"
        raise ValueError(f"no stream source declares a Kinesis stream (stream sources: {known}): add "
                         "meta.hindsight.stream.kinesis_stream to one and run `hindsight apply`")
    return chosen


def create_streams(client: Any, sources: Sequence[StreamSource], shards: int = 2) -> dict[str, str]:
    """Create each source's Kinesis stream unless it exists, and wait until ACTIVE.

    Returns:
        Kinesis stream name -> "created" or "exists (<n> shards)".
    """
    done: dict[str, str] = {}
    for source in sources:
        name = kinesis_stream_name(source)
        try:
            client.create_stream(StreamName=name, ShardCount=shards)
            done[name] = "created"
        except ClientError as err:
            if err.response["Error"]["Code"] != "ResourceInUseException":
                raise
        summary = _wait_active(client, name)
        done.setdefault(name, f"exists ({summary['OpenShardCount']} open shards)")
    return done


def _wait_active(client: Any, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + _ACTIVE_TIMEOUT_S
    while True:
        summary: dict[str, Any] = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return summary
        if time.monotonic() > deadline:
            raise KinesisUnavailable(f"Kinesis stream {name} is still {summary['StreamStatus']} after "
                                     f"{_ACTIVE_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


def list_shards(client: Any, stream: str) -> list[dict[str, Any]]:
    """Every shard of a stream (ListShards, all pages).

    Raises:
        KinesisUnavailable: the stream does not exist.
    """
    shards: list[dict[str, Any]] = []
    try:
        answer = client.list_shards(StreamName=stream)
    except ClientError as err:
        if err.response["Error"]["Code"] == "ResourceNotFoundException":
            raise KinesisUnavailable(f"Kinesis stream {stream} does not exist: create it with `hindsight stream "
                                     "create` (kinesalite: after `hindsight stream up`)") from None
        raise
    shards += answer["Shards"]
    while answer.get("NextToken"):
        answer = client.list_shards(NextToken=answer["NextToken"])
        shards += answer["Shards"]
    return shards


def encode_event(event: dict[str, Any]) -> bytes:
    """One event as a record's data: a JSON object, timestamps in ISO-8601 with their offset.

    >>> encode_event({"id": "a", "ts": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)})
    b'{"id":"a","ts":"2026-01-02T03:04:05+00:00"}'
    """
    return json.dumps(event, separators=(",", ":"), default=_json_value).encode()


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# ------------------------------------------------------------------------------------------------
# Consumer
# ------------------------------------------------------------------------------------------------


@dataclass
class ShardStats:
    """What one shard's worker did in this process."""

    source: str
    shard_id: str
    batches: int = 0
    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    last_sequence: str | None = None


@dataclass(frozen=True)
class Rejected:
    """A record that is not an event of its source."""

    shard_id: str
    sequence: str
    reason: str
    data: bytes


#: ingest(source name, rows) -> a report with `accepted` and `duplicates` (streams.ingest.Ingestor.ingest).
IngestFunction = Callable[[str, list[dict[str, Any]]], Any]


def decode_records(records: Sequence[dict[str, Any]], shard_id: str) -> tuple[list[dict[str, Any]], list[str], list[Rejected]]:
    """Split a GetRecords batch into events (JSON objects) with their sequence numbers, and rejects.

    >>> rows, seqs, bad = decode_records([{"Data": b'{"a": 1}', "SequenceNumber": "1"},
    ...                                  {"Data": b"[1]", "SequenceNumber": "2"},
    ...                                  {"Data": b"{oops", "SequenceNumber": "3"}], "shard-0")
    >>> rows, seqs, [(r.sequence, r.reason.split(":")[0]) for r in bad]
    ([{'a': 1}], ['1'], [('2', 'not a JSON object'), ('3', 'not valid JSON')])
    """
    rows: list[dict[str, Any]] = []
    sequences: list[str] = []
    rejected: list[Rejected] = []
    for record in records:
        data, sequence = record["Data"], record["SequenceNumber"]
        try:
            event = json.loads(data)
        except (ValueError, UnicodeDecodeError) as err:
            rejected.append(Rejected(shard_id, sequence, f"not valid JSON: {err}", data))
            continue
        if not isinstance(event, dict):
            rejected.append(Rejected(shard_id, sequence, f"not a JSON object: a JSON {type(event).__name__}", data))
            continue
        rows.append(event)
        sequences.append(sequence)
    return rows, sequences, rejected


class RejectLog:
    """Rejected records of one source, appended as JSON lines (fsynced before the checkpoint moves)."""

    def __init__(self, folder: Path, source: str) -> None:
        self.path = folder / f"{source}.jsonl"
        self._lock = threading.Lock()

    def append(self, rejected: Sequence[Rejected]) -> None:
        if not rejected:
            return
        lines = []
        for r in rejected:
            try:
                data: dict[str, str] = {"data": r.data.decode()}
            except UnicodeDecodeError:
                data = {"data_base64": base64.b64encode(r.data).decode()}
            lines.append(json.dumps({"shard_id": r.shard_id, "sequence_number": r.sequence, "reason": r.reason,
                                     "rejected_at": dt.datetime.now(dt.timezone.utc).isoformat(), **data}))
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as out:
                out.write("\n".join(lines) + "\n")
                out.flush()
                os.fsync(out.fileno())


def ingest_valid(ingest: IngestFunction, source: str, rows: list[dict[str, Any]], sequences: list[str],
                 shard_id: str) -> tuple[int, int, list[Rejected]]:
    """Ingest the rows, leaving out each one validation refuses; returns (accepted, duplicates, rejects).

    The Ingestor validates a whole call before it writes anything, so a refused row is removed and the
    rest is sent again (a bad record costs one more call; a batch of bad records is rare).
    """
    from hindsight.streams.validation import IngestValidationError

    rejected: list[Rejected] = []
    while rows:
        try:
            report = ingest(source, rows)
        except IngestValidationError as err:
            index = getattr(err, "index", None)
            if not isinstance(index, int) or not 0 <= index < len(rows):
                raise
            rejected.append(Rejected(shard_id, sequences[index], f"refused by validation: {err}",
                                     encode_event(rows[index])))
            del rows[index], sequences[index]
            continue
        return int(report.accepted), int(report.duplicates), rejected
    return 0, 0, rejected


class KinesisConsumer:
    """Consume the Kinesis streams of some stream sources until `stop()` (see the module docstring)."""

    def __init__(self, sources: Sequence[StreamSource], ingest: IngestFunction, kinesis: Any,
                 checkpoints: CheckpointStore, *, rejects_dir: Path, lease_seconds: float = 20.0,
                 poll_interval: float = 0.2, batch_limit: int = BATCH_LIMIT) -> None:
        if not sources:
            raise ValueError("no stream source to consume: declare one in a dbt sources .yml "
                             "(meta.hindsight.stream) and run `hindsight apply`")
        self.sources = list(sources)
        self.ingest = ingest
        self.kinesis = kinesis
        self.checkpoints = checkpoints
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.batch_limit = batch_limit
        self.owner = new_owner()
        self.stats: dict[str, ShardStats] = {}
        self._rejects = {s.name: RejectLog(rejects_dir, s.name) for s in self.sources}
        self._stop = threading.Event()
        self._workers: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []

    # -- the discovery loop -------------------------------------------------------------------

    def run(self, ready: Callable[[], None] | None = None) -> None:
        """Own and read shards until `stop()`; every `lease_seconds / 3` look for shards to take."""
        self.checkpoints.ensure_table()
        first = True
        try:
            while not self._stop.is_set():
                self.discover()
                if first and ready:
                    ready()
                first = False
                self._stop.wait(min(self.lease_seconds / 3, 5.0))
        finally:
            self._stop.set()
            for worker in list(self._workers.values()):
                worker.join()

    def start(self) -> threading.Thread:
        """`run` in a background thread; returns it."""
        thread = threading.Thread(target=self.run, name="kinesis-consumer", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask every worker to finish its current batch, checkpoint, and release its lease."""
        self._stop.set()

    def discover(self) -> None:
        """Renew the leases of the shards being read; take every free shard whose parents are fully
        read, and start its worker."""
        self._renew_all()
        for source in self.sources:
            stream = kinesis_stream_name(source)
            shards = list_shards(self.kinesis, stream)
            ids = {s["ShardId"] for s in shards}
            for shard in shards:
                key = shard_key(source.name, stream, shard["ShardId"])
                with self._lock:
                    alive = key in self._workers and self._workers[key].is_alive()
                if alive or not self._parents_done(source, stream, shard, ids):
                    continue
                checkpoint = self.checkpoints.try_acquire(key, self.owner, self.lease_seconds)
                if checkpoint is None:
                    continue
                if checkpoint.finished:
                    self.checkpoints.release(key, self.owner)
                    continue
                worker = threading.Thread(target=self._read_shard, args=(source, stream, shard["ShardId"],
                                                                          checkpoint.sequence),
                                          name=f"shard-{shard['ShardId']}", daemon=True)
                with self._lock:
                    self._workers[key] = worker
                worker.start()

    def _renew_all(self) -> None:
        # A worker renews at each checkpoint, but one ingest call can outlast the lease on a loaded
        # machine; renewing here as well keeps a live consumer's shards while it works.
        with self._lock:
            working = [key for key, worker in self._workers.items() if worker.is_alive()]
        for key in working:
            if self._stop.is_set():  # the workers are releasing their shards
                return
            try:
                self.checkpoints.renew(key, self.owner, self.lease_seconds)
            except ShardLeaseLost as lost:
                # The worker finds out at its next checkpoint (which cannot move) and stops.
                if not self._stop.is_set():
                    log.warning("%s", lost)

    def _parents_done(self, source: StreamSource, stream: str, shard: dict[str, Any], ids: set[str]) -> bool:
        # After a reshard a child shard waits until its parents are read to the end: events of one
        # partition key stay in order. A parent past retention is gone from the listing: done.
        for parent in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")):
            if parent and parent in ids:
                item = self.checkpoints.get(shard_key(source.name, stream, parent))
                if item is None or not item.finished:
                    return False
        return True

    # -- one shard -------------------------------------------------------------------------------

    def _read_shard(self, source: StreamSource, stream: str, shard_id: str, sequence: str | None) -> None:
        key = shard_key(source.name, stream, shard_id)
        stats = self.stats.setdefault(key, ShardStats(source.name, shard_id, last_sequence=sequence))
        log.info("shard %s of %s: reading %s", shard_id, stream,
                 f"after sequence number {sequence}" if sequence else "from the oldest record (TRIM_HORIZON)")
        renewed = time.monotonic()
        iterator: str | None = None
        backoff = 0.0
        try:
            while not self._stop.is_set():
                try:
                    if iterator is None:
                        iterator = self._iterator(stream, shard_id, stats.last_sequence)
                    answer = self.kinesis.get_records(ShardIterator=iterator, Limit=self.batch_limit)
                    records = answer["Records"]
                    if records:
                        self._handle_batch(source, key, shard_id, records, stats)
                        renewed = time.monotonic()
                    iterator = answer.get("NextShardIterator")
                    if iterator is None:  # a closed shard, read to its end
                        self.checkpoints.finish(key, self.owner, self.lease_seconds)
                        log.info("shard %s of %s: closed and fully read", shard_id, stream)
                        return
                    if time.monotonic() - renewed > self.lease_seconds / 3:
                        self.checkpoints.renew(key, self.owner, self.lease_seconds)
                        renewed = time.monotonic()
                    backoff = 0.0
                    if not records or answer.get("MillisBehindLatest", 0) == 0:
                        self._stop.wait(self.poll_interval)
                except ShardLeaseLost:
                    raise
                except ClientError as err:
                    code = err.response["Error"]["Code"]
                    if code == "ExpiredIteratorException":
                        iterator = None
                        continue
                    if code not in _RETRYABLE:
                        raise
                    backoff = min(max(backoff * 2, 0.1), 5.0)
                    log.warning("shard %s: %s; retrying in %.1f s", shard_id, code, backoff)
                    self._stop.wait(backoff)
                except Exception as err:
                    from hindsight.streams.validation import IngestValidationError

                    if isinstance(err, IngestValidationError):
                        raise
                    backoff = min(max(backoff * 2, 0.5), 10.0)
                    log.warning("shard %s: %s: %s; retrying the batch in %.1f s", shard_id, type(err).__name__,
                                err, backoff)
                    # Read again from the checkpoint: the batch was not checkpointed.
                    iterator = None
                    self._stop.wait(backoff)
        except ShardLeaseLost as lost:
            log.warning("%s; this consumer stops reading it", lost)
            return
        except BaseException as err:
            log.exception("shard %s of %s: stopped by an error", shard_id, stream)
            self.errors.append(err)
            self._stop.set()
            raise
        self.checkpoints.release(key, self.owner)

    def _iterator(self, stream: str, shard_id: str, sequence: str | None) -> str:
        arguments: dict[str, Any] = {"StreamName": stream, "ShardId": shard_id}
        if sequence:
            try:
                return str(self.kinesis.get_shard_iterator(
                    **arguments, ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=sequence,
                )["ShardIterator"])
            except ClientError as err:
                if err.response["Error"]["Code"] != "InvalidArgumentException":
                    raise
                # The stream was deleted and created again (an in-memory kinesalite restarted): the
                # checkpoint belongs to the old stream, every record of this one is new.
                log.warning("shard %s of %s: the checkpoint is not from this stream (was it created again?); "
                            "reading from its oldest record", shard_id, stream)
        return str(self.kinesis.get_shard_iterator(**arguments, ShardIteratorType="TRIM_HORIZON")["ShardIterator"])

    def _handle_batch(self, source: StreamSource, key: str, shard_id: str, records: list[dict[str, Any]],
                      stats: ShardStats) -> None:
        rows, sequences, rejected = decode_records(records, shard_id)
        accepted = duplicates = 0
        if rows:
            accepted, duplicates, refused = ingest_valid(self.ingest, source.name, rows, sequences, shard_id)
            rejected += refused
        for r in rejected:
            log.warning("shard %s sequence %s: record rejected (%s)", r.shard_id, r.sequence, r.reason)
        # The rejects are on disk before the checkpoint moves past them.
        self._rejects[source.name].append(rejected)
        last = records[-1]["SequenceNumber"]
        self.checkpoints.checkpoint(key, self.owner, last, self.lease_seconds, records=len(records),
                                    rejected=len(rejected))
        stats.batches += 1
        stats.records += len(records)
        stats.accepted += accepted
        stats.duplicates += duplicates
        stats.rejected += len(rejected)
        stats.last_sequence = last
