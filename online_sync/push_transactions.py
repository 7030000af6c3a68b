"""The transactions of one push: an entity's online write and its rows' journal entries, together.

`online_sync.push` validates the rows and reports; this module groups them per entity, packs the
groups into TransactWriteItems calls (at most 100 items, ~4 MB), and commits each, retrying what a
canceled transaction allows: a journal entry that exists is a duplicate (dropped), a whole row
whose online item holds something newer is written to the journal only, and a partial row is
rebuilt from a fresh read when its entity's online item changed in between.

The online item is the entity's one item (sort key "sync"), which `sync` writes too: under the same
newest-wins condition (`online_sync.write_rule`) for views that take pushes.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from hindsight.online_sync.batching import MAX_GET_BATCH, backoff_delay, chunked, get_batch
from hindsight.online_sync.codec import KEY_ATTR, ORDER_ATTR, SYNC_WRITER, WRITER_ATTR, check_item_size
from hindsight.online_sync.config import OnlineStoreConfig
from hindsight.online_sync.journal import Journal, now_us, view_target
from hindsight.registry_sync.model import FeatureView


class PushConflict(RuntimeError):
    """Other writers kept changing the entities of a partial push through every retry."""


@dataclass
class PushedRow:
    """One validated pushed row."""

    index: int
    key: str
    order: int
    #: The online item this row alone would write (carried features only).
    item: dict[str, Any]
    #: The features the row carries (all of them unless the view takes partial pushes).
    present: tuple[str, ...]
    #: The row as the journal stores it, and its entry id (a digest of it).
    journal: dict[str, Any]
    entry_id: str


#: DynamoDB's limits per TransactWriteItems: 100 items, 4 MB (a margin is kept for overhead).
MAX_TRANSACTION_ITEMS = 100
MAX_TRANSACTION_BYTES = 3_500_000
_MAX_ATTEMPTS = 12


@dataclass
class _Unit:
    """What must commit together: an entity's online write (its newest row) and journal entries."""

    key: str
    online: PushedRow | None
    entries: list[PushedRow]
    #: The entity's rows in this push, oldest first (partial views fold them all online).
    history: tuple[PushedRow, ...] = ()

    @property
    def size(self) -> int:
        return len(self.entries) + (0 if self.online is None else 1)

    @property
    def nbytes(self) -> int:
        online = 0 if self.online is None else 2 * sum(len(str(v)) + len(k) for k, v in self.online.item.items())
        return online + sum(len(json.dumps(e.journal, default=str)) + 200 for e in self.entries)


def transactions(units: list[_Unit]) -> list[list[_Unit]]:
    """Units packed into groups that fit one TransactWriteItems each."""
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    items = nbytes = 0
    for unit in units:
        if current and (items + unit.size > MAX_TRANSACTION_ITEMS or nbytes + unit.nbytes > MAX_TRANSACTION_BYTES):
            groups.append(current)
            current, items, nbytes = [], 0, 0
        current.append(unit)
        items += unit.size
        nbytes += unit.nbytes
    if current:
        groups.append(current)
    return groups


