"""Ingest: events of a stream source into the online tiles and the journal, exactly once, durably.

`Ingestor(registry, config).ingest(source, rows)` validates the rows (streams.validation), then
commits every new event in ONE DynamoDB TransactWriteItems together with:

- its journal entry (online_sync.journal), conditional on the event id's key being new: the
  event's durable copy until the flusher stores it in the event log, and its dedupe record;
- the updated item of every online aggregation view over the source that the event touches (the
  view's SQL run over the batch, streams.transform), conditional on the `_hs_version` read before
  (optimistic concurrency with other ingests and with sync).

Events go in groups, sorted by entity, of as many as fit one transaction: events + views x
entities <= 100 items (DynamoDB's limit, checked again after the transform); a transaction never
names an item twice (one journal entry per event id, one item per view and entity holding all of
the group's events). The groups of one call commit in parallel (`write_threads`). Per group: one consistent BatchGetItem
reads the journal keys and the items; known event ids are duplicates; the rest are merged into
their tiles (online_sync.tile_merge) and written. A transaction canceled because a journal key
exists drops those events as duplicates and redoes the rest; one canceled by a version conflict
(another writer updated an item in between) re-reads and redoes. `ingest` returns only after
every group committed: the returned report is the acknowledgement. A ClientRequestToken makes
botocore's own retry of a transaction that did commit (a timeout) succeed instead of counting
its events as duplicates.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError

from hindsight.online_sync.batching import get_batch
from hindsight.online_sync.codec import KEY_ATTR, SYNC_WRITER, VERSION_ATTR, WRITER_ATTR, entity_key, to_micros
from hindsight.online_sync.config import OnlineStoreConfig, OnlineStoreUnavailable, shared_client, store_error
from hindsight.online_sync.journal import Journal, entry_key, now_us, source_target
from hindsight.online_sync.tile_items import item_bytes
from hindsight.online_sync.tile_merge import EntityTiles, TileLayout, add_events, decode_item, encode_item
from hindsight.registry_sync.model import FeatureView, Registry, StreamSource
from hindsight.streams.transform import StreamTransform, run_transform
from hindsight.streams.validation import validate

#: DynamoDB's limits per transaction: 100 items, 4 MB in all.
MAX_TRANSACTION_ITEMS = 100
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
#: Attempts per group before a conflict that never clears is reported.
_MAX_ATTEMPTS = 40


@dataclass(frozen=True)
class IngestReport:
    """What an `ingest` call did; returned once all of it is durable."""

    #: The stream source's full name ("streams.transactions").
    source: str
    #: Rows given.
    received: int
    #: New events: now in the online tiles and the journal.
    accepted: int
    #: Event ids seen before (in the journal) or repeated in the call.
    duplicates: int
    seconds: float


@dataclass(frozen=True)
class _ViewPlan:
    view: FeatureView
    table: str
    layout: TileLayout
    transform: StreamTransform


@dataclass(frozen=True)
class _SourcePlan:
    stream: StreamSource
    target: str
    views: tuple[_ViewPlan, ...]


class IngestConflict(OnlineStoreUnavailable):
    """A group's transaction kept being canceled by concurrent writers through every attempt."""


