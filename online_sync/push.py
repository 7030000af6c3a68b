"""`push`: rows of a push feature view, online at once and journaled for its Delta table.

Only views with config `push: true` take pushed rows (aggregation views never: their items are
tiles). For each entity, one DynamoDB TransactWriteItems holds the online write and the journal
entries (`online_sync.journal`, target "view:<name>") of that entity's rows, so an acknowledged
push is durable in both halves: the flusher (`streams.flush`) later appends the journaled rows to
the view's Delta table (`offline_store.pushed_rows`), where training sets see them.

- Online, the entity's newest row goes to its push slot (writer "push"), conditional on the slot
  holding nothing newer (`_hs_order <= :new`), so pushes racing each other or a sync converge on
  the newest event. A row older than what is online is not written online (counted stale), but
  is journaled all the same: it is history, and belongs in training sets.
- With `push_partial: true` a row may carry a subset of the features. Online, the push item is the
  entity's newest online item (sync or push slot) with the carried features replaced; the
  transaction checks that neither slot changed since it was read, and retries otherwise. A partial
  row older than the online item changes nothing online (counted stale).
- The journal entry id is a digest of the row's content: a retried push finds its entries already
  journaled (counted as duplicates) and adds nothing offline.

Event (and created) times may lie at most `max_future_skew` ahead of the pushing machine's clock
(HINDSIGHT_PUSH_MAX_FUTURE_SKEW, default 5m): newest wins, so one far-future row would otherwise
hold its entity's online value until real time caught up with it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hindsight.core.suggest import did_you_mean
from hindsight.offline_store.pushed_rows import FEATURES_PRESENT, entry_id
from hindsight.online_sync.batching import MAX_GET_BATCH, backoff_delay, chunked, get_batch
from hindsight.online_sync.codec import (
    EXPIRES_ATTR,
    KEY_ATTR,
    ORDER_ATTR,
    PUSH_WRITER,
    SYNC_WRITER,
    WRITER_ATTR,
    check_item_size,
    encoder,
    entity_key,
    order_key,
    to_micros,
)
from hindsight.core.durations import format_duration, parse_duration
from hindsight.online_sync.config import OnlineStoreConfig, shared_client, store_error
from hindsight.online_sync.journal import Journal, now_us, view_target
from hindsight.registry_sync.model import FeatureView, Registry

#: How far ahead of this machine's clock a pushed event (or created) time may be.
MAX_FUTURE_SKEW_ENV = "HINDSIGHT_PUSH_MAX_FUTURE_SKEW"
DEFAULT_MAX_FUTURE_SKEW = dt.timedelta(minutes=5)


def max_future_skew(environ: Mapping[str, str] | None = None) -> dt.timedelta:
    """The push clock-skew bound: HINDSIGHT_PUSH_MAX_FUTURE_SKEW ('5m', '1h', ...) or 5 minutes.

    >>> max_future_skew({"HINDSIGHT_PUSH_MAX_FUTURE_SKEW": "90s"})
    datetime.timedelta(seconds=90)

    Raises:
        ValueError: naming the variable and the accepted form.
    """
    text = (os.environ if environ is None else environ).get(MAX_FUTURE_SKEW_ENV) or ""
    if not text.strip():
        return DEFAULT_MAX_FUTURE_SKEW
    try:
        return parse_duration(text)
    except ValueError as err:
        raise ValueError(f"{MAX_FUTURE_SKEW_ENV}: {err}") from None


@dataclass(frozen=True)
class FutureBound:
    """The newest event or created time a push accepts: `now` plus `skew`."""

    now: dt.datetime
    skew: dt.timedelta

    @property
    def latest(self) -> dt.datetime:
        return self.now + self.skew

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FutureBound:
        return cls(dt.datetime.now(dt.timezone.utc), max_future_skew(environ))


class FutureEventError(ValueError):
    """A pushed row's event or created time lies further ahead than the allowed skew."""

    def __init__(self, view: str, index: int, field: str, value: dt.datetime, bound: FutureBound):
        self.view, self.index, self.field = view, index, field
        super().__init__(
            f"push to {view!r}: row {index}: {field} {value.isoformat()} is more than "
            f"{format_duration(bound.skew)} in the future (latest accepted: "
            f"{bound.latest.isoformat(timespec='seconds')}); newest wins online, so it would hide every "
            f"real value until then. Fix the row's time, or raise {MAX_FUTURE_SKEW_ENV}"
        )


