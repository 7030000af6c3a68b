"""Blueprint `features`: `POST /v1/features`, the online read (single and batch form)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, request

from hindsight.serving import auth, jsonio, metrics, sampling
from hindsight.serving.body import parse_json_body, read_body
from hindsight.serving.parsing import parse_feature_request
from hindsight.serving.reader import read_features
from hindsight.serving.server import request_arrival
from hindsight.serving.state import get_state

bp = Blueprint("features", __name__, url_prefix="/v1")

#: Label of the latency histogram (and `service` of logged samples) for requests that name
#: features instead of a service.
AD_HOC = sampling.AD_HOC


@bp.post("/features")
def get_features() -> Response:
    """Feature values for one entity row (`entities` an object) or many (`entities` a list)."""
    started = request_arrival() or time.perf_counter()
    state = get_state()
    data = read_body(request.environ, request.content_length, state.config.max_body_bytes)
    body = parse_json_body(data, request.mimetype)
    auth.authorize_feature_request(body)
    feature_request = parse_feature_request(body, state)
    results = read_features(
        feature_request, state.store, state.pool, started, state.config.store_deadline_ms / 1000
    )
    response = jsonio.response({"results": results} if feature_request.batch else results[0])
    service = feature_request.plan.service or AD_HOC
    sampler = sampling.get_sampler(current_app)
    if sampler is not None:
        sampler.offer(service, state.registry.version, feature_request.entity_rows, results)
    metrics.observe_request(service, "batch" if feature_request.batch else "single", time.perf_counter() - started)
    return response
