"""The one rule by which synced rows reach a view's online items (every sync engine calls it).

Every non-aggregation view keeps one item per entity, under the sort key "sync"; `sync` and
`push` both write it and the newest `_hs_order` wins:

- A view without `push: true` has a single writer, `sync`, serialised by the view's lease
  (`online_sync.state`): its rows go out with blind BatchWriteItem, the fastest write DynamoDB has.
  An incremental sync first reads the items' `_hs_order` and drops rows older than what is there.
- A view with `push: true` also takes pushes at any time, so a blind put could overwrite a newer
  pushed row. Its rows go out with TransactWriteItems of conditional puts
  (`attribute_not_exists(_hs_order) OR _hs_order <= :row`); a row whose item holds something newer
  fails its condition and is counted skipped ("newer online"), the others are resent. A
  transaction (not BatchWriteItem, which takes no conditions) keeps it to one call per 100 rows.

A row whose order equals the item's is written: a later Delta commit corrected the same event in
place (and a push of the same event is the same row).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from botocore.exceptions import ClientError

from hindsight.online_sync.batching import (
    MAX_GET_BATCH,
    MAX_WRITE_BATCH,
    RetriesExhausted,
    backoff_delay,
    chunked,
    get_batch,
    write_batch,
)
from hindsight.online_sync.codec import KEY_ATTR, ORDER_ATTR, SYNC_WRITER, WRITER_ATTR
from hindsight.registry_sync.model import FeatureView

#: DynamoDB's limits per TransactWriteItems: 100 items, 4 MB (a margin is kept for overhead).
MAX_TRANSACTION_ITEMS = 100
MAX_TRANSACTION_BYTES = 3_500_000
_MAX_ROUNDS = 12
_NEWEST_WINS = "attribute_not_exists(#o) OR #o <= :o"


class WriteCounts(NamedTuple):
    """What one `write_synced_items` call did."""

    #: Items written.
    written: int
    #: Rows not written: the online item already held a newer row for the entity.
    skipped: int


def online_orders(client: Any, table: str, keys: Sequence[str]) -> dict[str, int]:
    """The `_hs_order` of each key's current item (keys without one are absent), read consistently."""
    found: dict[str, int] = {}
    for chunk in chunked(dict.fromkeys(keys), MAX_GET_BATCH):
        request = {
            table: {
                "Keys": [{KEY_ATTR: {"S": k}, WRITER_ATTR: {"S": SYNC_WRITER}} for k in chunk],
                "ProjectionExpression": "#k, #o",
                "ExpressionAttributeNames": {"#k": KEY_ATTR, "#o": ORDER_ATTR},
                "ConsistentRead": True,
            }
        }
        for item in get_batch(client, request).get(table, []):
            found[item[KEY_ATTR]["S"]] = int(item[ORDER_ATTR]["N"])
    return found


def write_synced_items(
    client: Any,
    table: str,
    view: FeatureView,
    entries: Sequence[tuple[str, int, dict[str, Any]]],
    *,
    check_online: bool,
) -> WriteCounts:
    """Write a view's newest rows into their entities' items under the view's write rule.

    Args:
        client: a boto3 DynamoDB client (one per thread or process is not needed: clients are
            thread-safe).
        table: the view's DynamoDB table (`OnlineStoreConfig.table_name(view.name)`).
        view: the feature view; `view.push` chooses the rule (see the module docstring).
        entries: (entity key, order, item) as `delta_sync.items_from_batch` yields them, at most
            one per entity key (the newest row per entity); any length, sent in chunks.
        check_online: read the items' current `_hs_order` first and drop rows older than it (an
            incremental sync: most changed rows are new, and a row the store has something newer
            for must not win). A full sync of a view without push passes False: nothing but
            this sync writes its items. Views with push are always conditional; the read then
            only spares canceled transactions.

    Returns:
        WriteCounts(written, skipped as not newer than the online item).

    Raises:
        RetriesExhausted: DynamoDB kept throttling or conflicting through every retry.
        botocore ClientError / BotoCoreError: anything else DynamoDB refused.
    """
    rows = _newest_per_key(entries)
    skipped = len(entries) - len(rows)
    if check_online and rows:
        online = online_orders(client, table, [key for key, _, _ in rows])
        kept = [row for row in rows if online.get(row[0], -1) <= row[1]]
        skipped += len(rows) - len(kept)
        rows = kept
    if not view.push:
        written = sum(write_batch(client, table, chunk) for chunk in chunked([i for _, _, i in rows], MAX_WRITE_BATCH))
        return WriteCounts(written, skipped)
    written = 0
    for group in _transactions(rows):
        done, newer = _write_conditional(client, table, group)
        written += done
        skipped += newer
    return WriteCounts(written, skipped)


def _newest_per_key(entries: Sequence[tuple[str, int, dict[str, Any]]]) -> list[tuple[str, int, dict[str, Any]]]:
    """One entry per key, the newest (the later one on a tie): a transaction may touch an item once."""
    newest: dict[str, tuple[str, int, dict[str, Any]]] = {}
    for entry in entries:
        held = newest.get(entry[0])
        if held is None or held[1] <= entry[1]:
            newest[entry[0]] = entry
    return list(newest.values()) if len(newest) != len(entries) else list(entries)


def _rough_bytes(item: dict[str, Any]) -> int:
    # Twice the characters: UTF-8 and the wire format's overhead; items are already <= 400 KB.
    return 2 * sum(len(name) + len(str(value)) for name, value in item.items()) + 100


def _transactions(rows: list[tuple[str, int, dict[str, Any]]]) -> list[list[tuple[str, int, dict[str, Any]]]]:
    groups: list[list[tuple[str, int, dict[str, Any]]]] = []
    current: list[tuple[str, int, dict[str, Any]]] = []
    nbytes = 0
    for row in rows:
        size = _rough_bytes(row[2])
        if current and (len(current) == MAX_TRANSACTION_ITEMS or nbytes + size > MAX_TRANSACTION_BYTES):
            groups.append(current)
            current, nbytes = [], 0
        current.append(row)
        nbytes += size
    if current:
        groups.append(current)
    return groups


def _put(table: str, order: int, item: dict[str, Any]) -> dict[str, Any]:
    return {"Put": {
        "TableName": table, "Item": item, "ConditionExpression": _NEWEST_WINS,
        "ExpressionAttributeNames": {"#o": ORDER_ATTR}, "ExpressionAttributeValues": {":o": {"N": str(order)}},
    }}


def _write_conditional(client: Any, table: str, rows: list[tuple[str, int, dict[str, Any]]]) -> tuple[int, int]:
    """One TransactWriteItems of newest-wins puts, resent without the rows that lost: (written, newer)."""
    newer = 0
    for attempt in range(_MAX_ROUNDS):
        if not rows:
            return 0, newer
        try:
            client.transact_write_items(TransactItems=[_put(table, order, item) for _, order, item in rows])
            return len(rows), newer
        except ClientError as err:
            if err.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = err.response.get("CancellationReasons") or []
            codes = [r.get("Code") for r in reasons]
            if any(c not in (None, "None", "ConditionalCheckFailed", "TransactionConflict") for c in codes):
                raise
            lost = {i for i, c in enumerate(codes) if c == "ConditionalCheckFailed"}
            newer += len(lost)
            rows = [row for i, row in enumerate(rows) if i not in lost]
            if not lost:  # a conflict with a concurrent push's transaction: wait, then resend
                time.sleep(backoff_delay(attempt))
    raise RetriesExhausted(
        f"table {table}: conditional writes still conflicting after {_MAX_ROUNDS} attempts (concurrent pushes)"
    )
