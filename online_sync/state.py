"""Sync bookkeeping kept in each view's own DynamoDB table, so every machine sees the same state.

Two items live beside the entity items, under the key `_` and writers that entity items never use
(a third, `layout`, is `online_sync.fold`'s marker):
- `state`: the Delta table id and version synced last, when, and the newest event time synced; and
  running totals (syncs, rows written, failed syncs and the last failure) that `hindsight status`
  and the serving API's /metrics read. A dropped and recreated DynamoDB table loses it with its
  data, which forces the full resync it then needs.
- `lock`: a lease that serialises syncs of one view. A view without push has its items written
  with unconditional BatchWriteItem (`write_rule`), which is only newest-wins if one sync writes at
  a time. The holder renews it in a background thread; a killed holder frees it when the lease runs
  out, or at once when it ran on this host and its pid is gone.
The state advances in one transaction that also checks the lease is still ours.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from hindsight.online_sync.codec import KEY_ATTR, WRITER_ATTR

log = logging.getLogger(__name__)

_BOOKKEEPING_KEY = "_"
_STATE = {KEY_ATTR: {"S": _BOOKKEEPING_KEY}, WRITER_ATTR: {"S": "state"}}
_LOCK = {KEY_ATTR: {"S": _BOOKKEEPING_KEY}, WRITER_ATTR: {"S": "lock"}}
_LOCK_NAMES = {"#k": KEY_ATTR, "#e": "expires_at", "#o": "owner"}


class SyncInProgress(RuntimeError):
    """Another live sync holds the view's lease."""


class LeaseLost(RuntimeError):
    """Our lease expired or was taken over before the sync finished: its state is not advanced."""


@dataclass(frozen=True)
class SyncState:
    """What the last successful sync of a view reached."""

    #: The Delta table's id (metaData.id): changes when the table is recreated.
    delta_table_id: str
    #: The Delta version whose rows are all in the online store.
    delta_version: int
    #: When the last successful sync ended (one that found nothing new included), ISO 8601 UTC.
    synced_at: str
    #: The newest event time in the sync slot, epoch microseconds; None if unknown (a state written
    #: before it was recorded, or a table without rows).
    newest_event_us: int | None = None


@dataclass(frozen=True)
class SyncRecord:
    """Everything the state item holds: the state, and running totals since the table was created."""

    state: SyncState | None
    syncs: int = 0
    rows_written: int = 0
    errors: int = 0
    #: The last failed sync's error (one line) and when it happened (ISO 8601 UTC).
    last_error: str | None = None
    last_error_at: str | None = None


def _number(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name, {}).get("N")
    return None if value is None else int(value)


def read_record(client: Any, table: str) -> SyncRecord:
    """The view's state item as a SyncRecord (state None if it was never synced into this table)."""
    item = client.get_item(TableName=table, Key=_STATE, ConsistentRead=True).get("Item") or {}
    state = None
    if "delta_version" in item:
        state = SyncState(
            delta_table_id=item["delta_table_id"]["S"],
            delta_version=int(item["delta_version"]["N"]),
            synced_at=item["synced_at"]["S"],
            newest_event_us=_number(item, "newest_event_us"),
        )
    return SyncRecord(
        state=state,
        syncs=_number(item, "syncs") or 0,
        rows_written=_number(item, "rows_written") or 0,
        errors=_number(item, "errors") or 0,
        last_error=item.get("last_error", {}).get("S"),
        last_error_at=item.get("last_error_at", {}).get("S"),
    )


def read_state(client: Any, table: str) -> SyncState | None:
    """The view's sync state, or None if it was never synced (into this table)."""
    return read_record(client, table).state


def lease_held(client: Any, table: str, owner: str, *, key: dict[str, Any] | None = None) -> bool:
    """Whether `owner` still holds the lease on `table`, unexpired (a consistent read).

    Writers that run away from the lease holder (Spark executors of `spark_sync`) check it before
    writing, so a job orphaned by a killed driver stops instead of racing the rerun.
    """
    item = client.get_item(TableName=table, Key=key or _LOCK, ConsistentRead=True).get("Item") or {}
    return item.get("owner", {}).get("S") == owner and float(item.get("expires_at", {}).get("N", "0")) > time.time()


def record_error(client: Any, table: str, message: str) -> None:
    """Count a failed sync of the view and keep its error (the state itself is left as it was)."""
    client.update_item(
        TableName=table,
        Key=_STATE,
        UpdateExpression="ADD #n :one SET #e = :e, #t = :t",
        ExpressionAttributeNames={"#n": "errors", "#e": "last_error", "#t": "last_error_at"},
        ExpressionAttributeValues={
            ":one": {"N": "1"},
            ":e": {"S": message[:1000] or "unknown error"},
            ":t": {"S": dt.datetime.now(dt.timezone.utc).isoformat()},
        },
    )


