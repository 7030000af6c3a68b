"""Hot reload: the app follows the registry folder, swaps in new versions, keeps the old on failure."""

from __future__ import annotations

import dataclasses

import pytest

from hindsight.registry_sync.store import RegistryStore
from hindsight.serving import create_app, metrics, state
from tests.fixtures.serving import FakeOnlineStore, seed_store

USER_BASICS = {"feature_service": "user_basics", "entities": {"user_id": 12}}
HOME = {"features": ["user_profile:home_country"], "entities": {"user_id": 12}}


@pytest.fixture
def registry_dir(tmp_path, monkeypatch):
    directory = tmp_path / "registry"
    monkeypatch.setenv("HINDSIGHT_REGISTRY", str(directory))
    monkeypatch.delenv("HINDSIGHT_SERVING_REGISTRY", raising=False)
    return directory


@pytest.fixture
def following_app(registry_dir, serving_registry, serving_on_demand):
    """An app serving version 1 (without user_basics) of a real registry folder."""
    store = RegistryStore(registry_dir)
    without = tuple(s for s in serving_registry.feature_services if s.name != "user_basics")
    store.write(dataclasses.replace(serving_registry, feature_services=without))
    made = []

    def factory(registry):
        fake = FakeOnlineStore(registry)
        seed_store(fake)
        made.append(fake)
        return fake

    # The polling thread never ticks in these tests: they call check() themselves.
    app = create_app({"ONLINE_STORE": factory, "ON_DEMAND_VIEWS": {"transaction_context": serving_on_demand},
                      "RELOAD_INTERVAL_MS": 3_600_000, "AUTH": "none"})
    return app, store, made


def reload_failures() -> float:
    return metrics.RELOAD_FAILURES._value.get()


def test_a_newly_applied_version_is_served_after_one_check(following_app, serving_registry):
    app, store, made = following_app
    client = app.test_client()
    assert client.post("/v1/features", json=USER_BASICS).status_code == 404
    assert client.post("/v1/features", json=HOME).get_json() == {"features": {"home_country": "FR"}}
    follower = state.get_runtime(app).follower
    assert follower is not None and follower.check() is False  # nothing new yet

    store.write(serving_registry)
    assert follower.check() is True
    response = client.post("/v1/features", json=USER_BASICS)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"features": {"home_country": "FR", "credit_limit": 2500.0}}
    assert client.get("/readyz").get_json() == {"status": "ready", "registry_version": 2}
    assert "user_basics" in {s["name"] for s in client.get("/v1/feature-services").get_json()["feature_services"]}
    assert "user_basics" in str(client.get("/openapi.json").get_json())
    # The new version got its own store client, built by the follower before the swap.
    assert [m.registry.version for m in made] == [1, 2]
    assert metrics._registry_version is not None and metrics._registry_version._value.get() == 2


def test_a_version_that_cannot_load_keeps_the_old_one_serving(following_app, serving_registry, registry_dir, caplog):
    app, store, _ = following_app
    client = app.test_client()
    follower = state.get_runtime(app).follower
    before = reload_failures()
    (registry_dir / "v000002.json").write_text("{ not json")

    assert follower.check() is False
    assert follower.check() is False  # tried again, counted and logged once
    assert reload_failures() == before + 1
    assert [r.getMessage() for r in caplog.records if "cannot be served" in r.getMessage()] == [
        f"registry version 2 cannot be served (still serving version 1): RegistryError: {registry_dir}/v000002.json "
        "is not a registry: not JSON (Expecting property name enclosed in double quotes: line 1 column 3 (char 2)); "
        "the version file is damaged: `hindsight apply` writes a new version"
    ]
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["registry_version"] == 1
    assert ready.get_json()["registry_reload_error"]["version"] == 2
    assert client.post("/v1/features", json=HOME).get_json() == {"features": {"home_country": "FR"}}

    store.write(serving_registry)  # version 3 fixes it
    assert follower.check() is True
    assert client.get("/readyz").get_json() == {"status": "ready", "registry_version": 3}
    assert client.post("/v1/features", json=USER_BASICS).status_code == 200


def test_a_pinned_registry_is_not_followed(serving_registry, serving_store, serving_on_demand, registry_dir):
    app = create_app({"REGISTRY": serving_registry, "ONLINE_STORE": serving_store,
                      "ON_DEMAND_VIEWS": {"transaction_context": serving_on_demand}})
    assert state.get_runtime(app).follower is None


def test_the_polling_thread_swaps_within_its_interval(registry_dir, serving_registry, serving_on_demand):
    import time

    store = RegistryStore(registry_dir)
    store.write(serving_registry)
    app = create_app({"ONLINE_STORE": lambda r: FakeOnlineStore(r),
                      "ON_DEMAND_VIEWS": {"transaction_context": serving_on_demand}, "RELOAD_INTERVAL_MS": 50})
    runtime = state.get_runtime(app)
    runtime.warm()  # what gunicorn's post_fork does: starts this process's follower
    try:
        store.write(serving_registry)
        deadline = time.monotonic() + 5
        while runtime.state.registry.version != 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runtime.state.registry.version == 2
    finally:
        runtime.follower.stop()
