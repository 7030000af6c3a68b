"""The OpenAPI 3.1 document of the serving API (`GET /openapi.json`).

Schemas are JSON Schema 2020-12, as OpenAPI 3.1 requires; the unit tests validate real responses
against them, so the document cannot drift from what the handlers answer.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from hindsight.serving.parsing import MAX_BUDGET_MS, MAX_KEY_BYTES
from hindsight.serving.reader import STATUSES

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {_JSON: media}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json_content(_ref("Error"))}


_ENTITY_ROW = {
    "type": "object",
    "description": "Join-key values of one entity row, e.g. {\"user_id\": 12, \"merchant_id\": 7}.",
    "additionalProperties": {"type": ["integer", "string"]},
}

_SCHEMAS: dict[str, Any] = {
    "FeatureRequest": {
        "type": "object",
        "description": "Name exactly one of feature_service or features. A list of entity rows is the batch form.",
        "properties": {
            "feature_service": {"type": "string", "description": "A feature service name."},
            "features": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "pattern": "^[^:]+:[^:]+$"},
                "description": "Features as 'view:feature', or 'view:*' for every feature of a view.",
            },
            "entities": {"oneOf": [_ref("EntityRow"), {"type": "array", "items": _ref("EntityRow")}]},
            "request_context": {
                "description": "Request fields of on-demand views: one object, or one per entity row.",
                "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
            },
            "include_metadata": {"type": "boolean", "default": False},
            "latency_budget_ms": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": MAX_BUDGET_MS,
                "description": "Answer within this budget; features not read in time are TIME_OUT.",
            },
        },
        "required": ["entities"],
        "oneOf": [{"required": ["feature_service"]}, {"required": ["features"]}],
        "additionalProperties": False,
    },
    "EntityRow": _ENTITY_ROW,
    "FeatureValues": {
        "type": "object",
        "description": "Output name -> value (null when not PRESENT, except an aggregation view's count "
                       "features: 0 without events).",
        "additionalProperties": {"type": ["string", "number", "integer", "boolean", "null"]},
    },
    "FeatureStatus": {
        "type": "object",
        "properties": {
            "status": {"enum": list(STATUSES)},
            "event_timestamp": {"type": ["string", "null"], "format": "date-time"},
        },
        "required": ["status", "event_timestamp"],
        "additionalProperties": False,
    },
    "FeatureResult": {
        "type": "object",
        "properties": {
            "features": _ref("FeatureValues"),
            "metadata": {"type": "object", "additionalProperties": _ref("FeatureStatus")},
        },
        "required": ["features"],
        "additionalProperties": False,
    },
    "BatchResult": {
        "type": "object",
        "properties": {"results": {"type": "array", "items": _ref("FeatureResult")}},
        "required": ["results"],
        "additionalProperties": False,
    },
    "Error": {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "description": "Stable, machine-readable: unknown_feature_service, ..."},
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                },
                "required": ["code", "message"],
                "additionalProperties": False,
            }
        },
        "required": ["error"],
        "additionalProperties": False,
    },
    "FeatureServiceSummary": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "owner": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "feature_count": {"type": "integer"},
            "servable": {"type": "boolean"},
        },
        "required": ["name", "feature_count", "servable"],
    },
    "FeatureServiceList": {
        "type": "object",
        "properties": {
            "feature_services": {"type": "array", "items": _ref("FeatureServiceSummary")},
            "registry_version": {"type": ["integer", "null"]},
        },
        "required": ["feature_services"],
        "additionalProperties": False,
    },
    "FeatureServiceSchema": {
        "allOf": [_ref("FeatureServiceSummary")],
        "type": "object",
        "properties": {
            "entities": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "join_keys": {"type": "array", "items": {"type": "string"}},
                        "description": {"type": "string"},
                    },
                    "required": ["name", "join_keys"],
                },
            },
            "join_keys": {"type": "array", "items": _ref("TypedName")},
            "request_fields": {"type": "array", "items": _ref("TypedName")},
            "features": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "description": "Name in responses (alias or view__feature)."},
                        "ref": {"type": "string", "description": "view:feature"},
                        "view": {"type": "string"},
                        "feature": {"type": "string"},
                        "dtype": {"type": "string"},
                        "description": {"type": "string"},
                        "on_demand": {"type": "boolean"},
                        "ttl_seconds": {"type": ["integer", "null"]},
                        "aggregation": {
                            "type": "object",
                            "description": "Aggregation features only: the value at the request time t "
                                           "aggregates the events in [floor(t, interval) + interval - window, t].",
                            "properties": {
                                "function": {"type": "string"},
                                "column": {"type": "string", "description": "The input column; '*' counts events."},
                                "window_seconds": {"type": "integer"},
                                "interval_seconds": {"type": "integer"},
                            },
                        },
                    },
                    "required": ["name", "ref"],
                },
            },
            "error": {"type": "object", "description": "Why the service cannot be served, if it cannot."},
        },
        "required": ["entities", "join_keys", "request_fields", "features"],
    },
    "TypedName": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "dtype": {"type": ["string", "null"], "description": "Registry type; null when not recorded."},
            "views": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "dtype"],
    },
    "IngestRequest": {
        "type": "object",
        "description": "Events of a stream source. Each row is one event: every declared column of the source "
                       "(its event id, event time and join keys must not be null). An event id already "
                       "ingested counts as a duplicate, so retrying a request is safe.",
        "properties": {
            "source": {"type": "string", "minLength": 1,
                       "description": "A stream source: its full name (\"streams.transactions\") or its table "
                                      "name when unique."},
            "rows": {"type": "array", "minItems": 1, "items": _ref("Row")},
        },
        "required": ["source", "rows"],
        "additionalProperties": False,
    },
    "IngestReport": {
        "type": "object",
        "description": "Answered once every event is durable (online tiles and journal committed).",
        "properties": {
            "source": {"type": "string", "description": "The stream source's full name."},
            "received": {"type": "integer", "minimum": 0, "description": "Rows in the request."},
            "accepted": {"type": "integer", "minimum": 0, "description": "New events: now online and journaled."},
            "duplicates": {"type": "integer", "minimum": 0,
                           "description": "Events whose id was ingested before, or repeated in the request."},
        },
        "required": ["source", "received", "accepted", "duplicates"],
    },
    "PushRequest": {
        "type": "object",
        "description": "Rows of a push feature view: every join key, the timestamp field and every feature "
                       "(a subset of the features where the view allows partial pushes).",
        "properties": {
            "view": {"type": "string", "minLength": 1, "description": "A feature view configured with push: true."},
            "rows": {"type": "array", "minItems": 1, "items": _ref("Row")},
        },
        "required": ["view", "rows"],
        "additionalProperties": False,
    },
    "PushReport": {
        "type": "object",
        "description": "Answered once the rows are written online and journaled for the view's Delta table.",
        "properties": {
            "view": {"type": "string"},
            "rows": {"type": "integer", "minimum": 0, "description": "Rows in the request."},
            "written": {"type": "integer", "minimum": 0, "description": "Online items written (newest row per entity)."},
            "stale": {"type": "integer", "minimum": 0,
                      "description": "Rows not written online: not newer than the online value, or an older row of "
                                     "the same entity in the request (still journaled for the Delta table)."},
            "journaled": {"type": "integer", "minimum": 0,
                          "description": "Rows journaled now: the next flush appends them to the view's Delta table."},
            "duplicates": {"type": "integer", "minimum": 0,
                           "description": "Rows journaled before (a retried push, or the same row twice)."},
        },
        "required": ["view", "rows", "written", "stale", "journaled", "duplicates"],
    },
    "Row": {
        "type": "object",
        "description": "Column name -> value. Timestamps as ISO-8601 strings (UTC when no offset is given).",
        "additionalProperties": {"type": ["string", "number", "integer", "boolean", "null"]},
    },
    "Status": {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "registry_version": {"type": ["integer", "null"]},
            "registry_reload_error": {
                "type": "object",
                "description": "The latest applied registry version this worker cannot load; it serves registry_version.",
                "properties": {"version": {"type": "integer"}, "error": {"type": "string"}},
            },
        },
        "required": ["status"],
    },
}

_FEATURES_EXAMPLE = {
    "feature_service": "fraud_detection",
    "entities": {"user_id": 12, "merchant_id": 7},
    "request_context": {"amount": 99.5, "country": "FR"},
    "include_metadata": True,
}

_INGEST_EXAMPLE = {
    "source": "streams.transactions",
    "rows": [{"transaction_id": 1001, "user_id": 12, "merchant_id": 7, "amount": 99.5, "country": "FR",
              "ts": "2026-11-30T17:00:00+00:00"}],
}
_PUSH_EXAMPLE = {
    "view": "user_profile",
    "rows": [{"user_id": 12, "event_timestamp": "2026-11-30T17:00:00+00:00", "home_country": "FR",
              "credit_limit": 2500.0, "account_tier": "gold"}],
}


def _paths() -> dict[str, Any]:
    return {
        "/v1/features": {
            "post": {
                "operationId": "getFeatures",
                "summary": "Read online features for one entity row or a batch of rows.",
                "requestBody": {"required": True, "content": _json_content(_ref("FeatureRequest"), _FEATURES_EXAMPLE)},
                "responses": {
                    "200": {
                        "description": "FeatureResult for one row; BatchResult when entities is a list.",
                        "content": _json_content({"oneOf": [_ref("FeatureResult"), _ref("BatchResult")]}),
                    },
                    "400": _error("Malformed JSON, missing or mistyped join key or request field, bad field."),
                    "404": _error("Unknown feature service, feature view or feature (close names suggested)."),
                    "413": _error("Batch over the row limit, or body over the size limit."),
                    "408": _error("The client stopped sending its body for longer than the client timeout."),
                    "415": _error("Content type is not application/json, a charset other than UTF-8, or a "
                                  "Content-Encoding (gzip, ...): send the body uncompressed."),
                    "500": _error("Server-side failure (an on-demand view failed); details in the server log."),
                    "503": _error("The online store cannot be reached."),
                },
            }
        },
        "/v1/feature-services": {
            "get": {
                "operationId": "listFeatureServices",
                "summary": "List feature services.",
                "responses": {
                    "200": {"description": "The services.", "content": _json_content(_ref("FeatureServiceList"))}
                },
            }
        },
        "/v1/feature-services/{name}": {
            "get": {
                "operationId": "describeFeatureService",
                "summary": "A feature service's schema: features with types, join keys, request fields.",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "The schema.", "content": _json_content(_ref("FeatureServiceSchema"))},
                    "404": _error("Unknown feature service."),
                },
            }
        },
        "/v1/ingest": {
            "post": {
                "operationId": "ingestEvents",
                "summary": "Ingest events of a stream source: online at once, in its event log after the next flush.",
                "requestBody": {"required": True, "content": _json_content(_ref("IngestRequest"), _INGEST_EXAMPLE)},
                "responses": {
                    "200": {"description": "Every event is durable.", "content": _json_content(_ref("IngestReport"))},
                    "400": _error("Malformed body, or a row that does not fit the source (the field, row and rule "
                                  "are named in details)."),
                    "404": _error("Unknown stream source (close names suggested)."),
                    "413": _error("More rows than the limit per request, or body over the size limit."),
                    "408": _error("The client stopped sending its body for longer than the client timeout."),
                    "415": _error("Content type is not application/json, a charset other than UTF-8, or a "
                                  "Content-Encoding (gzip, ...): send the body uncompressed."),
                    "503": _error("The online store cannot be reached; nothing was acknowledged (retry)."),
                },
            }
        },
        "/v1/push": {
            "post": {
                "operationId": "pushRows",
                "summary": "Push rows to a feature view: online at once (newest event wins), offline after the next flush.",
                "requestBody": {"required": True, "content": _json_content(_ref("PushRequest"), _PUSH_EXAMPLE)},
                "responses": {
                    "200": {"description": "The rows are written.", "content": _json_content(_ref("PushReport"))},
                    "400": _error("Malformed body, a row that does not fit the view, or a view that takes no pushes "
                                  "(push_refused)."),
                    "404": _error("Unknown feature view (close names suggested)."),
                    "413": _error("More rows than the limit per request, or body over the size limit."),
                    "408": _error("The client stopped sending its body for longer than the client timeout."),
                    "415": _error("Content type is not application/json, a charset other than UTF-8, or a "
                                  "Content-Encoding (gzip, ...): send the body uncompressed."),
                    "503": _error("The online store cannot be reached, or other writers kept changing the same "
                                  "entities (write_conflict); nothing was acknowledged (retry)."),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process answers.",
                "responses": {"200": {"description": "Up.", "content": _json_content(_ref("Status"))}},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the online store is reachable.",
                "responses": {
                    "200": {"description": "Ready.", "content": _json_content(_ref("Status"))},
                    "503": _error("The online store cannot be reached."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics (text exposition format).",
                "responses": {
                    "200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {
                    "200": {"description": "OpenAPI 3.1 document.", "content": _json_content({"type": "object"})}
                },
            }
        },
    }


#: Operations answered without an API key (probes); every other one needs the bearer key.
_OPEN_OPERATIONS = ("healthz", "readyz")
_SECURITY_SCHEMES = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `hindsight keys create`, sent as 'Authorization: Bearer <key>'.",
    }
}


def _secure(paths: dict[str, Any]) -> dict[str, Any]:
    """Declare who may call each operation: the probes are open, the rest answer 401 and 403."""
    for item in paths.values():
        for operation in item.values():
            if operation["operationId"] in _OPEN_OPERATIONS:
                operation["security"] = []
                continue
            operation["responses"].setdefault("401", _error("No API key, or not a valid one."))
            if operation["operationId"] != "openapi":
                operation["responses"].setdefault("403", _error("The API key does not cover what was asked for."))
    return paths



_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_NUMBER = {"type": "number"}
_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "float32": _NUMBER,
    "float64": _NUMBER,
    "decimal": _NUMBER,
    "string": {"type": "string"},
    "bool": {"type": "boolean"},
    "timestamp": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
}


def _integer(dtype: str) -> dict[str, Any]:
    low, high = _INT_RANGE[dtype]
    return {"type": "integer", "minimum": low, "maximum": high}


def _key_schema(dtype: str | None) -> dict[str, Any]:
    """A join key's values as `serving.parsing` accepts them (DynamoDB's 2,048-byte key limit)."""
    text = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_BYTES,
            "description": f"At most {MAX_KEY_BYTES} bytes in UTF-8."}
    if dtype in _INT_RANGE:
        return _integer(dtype)
    if dtype is None:
        return {"anyOf": [_integer("int64"), text]}
    return text


def _field_schema(dtype: str) -> dict[str, Any]:
    schema = _integer(dtype) if dtype in _INT_RANGE else _FIELD_SCHEMAS.get(dtype, {})
    return {"anyOf": [schema, {"type": "null"}]} if schema else {}


def _service_rule(name: str, plan: Any, max_batch_rows: int) -> dict[str, Any]:
    """What a request naming service `name` must carry: its join keys and request fields, typed.

    A service that cannot be served (its plan is an error) accepts no request.
    """
    when = {"properties": {"feature_service": {"const": name}}, "required": ["feature_service"]}
    if not hasattr(plan, "join_keys"):
        return {"if": when, "then": False}
    row = {
        "type": "object",
        "properties": {key.name: _key_schema(key.dtype) for key in plan.join_keys},
        "required": [key.name for key in plan.join_keys],
    }
    then: dict[str, Any] = {
        "properties": {"entities": {"oneOf": [row, {"type": "array", "items": row, "maxItems": max_batch_rows}]}}
    }
    if plan.request_fields:
        context = {
            "type": "object",
            "properties": {f.name: _field_schema(f.dtype) for f in plan.request_fields},
            "required": [f.name for f in plan.request_fields],
        }
        then["properties"]["request_context"] = {"oneOf": [context, {"type": "array", "items": context}]}
        then["required"] = ["request_context"]
    return {"if": when, "then": then}


def build_document(
    service_names: list[str] | None = None, plans: dict[str, Any] | None = None, max_batch_rows: int | None = None,
    auth: bool = True, sources: list[str] | None = None, push_views: list[str] | None = None,
    max_write_rows: int | None = None,
) -> dict[str, Any]:
    """The OpenAPI document; `service_names` become the documented values of `feature_service`.

    With `plans` (service name -> ReadPlan, or the error that keeps it from being served), each
    service's join keys and request fields are required, typed, in requests naming it; with
    `max_batch_rows`, the batch form's length is bounded. The document then refuses exactly what
    the server refuses for a known service.
    """
    schemas = dict(_SCHEMAS)
    request = dict(schemas["FeatureRequest"])
    if service_names:
        request["properties"] = {
            **request["properties"],
            "feature_service": {
                "type": "string",
                "description": "A feature service: " + ", ".join(sorted(service_names)),
            },
        }
    if max_batch_rows:
        entities = request["properties"]["entities"]
        request["properties"] = {
            **request["properties"],
            "entities": {"oneOf": [entities["oneOf"][0], {**entities["oneOf"][1], "maxItems": max_batch_rows}]},
        }
    if plans:
        limit = max_batch_rows or 100
        request["allOf"] = [_service_rule(name, plan, limit) for name, plan in sorted(plans.items())]
    schemas["FeatureRequest"] = request
    _document_writes(schemas, sources, push_views, max_write_rows)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hindsight feature serving",
            "version": "1",
            "description": "Online feature values from the Hindsight online store, with on-demand features.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": _secure(_paths()) if auth else _paths(),
        "components": {"schemas": schemas, **({"securitySchemes": _SECURITY_SCHEMES} if auth else {})},
        # A keyless server (`serve --no-auth`, loopback only) asks for no key: the document says so.
        **({"security": [{"apiKey": []}]} if auth else {}),
    }


def _document_writes(schemas: dict[str, Any], sources: list[str] | None, push_views: list[str] | None,
                     max_write_rows: int | None) -> None:
    """Name the served registry's stream sources and push views, and bound the rows per request."""
    for name, field, kind, names in (("IngestRequest", "source", "A stream source", sources),
                                     ("PushRequest", "view", "A feature view configured with push: true", push_views)):
        properties = dict(schemas[name]["properties"])
        if names is not None:
            properties[field] = {**properties[field],
                                 "description": f"{kind}: " + (", ".join(sorted(names)) or "none in this registry")}
        if max_write_rows:
            properties["rows"] = {**properties["rows"], "maxItems": max_write_rows}
        schemas[name] = {**schemas[name], "properties": properties}


def document(app: Flask) -> dict[str, Any]:
    """The app's OpenAPI document, built once per served registry version."""
    from hindsight.serving import auth
    from hindsight.serving.state import EXTENSION

    authenticator = app.extensions.get(auth.EXTENSION)
    with_auth = authenticator is None or authenticator.enabled
    runtime = app.extensions.get(EXTENSION)
    state = runtime.state if runtime else None
    cached = app.extensions.get("hindsight_openapi")
    if cached is None or cached[0] is not state:
        document_ = (
            build_document(auth=with_auth)
            if state is None
            else build_document(sorted(state.services), state.plans, state.config.max_batch_rows, auth=with_auth,
                                sources=[source.name for source in state.registry.stream_sources],
                                push_views=[view.name for view in state.registry.feature_views if view.push],
                                max_write_rows=state.config.max_write_rows)
        )
        cached = (state, document_)
        app.extensions["hindsight_openapi"] = cached
    return cached[1]
