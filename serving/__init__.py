"""The online serving API: a Flask app answering feature requests from the online store.

Owns the HTTP API (`POST /v1/features`, `GET /v1/feature-services[/<name>]`, `POST /v1/ingest`,
`POST /v1/push`, `/healthz`, `/readyz`, `/metrics`, `/openapi.json`) and its gunicorn runner (`serving.server`, behind `hindsight serve`).
Reads the latest applied registry (`registry_sync.load_registry`, followed while it runs: each
worker swaps in a newly applied version, see `serving.reload`; or a pinned registry file), the
online store (`online_sync.store.OnlineStore`, DynamoDB) and on-demand view code
(`on_demand.load_views`), which it runs in-process on what it read and the request context.
Writes ingested events and pushed rows through `serving.ingest` (DynamoDB, then Delta by its
background flusher), its responses and Prometheus metric files (multiprocess mode).
Every endpoint but the probes needs an API key (`serving.auth`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the serving app.

    Args:
        test_config: overrides; see `serving.state.init_app` (REGISTRY, ONLINE_STORE,
            ON_DEMAND_VIEWS, MAX_BATCH_ROWS, ...), `serving.auth.init_app` (AUTH, API_KEYS, ...)
            and `serving.ingest.init_app` (INGESTOR, PUSH).

    Raises:
        serving.state.ServingSetupError: the registry or on-demand code cannot be loaded.
        ValueError: a serving setting (HINDSIGHT_SERVING_AUTH, ...) is not valid.
    """
    from hindsight.serving import auth, errors, features, ingest, ops, services, state

    app = Flask(__name__, static_folder=None)
    # Anything answered through flask.jsonify keeps the handler's key order.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if test_config:
        app.config.update({k: v for k, v in test_config.items() if k in ("TESTING", "DEBUG")})
    state.init_app(app, test_config)
    errors.register_error_handlers(app)
    auth.init_app(app, test_config)
    app.register_blueprint(features.bp)
    app.register_blueprint(services.bp)
    app.register_blueprint(ops.bp)
    ingest.init_app(app, test_config)
    return app
