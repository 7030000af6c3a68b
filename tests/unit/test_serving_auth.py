"""API keys: minting and hashing, scopes, the lookup cache, and every endpoint's 401/403 over the app."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from click.testing import CliRunner

from hindsight.client import HindsightClient, HindsightError
from hindsight.online_sync.config import OnlineStoreUnavailable
from hindsight.online_sync.keys import ApiKey, hash_key, new_key, parse_key
from hindsight.serving import auth
from tests.unit.test_serving_client import FlaskAdapter

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
ROW = {"user_id": 12, "merchant_id": 7}
CONTEXT = {"amount": 25.0, "country": "FR"}


def _key(read=(), write=(), metrics=False, revoked=None, key_hash="h"):
    return ApiKey("0123456789ab", "model", frozenset(read), frozenset(write), metrics, NOW, revoked, "me", key_hash)


# --- keys and scopes -------------------------------------------------------------------------


def test_new_keys_are_long_random_and_carry_their_id():
    keys = [new_key() for _ in range(200)]
    assert len({key for key, _ in keys}) == 200
    for key, key_id in keys:
        assert key.startswith("hsk_") and len(key) == 60 and parse_key(key) == key_id
        # The secret part carries 256 random bits; the id only finds the record.
        assert len(key.split("_", 2)[2]) == 43


@pytest.mark.parametrize("text", ["", "hsk_", "hsk_0123456789ab_short", "hsk_0123456789AB_" + "x" * 43,
                                  "Bearer hsk_0123456789ab_" + "x" * 43, "hsk_0123456789ab_" + "x" * 44])
def test_malformed_keys_have_no_id(text):
    assert parse_key(text) is None


def test_only_the_hash_is_kept_and_it_matches_only_its_key():
    key, key_id = new_key()
    record = _key(read=["*"], key_hash=hash_key(key))
    assert key not in repr(record) and record.key_hash == hash_key(key) and len(record.key_hash) == 64
    assert record.matches(key)
    other, _ = new_key()
    assert not record.matches(other) and not record.matches(key[:-1] + ("A" if key[-1] != "A" else "B"))
    assert not _key(read=["*"], key_hash="").matches(key)


def test_scopes():
    key = _key(read=["fraud_detection", "user_profile"], write=["merchant_risk"])
    assert key.can_read("fraud_detection") and key.can_read("user_profile") and not key.can_read("merchant_risk")
    assert key.can_read_all(["user_profile"]) and not key.can_read_all(["user_profile", "merchant_risk"])
    assert key.can_write("merchant_risk") and not key.can_write("user_profile")
    assert not key.metrics
    everything = _key(read=["*"], write=["*"], metrics=True)
    assert everything.can_read("anything") and everything.can_read_all(["a", "b"]) and everything.can_write("x")
    assert everything.scopes() == "read *; write *; metrics"
    assert _key(read=["b", "a"]).scopes() == "read a,b"


def test_auth_config_from_env():
    assert auth.AuthConfig.from_env({}) == auth.AuthConfig("keys", 5.0)
    environ = {"HINDSIGHT_SERVING_AUTH": "none", "HINDSIGHT_SERVING_KEY_CACHE_SECONDS": "0.5"}
    assert auth.AuthConfig.from_env(environ) == auth.AuthConfig("none", 0.5)
    with pytest.raises(ValueError, match=r"HINDSIGHT_SERVING_AUTH='nope' \('serving.auth'\) should be 'keys' or 'none'"):
        auth.AuthConfig.from_env({"HINDSIGHT_SERVING_AUTH": "nope"})
    with pytest.raises(ValueError, match=r"HINDSIGHT_SERVING_KEY_CACHE_SECONDS='-1' \('serving.key_cache_seconds'\)"):
        auth.AuthConfig.from_env({"HINDSIGHT_SERVING_KEY_CACHE_SECONDS": "-1"})


def test_hindsight_yml_sets_the_auth_mode(tmp_path):
    from hindsight.core.settings import Settings

    (tmp_path / "hindsight.yml").write_text("serving:\n  auth: none\n  key_cache_seconds: 0.5\n")
    assert auth.AuthConfig.from_settings(Settings.load(tmp_path, environ={})) == auth.AuthConfig("none", 0.5)
    # The environment wins over the file.
    settings = Settings.load(tmp_path, environ={"HINDSIGHT_SERVING_AUTH": "keys"})
    assert auth.AuthConfig.from_settings(settings).mode == "keys"
    (tmp_path / "hindsight.yml").write_text("serving:\n  auth: nokeys\n")
    with pytest.raises(ValueError, match=r"serving.auth.*should be 'keys' or 'none'"):
        Settings.load(tmp_path, environ={})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com"])
def test_keyless_is_refused_off_loopback(host):
    with pytest.raises(ValueError, match=f"refusing to serve without API keys on {host}"):
        auth.check_bind(host, "none")
    auth.check_bind(host, "keys")  # with keys any address is fine


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_keyless_is_allowed_on_loopback(host):
    auth.check_bind(host, "none")


def test_key_cache_reuses_answers_for_its_ttl_only():
    clock = [100.0]
    answers = {"a": _key(read=["*"])}
    calls = []

    def lookup(key_id):
        calls.append(key_id)
        return answers.get(key_id)

    cache = auth.KeyCache(lookup, ttl=5.0, clock=lambda: clock[0])
    assert cache.get("a") is answers["a"] and cache.get("a") is answers["a"]
    assert cache.get("missing") is None and cache.get("missing") is None
    assert calls == ["a", "missing"]
    answers["a"] = _key(read=["*"], revoked=NOW)
    clock[0] += 4.9
    assert cache.get("a").active  # still cached
    clock[0] += 0.2
    assert not cache.get("a").active  # looked up again after 5 s
    assert calls == ["a", "missing", "a"]
    uncached = auth.KeyCache(lookup, ttl=0, clock=lambda: clock[0])
    uncached.get("a"), uncached.get("a")
    assert calls[-2:] == ["a", "a"]


# --- the app with keys --------------------------------------------------------------------------


@pytest.fixture
def app(make_serving_app, serving_keys):
    return make_serving_app(AUTH="keys", API_KEYS=serving_keys, KEY_CACHE_SECONDS=60)


@pytest.fixture
def client(app):
    return app.test_client()


def _bearer(key):
    return {"Authorization": f"Bearer {key}"}


def _features(client, key, **body):
    body.setdefault("entities", ROW)
    return client.post("/v1/features", json=body, headers=_bearer(key) if key else {})


def test_no_key_is_401_with_a_bearer_challenge(client):
    for response in (_features(client, None, feature_service="user_basics"), client.get("/v1/feature-services"),
                     client.get("/metrics"), client.get("/openapi.json"),
                     client.post("/v1/features", json={"feature_service": "user_basics", "entities": ROW},
                                 headers={"Authorization": "Basic dXNlcjpwYXNz"})):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="hindsight"'
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert "Authorization: Bearer <key>" in response.get_json()["error"]["message"]


def test_invalid_keys_are_401_alike_whatever_is_wrong(client, serving_keys):
    key = serving_keys.create("model", read=["*"])
    revoked = serving_keys.create("old", read=["*"])
    serving_keys.revoke(revoked)
    wrong_secret = key[:-1] + ("A" if key[-1] != "A" else "B")
    unknown_id = "hsk_ffffffffffff_" + key.split("_", 2)[2]
    bodies = []
    for bad in (wrong_secret, unknown_id, revoked, "not-a-key"):
        response = _features(client, bad, feature_service="user_basics")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="hindsight", error="invalid_token"'
        bodies.append(response.get_json())
    # Nothing tells an existing key id from a made-up one.
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["error"]["message"] == "the API key is not valid (unknown, revoked or mistyped)"
    assert _features(client, key, feature_service="user_basics").status_code == 200


def test_a_service_key_reads_its_service_only(client, serving_keys):
    key = serving_keys.create("scorer", read=["fraud_detection"])
    ok = _features(client, key, feature_service="fraud_detection", request_context=CONTEXT)
    assert ok.status_code == 200 and ok.get_json()["features"]["home"] == "FR"
    denied = _features(client, key, feature_service="user_basics")
    assert denied.status_code == 403
    error = denied.get_json()["error"]
    assert error["code"] == "forbidden"
    assert error["message"] == ("API key 'scorer' (id %s) may not read feature service 'user_basics'; its scopes: "
                                "read fraud_detection. Ask for a key created with --read user_basics") % parse_key(key)
    # An unknown service is 403 too: a key learns nothing about services it cannot read.
    assert _features(client, key, feature_service="fraud_detectoin").status_code == 403
    # Features named directly need read on their views, which a service key does not give.
    assert _features(client, key, features=["user_profile:home_country"]).status_code == 403


def test_view_keys_read_those_views_and_services_made_of_them(client, serving_keys):
    key = serving_keys.create("profiles", read=["user_profile"])
    assert _features(client, key, features=["user_profile:home_country", "user_profile:*"]).status_code == 200
    # user_basics reads only user_profile: every view it names is covered.
    assert _features(client, key, feature_service="user_basics").status_code == 200
    denied = _features(client, key, features=["user_profile:home_country", "merchant_risk:txn_count_7d"])
    assert denied.status_code == 403
    assert "may not read feature view(s) 'merchant_risk'" in denied.get_json()["error"]["message"]
    assert _features(client, key, feature_service="fraud_detection", request_context=CONTEXT).status_code == 403


def test_star_reads_everything_and_still_gets_404_suggestions(client, serving_keys):
    key = serving_keys.create("all", read=["*"])
    assert _features(client, key, feature_service="fraud_detection", request_context=CONTEXT).status_code == 200
    assert _features(client, key, feature_service="user_basics").status_code == 200
    assert _features(client, key, features=["merchant_risk:txn_count_7d"]).status_code == 200
    missing = _features(client, key, feature_service="fraud_detectoin")
    assert missing.status_code == 404 and missing.get_json()["error"]["details"]["suggestions"] == ["fraud_detection"]
    # Malformed bodies are still the parser's 400s.
    assert _features(client, key, feature_service=3).status_code == 400


def test_probes_are_open_and_metrics_need_their_scope(client, serving_keys):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    reader = serving_keys.create("reader", read=["*"])
    watcher = serving_keys.create("prometheus", metrics=True)
    assert client.get("/metrics").status_code == 401
    denied = client.get("/metrics", headers=_bearer(reader))
    assert denied.status_code == 403 and "--metrics" in denied.get_json()["error"]["message"]
    metrics = client.get("/metrics", headers=_bearer(watcher))
    assert metrics.status_code == 200 and b"hindsight_serving_errors" in metrics.data
    # The 401s and 403s are counted like every other error.
    assert b'hindsight_serving_errors_total{code="unauthorized"}' in metrics.data
    assert b'hindsight_serving_errors_total{code="forbidden"}' in metrics.data
    # A metrics-only key reads no features.
    assert _features(client, watcher, feature_service="user_basics").status_code == 403


def test_service_descriptions_show_only_what_the_key_reads(client, serving_keys):
    key = serving_keys.create("profiles", read=["user_profile"])
    listing = client.get("/v1/feature-services", headers=_bearer(key))
    assert [s["name"] for s in listing.get_json()["feature_services"]] == ["user_basics"]
    assert client.get("/v1/feature-services/user_basics", headers=_bearer(key)).status_code == 200
    assert client.get("/v1/feature-services/fraud_detection", headers=_bearer(key)).status_code == 403
    assert client.get("/v1/feature-services/nope", headers=_bearer(key)).status_code == 403
    everything = serving_keys.create("all", read=["*"])
    listing = client.get("/v1/feature-services", headers=_bearer(everything)).get_json()
    assert [s["name"] for s in listing["feature_services"]] == ["fraud_detection", "user_basics", "merchant_catalog"]
    assert client.get("/v1/feature-services/nope", headers=_bearer(everything)).status_code == 404


def test_openapi_needs_a_key_and_declares_the_bearer_scheme(client, serving_keys):
    key = serving_keys.create("docs", metrics=True)
    document = client.get("/openapi.json", headers=_bearer(key)).get_json()
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer",
        "description": "An API key from `hindsight keys create`, sent as 'Authorization: Bearer <key>'.",
    }
    assert document["security"] == [{"apiKey": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert document["paths"]["/readyz"]["get"]["security"] == []
    features = document["paths"]["/v1/features"]["post"]
    assert "security" not in features and {"401", "403"} <= set(features["responses"])


def test_write_targets_are_one_call(app, serving_keys):
    @app.post("/test-push/<view>")
    def _push(view):
        auth.require_write(view)
        return {"pushed": view}

    client = app.test_client()
    writer = serving_keys.create("stream", write=["merchant_risk"])
    assert client.post("/test-push/merchant_risk", headers=_bearer(writer)).status_code == 200
    denied = client.post("/test-push/user_profile", headers=_bearer(writer))
    assert denied.status_code == 403 and "--write user_profile" in denied.get_json()["error"]["message"]
    reader = serving_keys.create("reader", read=["*"])
    assert client.post("/test-push/merchant_risk", headers=_bearer(reader)).status_code == 403
    assert client.post("/test-push/merchant_risk").status_code == 401


def test_lookups_are_cached_per_process(client, serving_keys):
    key = serving_keys.create("model", read=["*"])
    for _ in range(5):
        assert _features(client, key, feature_service="user_basics").status_code == 200
    assert serving_keys.lookups == 1


def test_an_unreachable_key_table_is_503(make_serving_app):
    class Down:
        def lookup(self, key_id):
            raise OnlineStoreUnavailable("http://127.0.0.1:1 is down")

    client = make_serving_app(AUTH="keys", API_KEYS=Down()).test_client()
    key, _ = new_key()
    response = _features(client, key, feature_service="user_basics")
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "online_store_unavailable"


def test_keyless_mode_asks_for_nothing(make_serving_app):
    client = make_serving_app(AUTH="none").test_client()
    assert _features(client, None, feature_service="user_basics").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_python_client_sends_its_key(client, serving_keys, monkeypatch):
    monkeypatch.delenv("HINDSIGHT_API_KEY", raising=False)
    key = serving_keys.create("notebook", read=["user_basics"])

    def hindsight(**kwargs):
        session = requests.Session()
        session.mount("http://hindsight.test", FlaskAdapter(client))
        return HindsightClient("http://hindsight.test", session=session, **kwargs)

    assert hindsight(api_key=key).get_features(ROW, feature_service="user_basics")["features"]["home_country"] == "FR"
    assert "hsk_" not in repr(hindsight(api_key=key))
    with pytest.raises(HindsightError) as missing:
        hindsight().get_features(ROW, feature_service="user_basics")
    assert (missing.value.status, missing.value.code) == (401, "unauthorized")
    with pytest.raises(HindsightError) as forbidden:
        hindsight(api_key=key).get_features(ROW, feature_service="fraud_detection", request_context=CONTEXT)
    assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")
    monkeypatch.setenv("HINDSIGHT_API_KEY", key)
    assert [s["name"] for s in hindsight().feature_services()] == ["user_basics"]
    assert hindsight().ready()


# --- the CLI -------------------------------------------------------------------------------------


def test_serve_refuses_keyless_on_the_network(monkeypatch, tmp_path):
    from hindsight.cli import main
    from hindsight.serving import server

    runs = []
    monkeypatch.setattr(server, "run", lambda options, app: runs.append((options, app)))
    monkeypatch.setenv("HINDSIGHT_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    result = CliRunner().invoke(main, ["serve", "--no-auth", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "refusing to serve without API keys on 0.0.0.0" in result.output
    monkeypatch.setenv("HINDSIGHT_SERVING_AUTH", "none")
    result = CliRunner().invoke(main, ["serve", "--host", "10.1.2.3", "--detach"])
    assert result.exit_code == 2 and "refusing to serve without API keys on 10.1.2.3" in result.output
    assert runs == []


def test_keys_create_checks_names_against_the_registry(monkeypatch, serving_registry):
    import importlib

    from hindsight.cli import main

    keys_cli = importlib.import_module("hindsight.cli.keys")  # the package's `keys` is the click group

    monkeypatch.setattr("hindsight.registry_sync.load_registry", lambda *args, **kwargs: serving_registry)
    monkeypatch.setattr(keys_cli, "_store", lambda: pytest.fail("must not reach the key table"))
    result = CliRunner().invoke(main, ["keys", "create", "--name", "m", "--read", "fraud_detectoin"])
    assert result.exit_code == 2
    assert "'fraud_detectoin' is not a feature service or view of the applied registry " \
           "(did you mean fraud_detection?)" in result.output
    result = CliRunner().invoke(main, ["keys", "create", "--name", "m", "--write", "user_basics"])
    assert result.exit_code == 2 and "'user_basics' is not a feature view" in result.output