class Ingestor:
    """Ingests events of the registry's stream sources; one per process, shared by threads."""

    def __init__(self, registry: Registry, config: OnlineStoreConfig, client: Any | None = None) -> None:
        self.registry = registry
        self.config = config
        self.client = client or shared_client(config)
        self.journal = Journal(config, self.client)
        self._plans: dict[str, _SourcePlan] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def plan(self, source: str) -> _SourcePlan:
        """The source and the views it feeds (parsed once per Ingestor, i.e. per registry version).

        Raises:
            KeyError: no such stream source (naming the known ones).
            StreamTransformError: a view's SQL cannot run per batch.
        """
        plan = self._plans.get(source)
        if plan is None:
            stream = self.registry.stream_source(source)
            views = tuple(
                _ViewPlan(v, self.config.table_name(v.name), TileLayout.for_view(v), StreamTransform(v, stream))
                for v in self.registry.feature_views
                if v.stream_source == stream.name and v.online and v.is_aggregation
            )
            plan = _SourcePlan(stream, source_target(stream.name), views)
            with self._lock:
                self._plans[source] = self._plans[stream.name] = plan
        return plan

    def ingest(self, source: str, rows: Any) -> IngestReport:
        """Ingest `rows` (a list of dicts, a DataFrame or an Arrow table) into stream source `source`.

        Returns:
            An IngestReport, once every new event is in the journal and the online tiles.

        Raises:
            KeyError: no such stream source.
            IngestValidationError: a row does not match the source's schema (nothing is written).
            OnlineStoreUnavailable: DynamoDB cannot be reached, a table is missing, or conflicts
                never cleared; groups committed before the failure stay committed (ingesting the
                same rows again is safe: they count as duplicates).
        """
        started = time.perf_counter()
        plan = self.plan(source)
        checked = validate(plan.stream, rows)
        groups = _groups(plan, checked.table)
        if len(groups) <= 1:
            accepted = sum(self._commit(plan, group) for group in groups)
        else:
            accepted = sum(self._executor().map(lambda group: self._commit(plan, group), groups))
        return IngestReport(plan.stream.name, checked.received, accepted, checked.received - accepted,
                            time.perf_counter() - started)

    def _executor(self) -> ThreadPoolExecutor:
        """The threads that commit the groups of a large call in parallel (shared by all calls)."""
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.config.write_threads, thread_name_prefix="ingest")
        return self._pool

    def close(self) -> None:
        """Stop the commit threads (the client needs no closing)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- one group ------------------------------------------------------------------------------

    def _commit(self, plan: _SourcePlan, events: pa.Table) -> int:
        """Commit one group's new events; returns how many were new."""
        id_field = plan.stream.event_id_field
        for attempt in range(_MAX_ATTEMPTS):
            if events.num_rows == 0:
                return 0
            ids = [_entry_id(v) for v in events.column(id_field).to_pylist()]
            updates = [(view, _entity_events(view, run_transform(view.transform, events))) for view in plan.views]
            touched = len(ids) + sum(len(entities) for _, entities in updates)
            if touched > MAX_TRANSACTION_ITEMS:
                if events.num_rows == 1:
                    raise ValueError(
                        f"ingest into {plan.stream.name!r}: event {ids[0]!r} touches {touched - 1} online items, more "
                        f"than one DynamoDB transaction holds ({MAX_TRANSACTION_ITEMS}); a stream-fed view's SQL must "
                        "give at most one row per event")
                half = events.num_rows // 2
                return self._commit(plan, events.slice(0, half)) + self._commit(plan, events.slice(half))
            found = self._read(plan, ids, updates)
            known = {i for i, entry_id in enumerate(ids) if entry_key(plan.target, entry_id) in found["journal"]}
            if known:
                events = _drop(events, known)
                continue  # the transform's rows no longer match: run it again without them
            transaction, size = self._transaction(plan, events, ids, updates, found["items"])
            if size > MAX_TRANSACTION_BYTES and events.num_rows > 1:
                half = events.num_rows // 2
                return self._commit(plan, events.slice(0, half)) + self._commit(plan, events.slice(half))
            try:
                self.client.transact_write_items(TransactItems=transaction, ClientRequestToken=str(uuid.uuid4()))
                return events.num_rows
            except ClientError as err:
                if err.response["Error"]["Code"] != "TransactionCanceledException":
                    raise store_error(err, f"ingest into {plan.stream.name!r}") from err
                reasons = err.response.get("CancellationReasons") or []
                duplicates = {i for i, reason in enumerate(reasons[:len(ids)])
                              if reason.get("Code") == "ConditionalCheckFailed"}
                if duplicates:
                    events = _drop(events, duplicates)
                    continue
                time.sleep(random.uniform(0, min(0.5, 0.005 * 2 ** attempt)))
            except BotoCoreError as err:
                raise store_error(err, f"ingest into {plan.stream.name!r}") from err
        raise IngestConflict(
            f"ingest into {plan.stream.name!r}: {events.num_rows} event(s) kept conflicting with other writers "
            f"through {_MAX_ATTEMPTS} attempts; nothing of this group was written, retry it")

    def _read(self, plan: _SourcePlan, ids: list[str],
              updates: list[tuple[_ViewPlan, dict[str, list[tuple[int, dict[str, Any]]]]]]) -> dict[str, Any]:
        """The journal keys that exist and the current items, in one consistent BatchGetItem."""
        request: dict[str, Any] = {self.journal.table: {
            "Keys": [self.journal.key_attrs(plan.target, i) for i in ids], "ConsistentRead": True,
            "ProjectionExpression": "#k", "ExpressionAttributeNames": {"#k": KEY_ATTR}}}
        for view, entities in updates:
            if entities:
                request[view.table] = {"ConsistentRead": True, "Keys": [
                    {KEY_ATTR: {"S": key}, WRITER_ATTR: {"S": SYNC_WRITER}} for key in entities]}
        try:
            response = get_batch(self.client, request)
        except (BotoCoreError, ClientError) as err:
            raise store_error(err, f"ingest into {plan.stream.name!r}") from err
        journal = {item[KEY_ATTR]["S"] for item in response.get(self.journal.table, [])}
        items: dict[tuple[str, str], dict[str, Any]] = {}
        for view, _ in updates:
            for item in response.get(view.table, []):
                items[(view.table, item[KEY_ATTR]["S"])] = item
        return {"journal": journal, "items": items}

    def _transaction(self, plan: _SourcePlan, events: pa.Table, ids: list[str],
                     updates: list[tuple[_ViewPlan, dict[str, list[tuple[int, dict[str, Any]]]]]],
                     items: dict[tuple[str, str], dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        seq = now_us()
        transaction = [self.journal.put_request(plan.target, entry_id, row, seq)
                       for entry_id, row in zip(ids, events.to_pylist())]
        size = sum(len(t["Put"]["Item"]["_hs_row"]["S"]) + 200 for t in transaction)
        for view, entities in updates:
            for key, entity_events in entities.items():
                held = items.get((view.table, key))
                current = decode_item(view.layout, held) if held is not None else EntityTiles()
                updated = add_events(view.layout, current, entity_events)
                item = encode_item(view.view, view.layout, key, updated)
                if item is None:  # every tile out of the window (late events only): leave the item
                    continue
                transaction.append(_conditional_put(view.table, item, None if held is None else current.version))
                size += item_bytes(item)
        return transaction, size


def _conditional_put(table: str, item: dict[str, Any], version: int | None) -> dict[str, Any]:
    """A Put of a tile item, conditional on the item being as read (absent, or at `version`)."""
    put: dict[str, Any] = {"TableName": table, "Item": item, "ExpressionAttributeNames": {"#k": KEY_ATTR}}
    if version is None:
        put["ConditionExpression"] = "attribute_not_exists(#k)"
    elif version == 0:
        put["ConditionExpression"] = "attribute_exists(#k) AND attribute_not_exists(#v)"
        put["ExpressionAttributeNames"]["#v"] = VERSION_ATTR
    else:
        put["ConditionExpression"] = "#v = :v"
        put["ExpressionAttributeNames"] = {"#v": VERSION_ATTR}
        put["ExpressionAttributeValues"] = {":v": {"N": str(version)}}
    return {"Put": put}


def _groups(plan: _SourcePlan, events: pa.Table) -> list[pa.Table]:
    """The call's events in transaction-sized groups, each entity's events together.

    Events are sorted by the source's join keys and packed while events + views x entities stays
    within a transaction's 100 items (views key their items on the source's entities in the usual
    case; `_commit` checks the real count after the transform and splits a group that is over).
    One entity per group where it can: groups then commit in parallel without contending.
    """
    if events.num_rows == 0:
        return []
    views = len(plan.views)
    keys = [entity_key(values) for values in zip(*(events.column(k).to_pylist() for k in plan.stream.join_keys))]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    groups: list[list[int]] = []
    current: list[int] = []
    entities: set[str] = set()
    for index in order:
        grown = len(entities | {keys[index]})
        if current and len(current) + 1 + views * grown > MAX_TRANSACTION_ITEMS:
            groups.append(current)
            current, entities = [], set()
        current.append(index)
        entities.add(keys[index])
    groups.append(current)
    return [events.take(pa.array(group, pa.int64())) for group in groups]


def _entry_id(value: Any) -> str:
    """An event id as journal text: the id's text form, so 12 and "12" are one event (as for keys)."""
    return entity_key([value])


def _drop(events: pa.Table, indices: set[int]) -> pa.Table:
    keep = [i for i in range(events.num_rows) if i not in indices]
    return events.take(pa.array(keep, pa.int64()))


def _entity_events(view: _ViewPlan, rows: pa.Table) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """The view's rows per entity key: (event time in epoch microseconds, input values).

    Rows without a join key or event time are in no tile (the offline materialization refuses a
    NULL join key, and a NULL time is in no window); they are kept in the event log all the same.
    """
    keys = view.view.join_keys
    ts = view.view.timestamp_field
    inputs = view.layout.input_columns
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for row in rows.to_pylist():
        moment = row[ts]
        key_values = [row[k] for k in keys]
        if moment is None or any(v is None for v in key_values):
            continue
        out.setdefault(entity_key(key_values), []).append((to_micros(moment), {c: row[c] for c in inputs}))
    return out

