"""The online store's read API (the contract `serving` codes against).

`OnlineStore.read` turns entity rows and view -> feature names into BatchGetItem calls: each entity
of each view is one key (its item, sort key "sync", which sync and push both write under
newest-wins: `online_sync.write_rule`), all of them in one call when they fit in 100 keys, the rest
in parallel calls; only the features asked for are projected. The registry's ttl decides EXPIRED at
read time.

An aggregation view's item (`online_sync.tile_items`) holds tiles, combined at `now`
(`online_sync.combine`). Without a tile in the longest window
it reads NOT_FOUND with count features 0 and the others None.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hindsight.online_sync.batching import MAX_GET_BATCH, RetriesExhausted, get_batch
from hindsight.online_sync.codec import (
    KEY_ATTR,
    ORDER_ATTR,
    SYNC_WRITER,
    WRITER_ATTR,
    decoder,
    entity_key,
    event_micros,
    micros_to_datetime,
)
from hindsight.online_sync.combine import CombinePlan
from hindsight.online_sync.config import OnlineStoreConfig, OnlineStoreUnavailable, make_client, store_error
from hindsight.online_sync.tables import ensure_tables
from hindsight.registry_sync.model import FeatureView, Registry

__all__ = ["OnlineStore", "OnlineStoreConfig", "OnlineStoreUnavailable", "ViewRead", "deadline_config", "ensure_tables"]

PRESENT = "PRESENT"
NOT_FOUND = "NOT_FOUND"
EXPIRED = "EXPIRED"

_PLAN_CACHE_SIZE = 1024
_SYNC = {"S": SYNC_WRITER}


@dataclass(frozen=True)
class ViewRead:
    """One view's values for one entity."""

    #: "PRESENT" | "NOT_FOUND" | "EXPIRED"
    status: str
    #: Feature name -> value (None for each when not PRESENT).
    values: dict[str, Any]
    #: Event time of the values, UTC (also set when EXPIRED).
    event_timestamp: dt.datetime | None


@dataclass(frozen=True)
class _ViewPlan:
    """How to read some features of one view: built once per (view, features) and cached."""

    view: FeatureView
    table: str
    features: tuple[str, ...]
    decoders: tuple[tuple[str, Any], ...]
    projection: str
    attribute_names: dict[str, str]
    #: Aggregation views: how to combine the item's tiles at the request time.
    combine: CombinePlan | None = None


def _plan(view: FeatureView, table: str, features: tuple[str, ...]) -> _ViewPlan:
    if view.is_aggregation:
        combine = CombinePlan.build(view, features)
        names = {f"#a{i}": n for i, n in enumerate((KEY_ATTR, WRITER_ATTR, ORDER_ATTR, *combine.attributes))}
        return _ViewPlan(view, table, features, (), ", ".join(names), names, combine)
    decoders = []
    for name in features:
        try:
            decoders.append((name, decoder(view.feature(name).dtype)))
        except KeyError:
            raise KeyError(f"feature view {view.name!r} has no feature {name!r}") from None
    # Every name goes through ExpressionAttributeNames: feature names may be DynamoDB reserved words.
    names = {f"#a{i}": n for i, n in enumerate((KEY_ATTR, ORDER_ATTR, *dict.fromkeys(features)))}
    return _ViewPlan(view, table, features, tuple(decoders), ", ".join(names), names)


