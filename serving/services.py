"""Blueprint `feature_services`: list the feature services and describe one (its request schema)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

from hindsight.registry_sync.model import FeatureService
from hindsight.serving import auth, jsonio
from hindsight.serving.errors import ApiError, unknown
from hindsight.serving.plans import ReadPlan
from hindsight.serving.state import ServingState, get_state

bp = Blueprint("feature_services", __name__, url_prefix="/v1/feature-services")


@bp.get("")
def list_services() -> Response:
    """Every feature service in the registry the API key may read, with whether it can be served."""
    state = get_state()
    items = [_summary(state, service) for service in state.services.values()
             if auth.may_read_service(service.name, [ref.view for ref in service.features])]
    return jsonio.response({"feature_services": items, "registry_version": state.registry.version})


@bp.get("/<name>")
def describe_service(name: str) -> Response:
    """One service's schema: its features with types, join keys and request fields."""
    state = get_state()
    service = state.services.get(name)
    if service is None:
        raise unknown("feature service", name, state.services, "unknown_feature_service")
    return jsonio.response(service_schema(state, service))


def _summary(state: ServingState, service: FeatureService) -> dict[str, Any]:
    return {
        "name": service.name,
        "description": service.description,
        "owner": service.owner,
        "tags": list(service.tags),
        "feature_count": len(service.features),
        "servable": not isinstance(state.plans[service.name], ApiError),
    }


def service_schema(state: ServingState, service: FeatureService) -> dict[str, Any]:
    """The JSON description of a service that `GET /v1/feature-services/<name>` answers."""
    plan = state.plans[service.name]
    schema = _summary(state, service)
    if isinstance(plan, ApiError):
        schema["error"] = plan.body()["error"]
        schema.update(entities=[], join_keys=[], request_fields=[])
        schema["features"] = [{"name": ref.output_name, "ref": str(ref)} for ref in service.features]
        return schema
    schema["entities"] = [_entity(state, name) for name in plan.entities]
    schema["join_keys"] = [{"name": k.name, "dtype": k.dtype, "views": list(k.views)} for k in plan.join_keys]
    schema["request_fields"] = [{"name": f.name, "dtype": f.dtype, "views": list(f.views)} for f in plan.request_fields]
    schema["features"] = _features(state, plan)
    return schema


def _entity(state: ServingState, name: str) -> dict[str, Any]:
    try:
        entity = state.registry.entity(name)
    except KeyError:
        return {"name": name, "join_keys": [], "description": ""}
    return {"name": name, "join_keys": list(entity.join_keys), "description": entity.description}


def _features(state: ServingState, plan: ReadPlan) -> list[dict[str, Any]]:
    ttl = {v.name: v.ttl_seconds for v in state.registry.feature_views}
    # Aggregation features also say what they aggregate: function, input column, window, interval.
    aggregations = {
        (v.name, a.name): {"function": a.function, "column": a.column, "window_seconds": a.window_seconds,
                           "interval_seconds": v.aggregation_interval_seconds}
        for v in state.registry.feature_views if v.is_aggregation for a in v.aggregations
    }
    features = []
    for column in plan.outputs:
        feature = {
            "name": column.name,
            "ref": f"{column.view}:{column.feature}",
            "view": column.view,
            "feature": column.feature,
            "dtype": column.dtype,
            "description": column.description,
            "on_demand": column.on_demand,
            "ttl_seconds": ttl.get(column.view),
        }
        aggregation = aggregations.get((column.view, column.feature))
        if aggregation is not None:
            feature["aggregation"] = aggregation
        features.append(feature)
    return features
