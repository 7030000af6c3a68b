"""Fold the "push" items of older versions into each entity's one item, once per table.

Older versions kept two items per view and entity: the sync slot (sort key "sync") and the push
slot ("push"), and reads took the newer. Now both writers write the "sync" item under newest-wins
(`online_sync.write_rule`) and reads fetch only it, so a push item left by an older version would be
ignored. `fold_push_items` moves each into its entity's item where it is newer (a tie goes to the
push, as older reads had it) and deletes it, in one transaction per item conditional on both items
being as read, so a push or sync racing the fold is never undone. It runs at `hindsight apply` (for
every online table) and at `hindsight sync` (for each view synced); a marker item under the
bookkeeping key "_" (writer "layout") records that the table was folded, so later calls cost one
GetItem.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from botocore.exceptions import ClientError

from hindsight.online_sync.batching import RetriesExhausted, backoff_delay
from hindsight.online_sync.codec import KEY_ATTR, ORDER_ATTR, PUSH_WRITER, SYNC_WRITER, WRITER_ATTR
from hindsight.online_sync.state import _BOOKKEEPING_KEY

log = logging.getLogger(__name__)

_MARKER = {KEY_ATTR: {"S": _BOOKKEEPING_KEY}, WRITER_ATTR: {"S": "layout"}}
#: The layout the marker names: one item per view and entity.
ONE_ITEM_LAYOUT = 2
_MAX_ATTEMPTS = 12


def is_folded(client: Any, table: str) -> bool:
    """Whether the table's marker says its push items were folded (or it never had any)."""
    item = client.get_item(TableName=table, Key=_MARKER, ConsistentRead=True).get("Item")
    return item is not None and int(item.get("layout", {}).get("N", "0")) >= ONE_ITEM_LAYOUT


def mark_folded(client: Any, table: str, folded: int) -> None:
    """Record that the table holds one item per entity (a new table: folded=0)."""
    client.put_item(TableName=table, Item={
        **_MARKER, "layout": {"N": str(ONE_ITEM_LAYOUT)}, "folded": {"N": str(folded)},
        "folded_at": {"S": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
    })


def fold_push_items(client: Any, table: str) -> int:
    """Fold the table's "push" items into their entities' items, once; returns how many were folded.

    "Folded" counts the push items that were newer than (or as new as) their entity's item and so
    replaced it; every push item found is deleted. A table already marked costs one GetItem and
    returns 0.
    """
    if is_folded(client, table):
        return 0
    folded = found = 0
    for item in _push_items(client, table):
        found += 1
        folded += _fold_one(client, table, item)
    mark_folded(client, table, folded)
    if found:
        log.info("table %s: folded %d of %d push items of an older version into their entities' items",
                 table, folded, found)
    return folded


def _push_items(client: Any, table: str) -> Any:
    """Every item whose sort key is "push" (a filtered Scan: run once per table)."""
    request: dict[str, Any] = {
        "TableName": table, "ConsistentRead": True, "FilterExpression": "#w = :push",
        "ExpressionAttributeNames": {"#w": WRITER_ATTR}, "ExpressionAttributeValues": {":push": {"S": PUSH_WRITER}},
    }
    while True:
        page = client.scan(**request)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _fold_one(client: Any, table: str, pushed: dict[str, Any]) -> int:
    """Move one push item into its entity's item if newer, and delete it: 1 if it was moved."""
    key = pushed[KEY_ATTR]["S"]
    order = pushed[ORDER_ATTR]
    delete = {"Delete": {
        "TableName": table, "Key": {KEY_ATTR: {"S": key}, WRITER_ATTR: {"S": PUSH_WRITER}},
        "ConditionExpression": "#o = :pushed", "ExpressionAttributeNames": {"#o": ORDER_ATTR},
        "ExpressionAttributeValues": {":pushed": order},
    }}
    for attempt in range(_MAX_ATTEMPTS):
        current = client.get_item(TableName=table, Key={KEY_ATTR: {"S": key}, WRITER_ATTR: {"S": SYNC_WRITER}},
                                  ConsistentRead=True).get("Item")
        newer = current is None or int(current[ORDER_ATTR]["N"]) <= int(order["N"])
        operations = [delete]
        if newer:
            operations.append({"Put": {
                "TableName": table, "Item": {**pushed, WRITER_ATTR: {"S": SYNC_WRITER}},
                # The entity's item must still be what was read: a write in between is retried.
                **({"ConditionExpression": "attribute_not_exists(#o)", "ExpressionAttributeNames": {"#o": ORDER_ATTR}}
                   if current is None else
                   {"ConditionExpression": "#o = :held", "ExpressionAttributeNames": {"#o": ORDER_ATTR},
                    "ExpressionAttributeValues": {":held": current[ORDER_ATTR]}}),
            }})
        try:
            client.transact_write_items(TransactItems=operations)
            return 1 if newer else 0
        except ClientError as err:
            if err.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = [r.get("Code") for r in err.response.get("CancellationReasons") or []]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return 0  # the push item itself changed or went: another fold handled it
            time.sleep(backoff_delay(attempt))  # its entity's item changed, or a transaction conflict
    raise RetriesExhausted(f"table {table}: entity {key!r} kept changing while its push item was folded")
