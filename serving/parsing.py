"""Turning a `POST /v1/features` body into a checked `FeatureRequest`, or a 4xx naming the problem."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hindsight.online_sync.codec import entity_key
from hindsight.registry_sync.model import FeatureView
from hindsight.serving.body import OutOfRangeNumber, json_type, show
from hindsight.serving.errors import ApiError
from hindsight.serving.plans import JoinKey, ReadPlan, RequestFieldSpec
from hindsight.serving.state import ServingState

BODY_FIELDS = ("feature_service", "features", "entities", "request_context", "include_metadata", "latency_budget_ms")
_BODY_FIELD_SET = frozenset(BODY_FIELDS)
#: The longest latency budget accepted: beyond it a budget is a mistake, not a budget.
MAX_BUDGET_MS = 60_000
#: What a converter returns for a value of the wrong type.
_INVALID = object()
#: DynamoDB's limit on a partition key value, in UTF-8 bytes.
MAX_KEY_BYTES = 2048
_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class FeatureRequest:
    """A validated feature request: a plan and the rows to run it on."""

    plan: ReadPlan
    #: One dict per row holding exactly the plan's join keys.
    entity_rows: list[dict[str, Any]]
    #: One dict per row holding the plan's request fields, converted to their dtypes.
    contexts: list[dict[str, Any]]
    #: True for the batch form (`entities` is a list).
    batch: bool
    include_metadata: bool
    #: Latency budget in seconds, or None for no budget.
    budget_s: float | None


def parse_feature_request(body: dict[str, Any], state: ServingState) -> FeatureRequest:
    """Check a feature request body against the registry and the plan it selects.

    Raises:
        ApiError: naming the first problem found.
    """
    extra = body.keys() - _BODY_FIELD_SET
    if extra:
        names = ", ".join(map(repr, sorted(extra)))
        raise ApiError(400, "unknown_field", f"unknown request field(s) {names}; accepted: {', '.join(BODY_FIELDS)}")
    plan = _plan(body, state)
    entities = body.get("entities")
    batch = isinstance(entities, list)
    if isinstance(entities, list):
        if len(entities) > state.config.max_batch_rows:
            raise ApiError(
                413,
                "batch_too_large",
                f"batch has {len(entities)} entity rows; the limit is {state.config.max_batch_rows}",
            )
        raw_rows = entities
    elif isinstance(entities, dict):
        raw_rows = [entities]
    else:
        raise ApiError(
            400,
            "invalid_entities",
            f"'entities' must be an object of join keys (or a list of them), got {json_type(entities)}",
        )
    rows = [_entity_row(raw, plan.join_keys, _where(batch, i)) for i, raw in enumerate(raw_rows)]
    _check_composite_keys(rows, plan, state, batch)
    contexts = _contexts(body.get("request_context"), plan, len(rows), batch)
    return FeatureRequest(plan, rows, contexts, batch, _include_metadata(body), _budget(body))


def _plan(body: dict[str, Any], state: ServingState) -> ReadPlan:
    service, features = body.get("feature_service"), body.get("features")
    if (service is None) == (features is None):
        raise ApiError(400, "invalid_request", "name exactly one of 'feature_service' or 'features'")
    if service is not None:
        return state.plan_for_service(service)
    if not isinstance(features, list):
        raise ApiError(
            400, "invalid_request", f"'features' must be a list of 'view:feature' names, got {json_type(features)}"
        )
    return state.plan_for_features(features)


def _where(batch: bool, index: int) -> str:
    return f"entities[{index}]" if batch else "entities"


def _key_int(value: Any) -> Any:
    if type(value) is int:
        return value
    # JavaScript and pandas clients send integer ids as 12.0: the same entity as 12.
    if type(value) is float and value.is_integer():
        return int(value)
    return _INVALID


def _key_str(value: Any) -> Any:
    return value if type(value) is str else _INVALID


def _out_of_range(dtype: str | None) -> str:
    low, high = _INT32 if dtype == "int32" else _INT64
    return f"is out of the {dtype or 'int64'} range [{low}, {high}]"


def _key_problem(value: Any, dtype: str | None) -> str | None:
    """Why a converted key value cannot name an entity in the store, or None."""
    if type(value) is int:
        low, high = _INT32 if dtype == "int32" else _INT64
        return None if low <= value <= high else _out_of_range(dtype)
    if not value:
        return "must not be empty (DynamoDB keys cannot be)"
    # UTF-8 takes at most 4 bytes a character: only long strings need encoding to be measured.
    if len(value) * 4 > MAX_KEY_BYTES and len(value.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        return f"is longer than the online store's {MAX_KEY_BYTES}-byte limit on keys"
    return None


def _key_int_or_str(value: Any) -> Any:
    return value if type(value) is str else _key_int(value)


_KEY_CONVERTERS: dict[str | None, Callable[[Any], Any]] = {
    None: _key_int_or_str,
    "int32": _key_int,
    "int64": _key_int,
    "string": _key_str,
}


def _entity_row(raw: Any, keys: tuple[JoinKey, ...], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid_entities", f"{where} must be an object of join keys, got {json_type(raw)}")
    row = {}
    for key in keys:
        if key.name not in raw:
            raise ApiError(
                400,
                "missing_join_key",
                f"{where} is missing join key {key.name!r} ({_key_type(key)}), needed by feature view(s) "
                + ", ".join(map(repr, key.views)),
            )
        value = _KEY_CONVERTERS.get(key.dtype, _key_str)(raw[key.name])
        if value is _INVALID:
            value = raw[key.name]
            if type(value) is OutOfRangeNumber and key.dtype != "string":
                message = f"{where}: join key {key.name!r} {_out_of_range(key.dtype)}, got {show(value)}"
                raise ApiError(400, "invalid_join_key", message)
            raise _wrong_type(
                "invalid_join_key", f"{where}: join key {key.name!r} must be {_key_type(key)}", value, key.dtype
            )
        problem = _key_problem(value, key.dtype)
        if problem:
            raise ApiError(400, "invalid_join_key", f"{where}: join key {key.name!r} {problem}, got {show(value)}")
        row[key.name] = value
    return row


def _check_composite_keys(rows: list[dict[str, Any]], plan: ReadPlan, state: ServingState, batch: bool) -> None:
    """Several join keys form one store key (see `online_sync.codec.entity_key`): bound it too."""
    for view in plan.store_features:
        found = state.registry.view(view)
        keys = found.join_keys if isinstance(found, FeatureView) else ()  # only feature views are read from the store
        if len(keys) < 2:
            continue
        for index, row in enumerate(rows):
            if len(entity_key([row[k] for k in keys]).encode("utf-8")) > MAX_KEY_BYTES:
                raise ApiError(
                    400,
                    "invalid_join_key",
                    f"{_where(batch, index)}: join keys {', '.join(map(repr, keys))} together are longer than "
                    f"the online store's {MAX_KEY_BYTES}-byte limit on keys (feature view {view!r})",
                )


def _key_type(key: JoinKey) -> str:
    return key.dtype or "an integer or a string"


def _contexts(raw: Any, plan: ReadPlan, count: int, batch: bool) -> list[dict[str, Any]]:
    if not plan.request_fields:
        if raw is not None and not isinstance(raw, (dict, list)):
            raise ApiError(400, "invalid_request_context", f"'request_context' must be an object, got {json_type(raw)}")
        return [{}] * count
    if raw is None:
        raw = {}
    if isinstance(raw, dict):
        context = _context(raw, plan.request_fields, "request_context")
        return [context] * count
    if not batch or not isinstance(raw, list):
        shape = "an object or a list of objects" if batch else "an object"
        raise ApiError(400, "invalid_request_context", f"'request_context' must be {shape}, got {json_type(raw)}")
    if len(raw) != count:
        raise ApiError(
            400,
            "invalid_request_context",
            f"'request_context' has {len(raw)} items but 'entities' has {count}: "
            "give one per row or one object for all",
        )
    return [_context(item, plan.request_fields, f"request_context[{i}]") for i, item in enumerate(raw)]


def _context(raw: Any, fields: tuple[RequestFieldSpec, ...], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid_request_context", f"{where} must be an object, got {json_type(raw)}")
    missing = [f for f in fields if f.name not in raw]
    if missing:
        views = sorted({v for f in missing for v in f.views})
        raise ApiError(
            400,
            "missing_request_field",
            f"{where} is missing request field(s) "
            + ", ".join(f"{f.name!r} ({f.dtype})" for f in missing)
            + ", needed by on-demand view(s) "
            + ", ".join(map(repr, views)),
            {"missing": [f.name for f in missing]},
        )
    return {f.name: _request_value(raw[f.name], f, where) for f in fields}


def _request_value(value: Any, field: RequestFieldSpec, where: str) -> Any:
    if value is None:
        return None
    convert = _CONVERTERS.get(field.dtype)
    converted = convert(value) if convert else value
    if converted is _INVALID:
        raise _wrong_type(
            "invalid_request_field", f"{where}: request field {field.name!r} must be {_expected(field.dtype)}",
            value, field.dtype,
        )
    return converted


def _wrong_type(code: str, rule: str, value: Any, dtype: str | None) -> ApiError:
    """The 400 for a value of the wrong type, with the nearest valid value when there is one.

    The nearest value is the ingest API's (`streams.validation.nearest_valid`): one rule for both.
    """
    from hindsight.streams.validation import nearest_valid

    message = f"{rule}, got {json_type(value)} {show(value)}"
    nearest = None if dtype is None else nearest_valid(value, dtype)
    if nearest is None:
        return ApiError(400, code, message)
    return ApiError(400, code, f"{message}; nearest valid value: {nearest}", {"nearest": nearest})


def _expected(dtype: str) -> str:
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        return f"{dtype} (an integer in [{low}, {high}])"
    if dtype in ("float32", "float64", "decimal"):
        return f"{dtype} (a finite number)"
    if dtype == "timestamp":
        return 'timestamp (an ISO 8601 string, e.g. "2026-01-31T12:00:00Z"; without an offset it is UTC)'
    if dtype == "date":
        return 'date (an ISO 8601 string, e.g. "2026-01-31")'
    return dtype



def _to_float(value: Any) -> Any:
    if type(value) is float:
        return value if math.isfinite(value) else _INVALID  # 1e999 parses as inf
    if type(value) is int and abs(value) <= _MAX_FLOAT_INT:
        return float(value)
    return _INVALID


_MAX_FLOAT_INT = 2**63  # beyond int64 a JSON integer is out of range here, and float() could overflow


def _int_in(low: int, high: int) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if type(value) is float and value.is_integer():
            value = int(value)  # 12.0 from a JavaScript or pandas client is 12, as for join keys
        return value if type(value) is int and low <= value <= high else _INVALID

    return convert


_INT_RANGES = {"int32": _INT32, "int64": _INT64}


def _to_str(value: Any) -> Any:
    return value if type(value) is str else _INVALID


def _to_bool(value: Any) -> Any:
    return value if type(value) is bool else _INVALID


def _to_timestamp(value: Any) -> Any:
    if type(value) is not str:
        return _INVALID
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return _INVALID
    # Timestamps are UTC everywhere; a naive one is read as UTC.
    return parsed.replace(tzinfo=dt.timezone.utc) if parsed.tzinfo is None else parsed.astimezone(dt.timezone.utc)


def _to_date(value: Any) -> Any:
    if type(value) is not str:
        return _INVALID
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return _INVALID


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "float32": _to_float,
    "float64": _to_float,
    "decimal": _to_float,
    "int32": _int_in(*_INT32),
    "int64": _int_in(*_INT64),
    "string": _to_str,
    "bool": _to_bool,
    "timestamp": _to_timestamp,
    "date": _to_date,
}


def _include_metadata(body: dict[str, Any]) -> bool:
    value = body.get("include_metadata", False)
    if type(value) is not bool:
        raise ApiError(400, "invalid_request", f"'include_metadata' must be true or false, got {json_type(value)}")
    return value


def _budget(body: dict[str, Any]) -> float | None:
    value = body.get("latency_budget_ms")
    if value is None:
        return None
    if type(value) not in (int, float) or not 0 < value <= MAX_BUDGET_MS:
        raise ApiError(
            400,
            "invalid_request",
            f"'latency_budget_ms' must be a number of milliseconds in (0, {MAX_BUDGET_MS}], got {show(value)}",
        )
    return value / 1000.0