class OnlineStore:
    """Reads feature values from DynamoDB; one per process, shared by threads."""

    def __init__(self, registry: Registry, config: OnlineStoreConfig | None = None, client: Any = None) -> None:
        self.registry = registry
        self.config = config or OnlineStoreConfig.from_env()
        self._client = client
        self._client_lock = threading.Lock()
        self._plans: dict[tuple[str, tuple[str, ...]], _ViewPlan] = {}
        self._pool: ThreadPoolExecutor | None = None

    @property
    def client(self) -> Any:
        """The boto3 client, created on first use (after a pre-forking server has forked)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    client = make_client(self.config)
                    client.meta.events.register("before-parse.dynamodb.BatchGetItem", _decode_items_once)
                    self._client = client
        return self._client

    def _view_plan(self, view_name: str, features: tuple[str, ...]) -> _ViewPlan:
        plan = self._plans.get((view_name, features))
        if plan is None:
            try:
                view = self.registry.view(view_name)
            except KeyError:
                raise KeyError(f"no feature view named {view_name!r}") from None
            if not isinstance(view, FeatureView):
                raise KeyError(f"{view_name!r} is an on-demand view: it is computed at request time, not stored")
            if not view.online:
                raise ValueError(f"feature view {view_name!r} is not online (set online: true in its config)")
            plan = _plan(view, self.config.table_name(view.name), features)
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            self._plans[(view_name, features)] = plan
        return plan

    def read(
        self,
        entity_rows: list[dict[str, Any]],
        features: dict[str, list[str]],
        now: dt.datetime | None = None,
        deadline: float | None = None,
    ) -> list[dict[str, ViewRead]]:
        """The newest values of some features for some entities.

        Args:
            entity_rows: one dict per entity, join-key name -> value (extra keys are ignored).
            features: view name -> feature names to read.
            now: the reference time for ttl and the request time aggregation views combine their
                tiles at (default: the current time, UTC).
            deadline: a `time.perf_counter()` value after which throttled keys are not resent
                (the call itself is bounded by the client's timeouts: see `deadline_config`).

        Returns:
            For each entity row, view name -> ViewRead.

        Raises:
            KeyError: a row lacks a join key a view needs, or a view or feature is unknown.
            ValueError: a view is not online.
            OnlineStoreUnavailable: DynamoDB cannot be reached or a table is missing.
        """
        now = now or dt.datetime.now(dt.timezone.utc)
        return self._read(entity_rows, features, now, enforce_ttl=True, deadline=deadline)

    def _read(self, entity_rows: list[dict[str, Any]], features: dict[str, list[str]], now: dt.datetime | None,
              enforce_ttl: bool, deadline: float | None = None) -> list[dict[str, ViewRead]]:
        plans = [self._view_plan(name, tuple(names)) for name, names in features.items()]
        row_keys = [[_row_key(row, i, plan.view) for plan in plans] for i, row in enumerate(entity_rows)]
        wanted = list(dict.fromkeys((plan.table, keys[j]) for keys in row_keys for j, plan in enumerate(plans)))
        found = self._fetch(wanted, {plan.table: plan for plan in plans}, deadline)
        now_us = None if now is None else _utc_micros(now)
        return [
            {plan.view.name: _view_read(plan, found.get((plan.table, keys[j])), now_us, enforce_ttl)
             for j, plan in enumerate(plans)}
            for keys in row_keys
        ]

    def _fetch(self, wanted: list[tuple[str, str]], plans: dict[str, _ViewPlan],
               deadline: float | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        """The item of each (table, entity key) found."""
        requests = list(_requests(wanted, plans))
        try:
            if len(requests) <= 1:
                responses = [get_batch(self.client, r, deadline) for r in requests]
            else:
                responses = list(self._executor().map(lambda r: get_batch(self.client, r, deadline), requests))
        except (BotoCoreError, ClientError, RetriesExhausted) as err:
            raise store_error(err, f"reading the online store at {self.config.endpoint_url or 'AWS'}") from err
        return {(table, item[KEY_ATTR]["S"]): item
                for response in responses for table, items in response.items() for item in items}

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._client_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="online-read")
        return self._pool

    def warm(self) -> None:
        """Make one BatchGetItem and one ListTables, answered or not; never raises.

        botocore builds each operation's serializer, endpoint resolution and signer on the
        operation's first call, holding the GIL for tens of milliseconds (much longer on a busy
        machine). A server calls this after forking so that its first requests do not pay it.
        """
        view = next((v for v in self.registry.feature_views if v.online), None)
        try:
            self.client.list_tables(Limit=1)
            if view is not None:
                key = {KEY_ATTR: {"S": "hindsight-warm-up"}, WRITER_ATTR: {"S": SYNC_WRITER}}
                self.client.batch_get_item(RequestItems={self.config.table_name(view.name): {"Keys": [key]}})
        except Exception:  # noqa: BLE001 - a store that is down or not set up is found by real reads
            pass

    def ping(self) -> bool:
        """Whether DynamoDB answers (for a readiness probe); never raises."""
        try:
            self.client.list_tables(Limit=1)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False

    def close(self) -> None:
        """Stop the read threads (the client needs no closing)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


