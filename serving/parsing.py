"""Turning a `POST /v1/features` body into a checked `FeatureRequest`, or a 4xx naming the problem."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hindsight.serving import jsonio
from hindsight.serving.errors import ApiError
from hindsight.serving.plans import JoinKey, ReadPlan, RequestFieldSpec
from hindsight.serving.state import ServingState

BODY_FIELDS = ("feature_service", "features", "entities", "request_context", "include_metadata", "latency_budget_ms")
_BODY_FIELD_SET = frozenset(BODY_FIELDS)
#: The longest latency budget accepted: beyond it a budget is a mistake, not a budget.
MAX_BUDGET_MS = 60_000
#: What a converter returns for a value of the wrong type.
_INVALID = object()


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


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages.

    >>> json_type(True), json_type(3), json_type("x"), json_type(None)
    ('boolean', 'integer', 'string', 'null')
    """
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def parse_json_body(data: bytes, mimetype: str) -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        ApiError: 415 for another content type, 400 for malformed JSON or a non-object body.
    """
    if mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as JSON with 'Content-Type: application/json' (got {mimetype or 'no content type'!r})",
        )
    try:
        body = jsonio.loads(data)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError both subclass it
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", f"request body must be a JSON object, got {json_type(body)}")
    return body


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
            raise ApiError(
                400,
                "invalid_join_key",
                f"{where}: join key {key.name!r} must be {_key_type(key)}, got {json_type(value)} {value!r}",
            )
        row[key.name] = value
    return row


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
        raise ApiError(
            400,
            "invalid_request_field",
            f"{where}: request field {field.name!r} must be {field.dtype}, got {json_type(value)} {value!r}",
        )
    return converted



def _to_float(value: Any) -> Any:
    return float(value) if type(value) in (int, float) else _INVALID


def _to_int(value: Any) -> Any:
    return value if type(value) is int else _INVALID


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
    "int32": _to_int,
    "int64": _to_int,
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
            f"'latency_budget_ms' must be a number of milliseconds in (0, {MAX_BUDGET_MS}], got {value!r}",
        )
    return value / 1000.0
