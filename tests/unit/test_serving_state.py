"""The app's clients: created once per app, the store once per process (after a fork, again)."""

from __future__ import annotations

from hindsight.serving import create_app, state


def test_store_factory_runs_once_per_process(serving_registry, serving_store, serving_on_demand, monkeypatch):
    made = []

    def factory(registry):
        made.append(registry)
        return serving_store

    app = create_app({"REGISTRY": serving_registry, "ONLINE_STORE": factory,
                      "ON_DEMAND_VIEWS": {"transaction_context": serving_on_demand}, "AUTH": "none"})
    assert made == []  # nothing connects before a worker needs it
    client = app.test_client()
    body = {"features": ["user_profile:home_country"], "entities": {"user_id": 12}}
    for _ in range(3):
        assert client.post("/v1/features", json=body).get_json() == {"features": {"home_country": "FR"}}
    assert made == [serving_registry]
    # A forked worker has another pid: it gets its own client.
    monkeypatch.setattr(state.os, "getpid", lambda: -1)
    state.warm(app)
    assert len(made) == 2


def test_registry_and_on_demand_factories(serving_registry, serving_store, serving_on_demand):
    app = create_app({"REGISTRY": lambda: serving_registry, "ONLINE_STORE": serving_store,
                      "ON_DEMAND_VIEWS": lambda: {"transaction_context": serving_on_demand}})
    with app.app_context():
        current = state.get_state()
        assert current.registry is serving_registry
        assert current.on_demand_views == {"transaction_context": serving_on_demand}


def test_default_on_demand_views_are_the_projects(serving_registry, serving_store):
    app = create_app({"REGISTRY": serving_registry, "ONLINE_STORE": serving_store, "AUTH": "none"})
    body = {
        "features": ["transaction_context:*"],
        "entities": {"user_id": 12},
        "request_context": {"amount": 125.0, "country": "FR"},
    }
    # on_demand.fraud.transaction_context, the code training sets run too.
    assert app.test_client().post("/v1/features", json=body).get_json() == {
        "features": {"amount_vs_user_mean_30d": 2.5, "is_foreign_country": False}
    }