def _decode_items_once(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """botocore `before-parse` hook: a successful BatchGetItem's body decoded with `json.loads` alone.

    DynamoDB's JSON wire format is already the low-level client's output shape (`{"N": "12"}`), and
    botocore's shape-walking parser cost ~0.06 ms per item, a third of a 10-entity read's CPU
    (measured on DynamoDB Local). The body is handed over decoded and emptied for the parser, whose
    result the decoded dict then updates. Errors (status != 200) go through botocore's parser as
    before. The one difference, binary attributes staying base64 text, never arises: `codec` writes
    no binary attributes.
    """
    if response_dict.get("status_code") == 200 and response_dict.get("body"):
        customized_response_dict.update(json.loads(response_dict["body"]))
        response_dict["body"] = b"{}"


def deadline_config(config: OnlineStoreConfig, deadline_s: float) -> OnlineStoreConfig:
    """The client settings of a store read under a per-request deadline (the serving API's).

    botocore's timeouts and retries apply per call, not per request: connect and read timeouts of
    the whole deadline and a single attempt keep one call from outliving the request that waits on
    it (a retry after a timeout would start past the deadline; botocore's backoff alone is longer).

    >>> c = deadline_config(OnlineStoreConfig(), 0.5)
    >>> (c.connect_timeout_s, c.read_timeout_s, c.max_attempts)
    (0.5, 0.5, 1)
    """
    return dataclasses.replace(config, connect_timeout_s=deadline_s, read_timeout_s=deadline_s, max_attempts=1)


def _row_key(row: dict[str, Any], index: int, view: FeatureView) -> str:
    try:
        values = [row[k] for k in view.join_keys]
    except KeyError as err:
        raise KeyError(
            f"entity row {index} lacks join key {err.args[0]!r}, which feature view {view.name!r} needs"
        ) from None
    try:
        return entity_key(values)
    except ValueError as err:
        raise KeyError(f"entity row {index}: {err} (feature view {view.name!r})") from None


def _requests(wanted: list[tuple[str, str]], plans: dict[str, _ViewPlan]) -> Iterator[dict[str, Any]]:
    """BatchGetItem RequestItems of at most 100 keys (one per view and entity)."""
    request: dict[str, Any] = {}
    keys = 0
    for table, key in wanted:
        plan = plans[table]
        if keys == MAX_GET_BATCH:
            yield request
            request, keys = {}, 0
        entry = request.get(table)
        if entry is None:
            entry = request[table] = {
                "Keys": [],
                "ProjectionExpression": plan.projection,
                "ExpressionAttributeNames": plan.attribute_names,
            }
        entry["Keys"].append({KEY_ATTR: {"S": key}, WRITER_ATTR: _SYNC})
        keys += 1
    if request:
        yield request


def _order(item: dict[str, Any]) -> int:
    return int(item[ORDER_ATTR]["N"])


def _utc_micros(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _view_read(plan: _ViewPlan, item: dict[str, Any] | None, now_us: int | None, enforce_ttl: bool) -> ViewRead:
    if plan.combine is not None:
        return _aggregation_read(plan.combine, item, now_us)
    if item is None:
        return ViewRead(NOT_FOUND, dict.fromkeys(plan.features), None)
    event_us = event_micros(_order(item))
    event_time = micros_to_datetime(event_us)
    ttl = plan.view.ttl_seconds
    if enforce_ttl and ttl is not None and now_us is not None and event_us < now_us - ttl * 1_000_000:
        return ViewRead(EXPIRED, dict.fromkeys(plan.features), event_time)
    values = {}
    for name, decode in plan.decoders:
        attr = item.get(name)
        values[name] = None if attr is None else decode(attr)
    return ViewRead(PRESENT, values, event_time)


def _aggregation_read(combine: CombinePlan, item: dict[str, Any] | None, now_us: int | None) -> ViewRead:
    """An aggregation view's values at `now_us`: NOT_FOUND (counts 0) without a tile in the window."""
    combined = None if item is None or now_us is None else combine.combine(item, now_us)
    if combined is None:
        return ViewRead(NOT_FOUND, combine.empty_values(), None)
    values, newest = combined
    return ViewRead(PRESENT, values, newest)
