"""The journal: every acknowledged event (and pushed row) until the flusher has stored it offline.

One DynamoDB table, `<prefix>_hs_journal`, with one item per entry. An ingest writes an event's
entry in the same TransactWriteItems as the online tiles it updates (`streams.ingest`), with the
condition that the key does not exist yet: the entry is both the durable copy of the event and
the record that its id was seen (exactly once per event id, within the dedupe window).

    _hs_key      S  "<target>#<entry id>" (the table's only key); target "source:<stream name>"
                    for ingested events, "view:<view name>" for pushed rows
    _hs_target   S  the target
    _hs_row      S  the validated row as JSON (timestamps ISO-8601 with offset, decimals as text)
    _hs_seq      N  ingest time, epoch microseconds (the event log's `_ingested_at`)
    _hs_pending  S  "<target>#<0..7>" until flushed, then removed: the sparse GSI "pending"
                    (hash _hs_pending, range _hs_seq, projection ALL) lists what the flusher still
                    has to write, spread over 8 partitions per target
    _hs_expires  N  _hs_seq + the dedupe window, epoch seconds: DynamoDB's TTL deletes the entry then

The dedupe window is HINDSIGHT_STREAM_DEDUPE_WINDOW (a duration, default 7d): an event id seen
again later than that after its first ingest is taken as new. An entry still pending when its
window ends is deleted all the same, so the flusher must run at least that often.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import json
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hindsight.core.durations import parse_duration
from hindsight.online_sync.batching import MAX_WRITE_BATCH, write_batch
from hindsight.online_sync.config import OnlineStoreConfig, OnlineStoreUnavailable, shared_client, store_error

#: The journal table's name after the table prefix.
JOURNAL_TABLE = "_hs_journal"
#: The sparse index of entries not flushed yet.
PENDING_INDEX = "pending"
#: Partitions of the pending index per target (spreads a busy target's writes).
PENDING_SHARDS = 8

KEY = "_hs_key"
TARGET = "_hs_target"
ROW = "_hs_row"
SEQ = "_hs_seq"
PENDING = "_hs_pending"
EXPIRES = "_hs_expires"

DEDUPE_WINDOW_ENV = "HINDSIGHT_STREAM_DEDUPE_WINDOW"
DEFAULT_DEDUPE_WINDOW = dt.timedelta(days=7)


def source_target(stream_name: str) -> str:
    """The journal target of a stream source's events.

    >>> source_target("streams.transactions")
    'source:streams.transactions'
    """
    return f"source:{stream_name}"


def view_target(view_name: str) -> str:
    """The journal target of a push view's rows.

    >>> view_target("user_profile")
    'view:user_profile'
    """
    return f"view:{view_name}"


def entry_key(target: str, entry_id: str) -> str:
    """The journal key of one entry.

    >>> entry_key("source:streams.transactions", "t-1")
    'source:streams.transactions#t-1'
    """
    return f"{target}#{entry_id}"


def pending_shard(target: str, entry_id: str) -> str:
    """The pending-index partition of an entry: the target and a stable hash of its id mod 8.

    >>> pending_shard("source:s.t", "t-1")
    'source:s.t#2'
    """
    digest = hashlib.blake2b(entry_id.encode(), digest_size=2).digest()
    return f"{target}#{int.from_bytes(digest, 'big') % PENDING_SHARDS}"


def dedupe_window(environ: Mapping[str, str] | None = None) -> dt.timedelta:
    """HINDSIGHT_STREAM_DEDUPE_WINDOW ('7d', '36h', ...) or 7 days.

    >>> dedupe_window({"HINDSIGHT_STREAM_DEDUPE_WINDOW": "2d"})
    datetime.timedelta(days=2)

    Raises:
        ValueError: naming the variable and the accepted form.
    """
    text = ((os.environ if environ is None else environ).get(DEDUPE_WINDOW_ENV) or "").strip()
    if not text:
        return DEFAULT_DEDUPE_WINDOW
    try:
        window = parse_duration(text)
    except ValueError as err:
        raise ValueError(f"{DEDUPE_WINDOW_ENV}: {err}") from None
    if window <= dt.timedelta(0):
        raise ValueError(f"{DEDUPE_WINDOW_ENV}: {text!r} must be a positive duration such as 7d")
    return window


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):  # pandas.Timestamp
        return _json_value(value.to_pydatetime())
    raise TypeError(f"cannot store {value!r} ({type(value).__name__}) in the journal")


def encode_row(row: Mapping[str, Any]) -> str:
    """A row as the journal stores it: JSON, timestamps ISO-8601 with offset, decimals as text.

    >>> encode_row({"id": "a", "ts": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), "x": Decimal("1.50")})
    '{"id":"a","ts":"2026-01-01T00:00:00+00:00","x":"1.50"}'
    """
    return json.dumps(dict(row), separators=(",", ":"), default=_json_value)


@dataclass(frozen=True)
class JournalEntry:
    """One journal entry as the flusher reads it."""

    target: str
    entry_id: str
    #: The row as stored: JSON values (timestamps and dates as ISO text, decimals as text).
    row: dict[str, Any]
    #: Ingest time, epoch microseconds.
    seq_us: int
    #: The pending-index partition it was listed under ("" once flushed).
    pending: str = ""

    @property
    def key(self) -> str:
        return entry_key(self.target, self.entry_id)

    @property
    def ingested_at(self) -> dt.datetime:
        return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=self.seq_us)


def _entry(item: dict[str, Any]) -> JournalEntry:
    target = item[TARGET]["S"]
    return JournalEntry(
        target=target,
        entry_id=item[KEY]["S"][len(target) + 1:],
        row=json.loads(item[ROW]["S"]),
        seq_us=int(item[SEQ]["N"]),
        pending=item.get(PENDING, {}).get("S", ""),
    )


def _order(entry: JournalEntry) -> tuple[int, str]:
    return entry.seq_us, entry.entry_id


@dataclass
class _Shard:
    """What `Journal.pending` has read of one pending shard so far."""

    entries: list[JournalEntry] = field(default_factory=list)
    cursor: dict[str, Any] | None = None
    done: bool = False


class Journal:
    """The journal table of one online store (thread-safe: share one)."""

    def __init__(self, config: OnlineStoreConfig, client: Any | None = None,
                 window: dt.timedelta | None = None) -> None:
        self.config = config
        self.client = client or shared_client(config)
        self.table = config.table_name(JOURNAL_TABLE)
        self.window_s = int((window or dedupe_window()).total_seconds())

    # -- the table ------------------------------------------------------------------------------

    def ensure_table(self) -> str:
        """Create the table (with its pending index and TTL) unless it exists.

        Returns:
            "created", "updated" (TTL switched on) or "exists".

        Raises:
            OnlineStoreUnavailable: DynamoDB cannot be reached.
        """
        from hindsight.online_sync.tables import _describe, _ensure_ttl, _wait_active

        try:
            created = False
            if _describe(self.client, self.table) is None:
                created = self._create()
            _wait_active(self.client, self.table)
            ttl_changed = _ensure_ttl(self.client, self.table)
        except (BotoCoreError, ClientError) as err:
            raise store_error(err, f"creating the journal table {self.table}") from err
        return "created" if created else ("updated" if ttl_changed else "exists")

    def _create(self) -> bool:
        try:
            self.client.create_table(
                TableName=self.table,
                AttributeDefinitions=[
                    {"AttributeName": KEY, "AttributeType": "S"},
                    {"AttributeName": PENDING, "AttributeType": "S"},
                    {"AttributeName": SEQ, "AttributeType": "N"},
                ],
                KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
                GlobalSecondaryIndexes=[{
                    "IndexName": PENDING_INDEX,
                    "KeySchema": [{"AttributeName": PENDING, "KeyType": "HASH"},
                                  {"AttributeName": SEQ, "KeyType": "RANGE"}],
                    "Projection": {"ProjectionType": "ALL"},
                }],
                BillingMode="PAY_PER_REQUEST",
                Tags=[{"Key": "hindsight:table", "Value": "journal"}],
            )
            return True
        except ClientError as err:
            if err.response["Error"]["Code"] == "ResourceInUseException":
                return False
            raise

    # -- writing (inside the caller's transaction) ----------------------------------------------

    def key_attrs(self, target: str, entry_id: str) -> dict[str, Any]:
        """The DynamoDB key of an entry (for a BatchGetItem that checks for duplicates)."""
        return {KEY: {"S": entry_key(target, entry_id)}}

    def put_request(self, target: str, entry_id: str, row: Mapping[str, Any], seq_us: int) -> dict[str, Any]:
        """A TransactWriteItems element that writes the entry only if its key is new.

        A transaction canceled with ConditionalCheckFailed at this element means the entry id was
        journaled before: a duplicate.
        """
        return {"Put": {
            "TableName": self.table,
            "Item": {
                KEY: {"S": entry_key(target, entry_id)},
                TARGET: {"S": target},
                ROW: {"S": encode_row(row)},
                SEQ: {"N": str(seq_us)},
                PENDING: {"S": pending_shard(target, entry_id)},
                EXPIRES: {"N": str(seq_us // 1_000_000 + self.window_s)},
            },
            "ConditionExpression": "attribute_not_exists(#k)",
            "ExpressionAttributeNames": {"#k": KEY},
        }}

    # -- the flusher's side ---------------------------------------------------------------------

    def pending(self, target: str, limit: int = 1000) -> list[JournalEntry]:
        """Up to `limit` entries of `target` not flushed yet, oldest ingest first within each shard.

        The shards are queried in parallel, each for its share of `limit`, then the shards that
        had more for a share of what is still missing, and so on: a backlog is not read eight
        times over, and `limit` entries come back whenever that many are pending. The pending
        index is eventually consistent: an entry acknowledged a moment ago may show up only in
        the next call.
        """
        shards = {f"{target}#{n}": _Shard() for n in range(PENDING_SHARDS)}
        try:
            with ThreadPoolExecutor(PENDING_SHARDS) as pool:
                while True:
                    missing = limit - sum(len(s.entries) for s in shards.values())
                    open_shards = [name for name, s in shards.items() if not s.done]
                    if missing <= 0 or not open_shards:
                        break
                    share = -(-missing // len(open_shards))
                    list(pool.map(self._query_shard, open_shards, [shards[n] for n in open_shards],
                                  [share] * len(open_shards)))
        except (BotoCoreError, ClientError) as err:
            raise store_error(err, f"reading the journal {self.table}") from err
        merged = heapq.merge(*(sorted(s.entries, key=_order) for s in shards.values()), key=_order)
        return [entry for _, entry in zip(range(limit), merged)]

    def _query_shard(self, name: str, shard: _Shard, limit: int) -> None:
        """Read up to `limit` more entries of one pending shard into `shard`."""
        arguments: dict[str, Any] = {
            "TableName": self.table, "IndexName": PENDING_INDEX,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": PENDING},
            "ExpressionAttributeValues": {":p": {"S": name}},
            "Limit": limit,
        }
        if shard.cursor is not None:
            arguments["ExclusiveStartKey"] = shard.cursor
        response = self.client.query(**arguments)
        shard.entries.extend(_entry(item) for item in response.get("Items", []))
        shard.cursor = response.get("LastEvaluatedKey")
        shard.done = shard.cursor is None

    def mark_flushed(self, entries: Iterable[JournalEntry]) -> int:
        """Take entries off the pending index (they stay as dedupe records until they expire).

        Each entry is written again without its pending attribute, 25 to a BatchWriteItem on
        parallel threads: five times the rate of one UpdateItem per entry (measured on DynamoDB
        Local), and nothing else ever changes an entry once written. Its expiry is recomputed
        from this process's dedupe window.

        Returns:
            How many entries were written.
        """
        unique = list({e.key: e for e in entries}.values())
        if not unique:
            return 0
        items = [{
            KEY: {"S": e.key},
            TARGET: {"S": e.target},
            ROW: {"S": encode_row(e.row)},
            SEQ: {"N": str(e.seq_us)},
            EXPIRES: {"N": str(e.seq_us // 1_000_000 + self.window_s)},
        } for e in unique]
        chunks = [items[i:i + MAX_WRITE_BATCH] for i in range(0, len(items), MAX_WRITE_BATCH)]
        try:
            with ThreadPoolExecutor(min(len(chunks), self.config.write_threads * 2)) as pool:
                return sum(pool.map(lambda chunk: write_batch(self.client, self.table, chunk), chunks))
        except (BotoCoreError, ClientError) as err:
            raise store_error(err, f"marking journal entries flushed in {self.table}") from err

    def targets_pending(self) -> set[str]:
        """Every target with at least one entry not flushed yet (a scan of the sparse index)."""
        targets: set[str] = set()
        arguments: dict[str, Any] = {
            "TableName": self.table, "IndexName": PENDING_INDEX,
            "ProjectionExpression": "#t", "ExpressionAttributeNames": {"#t": TARGET},
        }
        try:
            while True:
                response = self.client.scan(**arguments)
                targets.update(item[TARGET]["S"] for item in response.get("Items", []))
                if "LastEvaluatedKey" not in response:
                    return targets
                arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        except (BotoCoreError, ClientError) as err:
            raise store_error(err, f"reading the journal {self.table}") from err


def now_us() -> int:
    """The current time, epoch microseconds (a journal sequence value)."""
    return time.time_ns() // 1000


__all__ = [
    "DEDUPE_WINDOW_ENV", "JOURNAL_TABLE", "PENDING_INDEX", "Journal", "JournalEntry", "OnlineStoreUnavailable",
    "dedupe_window", "encode_row", "entry_key", "now_us", "pending_shard", "source_target", "view_target",
]
