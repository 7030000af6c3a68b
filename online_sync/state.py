"""Sync bookkeeping kept in each view's own DynamoDB table, so every machine sees the same state.

Two items live beside the entity items, under the key `_` and writers that entity items never use:
- `state`: the Delta table id and version synced last. A dropped and recreated DynamoDB table loses
  it with its data, which forces the full resync it then needs.
- `lock`: a lease that serialises syncs of one view. The sync slot is written with unconditional
  BatchWriteItem (see the package docstring), which is only newest-wins if one sync writes at a
  time. The holder renews it in a background thread; a killed holder frees it when the lease runs
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
    synced_at: str


def read_state(client: Any, table: str) -> SyncState | None:
    """The view's sync state, or None if it was never synced (into this table)."""
    item = client.get_item(TableName=table, Key=_STATE, ConsistentRead=True).get("Item")
    if not item:
        return None
    return SyncState(
        delta_table_id=item["delta_table_id"]["S"],
        delta_version=int(item["delta_version"]["N"]),
        synced_at=item["synced_at"]["S"],
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
    """A renewable lock on one view's sync (a context manager)."""

    def __init__(self, client: Any, table: str, seconds: int = 60) -> None:
        self._client = client
        self._table = table
        self._seconds = seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False

    def _put(self, condition: str, values: dict[str, Any]) -> None:
        self._client.put_item(
            TableName=self._table,
            Item={
                **_LOCK,
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
        holder = self._client.get_item(TableName=self._table, Key=_LOCK, ConsistentRead=True).get("Item", {})
        if not _is_dead_local_process(holder):
            expires = dt.datetime.fromtimestamp(float(holder.get("expires_at", {}).get("N", "0")), dt.timezone.utc)
            raise SyncInProgress(
                f"table {self._table}: another sync ({holder.get('owner', {}).get('S', '?')}) holds the lease "
                f"until {expires:%Y-%m-%d %H:%M:%S} UTC; wait for it or retry after that"
            )
        log.info("table %s: taking over the lease of a dead sync on this host", self._table)
        try:
            self._put("#o = :old", {":old": holder["owner"]})
        except ClientError as err:
            if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise SyncInProgress(f"table {self._table}: another sync took the lease first") from err
            raise

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self._seconds / 3):
            try:
                self._put("#o = :me", {":me": {"S": self.owner}})
            except ClientError as err:
                if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    self.lost = True
                    return
                log.warning("table %s: renewing the sync lease failed: %s", self._table, err)
            except Exception as err:  # noqa: BLE001 - a network blip must not kill the renewer
                log.warning("table %s: renewing the sync lease failed: %s", self._table, err)

    def commit_state(self, delta_table_id: str, delta_version: int) -> None:
        """Advance the view's state, atomically with a check that the lease is still ours.

        Raises:
            LeaseLost: someone else holds the lease now; the state is left as it was.
        """
        state_item = {
            **_STATE,
            "delta_table_id": {"S": delta_table_id},
            "delta_version": {"N": str(delta_version)},
            "synced_at": {"S": dt.datetime.now(dt.timezone.utc).isoformat()},
        }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "ConditionCheck": {
                            "TableName": self._table,
                            "Key": _LOCK,
                            "ConditionExpression": "#o = :me",
                            "ExpressionAttributeNames": {"#o": "owner"},
                            "ExpressionAttributeValues": {":me": {"S": self.owner}},
                        }
                    },
                    {"Put": {"TableName": self._table, "Item": state_item}},
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
                Key=_LOCK,
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={":me": {"S": self.owner}},
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                log.warning("table %s: releasing the sync lease failed: %s", self._table, err)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *_: Any) -> None:
        self.release()
