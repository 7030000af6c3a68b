"""Kinesis consumer bookkeeping in DynamoDB: one item per shard holding its lease and its checkpoint.

Table `config.table_name("_hs_checkpoints")`, hash key `_hs_key` = "<source>#<kinesis stream>#<shard
id>". Attributes: `owner` (the consumer holding the shard), `expires_at` (epoch seconds the lease
runs out unless renewed), `host`/`pid` (so a consumer on the same host sees at once that the holder
died), `sequence` (the last sequence number whose records were ingested), `finished` (a closed
shard, fully read), running totals `records` and `rejected`, `updated_at`.

Every write but the first acquire is conditional on `owner = me`, so two consumers never own a shard
at once and a consumer that lost its lease cannot move the checkpoint. A lease is taken when the
item is new, its lease ran out, or its holder's process is gone from this host (online_sync.state's
rule for sync leases).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from hindsight.online_sync.codec import KEY_ATTR
from hindsight.online_sync.config import OnlineStoreConfig, OnlineStoreUnavailable, make_client
from hindsight.online_sync.state import _is_dead_local_process

log = logging.getLogger(__name__)

#: The table's name before the prefix (config.table_name(CHECKPOINTS_TABLE)).
CHECKPOINTS_TABLE = "_hs_checkpoints"
_NAMES = {"#k": KEY_ATTR, "#o": "owner", "#e": "expires_at"}
_ACTIVE_TIMEOUT_S = 60.0


class ShardLeaseLost(RuntimeError):
    """Another consumer owns the shard now; this one must stop reading it."""


@dataclass(frozen=True)
class ShardCheckpoint:
    """One shard's item: who owns it, where its consumer got to, and the totals."""

    key: str
    sequence: str | None = None
    owner: str | None = None
    expires_at: float | None = None
    finished: bool = False
    records: int = 0
    rejected: int = 0
    updated_at: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ShardCheckpoint:
        def text(name: str) -> str | None:
            return item[name]["S"] if name in item else None

        def number(name: str) -> float | None:
            return float(item[name]["N"]) if name in item else None

        return cls(
            key=item[KEY_ATTR]["S"], sequence=text("sequence"), owner=text("owner"), expires_at=number("expires_at"),
            finished=bool(item.get("finished", {}).get("BOOL", False)), records=int(number("records") or 0),
            rejected=int(number("rejected") or 0), updated_at=text("updated_at"),
        )

    def held(self, now: float | None = None) -> bool:
        """Whether a live lease covers it now."""
        return self.owner is not None and (self.expires_at or 0) >= (time.time() if now is None else now)


def shard_key(source: str, stream: str, shard_id: str) -> str:
    """The item key of one shard.

    >>> shard_key("streams.transactions", "hindsight-transactions", "shardId-000000000001")
    'streams.transactions#hindsight-transactions#shardId-000000000001'
    """
    return f"{source}#{stream}#{shard_id}"


