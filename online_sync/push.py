"""`push`: write rows straight to the online store, newest event winning over whatever is there.

Pushed rows go to the entity's push slot (writer "push") with one conditional PutItem each: the put
lands only if the slot holds nothing newer (`_hs_order <= :new`), so pushes racing each other or a
sync converge on the newest event. The offline half (appending to the Delta table) is a later
issue; it will grow here, behind the same function.

Event (and created) times may lie at most `max_future_skew` ahead of the pushing machine's clock
(HINDSIGHT_PUSH_MAX_FUTURE_SKEW, default 5m): newest wins, so one far-future row would otherwise
hold its entity's online value until real time caught up with it.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from hindsight.online_sync.codec import (
    EXPIRES_ATTR,
    KEY_ATTR,
    ORDER_ATTR,
    PUSH_WRITER,
    WRITER_ATTR,
    check_item_size,
    encoder,
    entity_key,
    order_key,
    to_micros,
)
from hindsight.core.durations import format_duration, parse_duration
from hindsight.online_sync.config import OnlineStoreConfig, shared_client, store_error
from hindsight.online_sync.tables import online_views
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
    """A push to a view that cannot take pushed rows (an aggregation view: its items are tiles)."""

    def __init__(self, view: str) -> None:
        self.view = view
        super().__init__(
            f"push to {view!r}: it is an aggregation feature view, whose online items hold tiles that "
            "`hindsight sync` builds from the view's Delta table; pushed rows cannot be added to "
            "them (streaming events into aggregation views is not supported yet). Write the events to "
            "the model's source, then run dbt and `hindsight sync`"
        )


@dataclass(frozen=True)
class PushReport:
    """What a `push` did."""

    view: str
    #: Rows given.
    rows: int
    #: Items written (the newest row per entity, when nothing newer was online).
    written: int
    #: Rows dropped: an older duplicate in the push, or older than the online value.
    stale: int
    seconds: float


def _check_row(view: FeatureView, row: Mapping[str, Any], index: int) -> None:
    required = [*view.join_keys, view.timestamp_field, *(f.name for f in view.features)]
    missing = [c for c in required if c not in row]
    if missing:
        raise ValueError(f"push to {view.name!r}: row {index} lacks columns {missing}")
    allowed = {*required, *([view.created_field] if view.created_field else []),
               # A row copied from the Delta table may carry its partition columns.
               *view.partition_columns}
    unknown = sorted(set(row) - allowed)
    if unknown:
        raise ValueError(f"push to {view.name!r}: row {index} has columns {unknown} that the view does not declare")
    nulls = [c for c in (*view.join_keys, view.timestamp_field) if row[c] is None]
    if nulls:
        raise ValueError(f"push to {view.name!r}: row {index} has null {nulls}")


def push_item(
    view: FeatureView, row: Mapping[str, Any], index: int = 0, bound: FutureBound | None = None
) -> tuple[str, int, dict[str, Any]]:
    """Validate one pushed row and build its push-slot item: (entity key, order, item).

    `bound`: the newest event/created time accepted (None: no bound).

    Raises:
        ValueError: a column is missing, unknown or null where it may not be, or a value has the
            wrong type.
        FutureEventError: the event or created time lies after `bound.latest`.
    """
    _check_row(view, row, index)
    try:
        event = to_micros(row[view.timestamp_field])
        created_value = row.get(view.created_field) if view.created_field else None
        created = None if created_value is None else to_micros(created_value)
        key = entity_key([row[k] for k in view.join_keys])
        order = order_key(event, created)
        item: dict[str, Any] = {KEY_ATTR: {"S": key}, WRITER_ATTR: {"S": PUSH_WRITER}, ORDER_ATTR: {"N": str(order)}}
        if view.ttl_seconds is not None:
            item[EXPIRES_ATTR] = {"N": str(event // 1_000_000 + view.ttl_seconds)}
        for feature in view.features:
            value = row[feature.name]
            if value is not None:
                item[feature.name] = encoder(feature.dtype)(value)
    except (TypeError, ValueError, ArithmeticError) as err:
        raise ValueError(f"push to {view.name!r}: row {index}: {err}") from err
    if bound is not None:
        latest = to_micros(bound.latest)
        for field, micros in ((view.timestamp_field, event), (view.created_field, created)):
            if field is not None and micros is not None and micros > latest:
                raise FutureEventError(view.name, index, field, _from_micros(micros), bound)
    check_item_size(item, f"push to {view.name!r}, entity {key}")
    return key, order, item


def _from_micros(micros: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=micros)


def _newest_per_entity(
    view: FeatureView, rows: Iterable[Mapping[str, Any]], bound: FutureBound | None = None
) -> tuple[int, dict[str, tuple[int, dict[str, Any]]]]:
    newest: dict[str, tuple[int, dict[str, Any]]] = {}
    count = 0
    for index, row in enumerate(rows):
        count += 1
        key, order, item = push_item(view, row, index, bound)
        # A later row of the same push wins a tie: it is the caller's latest word on that event.
        if key not in newest or newest[key][0] <= order:
            newest[key] = (order, item)
    return count, newest


def _put_if_newest(client: Any, table: str, order: int, item: dict[str, Any]) -> bool:
    try:
        client.put_item(
            TableName=table,
            Item=item,
            ConditionExpression="attribute_not_exists(#o) OR #o <= :o",
            ExpressionAttributeNames={"#o": ORDER_ATTR},
            ExpressionAttributeValues={":o": {"N": str(order)}},
        )
        return True
    except ClientError as err:
        if err.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise


def push(
    registry: Registry,
    config: OnlineStoreConfig | None,
    view_name: str,
    rows: Iterable[Mapping[str, Any]],
    *,
    client: Any = None,
    bound: FutureBound | None = None,
) -> PushReport:
    """Write rows to a view's online store; an older row never replaces a newer one.

    Args:
        registry: holds the view.
        config: the online store; default `OnlineStoreConfig.from_env()`.
        view_name: an online feature view.
        rows: dicts with every join key, the timestamp field, every feature (None = null) and
            optionally the created field. Timestamps: datetimes (naive = UTC), ISO strings or
            epoch microseconds.
        client: a boto3 DynamoDB client to reuse.
        bound: the newest event/created time accepted; default now plus max_future_skew().

    Returns:
        A PushReport.

    Raises:
        ValueError: the view is unknown or not online, or a row is malformed (all rows are checked
            before anything is written).
        PushRefused: the view is an aggregation view (a ValueError: a client's mistake, 4xx).
        FutureEventError: a row's event or created time lies beyond the bound (nothing written).
        OnlineStoreUnavailable: DynamoDB cannot be reached.
    """
    started = time.perf_counter()
    config = config or OnlineStoreConfig.from_env()
    (view,) = online_views(registry, [view_name])
    if view.is_aggregation:
        raise PushRefused(view.name)
    count, newest = _newest_per_entity(view, rows, bound or FutureBound.from_env())
    client = client or shared_client(config)
    table = config.table_name(view.name)
    try:
        with ThreadPoolExecutor(config.write_threads) as pool:
            landed = list(pool.map(lambda entry: _put_if_newest(client, table, *entry), newest.values()))
    except (BotoCoreError, ClientError) as err:
        raise store_error(err, f"push to {view.name!r} at {config.endpoint_url or 'AWS'}") from err
    written = sum(landed)
    return PushReport(view.name, count, written, count - written, time.perf_counter() - started)