def _is_dead_local_process(lock: dict[str, Any]) -> bool:
    if lock.get("host", {}).get("S") != socket.gethostname():
        return False
    try:
        os.kill(int(lock["pid"]["N"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError):
        return False
    return False


class Lease:
    """A renewable lock on one view's sync (a context manager).

    `key` and `what` let other single-writer jobs reuse it on another item: the flusher takes one
    per journal target (`streams.flush`), keyed in the journal table.
    """

    def __init__(self, client: Any, table: str, seconds: int = 60, *, key: dict[str, Any] | None = None,
                 what: str = "sync") -> None:
        self._client = client
        self._table = table
        self._seconds = seconds
        self._key = key or _LOCK
        self._what = what
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False

    def _put(self, condition: str, values: dict[str, Any]) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                **self._key,
                "owner": {"S": self.owner},
                "expires_at": {"N": repr(time.time() + self._seconds)},
                "host": {"S": socket.gethostname()},
                "pid": {"N": str(os.getpid())},
            },
            ConditionExpression=condition,
            # DynamoDB rejects placeholders the expression does not use.
            ExpressionAttributeNames={p: n for p, n in _LOCK_NAMES.items() if p in condition},
            ExpressionAttributeValues=values,
        )

    def acquire(self) -> None:
        """Take the lease, or raise SyncInProgress naming its holder."""
        try:
            self._put("attribute_not_exists(#k) OR #e < :now OR #o = :me",
                      {":now": {"N": repr(time.time())}, ":me": {"S": self.owner}})
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            self._take_over_dead_holder()
        self._renewer = threading.Thread(target=self._renew_until_stopped, daemon=True, name="lease-renewer")
        self._renewer.start()

    def _take_over_dead_holder(self) -> None:
        holder = self._client.get_item(TableName=self._table, Key=self._key, ConsistentRead=True).get("Item", {})
        if not _is_dead_local_process(holder):
            expires = dt.datetime.fromtimestamp(float(holder.get("expires_at", {}).get("N", "0")), dt.timezone.utc)
            raise SyncInProgress(
                f"table {self._table}: another {self._what} ({holder.get('owner', {}).get('S', '?')}) holds the lease "
                f"until {expires:%Y-%m-%d %H:%M:%S} UTC; wait for it or retry after that"
            )
        log.info("table %s: taking over the lease of a dead %s on this host", self._table, self._what)
        try:
            self._put("#o = :old", {":old": holder["owner"]})
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise SyncInProgress(f"table {self._table}: another {self._what} took the lease first") from err
            raise

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            try:
                self._put("#o = :me", {":me": {"S": self.owner}})
            except ClientError as err:
                if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    self.lost = True
                    return
                log.warning("table %s: renewing the %s lease failed: %s", self._table, self._what, err)
            except Exception as err:  # noqa: BLE001 - a network blip must not kill the renewer
                log.warning("table %s: renewing the %s lease failed: %s", self._table, self._what, err)

    def commit_state(self, delta_table_id: str, delta_version: int, newest_event_us: int | None = None,
                     rows_written: int = 0) -> None:
        """Advance the view's state and its totals, atomically with a check that the lease is still ours.

        Raises:
            LeaseLost: someone else holds the lease now; the state is left as it was.
        """
        # An update, not a put: the running totals and the last error stay.
        names = {"#i": "delta_table_id", "#v": "delta_version", "#s": "synced_at", "#c": "syncs", "#r": "rows_written"}
        values = {
            ":i": {"S": delta_table_id},
            ":v": {"N": str(delta_version)},
            ":s": {"S": dt.datetime.now(dt.timezone.utc).isoformat()},
            ":one": {"N": "1"},
            ":r": {"N": str(rows_written)},
        }
        expression = "SET #i = :i, #v = :v, #s = :s"
        if newest_event_us is None:
            expression += " REMOVE #e"
        else:
            expression += ", #e = :e"
            values[":e"] = {"N": str(newest_event_us)}
        names["#e"] = "newest_event_us"
        update = {
            "TableName": self._table,
            "Key": _STATE,
            "UpdateExpression": expression + " ADD #c :one, #r :r",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self._table,
                            "Key": self._key,
                            "ConditionExpression": "#o = :me",
                            "ExpressionAttributeNames": {"#o": "owner"},
                            "ExpressionAttributeValues": {":me": {"S": self.owner}},
                        }
                    },
                    {"Update": update},
                ]
            )
        except ClientError as err:
            if err.response["Error"]["Code"] == "TransactionCanceledException":
                raise LeaseLost(f"table {self._table}: the sync lease was lost; state not advanced") from err
            raise

    def release(self) -> None:
        """Stop renewing and delete the lock if it is still ours."""
        self._stop.set()
        if self._renewer:
            self._renewer.join()
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=self._key,
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}},
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                log.warning("table %s: releasing the %s lease failed: %s", self._table, self._what, err)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *_: Any) -> None:
        self.release()