def new_owner() -> str:
    """A consumer's identity: host, pid and a random part (a restarted pid is another owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class CheckpointStore:
    """The checkpoint table of one online store (thread-safe: boto3 clients are)."""

    def __init__(self, config: OnlineStoreConfig, client: Any | None = None) -> None:
        self.config = config
        self.client = client if client is not None else make_client(config)
        self.table = config.table_name(CHECKPOINTS_TABLE)

    def ensure_table(self) -> bool:
        """Create the table unless it exists and wait until it is ACTIVE; returns whether it created it."""
        created = False
        if self._status() is None:
            try:
                self.client.create_table(
                    TableName=self.table,
                    AttributeDefinitions=[{"AttributeName": KEY_ATTR, "AttributeType": "S"}],
                    KeySchema=[{"AttributeName": KEY_ATTR, "KeyType": "HASH"}],
                    BillingMode="PAY_PER_REQUEST",
                )
                created = True
            except ClientError as err:
                if err.response["Error"]["Code"] != "ResourceInUseException":
                    raise
        deadline = time.monotonic() + _ACTIVE_TIMEOUT_S
        while (status := self._status()) != "ACTIVE":
            if time.monotonic() > deadline:
                raise OnlineStoreUnavailable(f"table {self.table} is still {status} after {_ACTIVE_TIMEOUT_S:.0f} s")
            time.sleep(0.2)
        return created

    def _status(self) -> str | None:
        try:
            return str(self.client.describe_table(TableName=self.table)["Table"]["TableStatus"])
        except ClientError as err:
            if err.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise

    def try_acquire(self, key: str, owner: str, seconds: float) -> ShardCheckpoint | None:
        """Take the shard's lease if it is free, ran out or its holder died here; None if another holds it."""
        try:
            return self._take(key, owner, seconds, "attribute_not_exists(#k) OR attribute_not_exists(#o) "
                              "OR #e < :now OR #o = :me", {":now": {"N": repr(time.time())}})
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        holder = self.client.get_item(TableName=self.table, Key={KEY_ATTR: {"S": key}}, ConsistentRead=True).get("Item", {})
        if not holder or not _is_dead_local_process(holder):
            return None
        log.info("shard %s: taking over the lease of a dead consumer on this host (%s)", key, holder["owner"]["S"])
        try:
            return self._take(key, owner, seconds, "#o = :old", {":old": holder["owner"]})
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise

    def _take(self, key: str, owner: str, seconds: float, condition: str, values: dict[str, Any]) -> ShardCheckpoint:
        answer = self.client.update_item(
            TableName=self.table,
            Key={KEY_ATTR: {"S": key}},
            UpdateExpression="SET #o = :me, #e = :exp, host = :host, pid = :pid",
            ConditionExpression=condition,
            ExpressionAttributeNames={p: n for p, n in _NAMES.items() if p in condition or p in ("#o", "#e")},
            ExpressionAttributeValues={
                **values, ":me": {"S": owner}, ":exp": {"N": repr(time.time() + seconds)},
                ":host": {"S": socket.gethostname()}, ":pid": {"N": str(os.getpid())},
            },
            ReturnValues="ALL_NEW",
        )
        return ShardCheckpoint.from_item(answer["Attributes"])

    def renew(self, key: str, owner: str, seconds: float) -> None:
        """Extend the lease.

        Raises:
            ShardLeaseLost: another consumer owns the shard now.
        """
        self._update(key, owner, "SET #e = :exp", {":exp": {"N": repr(time.time() + seconds)}})

    def checkpoint(self, key: str, owner: str, sequence: str, seconds: float, *, records: int = 0,
                   rejected: int = 0, finished: bool = False) -> None:
        """Record that every record up to `sequence` is ingested, and renew the lease.

        Raises:
            ShardLeaseLost: another consumer owns the shard now; the checkpoint did not move.
        """
        self._update(
            key, owner, "SET #e = :exp, #s = :s, #u = :u, #f = :f ADD #r :r, #j :j",
            {":exp": {"N": repr(time.time() + seconds)}, ":s": {"S": sequence},
             ":u": {"S": dt.datetime.now(dt.timezone.utc).isoformat()}, ":f": {"BOOL": finished},
             ":r": {"N": str(records)}, ":j": {"N": str(rejected)}},
            {"#s": "sequence", "#u": "updated_at", "#f": "finished", "#r": "records", "#j": "rejected"},
        )

    def finish(self, key: str, owner: str, seconds: float) -> None:
        """Mark a closed shard fully read (its children may start)."""
        self._update(key, owner, "SET #e = :exp, #f = :f", {":exp": {"N": repr(time.time() + seconds)},
                                                            ":f": {"BOOL": True}}, {"#f": "finished"})

    def _update(self, key: str, owner: str, expression: str, values: dict[str, Any],
                names: dict[str, str] | None = None) -> None:
        try:
            self.client.update_item(
                TableName=self.table,
                Key={KEY_ATTR: {"S": key}},
                UpdateExpression=expression,
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner", "#e": "expires_at", **(names or {})},
                ExpressionAttributeValues={**values, ":me": {"S": owner}},
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ShardLeaseLost(f"shard {key}: another consumer owns it now") from err
            raise

    def release(self, key: str, owner: str) -> None:
        """Give the lease up (the checkpoint stays) if it is still ours."""
        try:
            self.client.update_item(
                TableName=self.table, Key={KEY_ATTR: {"S": key}},
                UpdateExpression="REMOVE #o, #e, host, pid", ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner", "#e": "expires_at"},
                ExpressionAttributeValues={":me": {"S": owner}},
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                log.warning("shard %s: releasing the lease failed: %s", key, err)

    def get(self, key: str) -> ShardCheckpoint | None:
        """One shard's item, read consistently."""
        item = self.client.get_item(TableName=self.table, Key={KEY_ATTR: {"S": key}}, ConsistentRead=True).get("Item")
        return ShardCheckpoint.from_item(item) if item else None

    def all(self, prefix: str = "") -> list[ShardCheckpoint]:
        """Every shard item whose key starts with `prefix`, sorted by key (a scan: the table is small)."""
        if self._status() is None:
            return []
        items: list[ShardCheckpoint] = []
        for page in self.client.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True):
            items += [ShardCheckpoint.from_item(i) for i in page["Items"] if i[KEY_ATTR]["S"].startswith(prefix)]
        return sorted(items, key=lambda c: c.key)
