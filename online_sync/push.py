"""`push`: rows of a push feature view, online at once and journaled for its Delta table.

Only views with config `push: true` take pushed rows (aggregation views never: their items are
tiles). For each entity, one DynamoDB TransactWriteItems holds the online write and the journal
entries (`online_sync.journal`, target "view:<name>") of that entity's rows, so an acknowledged
push is durable in both halves: the flusher (`streams.flush`) later appends the journaled rows to
the view's Delta table (`offline_store.pushed_rows`), where training sets see them.

- Online, the entity's newest row goes to the entity's one item (sort key "sync", which `sync`
  writes too), conditional on the item holding nothing newer (`_hs_order <= :new`); sync writes a
  push view's items under the same condition (`online_sync.write_rule`), so pushes racing each
  other or a sync converge on the newest event. A row older than what is online is not written
  online (counted stale), but is journaled all the same: it is history, and belongs in training sets.
- With `push_partial: true` a row may carry a subset of the features. Online, the new item is the
  entity's online item with the carried features replaced; the transaction checks that the item
  did not change since it was read, and retries otherwise. A partial row older than the online
  item changes nothing online (counted stale).
- The journal entry id is a digest of the row's content: a retried push finds its entries already
  journaled (counted as duplicates) and adds nothing offline.

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

from hindsight.core.arrow_types import ARROW_TYPES
from hindsight.core.suggest import did_you_mean
from hindsight.core.values import ValueProblem, converter
from hindsight.offline_store.pushed_rows import FEATURES_PRESENT, entry_id
from hindsight.online_sync.codec import (
    EXPIRES_ATTR,
    KEY_ATTR,
    ORDER_ATTR,
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
from hindsight.online_sync.push_transactions import PushConflict, PushedRow, Writer, transactions  # noqa: F401 (push raises PushConflict)
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
    """Validate one pushed row and build its online item: (entity key, order, item).

    `bound`: the newest event/created time accepted (None: no bound). The item holds the
    features the row carries (every feature, unless the view takes partial pushes).

    Raises:
        ValueError: a column is missing, unknown or null where it may not be, or a value has the
            wrong type.
        FutureEventError: the event or created time lies after `bound.latest`.
    """
    row_ = _row(view, row, index, bound)
    return row_.key, row_.order, row_.item


class PushValueError(ValueError):
    """A pushed row's value that is not of its column's type: names the row, the field, the rule and
    the nearest valid value (`hindsight.core.values`, the ingest API's rule)."""

    rule = "type"

    def __init__(self, view: str, index: int, field: str, problem: str, nearest: str | None = None) -> None:
        self.view, self.index, self.field, self.nearest = view, index, field, nearest
        text = f"push to {view!r}: row {index}: field {field!r}: {problem}"
        super().__init__(text + (f"; nearest valid value: {nearest}" if nearest else ""))


def _typed(view: FeatureView, row: Mapping[str, Any], index: int, present: tuple[str, ...]) -> dict[str, Any]:
    """The row with its join keys (where the registry knows their types) and features converted to
    their types, as the view's Delta table will hold them: a value the table cannot take is refused
    now, before anything is acknowledged, not by the flusher later."""
    dtypes = dict(zip(view.join_keys, view.join_key_dtypes)) if len(view.join_key_dtypes) == len(view.join_keys) else {}
    dtypes.update((f.name, f.dtype) for f in view.features if f.name in present)
    typed = dict(row)
    for name, dtype in dtypes.items():
        value = row.get(name)
        # A decimal's scale is its table's, which the registry does not record: the flusher casts it.
        if value is None or dtype not in ARROW_TYPES or dtype == "decimal":
            continue
        if dtype == "timestamp":  # as the event time: epoch microseconds too
            _micros(view, row, index, name)
            continue
        try:
            typed[name] = converter(dtype)(value)
        except ValueProblem as problem:
            raise PushValueError(view.name, index, name, problem.problem, problem.nearest) from None
    return typed


def _micros(view: FeatureView, row: Mapping[str, Any], index: int, field: str) -> int:
    try:
        return to_micros(row[field])
    except (TypeError, ValueError, OverflowError) as err:
        raise PushValueError(view.name, index, field, f"expected a timestamp (ISO-8601 text, a datetime or epoch "
                                                      f"microseconds): {err}", "'2026-11-30T17:00:00+00:00'") from None


def _row(view: FeatureView, row: Mapping[str, Any], index: int, bound: FutureBound | None) -> PushedRow:
    present = _check_row(view, row, index)
    row = _typed(view, row, index, present)
    event = _micros(view, row, index, view.timestamp_field)
    created_value = row.get(view.created_field) if view.created_field else None
    created = None if created_value is None or view.created_field is None else _micros(view, row, index, view.created_field)
    try:
        key = entity_key([row[k] for k in view.join_keys])
        order = order_key(event, created)
        item: dict[str, Any] = {KEY_ATTR: {"S": key}, WRITER_ATTR: {"S": SYNC_WRITER}, ORDER_ATTR: {"N": str(order)}}
        if view.ttl_seconds is not None:
            item[EXPIRES_ATTR] = {"N": str(event // 1_000_000 + view.ttl_seconds)}
        journal: dict[str, Any] = {k: _json_key(row[k]) for k in view.join_keys}
        journal[view.timestamp_field] = _from_micros(event).isoformat()
        if view.created_field:
            # Always the key, null or not: the flusher builds one table from the first row's keys.
            journal[view.created_field] = None if created is None else _from_micros(created).isoformat()
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
    return PushedRow(index, key, order, item, present, journal, entry_id(journal))


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
        PushConflict: a partial push's entities kept changing under concurrent writers (retry).
    """
    started = time.perf_counter()
    config = config or OnlineStoreConfig.from_env()
    view = _push_view(registry, view_name)
    bound = bound or FutureBound.from_env()
    checked = [_row(view, row, index, bound) for index, row in enumerate(rows)]
    client = client or shared_client(config)
    writer = Writer(view, config, client)
    units = writer.units(checked)
    try:
        with ThreadPoolExecutor(config.write_threads) as pool:
            results = list(pool.map(writer.commit, transactions(units)))
    except (BotoCoreError, ClientError) as err:
        raise store_error(err, f"push to {view.name!r} at {config.endpoint_url or 'AWS'}") from err
    written = sum(r[0] for r in results)
    journaled = sum(r[1] for r in results)
    return PushReport(view.name, len(checked), written, len(checked) - written, time.perf_counter() - started,
                      journaled=journaled, duplicates=len(checked) - journaled)