class PushRefused(ValueError):
    """A push to a view that cannot take pushed rows: an aggregation view, or one without `push: true`."""

    def __init__(self, view: str, reason: str = "aggregation", where: str = "") -> None:
        self.view, self.reason = view, reason
        if reason == "aggregation":
            message = (
                f"push to {view!r}: it is an aggregation feature view, whose online items hold tiles that "
                "`hindsight sync` builds from the view's Delta table; pushed rows cannot be added to "
                "them. Send the events to its stream source instead (`hindsight ingest`, POST /v1/ingest), "
                "or write them to the model's source, then run dbt and `hindsight sync`"
            )
        else:
            model = f" ({where})" if where else ""
            message = (
                f"push to {view!r}: the feature view does not take pushed rows: set config push=true on "
                f"its model{model} (and push_partial=true if a push may carry only some features), then "
                f"`dbt build --select {view}` and `hindsight apply`"
            )
        super().__init__(message)


class PushConflict(RuntimeError):
    """Other writers kept changing the entities of a partial push through every retry."""


@dataclass(frozen=True)
class PushReport:
    """What a `push` did."""

    view: str
    #: Rows given.
    rows: int
    #: Online items written (the newest row per entity, when nothing newer was online).
    written: int
    #: Rows not written online: an older row of the same entity in the push, or older than the
    #: online value (they are still journaled for the Delta table).
    stale: int
    seconds: float
    #: Rows journaled now: the flusher appends them to the view's Delta table.
    journaled: int = 0
    #: Rows already journaled (a retried push, or the same row twice): nothing new offline.
    duplicates: int = 0


@dataclass
class _Row:
    """One validated pushed row."""

    index: int
    key: str
    order: int
    #: The push-slot item this row alone would write (carried features only).
    item: dict[str, Any]
    #: The features the row carries (all of them unless the view takes partial pushes).
    present: tuple[str, ...]
    #: The row as the journal stores it, and its entry id (a digest of it).
    journal: dict[str, Any]
    entry_id: str


def _check_row(view: FeatureView, row: Mapping[str, Any], index: int) -> tuple[str, ...]:
    """Check a row's columns; returns the features it carries."""
    keys = [*view.join_keys, view.timestamp_field]
    features = [f.name for f in view.features]
    required = keys if view.push_partial else [*keys, *features]
    missing = [c for c in required if c not in row]
    if missing:
        raise ValueError(f"push to {view.name!r}: row {index} lacks columns {missing}")
    allowed = {*keys, *features, *([view.created_field] if view.created_field else []),
               # A row copied from the Delta table may carry its partition columns.
               *view.partition_columns}
    unknown = sorted(set(row) - allowed)
    if unknown:
        raise ValueError(
            f"push to {view.name!r}: row {index} has columns {unknown} that the view does not declare"
            f"{did_you_mean(unknown[0], sorted(allowed))}"
        )
    nulls = [c for c in keys if row[c] is None]
    if nulls:
        raise ValueError(f"push to {view.name!r}: row {index} has null {nulls}")
    present = tuple(f for f in features if f in row)
    if not present:
        raise ValueError(f"push to {view.name!r}: row {index} carries no feature (features: {', '.join(features)})")
    return present


def push_item(
    view: FeatureView, row: Mapping[str, Any], index: int = 0, bound: FutureBound | None = None
) -> tuple[str, int, dict[str, Any]]:
    """Validate one pushed row and build its push-slot item: (entity key, order, item).

    `bound`: the newest event/created time accepted (None: no bound). The item holds the
    features the row carries (every feature, unless the view takes partial pushes).

    Raises:
        ValueError: a column is missing, unknown or null where it may not be, or a value has the
            wrong type.
        FutureEventError: the event or created time lies after `bound.latest`.
    """
    row_ = _row(view, row, index, bound)
    return row_.key, row_.order, row_.item


