"""Blueprint `ops`: liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout

from flask import Blueprint, Response, current_app

from hindsight.serving import jsonio, metrics, openapi
from hindsight.serving.pipeline_metrics import PIPELINE
from hindsight.serving.errors import ApiError, error_response
from hindsight.serving.state import get_runtime, get_state

log = logging.getLogger(__name__)

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up and answering."""
    return jsonio.response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """The online store answers within the readiness deadline and has the table of every online
    feature view served: 200 when so, 503 otherwise.

    Also names the latest applied registry version this worker could not load, if any (it keeps
    serving the version it has, so it stays ready). The tables are listed at most once a second
    per worker (`ServingState.check_store`). A missing table's name is logged, not answered: this
    probe is open to anyone who reaches the port, and error bodies never carry table names.
    """
    state = get_state()
    deadline_s = state.config.ready_deadline_ms / 1000
    # On the read pool, so a hung store costs this probe its deadline, not the client's timeouts.
    future = state.pool.submit(state.check_store)
    missing: tuple[str, ...] | None = None
    try:
        missing = future.result(timeout=deadline_s)
        reason = "the check failed"
    except FutureTimeout:
        future.cancel()
        reason = f"no answer within {state.config.ready_deadline_ms} ms"
    except Exception as error:  # noqa: BLE001 - any failure to reach the store means "not ready", not a 500
        # The detail (endpoint URL, ...) goes to the log only.
        log.warning("online store ping failed: %s: %s", type(error).__name__, error)
        reason = "see the server log"
    if missing is None:
        message = f"the online store cannot be reached ({reason})"
        return error_response(ApiError(503, "online_store_unavailable", message))
    if missing:
        message = (f"the online store lacks the table of {len(missing)} served feature view(s): run `hindsight "
                   "apply` to create it (the server log names the tables)")
        return error_response(ApiError(503, "online_store_unavailable", message))
    body: dict[str, object] = {"status": "ready", "registry_version": state.registry.version}
    follower = get_runtime(current_app).follower
    if follower is not None and follower.failure is not None:
        # Still ready: the worker serves the version it has; the failure is for operators to see.
        body["registry_reload_error"] = follower.failure.to_dict()
    return jsonio.response(body)


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus text exposition, merged across gunicorn workers, with the pipeline's freshness."""
    state = get_state()
    body, content_type = metrics.render(PIPELINE.families(state.registry, state.store))
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3.1 description of this API."""
    return jsonio.response(openapi.document(current_app))