class Writer:
    """Builds and commits one push's transactions."""

    def __init__(self, view: FeatureView, config: OnlineStoreConfig, client: Any) -> None:
        self.view = view
        self.client = client
        self.table = config.table_name(view.name)
        self.journal = Journal(config, client)
        self.target = view_target(view.name)

    def units(self, rows: list[PushedRow]) -> list[_Unit]:
        """One unit per entity (more when its journal entries overflow a transaction)."""
        by_entity: dict[str, list[PushedRow]] = {}
        seen: set[str] = set()
        for row in rows:
            by_entity.setdefault(row.key, [])
            if row.entry_id not in seen:  # the same row twice in one push is one entry
                seen.add(row.entry_id)
                by_entity[row.key].append(row)
        units = []
        for key, entity_rows in by_entity.items():
            newest = None
            for row in entity_rows:
                # A later row of the same push wins a tie: it is the caller's latest word on that event.
                if newest is None or newest.order <= row.order:
                    newest = row
            online = newest if self.view.online else None
            room = MAX_TRANSACTION_ITEMS - (0 if online is None else 1)
            history = tuple(sorted(entity_rows, key=lambda r: r.order))
            units.append(_Unit(key, online, entity_rows[:room], history))
            for start in range(room, len(entity_rows), MAX_TRANSACTION_ITEMS):
                units.append(_Unit(key, None, entity_rows[start:start + MAX_TRANSACTION_ITEMS]))
        return units

    def commit(self, units: list[_Unit]) -> tuple[int, int]:
        """Commit one group: (online items written, journal entries written)."""
        entries = [e for u in units for e in u.entries]
        online = [u.online for u in units if u.online is not None]
        history = {u.key: u.history for u in units if u.online is not None}
        for attempt in range(_MAX_ATTEMPTS):
            if not entries and not online:
                return 0, 0
            current = self._read(online) if self.view.push_partial and online else {}
            writes = [(row, self._online_ops(row, current, history[row.key])) for row in online]
            stale = [row for row, ops in writes if ops is None]
            if stale:  # partial rows older than the online item: journal only
                online = [row for row in online if row not in stale]
                writes = [(row, ops) for row, ops in writes if ops is not None]
            transaction: list[dict[str, Any]] = []
            owners: list[tuple[str, PushedRow]] = []
            seq = now_us()
            for entry in entries:
                transaction.append(self.journal.put_request(self.target, entry.entry_id, entry.journal, seq))
                owners.append(("journal", entry))
            for row, ops in writes:
                for op in ops or ():
                    transaction.append(op)
                    owners.append(("online", row))
            if not transaction:
                return 0, 0
            try:
                self.client.transact_write_items(TransactItems=transaction, ClientRequestToken=str(uuid.uuid4()))
                return len(online), len(entries)
            except ClientError as err:
                if err.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = err.response.get("CancellationReasons") or []
                if any(r.get("Code") not in (None, "None", "ConditionalCheckFailed", "TransactionConflict") for r in reasons):
                    raise
                failed = [owners[i] for i, r in enumerate(reasons[:len(owners)]) if r.get("Code") == "ConditionalCheckFailed"]
                duplicates = {id(row) for kind, row in failed if kind == "journal"}
                entries = [e for e in entries if id(e) not in duplicates]
                if not self.view.push_partial:
                    # A whole row whose item holds something newer: not written online.
                    newer = {id(row) for kind, row in failed if kind == "online"}
                    online = [row for row in online if id(row) not in newer]
                if not failed:
                    time.sleep(backoff_delay(attempt))  # a conflict with another transaction
        raise PushConflict(
            f"push to {self.view.name!r}: entities {sorted({r.key for r in online})[:10]} kept changing under "
            f"concurrent writes through {_MAX_ATTEMPTS} attempts; nothing of this group was written, retry it"
        )

    def _read(self, rows: list[PushedRow]) -> dict[str, dict[str, Any]]:
        """The online items of the rows' entities, read consistently."""
        keys = [{KEY_ATTR: {"S": row.key}, WRITER_ATTR: {"S": SYNC_WRITER}} for row in rows]
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunked(keys, MAX_GET_BATCH):
            response = get_batch(self.client, {self.table: {"Keys": chunk, "ConsistentRead": True}})
            for item in response.get(self.table, []):
                found[item[KEY_ATTR]["S"]] = item
        return found

    def _online_ops(self, row: PushedRow, current: dict[str, dict[str, Any]],
                    history: tuple[PushedRow, ...] = ()) -> list[dict[str, Any]] | None:
        """The transaction elements writing `row` online; None when the online item is newer.

        A partial row's item is the newest online item with the carried features of this push's
        rows of the entity that are not older than it applied in event order, `row` (the newest)
        last: what the flusher's fill computes offline for `row`.
        """
        if not self.view.push_partial:
            return [{"Put": {
                "TableName": self.table, "Item": row.item,
                "ConditionExpression": "attribute_not_exists(#o) OR #o <= :o",
                "ExpressionAttributeNames": {"#o": ORDER_ATTR},
                "ExpressionAttributeValues": {":o": {"N": str(row.order)}},
            }}]
        base = current.get(row.key)
        if base is not None and int(base[ORDER_ATTR]["N"]) > row.order:
            return None
        features = {f.name for f in self.view.features}
        values = {name: value for name, value in (base or {}).items() if name in features}
        floor = -1 if base is None else int(base[ORDER_ATTR]["N"])
        for earlier in [*(r for r in history if r is not row and r.order >= floor), row]:
            for name in earlier.present:
                if name in earlier.item:
                    values[name] = earlier.item[name]
                else:  # a carried null: no attribute
                    values.pop(name, None)
        item = {**{k: v for k, v in row.item.items() if k not in features}, **values}
        check_item_size(item, f"push to {self.view.name!r}, entity {row.key}")
        return [{"Put": {"TableName": self.table, "Item": item, **_unchanged(base)}}]


def _unchanged(item: dict[str, Any] | None) -> dict[str, Any]:
    """A condition that the item still holds what was read (or still nothing)."""
    if item is None:
        return {"ConditionExpression": "attribute_not_exists(#o)", "ExpressionAttributeNames": {"#o": ORDER_ATTR}}
    return {"ConditionExpression": "#o = :o", "ExpressionAttributeNames": {"#o": ORDER_ATTR},
            "ExpressionAttributeValues": {":o": item[ORDER_ATTR]}}