def _row(view: FeatureView, row: Mapping[str, Any], index: int, bound: FutureBound | None) -> _Row:
    present = _check_row(view, row, index)
    try:
        event = to_micros(row[view.timestamp_field])
        created_value = row.get(view.created_field) if view.created_field else None
        created = None if created_value is None else to_micros(created_value)
        key = entity_key([row[k] for k in view.join_keys])
        order = order_key(event, created)
        item: dict[str, Any] = {KEY_ATTR: {"S": key}, WRITER_ATTR: {"S": PUSH_WRITER}, ORDER_ATTR: {"N": str(order)}}
        if view.ttl_seconds is not None:
            item[EXPIRES_ATTR] = {"N": str(event // 1_000_000 + view.ttl_seconds)}
        journal: dict[str, Any] = {k: _json_key(row[k]) for k in view.join_keys}
        journal[view.timestamp_field] = _from_micros(event).isoformat()
        if created is not None and view.created_field:
            journal[view.created_field] = _from_micros(created).isoformat()
        for feature in view.features:
            if feature.name not in present:
                if view.push_partial:
                    journal[feature.name] = None
                continue
            value = row[feature.name]
            journal[feature.name] = _json_value(feature.dtype, value)
            if value is not None:
                item[feature.name] = encoder(feature.dtype)(value)
        if view.push_partial:
            journal[FEATURES_PRESENT] = list(present)
    except (TypeError, ValueError, ArithmeticError) as err:
        raise ValueError(f"push to {view.name!r}: row {index}: {err}") from err
    if bound is not None:
        latest = to_micros(bound.latest)
        for field, micros in ((view.timestamp_field, event), (view.created_field, created)):
            if field is not None and micros is not None and micros > latest:
                raise FutureEventError(view.name, index, field, _from_micros(micros), bound)
    check_item_size(item, f"push to {view.name!r}, entity {key}")
    return _Row(index, key, order, item, present, journal, entry_id(journal))


def _json_key(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 12.0 from a JSON client or pandas is the entity 12, as online
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _json_value(dtype: str, value: Any) -> Any:
    """A feature value as the journal's JSON holds it (the flusher casts it to the table's type)."""
    if value is None:
        return None
    if dtype == "timestamp":
        return _from_micros(to_micros(value)).isoformat()
    if dtype == "date":
        return (value if isinstance(value, str) else value.isoformat())[:10]
    if dtype == "decimal":
        return str(value)
    if dtype in ("float32", "float64"):
        return float(value)
    if dtype in ("int32", "int64"):
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise TypeError(f"expected an integer, got {value!r}")
        return int(value)
    if dtype == "bool":
        if not isinstance(value, bool) and not hasattr(value, "item"):
            raise TypeError(f"expected true or false, got {value!r}")
        return bool(value)
    return str(value)


def _from_micros(micros: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=micros)


def _push_view(registry: Registry, name: str) -> FeatureView:
    by_name = {v.name: v for v in registry.feature_views}
    if name not in by_name:
        names = sorted(by_name)
        raise ValueError(f"no feature view named {name!r}{did_you_mean(name, names)}; known views: {names}")
    view = by_name[name]
    if view.is_aggregation:
        raise PushRefused(view.name)
    if not view.push:
        raise PushRefused(view.name, "config", view.original_file_path)
    return view


def push(
    registry: Registry,
    config: OnlineStoreConfig | None,
    view_name: str,
    rows: Iterable[Mapping[str, Any]],
    *,
    client: Any = None,
    bound: FutureBound | None = None,
) -> PushReport:
    """Write rows of a push view online (newest event wins) and to the journal, for its Delta table.

    Returns once every row is durable: online (where it is the entity's newest) and journaled.

    Args:
        registry: holds the view.
        config: the online store; default `OnlineStoreConfig.from_env()`.
        view_name: a feature view with config push=true (online or not: an offline-only view's
            rows are only journaled).
        rows: dicts with every join key, the timestamp field, every feature (None = null; a
            subset where the view has push_partial=true) and optionally the created field.
            Timestamps: datetimes (naive = UTC), ISO strings or epoch microseconds.
        client: a boto3 DynamoDB client to reuse.
        bound: the newest event/created time accepted; default now plus max_future_skew().

    Returns:
        A PushReport.

    Raises:
        ValueError: the view is unknown, or a row is malformed (all rows are checked before
            anything is written).
        PushRefused: the view is an aggregation view or lacks config push=true (a ValueError: a
            client's mistake, 4xx).
        FutureEventError: a row's event or created time lies beyond the bound (nothing written).
        OnlineStoreUnavailable: DynamoDB cannot be reached.
    """
    started = time.perf_counter()
    config = config or OnlineStoreConfig.from_env()
    view = _push_view(registry, view_name)
    bound = bound or FutureBound.from_env()
    checked = [_row(view, row, index, bound) for index, row in enumerate(rows)]
    client = client or shared_client(config)
    writer = _Writer(view, config, client)
    units = writer.units(checked)
    try:
        with ThreadPoolExecutor(config.write_threads) as pool:
            results = list(pool.map(writer.commit, _transactions(units)))
    except (BotoCoreError, ClientError) as err:
        raise store_error(err, f"push to {view.name!r} at {config.endpoint_url or 'AWS'}") from err
    written = sum(r[0] for r in results)
    journaled = sum(r[1] for r in results)
    return PushReport(view.name, len(checked), written, len(checked) - written, time.perf_counter() - started,
                      journaled=journaled, duplicates=len(checked) - journaled)


# ---------------------------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------------------------

#: DynamoDB's limits per TransactWriteItems: 100 items, 4 MB (a margin is kept for overhead).
MAX_TRANSACTION_ITEMS = 100
MAX_TRANSACTION_BYTES = 3_500_000
_MAX_ATTEMPTS = 12


@dataclass
class _Unit:
    """What must commit together: an entity's online write (its newest row) and journal entries."""

    key: str
    online: _Row | None
    entries: list[_Row]
    #: The entity's rows in this push, oldest first (partial views fold them all online).
    history: tuple[_Row, ...] = ()

    @property
    def size(self) -> int:
        return len(self.entries) + (0 if self.online is None else 2)

    @property
    def nbytes(self) -> int:
        online = 0 if self.online is None else 2 * sum(len(str(v)) + len(k) for k, v in self.online.item.items())
        return online + sum(len(json.dumps(e.journal, default=str)) + 200 for e in self.entries)


def _transactions(units: list[_Unit]) -> list[list[_Unit]]:
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


class _Writer:
    """Builds and commits one push's transactions."""

    def __init__(self, view: FeatureView, config: OnlineStoreConfig, client: Any) -> None:
        self.view = view
        self.client = client
        self.table = config.table_name(view.name)
        self.journal = Journal(config, client)
        self.target = view_target(view.name)

    def units(self, rows: list[_Row]) -> list[_Unit]:
        """One unit per entity (more when its journal entries overflow a transaction)."""
        by_entity: dict[str, list[_Row]] = {}
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
            room = MAX_TRANSACTION_ITEMS - (0 if online is None else 2)
            history = tuple(sorted(entity_rows, key=lambda r: r.order))
            units.append(_Unit(key, online, entity_rows[:room], history))
            for start in range(room, len(entity_rows), MAX_TRANSACTION_ITEMS):
                units.append(_Unit(key, None, entity_rows[start:start + MAX_TRANSACTION_ITEMS]))
        return units

    def commit(self, units: list[_Unit]) -> tuple[int, int]:
        """Commit one group: (online items written, journal entries written)."""
        entries = [e for u in units for e in u.entries]
        online = [u.online for u in units if u.online is not None]
        history = {u.key: u.history for u in units}
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
            owners: list[tuple[str, _Row]] = []
            seq = now_us()
            for entry in entries:
                transaction.append(self.journal.put_request(self.target, entry.entry_id, entry.journal, seq))
                owners.append(("journal", entry))
            for row, ops in writes:
                for op in ops:
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
                    # A whole row whose slot holds something newer: not written online.
                    newer = {id(row) for kind, row in failed if kind == "online"}
                    online = [row for row in online if id(row) not in newer]
                if not failed:
                    time.sleep(backoff_delay(attempt))  # a conflict with another transaction
        raise PushConflict(
            f"push to {self.view.name!r}: entities {sorted({r.key for r in online})[:10]} kept changing under "
            f"concurrent writes through {_MAX_ATTEMPTS} attempts; nothing of this group was written, retry it"
        )

    def _read(self, rows: list[_Row]) -> dict[tuple[str, str], dict[str, Any]]:
        """The sync and push items of the rows' entities, read consistently."""
        keys = [{KEY_ATTR: {"S": row.key}, WRITER_ATTR: {"S": writer}} for row in rows for writer in (SYNC_WRITER, PUSH_WRITER)]
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for chunk in chunked(keys, MAX_GET_BATCH):
            response = get_batch(self.client, {self.table: {"Keys": chunk, "ConsistentRead": True}})
            for item in response.get(self.table, []):
                found[(item[KEY_ATTR]["S"], item[WRITER_ATTR]["S"])] = item
        return found

    def _online_ops(self, row: _Row, current: dict[tuple[str, str], dict[str, Any]],
                    history: tuple[_Row, ...] = ()) -> list[dict[str, Any]] | None:
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
        synced, pushed = current.get((row.key, SYNC_WRITER)), current.get((row.key, PUSH_WRITER))
        base = None
        for item in (synced, pushed):  # the push slot wins a tie, as on reads
            if item is not None and (base is None or int(item[ORDER_ATTR]["N"]) >= int(base[ORDER_ATTR]["N"])):
                base = item
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
        return [
            {"Put": {"TableName": self.table, "Item": item, **_unchanged(pushed)}},
            {"ConditionCheck": {"TableName": self.table,
                                "Key": {KEY_ATTR: {"S": row.key}, WRITER_ATTR: {"S": SYNC_WRITER}}, **_unchanged(synced)}},
        ]


def _unchanged(item: dict[str, Any] | None) -> dict[str, Any]:
    """A condition that the slot still holds what was read (or still nothing)."""
    if item is None:
        return {"ConditionExpression": "attribute_not_exists(#o)", "ExpressionAttributeNames": {"#o": ORDER_ATTR}}
    return {"ConditionExpression": "#o = :o", "ExpressionAttributeNames": {"#o": ORDER_ATTR},
            "ExpressionAttributeValues": {":o": item[ORDER_ATTR]}}
